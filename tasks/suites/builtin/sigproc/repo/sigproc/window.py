"""Rolling-window statistics ("valid" mode: one value per full window)."""

from __future__ import annotations

import numpy as np


def _check(x: np.ndarray, window: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("expected a 1-D signal")
    if window < 1:
        raise ValueError("window must be at least 1")
    return x


def rolling_mean(x, window: int) -> np.ndarray:
    """The mean of each window of ``window`` consecutive samples (len(x) - window + 1 values)."""
    x = _check(x, window)
    n = len(x) - window + 1
    if n <= 0:
        return np.empty(0)
    out = np.empty(n)
    for i in range(n):
        out[i] = x[i : i + window].mean()
    return out


def rolling_std(x, window: int) -> np.ndarray:
    """The population standard deviation of each window (ddof=0)."""
    x = _check(x, window)
    n = len(x) - window + 1
    if n <= 0:
        return np.empty(0)
    out = np.empty(n)
    for i in range(n):
        out[i] = x[i : i + window].std()
    return out
