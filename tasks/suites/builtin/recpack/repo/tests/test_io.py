from recpack import Schema, encode_records, read_records, write_records

SCHEMA = Schema.of(k="int", v="str")


def test_write_then_read(tmp_path):
    records = [{"k": i, "v": "x" * i} for i in range(50)]
    path = tmp_path / "data.rpk"
    size = write_records(path, records, SCHEMA)
    assert size == path.stat().st_size
    assert read_records(path, SCHEMA) == records


def test_file_equals_blob(tmp_path):
    records = [{"k": -i, "v": str(i)} for i in range(20)]
    path = tmp_path / "data.rpk"
    write_records(path, records, SCHEMA)
    assert path.read_bytes() == encode_records(records, SCHEMA)


def test_write_empty(tmp_path):
    path = tmp_path / "empty.rpk"
    write_records(path, [], SCHEMA)
    assert read_records(path, SCHEMA) == []
