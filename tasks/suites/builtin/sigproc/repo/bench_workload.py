"""Workload: describe three noisy sensor traces with rolling windows."""

import numpy as np
from sigproc import describe, rolling_mean, rolling_std

SIGNALS: list[np.ndarray] = []


def setup():
    rng = np.random.default_rng(11)
    t = np.linspace(0, 60, 6_000)
    SIGNALS[:] = [
        np.sin(t) + 0.3 * rng.standard_normal(t.size),
        np.cumsum(rng.standard_normal(t.size)),
        20.0 + 5 * np.sign(np.sin(3 * t)) + rng.standard_normal(t.size),
    ]


def workload():
    out = [describe(s, window=50) for s in SIGNALS]
    for s in SIGNALS:
        out.append((float(rolling_mean(s, 200).sum()), float(rolling_std(s, 200).sum())))
    return out
