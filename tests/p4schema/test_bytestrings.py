"""p4schema bytestrings: canonical encoding, range checks, PI-style leniency on input."""
from __future__ import annotations

import pytest

from p4schema import (SchemaError, ValueTooWide, canonical, canonical_bytes, decode, encode,
                      nbytes, value_of)


def test_encode_is_canonical_and_range_checked():
    assert encode(0, 9) == b"\x00"
    assert encode(300, 9) == b"\x01\x2c"
    assert encode(0xFFFF, 16) == b"\xff\xff"
    assert encode(1, 1) == b"\x01"
    with pytest.raises(ValueTooWide, match="value 512 does not fit in 9 bits"):
        encode(512, 9)
    with pytest.raises(ValueTooWide, match="value -1 does not fit in 8 bits"):
        encode(-1, 8)
    assert issubclass(ValueTooWide, SchemaError)


def test_decode_and_canonical_forms():
    assert decode(b"\x00\x01\x2c") == 300 and decode(b"") == 0
    assert canonical(0) == b"\x00" and canonical(0x1234) == b"\x12\x34"
    assert canonical_bytes(b"\x00\x00\x05") == b"\x05" and canonical_bytes(b"\x00\x00") == b"\x00"
    for v in (0, 1, 255, 256, 1 << 47):
        assert decode(encode(v, 48)) == v and encode(v, 48) == canonical(v)
    assert [nbytes(w) for w in (1, 8, 9, 48, 128)] == [1, 1, 2, 6, 16]


def test_value_of_accepts_any_length_that_fits():
    # As PI: zero-padded or short strings are fine while the value fits the width.
    assert value_of(b"\x00\x00\x01\xff", 1 << 9, 9, "port") == 511
    assert value_of(b"", 1 << 9, 9, "port") == 0
    with pytest.raises(ValueTooWide,
                       match=r"Bytestring provided does not fit within 9 bits \(port\)"):
        value_of(b"\x02\x00", 1 << 9, 9, "port")
