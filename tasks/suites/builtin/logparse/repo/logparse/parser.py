"""Parsing log lines into records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from logparse.formats import compile_format


@dataclass(frozen=True)
class Record:
    host: str
    user: str
    time: str
    method: str
    path: str
    protocol: str
    status: int
    size: int
    referer: str = ""
    agent: str = ""
    duration_us: int | None = None

    @property
    def hour(self) -> int | None:
        """The hour of day, from a time like ``10/Oct/2000:13:55:36 -0700`` (None if absent)."""
        parts = self.time.split(":", 2)
        return int(parts[1]) if len(parts) == 3 else None


def _record(fields: dict[str, str]) -> Record | None:
    request = fields.get("request")
    if request is None:
        method = path = protocol = "-"
    else:
        parts = request.split(" ")
        if len(parts) != 3:
            return None
        method, path, protocol = parts
    size = fields.get("size", "-")
    duration = fields.get("duration")
    return Record(
        host=fields.get("host", "-"),
        user=fields.get("user", "-"),
        time=fields.get("time", "[-]")[1:-1],
        method=method,
        path=path,
        protocol=protocol,
        status=int(fields.get("status", "0")),
        size=0 if size == "-" else int(size),
        referer=fields.get("referer", ""),
        agent=fields.get("agent", ""),
        duration_us=None if duration is None else int(duration),
    )


def parse_line(line: str, fmt: str = "common") -> Record | None:
    """Parse one line; None when it does not match ``fmt`` or its request is malformed."""
    pattern = compile_format(fmt)
    match = pattern.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return _record(match.groupdict())


def parse_lines(lines: Iterable[str], fmt: str = "common") -> tuple[list[Record], int]:
    """Parse many lines; return the records and the number of lines that did not parse."""
    records = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        record = parse_line(line, fmt)
        if record is None:
            bad += 1
        else:
            records.append(record)
    return records, bad
