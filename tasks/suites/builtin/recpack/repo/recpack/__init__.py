"""recpack: a compact binary format for flat records with a fixed schema."""

from recpack.decode import decode_records
from recpack.encode import encode_record, encode_records
from recpack.io import read_records, write_records
from recpack.schema import Schema

__all__ = [
    "Schema",
    "decode_records",
    "encode_record",
    "encode_records",
    "read_records",
    "write_records",
]
