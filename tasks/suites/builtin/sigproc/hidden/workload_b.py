"""Hidden workload: describe four other sensor traces with rolling windows."""

import numpy as np
from sigproc import describe, rolling_mean, rolling_std

SIGNALS: list[np.ndarray] = []


def setup():
    rng = np.random.default_rng(7008)
    t = np.linspace(0, 45, 4_600)
    spikes = np.where(rng.random(t.size) < 0.01, 15.0, 0.0)
    SIGNALS[:] = [
        3.0 * np.sin(t**1.5 / 5) + 0.5 * rng.standard_normal(t.size),
        100.0 + np.cumsum(0.02 + 0.1 * rng.standard_normal(t.size)),
        rng.exponential(2.0, t.size) + spikes,
        -7.5 + 0.01 * t + 0.2 * np.sign(np.cos(0.7 * t)) * rng.standard_normal(t.size),
    ]


def workload():
    out = [describe(s, window=40) for s in SIGNALS]
    for s in SIGNALS:
        out.append((float(rolling_mean(s, 150).sum()), float(rolling_std(s, 150).sum())))
    return out
