import pytest
from recpack import Schema, decode_records, encode_record, encode_records

SCHEMA = Schema.of(id="int", name="str", score="float", active="bool")
RECORDS = [
    {"id": 1, "name": "ada", "score": 9.5, "active": True},
    {"id": -7, "name": "", "score": -0.25, "active": False},
    {"id": 10**6, "name": "grace hopper", "score": 1e300, "active": True},
]


def test_round_trip():
    assert decode_records(encode_records(RECORDS, SCHEMA), SCHEMA) == RECORDS


def test_empty():
    blob = encode_records([], SCHEMA)
    assert blob == b"RPK1\x00"
    assert decode_records(blob, SCHEMA) == []


def test_layout():
    blob = encode_records([{"id": 1, "name": "ab", "score": 0.0, "active": True}], SCHEMA)
    assert blob == b"RPK1\x02" + b"\x02" + b"\x04ab" + b"\x00" * 8 + b"\x01"


def test_record_matches_blob_body():
    body = b"".join(encode_record(r, SCHEMA) for r in RECORDS)
    assert encode_records(RECORDS, SCHEMA) == b"RPK1\x06" + body


def test_bad_magic():
    with pytest.raises(ValueError):
        decode_records(b"XXXX\x00", SCHEMA)


def test_trailing_bytes():
    with pytest.raises(ValueError):
        decode_records(encode_records(RECORDS, SCHEMA) + b"\x00", SCHEMA)


def test_truncated():
    with pytest.raises(ValueError):
        decode_records(encode_records(RECORDS, SCHEMA)[:-3], SCHEMA)


def test_type_checked():
    with pytest.raises(ValueError):
        encode_records([{"id": "1", "name": "x", "score": 1.0, "active": True}], SCHEMA)
