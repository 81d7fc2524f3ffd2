"""A schema: the ordered, typed fields every record has."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("int", "str", "float", "bool")


@dataclass(frozen=True)
class Schema:
    fields: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.fields]
        if len(names) != len(set(names)):
            raise ValueError("field names must be unique")
        for name, kind in self.fields:
            if kind not in KINDS:
                raise ValueError(f"field {name!r}: unknown kind {kind!r}")

    @classmethod
    def of(cls, **fields: str) -> Schema:
        return cls(tuple(fields.items()))

    def check(self, record: dict) -> None:
        """Raise ValueError if ``record`` lacks a field or holds a value of the wrong type."""
        for name, kind in self.fields:
            if name not in record:
                raise ValueError(f"record lacks field {name!r}")
            value = record[name]
            ok = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "str": isinstance(value, str),
                "float": isinstance(value, float),
                "bool": isinstance(value, bool),
            }[kind]
            if not ok:
                raise ValueError(f"field {name!r} expects {kind}, got {type(value).__name__}")
