"""Flow-label codec: worked example, round trips, agreement with the reference senders."""
from __future__ import annotations

import logging
import random
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scitags_core import flowlabel as fl
from tests.core.core_testlib import go_gen_flow_tag, load_reference_function

experiments = st.integers(0, fl.EXPERIMENT_MAX)
activities = st.integers(0, fl.ACTIVITY_MAX)
entropies = st.integers(0, fl.ENTROPY_MAX)


def test_worked_example_from_spec() -> None:
    assert fl.reverse9(3) << 9 == 0x30000
    assert fl.encode_label(3, 14, 0) == 0x30038 == 196664
    assert fl.decode_label(0x30038) == (3, 14, 0)
    assert fl.label_to_scitag(0x30038) == 206
    assert fl.scitag_value(3, 14) == 206
    assert fl.split_scitag(206) == (3, 14)
    assert fl.scitag_to_label(206, entropy=0) == 0x30038


def test_masks_match_spec() -> None:
    assert fl.TAG_MASK == 0x3FEFC and fl.ENTROPY_MASK == 0xC0103
    assert fl.TAG_MASK | fl.ENTROPY_MASK == fl.LABEL_MAX and fl.TAG_MASK & fl.ENTROPY_MASK == 0
    assert fl.entropy_to_label_bits(fl.ENTROPY_MAX) == fl.ENTROPY_MASK
    assert fl.encode_label(fl.EXPERIMENT_MAX, fl.ACTIVITY_MAX, 0) == fl.TAG_MASK


def test_every_id_pair_round_trips() -> None:
    seen = set()
    for experiment in range(fl.EXPERIMENT_MAX + 1):
        for activity in range(fl.ACTIVITY_MAX + 1):
            label = fl.encode_label(experiment, activity, 0)
            assert fl.decode_label(label) == (experiment, activity, 0)
            seen.add(label)
    assert len(seen) == 512 * 64  # injective


@given(experiments, activities, entropies)
def test_round_trip_with_entropy(experiment: int, activity: int, entropy: int) -> None:
    label = fl.encode_label(experiment, activity, entropy)
    assert 0 <= label <= fl.LABEL_MAX
    assert fl.decode_label(label) == (experiment, activity, entropy)
    assert label & fl.TAG_MASK == fl.encode_label(experiment, activity, 0)
    assert label & fl.ENTROPY_MASK == fl.entropy_to_label_bits(entropy)
    assert fl.label_to_scitag(label) == experiment << 6 | activity
    assert fl.split_scitag(fl.label_to_scitag(label)) == (experiment, activity)


@given(st.integers(0, fl.LABEL_MAX))
def test_every_label_decodes_and_reencodes(label: int) -> None:
    fields = fl.decode_label(label)
    assert fl.encode_label(*fields) == label


@given(experiments, activities)
def test_random_entropy_touches_only_entropy_bits(experiment: int, activity: int) -> None:
    label = fl.encode_label(experiment, activity)
    assert label & fl.TAG_MASK == fl.encode_label(experiment, activity, 0)
    assert fl.decode_label(label)[:2] == (experiment, activity)


def test_random_entropy_varies() -> None:
    assert len({fl.encode_label(3, 14) for _ in range(200)}) > 1


@pytest.mark.parametrize("call, message", [
    (lambda: fl.encode_label(512, 1, 0), "experiment id 512 out of range 0..511"),
    (lambda: fl.encode_label(-1, 1, 0), "experiment id -1 out of range"),
    (lambda: fl.encode_label(3, 64, 0), "activity id 64 out of range 0..63"),
    (lambda: fl.encode_label(3, 1, 32), "entropy 32 out of range 0..31"),
    (lambda: fl.decode_label(0x100000), "flow label 1048576 out of range"),
    (lambda: fl.decode_label(-1), "flow label -1 out of range"),
    (lambda: fl.scitag_value(512, 0), "experiment id 512"),
    (lambda: fl.split_scitag(32768), "scitag value 32768 out of range 0..32767"),
    (lambda: fl.parse_label_text("0x100000"), "out of range"),
    (lambda: fl.parse_label_text("cms"), "not a number"),
])
def test_out_of_range_is_an_error_not_truncation(call, message: str) -> None:
    with pytest.raises(fl.TagRangeError, match=message):
        call()


def test_non_int_ids_are_type_errors() -> None:
    with pytest.raises(TypeError):
        fl.encode_label(True, 1, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fl.encode_label("3", 1, 0)  # type: ignore[arg-type]


def test_parse_label_text_accepts_hex_and_decimal() -> None:
    assert fl.parse_label_text("0x30038") == fl.parse_label_text("196664") == 0x30038
    assert fl.parse_label_text(" 0X30038 ") == 0x30038


# -- agreement with the reference senders -------------------------------------------

@pytest.fixture(scope="module")
def flowd_bitpattern():
    """scitags 1.1.7 backends/ebpf.py bitpattern(), the installed source run unchanged."""
    rng = random.Random()
    namespace = {"random": rng, "log": logging.getLogger("scitags-reference")}
    func = load_reference_function("backends/ebpf.py", "bitpattern", namespace)
    return func, rng


@settings(deadline=None)
@given(experiments, activities, st.integers(0, 2**32 - 1))
def test_decode_labels_built_by_flowd(flowd_bitpattern, experiment: int, activity: int,
                                      seed: int) -> None:
    bitpattern, rng = flowd_bitpattern
    rng.seed(seed)
    label = bitpattern(experiment, activity)  # random bits in 19-18, 8, 1-0
    assert 0 <= label <= fl.LABEL_MAX
    assert fl.decode_label(label)[:2] == (experiment, activity)
    assert fl.label_to_scitag(label) == experiment << 6 | activity


@settings(deadline=None)
@given(experiments, activities, st.integers(0, 3), st.integers(0, 1), st.integers(0, 3))
def test_encode_equals_flowd_with_same_random_bits(flowd_bitpattern, experiment: int,
                                                   activity: int, r1: int, r2: int, r3: int) -> None:
    bitpattern, rng = flowd_bitpattern
    with mock.patch.object(rng, "randrange", side_effect=[r1, r2, r3]):
        theirs = bitpattern(experiment, activity)
    # flowd draws bits 19-18, then 8, then 1-0: our compact entropy e4e3 e2 e1e0.
    assert fl.encode_label(experiment, activity, r1 << 3 | r2 << 2 | r3) == theirs


@given(experiments, activities, st.integers(0, 2**32 - 1))
def test_decode_labels_built_by_flowd_go(experiment: int, activity: int, random_number: int) -> None:
    label = go_gen_flow_tag(experiment, activity, random_number)
    assert fl.decode_label(label)[:2] == (experiment, activity)
    assert fl.encode_label(experiment, activity, fl.label_bits_to_entropy(random_number)) == label
