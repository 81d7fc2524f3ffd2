import pytest
from spans import Interval


def test_length():
    assert Interval(2, 7).length == 5
    assert Interval(3, 3).length == 0


def test_rejects_reversed():
    with pytest.raises(ValueError):
        Interval(5, 1)


def test_touches_overlapping():
    assert Interval(1, 5).touches(Interval(4, 9))
    assert not Interval(1, 5).touches(Interval(6, 9))


def test_union_and_intersection():
    a, b = Interval(1, 5), Interval(4, 9)
    assert a.union(b) == Interval(1, 9)
    assert a.intersection(b) == Interval(4, 5)
    assert a.intersection(Interval(7, 8)) is None


def test_contains():
    iv = Interval(-2, 2)
    assert iv.contains(-2) and iv.contains(0) and iv.contains(2)
    assert not iv.contains(3)


def test_ordering():
    assert sorted([Interval(3, 4), Interval(1, 9), Interval(1, 2)]) == [
        Interval(1, 2),
        Interval(1, 9),
        Interval(3, 4),
    ]
