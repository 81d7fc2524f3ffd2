import pytest
from recpack import Schema


def test_of_keeps_order():
    assert Schema.of(a="int", b="str").fields == (("a", "int"), ("b", "str"))


def test_unknown_kind():
    with pytest.raises(ValueError):
        Schema.of(a="complex")


def test_check_missing_field():
    with pytest.raises(ValueError):
        Schema.of(a="int").check({})


def test_check_bool_is_not_int():
    with pytest.raises(ValueError):
        Schema.of(a="int").check({"a": True})
