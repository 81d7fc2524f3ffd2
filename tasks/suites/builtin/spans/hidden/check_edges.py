"""Hidden check: merge and measure intervals that share endpoints, repeat, or are points."""

import os
import random
import sys

sys.path.insert(0, os.getcwd())

from spans import Interval, format_spans, gaps, intersect, merge, total_length  # noqa: E402

CASES = [
    [Interval(1, 3), Interval(3, 5)],
    [Interval(3, 5), Interval(1, 3), Interval(5, 5), Interval(6, 6)],
    [Interval(0, 0), Interval(0, 0), Interval(-1, 0)],
    [Interval(-10, -5), Interval(-5, -5), Interval(-4, -1), Interval(-1, 2)],
    [Interval(7, 9)] * 4 + [Interval(9, 12), Interval(12, 12)],
]
rng = random.Random(99)
for _ in range(40):
    ivs = []
    for _ in range(rng.randint(0, 30)):
        s = rng.randint(-60, 60)
        ivs.append(Interval(s, s + rng.choice([0, 0, 1, 2, 3, 5])))
    CASES.append(ivs)

for ivs in CASES:
    print(format_spans(merge(ivs)), "|", total_length(ivs), "|", format_spans(gaps(ivs, -20, 20)))
print(format_spans(intersect(CASES[0], [Interval(5, 9)])))
