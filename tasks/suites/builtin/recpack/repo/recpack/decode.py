"""Decoding what encode.py writes."""

from __future__ import annotations

import struct

from recpack.encode import MAGIC
from recpack.schema import Schema
from recpack.varint import decode_varint


def decode_value(kind: str, data: bytes, pos: int):
    if kind == "int":
        return decode_varint(data, pos)
    if kind == "str":
        size, pos = decode_varint(data, pos)
        if size < 0 or pos + size > len(data):
            raise ValueError("truncated string")
        return data[pos : pos + size].decode("utf-8"), pos + size
    if kind == "float":
        if pos + 8 > len(data):
            raise ValueError("truncated float")
        return struct.unpack_from("<d", data, pos)[0], pos + 8
    if kind == "bool":
        if pos >= len(data):
            raise ValueError("truncated bool")
        return data[pos] != 0, pos + 1
    raise ValueError(f"unknown kind {kind!r}")


def decode_records(data: bytes, schema: Schema) -> list[dict]:
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError("not a recpack blob (bad magic)")
    count, pos = decode_varint(data, len(MAGIC))
    records = []
    for _ in range(count):
        record = {}
        for name, kind in schema.fields:
            record[name], pos = decode_value(kind, data, pos)
        records.append(record)
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes")
    return records
