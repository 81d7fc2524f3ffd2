"""Merging a collection of intervals into disjoint ones."""

from __future__ import annotations

from collections.abc import Iterable

from spans.interval import Interval


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of ``intervals`` as disjoint intervals, sorted by start.

    Intervals that share a point (including an endpoint) are merged.
    """
    result: list[Interval] = []
    for interval in intervals:
        current = interval
        kept = []
        for other in result:
            if other.touches(current):
                current = current.union(other)
            else:
                kept.append(other)
        kept.append(current)
        result = kept
    return sorted(result)
