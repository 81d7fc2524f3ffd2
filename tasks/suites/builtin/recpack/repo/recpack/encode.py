"""Encoding records: a header (magic, count) then each record's fields in schema order."""

from __future__ import annotations

import struct

from recpack.schema import Schema
from recpack.varint import encode_varint

MAGIC = b"RPK1"


def encode_value(kind: str, value) -> bytes:
    if kind == "int":
        return encode_varint(value)
    if kind == "str":
        raw = value.encode("utf-8")
        return encode_varint(len(raw)) + raw
    if kind == "float":
        return struct.pack("<d", value)
    if kind == "bool":
        return b"\x01" if value else b"\x00"
    raise ValueError(f"unknown kind {kind!r}")


def encode_record(record: dict, schema: Schema) -> bytes:
    schema.check(record)
    out = b""
    for name, kind in schema.fields:
        out += encode_value(kind, record[name])
    return out


def encode_header(count: int) -> bytes:
    return MAGIC + encode_varint(count)


def encode_records(records: list[dict], schema: Schema) -> bytes:
    out = encode_header(len(records))
    for record in records:
        schema.check(record)
        for name, kind in schema.fields:
            out += encode_value(kind, record[name])
    return out
