"""IPv6 flow-label codec for scitags packet marking (SPEC.md, 20 bits).

    19 18 | 17 .. 9              | 8 | 7 .. 2   | 1 0
     E  E | experiment, REVERSED | E | activity | E E

Entropy is handled as a compact 5-bit number e4..e0 that maps onto label bits
19, 18, 8, 1, 0 (e4 -> 19, e3 -> 18, e2 -> 8, e1 -> 1, e0 -> 0).

The protocol value carried by XRootD/HTTP/FTS (`scitag = experiment << 6 | activity`)
is a different number: convert with label_to_scitag / scitag_to_label, never by hand.
"""
from __future__ import annotations

import secrets
from typing import NamedTuple

LABEL_BITS = 20
LABEL_MAX = (1 << LABEL_BITS) - 1  # 0xFFFFF
TAG_MASK = 0x3FEFC  # experiment and activity bits
ENTROPY_MASK = 0xC0103  # bits 19, 18, 8, 1, 0
EXPERIMENT_BITS = 9
ACTIVITY_BITS = 6
EXPERIMENT_MAX = (1 << EXPERIMENT_BITS) - 1  # 511
ACTIVITY_MAX = (1 << ACTIVITY_BITS) - 1  # 63
ENTROPY_MAX = 0x1F
SCITAG_MAX = (EXPERIMENT_MAX << ACTIVITY_BITS) | ACTIVITY_MAX  # 32767

_EXPERIMENT_SHIFT = 9
_ACTIVITY_SHIFT = 2


class TagRangeError(ValueError):
    """An id, label or value outside the range its field can carry (never truncated)."""


class LabelFields(NamedTuple):
    experiment: int
    activity: int
    entropy: int  # compact 5-bit value, see module docstring


def _check(name: str, value: int, low: int, high: int, where: str) -> None:
    # bool is an int subclass; True as an experiment id is a caller bug, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise TagRangeError(f"{name} {value} out of range {low}..{high} {where}")


def reverse9(value: int) -> int:
    """Reverse the bit order of a 9-bit number (bit 0 <-> bit 8)."""
    _check("value", value, 0, EXPERIMENT_MAX, "for a 9-bit reversal")
    result = 0
    for _ in range(EXPERIMENT_BITS):
        result = (result << 1) | (value & 1)
        value >>= 1
    return result


# Precomputed: decode runs per packet in software targets and per counter read.
_REVERSE9 = tuple(reverse9(v) for v in range(EXPERIMENT_MAX + 1))


def entropy_to_label_bits(entropy: int) -> int:
    """Spread a compact 5-bit entropy value over label bits 19, 18, 8, 1, 0."""
    _check("entropy", entropy, 0, ENTROPY_MAX, "(5 bits)")
    return ((entropy >> 3) & 0x3) << 18 | ((entropy >> 2) & 0x1) << 8 | (entropy & 0x3)


def label_bits_to_entropy(label: int) -> int:
    """Collect label bits 19, 18, 8, 1, 0 into a compact 5-bit value."""
    return ((label >> 18) & 0x3) << 3 | ((label >> 8) & 0x1) << 2 | (label & 0x3)


def random_entropy() -> int:
    """Fresh per-flow entropy (5 bits)."""
    return secrets.randbits(5)


def encode_label(experiment: int, activity: int, entropy: int | None = None) -> int:
    """20-bit flow label for (experiment, activity); random entropy unless given (0 = none)."""
    _check("experiment id", experiment, 0, EXPERIMENT_MAX, "for a flow label")
    _check("activity id", activity, 0, ACTIVITY_MAX, "for a flow label")
    if entropy is None:
        entropy = random_entropy()
    return (_REVERSE9[experiment] << _EXPERIMENT_SHIFT
            | activity << _ACTIVITY_SHIFT
            | entropy_to_label_bits(entropy))


def decode_label(label: int) -> LabelFields:
    """(experiment, activity, entropy) carried by a 20-bit flow label."""
    _check("flow label", label, 0, LABEL_MAX, "(20 bits)")
    experiment = _REVERSE9[(label >> _EXPERIMENT_SHIFT) & EXPERIMENT_MAX]
    activity = (label >> _ACTIVITY_SHIFT) & ACTIVITY_MAX
    return LabelFields(experiment, activity, label_bits_to_entropy(label))


def scitag_value(experiment: int, activity: int) -> int:
    """Protocol value `experiment << 6 | activity` (XRootD scitag.flow, HTTP SciTag)."""
    _check("experiment id", experiment, 0, EXPERIMENT_MAX, "for a scitag value")
    _check("activity id", activity, 0, ACTIVITY_MAX, "for a scitag value")
    return experiment << ACTIVITY_BITS | activity


def split_scitag(scitag: int) -> tuple[int, int]:
    """(experiment, activity) from a protocol scitag value."""
    _check("scitag value", scitag, 0, SCITAG_MAX, "(15 bits)")
    return scitag >> ACTIVITY_BITS, scitag & ACTIVITY_MAX


def label_to_scitag(label: int) -> int:
    """Protocol scitag value for the tag in a flow label (entropy dropped)."""
    fields = decode_label(label)
    return scitag_value(fields.experiment, fields.activity)


def scitag_to_label(scitag: int, entropy: int | None = None) -> int:
    """Flow label for a protocol scitag value; random entropy unless given."""
    experiment, activity = split_scitag(scitag)
    return encode_label(experiment, activity, entropy)


def parse_label_text(text: str) -> int:
    """A label written as decimal, 0x hex, 0o or 0b (as a person types it)."""
    try:
        value = int(text.strip().replace("_", ""), 0)
    except ValueError:
        raise TagRangeError(f"not a number: {text!r} (use decimal or 0x hex)") from None
    _check("flow label", value, 0, LABEL_MAX, "(20 bits)")
    return value
