"""Events in a signal: peaks and level crossings."""

from __future__ import annotations

import numpy as np


def find_peaks(x, threshold: float = -np.inf) -> np.ndarray:
    """Indices i (0 < i < n-1) with x[i-1] < x[i] >= x[i+1] and x[i] > threshold."""
    x = np.asarray(x, dtype=np.float64)
    found = []
    for i in range(1, len(x) - 1):
        if x[i - 1] < x[i] >= x[i + 1] and x[i] > threshold:
            found.append(i)
    return np.array(found, dtype=np.int64)


def crossings(x, level: float = 0.0) -> np.ndarray:
    """Indices i where the signal goes from below ``level`` (x[i-1] < level) to x[i] >= level."""
    x = np.asarray(x, dtype=np.float64)
    found = []
    for i in range(1, len(x)):
        if x[i - 1] < level <= x[i]:
            found.append(i)
    return np.array(found, dtype=np.int64)
