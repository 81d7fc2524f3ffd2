import numpy as np
from sigproc import describe


def test_describe_sine():
    t = np.linspace(0, 4 * np.pi, 400)
    d = describe(np.sin(t), window=20)
    assert d["n"] == 400
    assert d["peaks"] == 2
    assert d["crossings"] >= 1
    assert 0 < d["rolling_std_mean"] < 1


def test_describe_short_signal():
    d = describe([1.0, 2.0], window=5)
    assert d["rolling_mean_range"] is None and d["rolling_std_mean"] is None
