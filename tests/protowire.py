"""Protobuf's wire format written by hand, for what protobuf's own classes will not write:
nesting past their limit, fields cut short, groups."""

from __future__ import annotations

__all__ = ["length_delimited", "varint"]


def varint(value: int) -> bytes:
    """A non-negative integer as a base-128 varint."""
    out = bytearray()
    while value > 127:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: its one-byte tag, the payload's length, the payload."""
    return bytes([tag]) + varint(len(payload)) + payload
