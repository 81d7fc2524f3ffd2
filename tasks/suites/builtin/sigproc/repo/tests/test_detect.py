import numpy as np
from sigproc import crossings, find_peaks


def test_peaks():
    np.testing.assert_array_equal(find_peaks([0, 2, 1, 3, 1]), [1, 3])


def test_peaks_plateau_counts_left_edge():
    np.testing.assert_array_equal(find_peaks([0, 2, 2, 1]), [1])


def test_peaks_threshold():
    np.testing.assert_array_equal(find_peaks([0, 2, 1, 3, 1], threshold=2.5), [3])


def test_peaks_short_signal():
    assert find_peaks([1.0, 2.0]).size == 0


def test_crossings():
    np.testing.assert_array_equal(crossings([-1, 1, -1, 0, 2], 0.0), [1, 3])


def test_crossings_none():
    assert crossings([5, 6, 7], 0.0).size == 0
