"""A feature summary of a signal, built from the other modules."""

from __future__ import annotations

import numpy as np

from sigproc.detect import crossings, find_peaks
from sigproc.normalize import zscore
from sigproc.window import rolling_mean, rolling_std


def describe(x, window: int = 32) -> dict:
    """Summary features: rolling statistics, peaks of the z-scored signal, mean crossings."""
    x = np.asarray(x, dtype=np.float64)
    means = rolling_mean(x, window)
    stds = rolling_std(x, window)
    z = zscore(x)
    peaks = find_peaks(z, threshold=1.0)
    ups = crossings(x, float(x.mean())) if len(x) else np.empty(0, dtype=np.int64)
    return {
        "n": int(len(x)),
        "rolling_mean_range": (float(means.min()), float(means.max())) if len(means) else None,
        "rolling_std_mean": float(stds.mean()) if len(stds) else None,
        "volatility_max": float(stds.max()) if len(stds) else None,
        "peaks": int(len(peaks)),
        "first_peaks": [int(i) for i in peaks[:5]],
        "crossings": int(len(ups)),
    }
