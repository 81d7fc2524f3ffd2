"""Zigzag varints: signed integers in 7-bit groups, small magnitudes in few bytes."""

from __future__ import annotations


def zigzag(n: int) -> int:
    return 2 * n if n >= 0 else -2 * n - 1


def unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def encode_varint(n: int) -> bytes:
    z = zigzag(n)
    out = b""
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out += bytes([byte | 0x80])
        else:
            out += bytes([byte])
            return out


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return it and the position after it."""
    z = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        z |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return unzigzag(z), pos
