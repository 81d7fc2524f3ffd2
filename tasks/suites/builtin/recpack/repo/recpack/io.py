"""Reading and writing record files."""

from __future__ import annotations

import os

from recpack.decode import decode_records
from recpack.encode import encode_header, encode_record
from recpack.schema import Schema


def write_records(path: str | os.PathLike, records: list[dict], schema: Schema) -> int:
    """Write ``records`` to ``path``; return the number of bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        written += f.write(encode_header(len(records)))
        for record in records:
            written += f.write(encode_record(record, schema))
    return written


def read_records(path: str | os.PathLike, schema: Schema) -> list[dict]:
    with open(path, "rb") as f:
        return decode_records(f.read(), schema)
