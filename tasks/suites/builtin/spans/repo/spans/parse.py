"""Text form: "1..5, 8..8, -3..-1"."""

from __future__ import annotations

import re
from collections.abc import Iterable

from spans.interval import Interval

_ITEM = re.compile(r"\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*")


def parse_spans(text: str) -> list[Interval]:
    """Parse a comma-separated list of ``start..end`` items (an empty string is no items)."""
    if not text.strip():
        return []
    out = []
    for item in text.split(","):
        m = _ITEM.fullmatch(item)
        if not m:
            raise ValueError(f"not an interval: {item.strip()!r}")
        out.append(Interval(int(m.group(1)), int(m.group(2))))
    return out


def format_spans(intervals: Iterable[Interval]) -> str:
    return ", ".join(f"{iv.start}..{iv.end}" for iv in intervals)
