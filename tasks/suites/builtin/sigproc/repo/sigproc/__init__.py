"""sigproc: rolling statistics, normalization and event detection for 1-D signals."""

from sigproc.detect import crossings, find_peaks
from sigproc.features import describe
from sigproc.normalize import minmax, zscore
from sigproc.window import rolling_mean, rolling_std

__all__ = [
    "crossings",
    "describe",
    "find_peaks",
    "minmax",
    "rolling_mean",
    "rolling_std",
    "zscore",
]
