import pytest
from recpack.varint import decode_varint, encode_varint, unzigzag, zigzag


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, 300, -300, 2**31, -(2**40)])
def test_round_trip(n):
    data = encode_varint(n)
    assert decode_varint(data, 0) == (n, len(data))


def test_small_values_are_one_byte():
    assert encode_varint(0) == b"\x00"
    assert encode_varint(-1) == b"\x01"
    assert len(encode_varint(63)) == 1


def test_zigzag():
    assert [zigzag(n) for n in (0, -1, 1, -2)] == [0, 1, 2, 3]
    assert [unzigzag(z) for z in (0, 1, 2, 3)] == [0, -1, 1, -2]


def test_truncated():
    with pytest.raises(ValueError):
        decode_varint(b"\x80", 0)
