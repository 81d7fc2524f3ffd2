"""The closed interval [start, end] over the integers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Interval:
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"interval start {self.start} is after its end {self.end}")

    @property
    def length(self) -> int:
        """The distance from start to end (a point interval has length 0)."""
        return self.end - self.start

    def touches(self, other: Interval) -> bool:
        """True when the two intervals share at least one point."""
        return self.start <= other.end and other.start <= self.end

    def union(self, other: Interval) -> Interval:
        return Interval(min(self.start, other.start), max(self.end, other.end))

    def intersection(self, other: Interval) -> Interval | None:
        if not self.touches(other):
            return None
        return Interval(max(self.start, other.start), min(self.end, other.end))

    def contains(self, point: int) -> bool:
        return self.start <= point <= self.end
