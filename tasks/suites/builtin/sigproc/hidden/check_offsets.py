"""Hidden check: rolling statistics on offset, tiny, integer and edge-sized signals."""

import os
import sys

sys.path.insert(0, os.getcwd())

import numpy as np  # noqa: E402
from sigproc import crossings, describe, find_peaks, rolling_mean, rolling_std  # noqa: E402

rng = np.random.default_rng(2024)
signals = [
    1e9 + rng.standard_normal(3001),
    -5e7 + 1e-3 * rng.standard_normal(513),
    1e-6 * rng.standard_normal(257),
    np.arange(-40, 41, dtype=np.int64) ** 3,
    np.repeat(rng.integers(-3, 4, size=60), 3).astype(np.int32),
]
for x in signals:
    for window in (1, 2, 31, 64, len(x) - 1, len(x), len(x) + 1):
        for value in np.concatenate([rolling_mean(x, window), rolling_std(x, window)]):
            print(repr(float(value)))
    print(" ".join(str(int(i)) for i in find_peaks(x)))
    print(" ".join(str(int(i)) for i in crossings(x, float(np.median(x)))))
    for key, value in sorted(describe(x, window=17).items()):
        print(key, *(value if isinstance(value, (tuple, list)) else [value]))
