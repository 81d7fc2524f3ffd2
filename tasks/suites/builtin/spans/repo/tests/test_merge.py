import random

from spans import Interval, merge


def brute_cover(intervals):
    points = set()
    for iv in intervals:
        points.update(range(iv.start, iv.end + 1))
    return points


def test_empty():
    assert merge([]) == []


def test_single():
    assert merge([Interval(1, 2)]) == [Interval(1, 2)]


def test_overlapping_pair():
    assert merge([Interval(1, 5), Interval(3, 8)]) == [Interval(1, 8)]


def test_disjoint_sorted_output():
    ivs = [Interval(10, 12), Interval(1, 2), Interval(5, 6)]
    assert merge(ivs) == [Interval(1, 2), Interval(5, 6), Interval(10, 12)]


def test_nested():
    assert merge([Interval(1, 10), Interval(2, 3), Interval(4, 5)]) == [Interval(1, 10)]


def test_chain_merges_through_later_interval():
    ivs = [Interval(1, 2), Interval(5, 6), Interval(2, 5)]
    assert merge(ivs) == [Interval(1, 6)]


def test_accepts_generator():
    assert merge(Interval(i * 10, i * 10 + 3) for i in range(3)) == [
        Interval(0, 3),
        Interval(10, 13),
        Interval(20, 23),
    ]


def test_random_against_brute_force():
    rng = random.Random(7)
    for _ in range(30):
        ivs = []
        for _ in range(rng.randint(0, 25)):
            s = rng.randint(0, 200)
            ivs.append(Interval(s, s + rng.randint(1, 12)))
        merged = merge(ivs)
        assert all(a.end < b.start for a, b in zip(merged, merged[1:], strict=False))
        assert brute_cover(merged) == brute_cover(ivs)
