import pytest
from logparse import FORMATS, compile_format
from logparse.formats import tokenize


def test_tokenize_literals_and_directives():
    assert tokenize("%h [%>s]") == [
        ("directive", "h"),
        ("literal", " ["),
        ("directive", ">s"),
        ("literal", "]"),
    ]


def test_tokenize_braced_directive():
    assert ("directive", "{Referer}i") in tokenize('"%{Referer}i"')


def test_unknown_directive():
    with pytest.raises(ValueError):
        compile_format("%h %Q")


def test_named_formats_compile():
    for name in FORMATS:
        assert compile_format(name).groupindex


def test_duplicate_field_rejected():
    with pytest.raises(ValueError):
        compile_format("%h %h")


def test_compiled_pattern_matches():
    m = compile_format("%h %>s").match("1.2.3.4 200")
    assert m and m.group("host") == "1.2.3.4" and m.group("status") == "200"
