"""P4Runtime bytestrings: the canonical form and checks against a bitwidth.

Canonical (P4Runtime 1.3): big-endian, no leading zero bytes, b"\\x00" for zero. Like PI,
a received bytestring of any length is accepted when its value fits the bitwidth (an empty
one is 0). The server's write path calls value_of for every field: keep it lean.
"""
from __future__ import annotations

from .errors import ValueTooWide


def nbytes(bitwidth: int) -> int:
    """Bytes that hold a bitwidth-bit value."""
    return (bitwidth + 7) >> 3


def canonical(v: int) -> bytes:
    """Canonical bytestring of a non-negative int (no range check)."""
    return v.to_bytes((v.bit_length() + 7) >> 3 or 1, "big")


def canonical_bytes(raw: bytes) -> bytes:
    """A bytestring with its leading zero bytes stripped."""
    return raw.lstrip(b"\x00") or b"\x00"


def encode(value: int, bitwidth: int) -> bytes:
    """Canonical bytestring of value; ValueTooWide when it is negative or needs more bits."""
    if value < 0 or value >> bitwidth:
        raise ValueTooWide(f"value {value} does not fit in {bitwidth} bits")
    return value.to_bytes((value.bit_length() + 7) >> 3 or 1, "big")


def decode(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def value_of(raw: bytes, limit: int, bitwidth: int, what: str) -> int:
    """The int in raw; ValueTooWide when it reaches limit (1 << bitwidth, precomputed by the
    caller: MatchField.limit, Param.limit). what names the field in the message."""
    v = int.from_bytes(raw, "big")
    if v >= limit:
        raise ValueTooWide(f"Bytestring provided does not fit within {bitwidth} bits ({what})")
    return v
