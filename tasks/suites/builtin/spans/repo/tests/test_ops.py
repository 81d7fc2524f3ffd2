from spans import Interval, coverage_at, gaps, intersect, total_length


def test_total_length_counts_overlap_once():
    assert total_length([Interval(0, 10), Interval(5, 15)]) == 15


def test_total_length_empty():
    assert total_length([]) == 0


def test_gaps():
    ivs = [Interval(2, 4), Interval(7, 9)]
    assert gaps(ivs, 0, 12) == [Interval(0, 2), Interval(4, 7), Interval(9, 12)]


def test_gaps_fully_covered():
    assert gaps([Interval(-5, 50)], 0, 10) == []


def test_intersect():
    a = [Interval(0, 10), Interval(20, 30)]
    b = [Interval(5, 25)]
    assert intersect(a, b) == [Interval(5, 10), Interval(20, 25)]


def test_intersect_disjoint():
    assert intersect([Interval(0, 1)], [Interval(5, 6)]) == []


def test_coverage_at():
    ivs = [Interval(0, 10), Interval(5, 6), Interval(8, 20)]
    assert coverage_at(ivs, 5) == 2
    assert coverage_at(ivs, 9) == 2
    assert coverage_at(ivs, 30) == 0
