import numpy as np
from sigproc import minmax, zscore


def test_zscore_moments():
    z = zscore(np.arange(10.0))
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12


def test_zscore_constant():
    np.testing.assert_array_equal(zscore([2.0, 2.0]), [0.0, 0.0])


def test_minmax():
    np.testing.assert_allclose(minmax([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])


def test_minmax_constant():
    np.testing.assert_array_equal(minmax([5, 5, 5]), [0.0, 0.0, 0.0])
