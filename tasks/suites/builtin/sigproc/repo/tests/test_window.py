import numpy as np
import pytest
from sigproc import rolling_mean, rolling_std


def test_mean_simple():
    np.testing.assert_allclose(rolling_mean([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])


def test_mean_window_one_is_identity():
    x = np.array([3.0, -1.0, 2.5])
    np.testing.assert_allclose(rolling_mean(x, 1), x)


def test_mean_window_too_long_is_empty():
    assert rolling_mean([1.0, 2.0], 3).shape == (0,)


def test_std_constant_is_zero():
    np.testing.assert_allclose(rolling_std(np.full(10, 4.0), 4), np.zeros(7), atol=1e-12)


def test_std_simple():
    np.testing.assert_allclose(rolling_std([1, 3, 1, 3], 2), [1.0, 1.0, 1.0])


def test_invalid_window():
    with pytest.raises(ValueError):
        rolling_mean([1.0], 0)


def test_rejects_2d():
    with pytest.raises(ValueError):
        rolling_std(np.zeros((2, 2)), 1)


def test_random_against_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200)
    expected_m = [x[i : i + 7].mean() for i in range(194)]
    expected_s = [x[i : i + 7].std() for i in range(194)]
    np.testing.assert_allclose(rolling_mean(x, 7), expected_m, rtol=1e-12)
    np.testing.assert_allclose(rolling_std(x, 7), expected_s, rtol=1e-12)
