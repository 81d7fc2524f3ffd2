"""What a model call cost, from token counts and a price table kept as data.

Prices change more often than code, so they live in ``prices.toml`` next to this module
(USD per million input and output tokens), and a user file can override or extend them. A
model missing from the table costs 0, which would silently disable a cost limit, so the
first call to each unknown model says so once through ``warn``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.protocols import ModelError, Usage

BUNDLED = Path(__file__).with_name("prices.toml")
_SEPARATORS = ("-", ":", "@", ".")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float


def load_prices(override: Path | None = None) -> dict[str, Price]:
    """The bundled table, updated by ``override`` (same format) when given."""
    table = _read_table(BUNDLED)
    if override is not None:
        table.update(_read_table(Path(override)))
    return table


def _read_table(path: Path) -> dict[str, Price]:
    """``[models."NAME"] input = .. output = ..`` tables; a bad file is the user's to fix."""
    fix = f'write [models."MODEL"] tables with numeric input and output prices in {path}'
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise ModelError(f"cannot read the price file {path}: {err.strerror}", fix) from err
    except tomllib.TOMLDecodeError as err:
        raise ModelError(f"the price file {path} is not valid TOML ({err})", fix) from err
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ModelError(f"{path}: `models` must be a table", fix)
    return {name: _price(path, name, entry, fix) for name, entry in models.items()}


def _price(path: Path, name: str, entry: Any, fix: str) -> Price:
    """One model's entry, checked: both prices present, numbers, not negative."""
    if not isinstance(entry, dict) or set(entry) - {"input", "output"}:
        raise ModelError(f"{path}: models.{name} must have only `input` and `output`", fix)
    values = [entry.get("input", 0.0), entry.get("output", 0.0)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ModelError(f"{path}: models.{name} prices must be numbers >= 0", fix)
    return Price(float(values[0]), float(values[1]))


def lookup(table: dict[str, Price], model: str) -> Price | None:
    """The price of ``model``: exact name, then without a provider prefix, then the longest
    listed prefix (so ``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``)."""
    for name in dict.fromkeys([model, model.rsplit("/", 1)[-1]]):
        if name in table:
            return table[name]
        prefixes = [k for k in table if any(name.startswith(k + sep) for sep in _SEPARATORS)]
        if prefixes:
            return table[max(prefixes, key=len)]
    return None


class Pricing:
    """A price table plus the memory of which unknown models were already warned about."""

    def __init__(
        self, override: Path | None = None, warn: Callable[[str], None] | None = None
    ) -> None:
        self.table = load_prices(override)
        self.warn = warn
        self._warned: set[str] = set()

    def cost(self, model: str, usage: Usage, warn: Callable[[str], None] | None = None) -> float:
        """USD for ``usage`` on ``model``; 0 (warned once per name) for an unknown model."""
        price = lookup(self.table, model)
        if price is None:
            warn = warn or self.warn
            if model not in self._warned and warn is not None:
                warn(
                    f"no price for model {model!r}: its calls count as $0, so a cost limit "
                    "will not stop it (add it to a TOML file named by `prices` in "
                    "[tool.optimizer.model])"
                )
            self._warned.add(model)
            return 0.0
        return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6


_DEFAULT: Pricing | None = None


def cost(model: str, usage: Usage, warn: Callable[[str], None] | None = None) -> float:
    """USD for ``usage`` on ``model`` with the bundled prices (unknown models warn once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Pricing()
    return _DEFAULT.cost(model, usage, warn)
