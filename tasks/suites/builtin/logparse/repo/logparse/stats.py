"""Aggregates over parsed records."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from logparse.parser import Record


def status_counts(records: Iterable[Record]) -> dict[int, int]:
    return dict(sorted(Counter(r.status for r in records).items()))


def bytes_by_host(records: Iterable[Record]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for r in records:
        totals[r.host] += r.size
    return dict(sorted(totals.items()))


def top_paths(records: Iterable[Record], n: int = 10) -> list[tuple[str, int]]:
    """The ``n`` most requested paths, by count then path."""
    counts = Counter(r.path for r in records)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def per_hour(records: Iterable[Record]) -> list[int]:
    hours = [0] * 24
    for r in records:
        hour = r.hour
        if hour is not None:
            hours[hour] += 1
    return hours


def error_rate(records: list[Record]) -> float:
    """The share of responses with status 500 or above (0.0 for no records)."""
    if not records:
        return 0.0
    return sum(1 for r in records if r.status >= 500) / len(records)
