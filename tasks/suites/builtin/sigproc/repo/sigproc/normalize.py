"""Rescaling whole signals."""

from __future__ import annotations

import numpy as np


def zscore(x) -> np.ndarray:
    """(x - mean) / std; a constant signal maps to zeros."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std()
    if std == 0:
        return np.zeros_like(x)
    return (x - x.mean()) / std


def minmax(x) -> np.ndarray:
    """Rescale to [0, 1]; a constant signal maps to zeros."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)
