"""Workload: merge and measure a few thousand short, mostly disjoint intervals."""

import random

from spans import Interval, gaps, merge, total_length

DATA: list[Interval] = []


def setup():
    rng = random.Random(42)
    DATA.clear()
    for _ in range(1600):
        start = rng.randint(-50_000, 250_000)
        DATA.append(Interval(start, start + rng.randint(0, 60)))


def workload():
    merged = merge(DATA)
    covered = total_length(DATA)
    holes = gaps(DATA, 0, 200_000)
    return len(merged), covered, len(holes)
