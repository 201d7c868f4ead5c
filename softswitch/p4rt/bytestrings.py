"""P4Runtime bytestrings: checking them against a bitwidth, and the canonical form.

Like PI, writes accept any length as long as the value fits the bitwidth (shorter strings
are zero-padded, leading zero bytes are ignored; an empty string is 0). Reads always
return the canonical form of P4Runtime 1.3: no leading zero bytes, b"\\x00" for zero.
"""
from __future__ import annotations

from .status import INVALID_ARGUMENT, P4RTError


def value_of(raw: bytes, limit: int, bitwidth: int, what: str) -> int:
    """The integer in raw; P4RTError(INVALID_ARGUMENT) when it needs more than bitwidth bits."""
    v = int.from_bytes(raw, "big")
    if v >= limit:
        raise P4RTError(INVALID_ARGUMENT,
                        f"Bytestring provided does not fit within {bitwidth} bits ({what})")
    return v


def canonical(v: int) -> bytes:
    return v.to_bytes((v.bit_length() + 7) >> 3 or 1, "big")


def canonical_bytes(raw: bytes) -> bytes:
    return raw.lstrip(b"\x00") or b"\x00"
