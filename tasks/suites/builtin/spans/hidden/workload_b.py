"""Hidden workload: merge and measure intervals, some in dense overlapping clusters."""

import random

from spans import Interval, gaps, merge, total_length

DATA: list[Interval] = []


def setup():
    rng = random.Random(7006)
    DATA.clear()
    for _ in range(1500):
        if rng.random() < 0.85:
            start = rng.randint(-120_000, 380_000)
            DATA.append(Interval(start, start + rng.randint(0, 90)))
        else:
            center = rng.choice([-30_000, 55_555, 140_000, 301_000])
            start = center + rng.randint(-400, 400)
            DATA.append(Interval(start, start + rng.randint(0, 25)))
    rng.shuffle(DATA)


def workload():
    merged = merge(DATA)
    covered = total_length(DATA)
    holes = gaps(DATA, -50_000, 320_000)
    return len(merged), covered, len(holes)
