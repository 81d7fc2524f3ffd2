"""Measures and set operations on collections of intervals."""

from __future__ import annotations

from collections.abc import Iterable

from spans.interval import Interval
from spans.merge import merge


def total_length(intervals: Iterable[Interval]) -> int:
    """The total length covered by the union of ``intervals``."""
    return sum(iv.length for iv in merge(intervals))


def gaps(intervals: Iterable[Interval], lo: int, hi: int) -> list[Interval]:
    """The maximal open stretches of [lo, hi] not covered, as closed intervals between covers."""
    if lo > hi:
        raise ValueError("lo must not exceed hi")
    out = []
    cursor = lo
    for iv in merge(intervals):
        if iv.end < lo or iv.start > hi:
            continue
        if iv.start > cursor:
            out.append(Interval(cursor, iv.start))
        cursor = max(cursor, iv.end)
    if cursor < hi:
        out.append(Interval(cursor, hi))
    return out


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """The points covered by both collections, as disjoint sorted intervals."""
    left, right = merge(a), merge(b)
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        common = left[i].intersection(right[j])
        if common is not None:
            out.append(common)
        if left[i].end < right[j].end:
            i += 1
        else:
            j += 1
    return out


def coverage_at(intervals: Iterable[Interval], point: int) -> int:
    """How many of ``intervals`` contain ``point``."""
    return sum(1 for iv in intervals if iv.contains(point))
