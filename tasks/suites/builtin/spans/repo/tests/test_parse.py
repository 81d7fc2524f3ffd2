import pytest
from spans import Interval, format_spans, parse_spans


def test_parse():
    assert parse_spans("1..5, 8..8") == [Interval(1, 5), Interval(8, 8)]


def test_parse_negative():
    assert parse_spans("-3..-1") == [Interval(-3, -1)]


def test_parse_empty():
    assert parse_spans("  ") == []


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        parse_spans("1-5")


def test_round_trip():
    text = "-4..2, 6..9"
    assert format_spans(parse_spans(text)) == text
