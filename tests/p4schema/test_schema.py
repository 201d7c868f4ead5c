"""p4schema: the P4Info index (by name and by id) on the committed scitags P4Info, its checks
on inconsistent P4Infos, and loading text / binary files."""
from __future__ import annotations

import pytest
from p4.config.v1 import p4info_pb2

from p4schema import (EXACT, SCOPE_DEFAULT_ONLY, SCOPE_TABLE_AND_DEFAULT, TERNARY, UNIT_BOTH,
                      InvalidP4Info, P4Schema, SchemaError, UnknownName, load_p4info)
from tests.p4schema import EXACT_ACTIVITY_P4INFO

P4INFO = EXACT_ACTIVITY_P4INFO


@pytest.fixture(scope="module")
def schema() -> P4Schema:
    return P4Schema.from_file(P4INFO)


def test_tables_by_name_and_id(schema):
    t = schema.table("scitag_policy")
    assert t.name == "ScitagsIngress.scitag_policy"
    assert schema.table("ScitagsIngress.scitag_policy") is t
    assert schema.tables[t.id] is t and schema.by_id(t.id) is t
    assert t.needs_priority and t.size == 4096 and not t.supports_idle_timeout
    exp, act = t.match_fields
    assert (exp.name, exp.bitwidth, exp.match_type, exp.kind, exp.position) == \
        ("experiment", 9, EXACT, "exact", 0)
    assert (act.kind, act.match_type, act.limit, act.nbytes) == ("ternary", TERNARY, 64, 1)
    assert t.field("activity") is act and t.field_by_id[1] is exp and t.field_with_id(2) is act
    default = schema.actions[t.const_default_action_id]
    assert schema.action_by_name[default.name] is default
    assert t.actions[t.const_default_action_id] == SCOPE_DEFAULT_ONLY
    assert schema.action("count_tag").id in t.action_ids
    assert t.actions[schema.action("count_tag").id] == SCOPE_TABLE_AND_DEFAULT


def test_direct_counter_and_idle_timeout(schema):
    ff = schema.table("ScitagsIngress.firefly_v6")
    dc = schema.direct_counter("firefly_v6_counter")
    assert ff.supports_idle_timeout and ff.direct_counter is dc and ff.size == 65536
    assert dc.direct_table_id == ff.id and dc.unit == UNIT_BOTH and dc.unit_name == "BOTH"
    assert not ff.needs_priority and ff.direct_meter_id == 0
    assert [f.kind for f in ff.match_fields] == ["exact"] * 5
    assert schema.table("firefly_v4").field("src_addr").bitwidth == 32


def test_actions_counters_headers(schema):
    a = schema.action("count_tag_and_mirror")
    p = a.param("mirror_session")
    assert (p.bitwidth, p.limit, p.nbytes) == (32, 1 << 32, 4)
    assert a.param_by_id[p.id] is p and a.params[p.position] is p
    assert a.zero_args == tuple(bytes(q.nbytes) for q in a.params)
    c = schema.counter("tag_counter")
    assert c.size == 4096 and c.unit == UNIT_BOTH and schema.counters[c.id] is c
    assert schema.counter("bucket_counter").size == 8
    pin, pout = schema.packet_in, schema.packet_out
    assert [f.name for f in pin.fields] == ["ingress_port", "reason", "_pad"]
    assert (pin.nbits, pin.nbytes) == (24, 3) and (pout.nbits, pout.nbytes) == (16, 2)
    assert schema.packet_field("packet_in", "reason").bitwidth == 8
    assert schema.packet_field("packet_out", "egress_port").id == 1
    assert schema.by_id(pin.id) is pin
    assert not schema.registers and not schema.meters and not schema.action_profiles


def test_unknown_names_say_what_is_missing(schema):
    with pytest.raises(UnknownName, match="no table named 'nope'"):
        schema.table("nope")
    with pytest.raises(UnknownName, match="no parameter 'port'"):
        schema.action("flood").param("port")
    with pytest.raises(UnknownName, match="has no match field 'x'"):
        schema.table("l2_forward").field("x")
    with pytest.raises(UnknownName, match="no match field id 9"):
        schema.table("l2_forward").field_with_id(9)
    with pytest.raises(UnknownName, match="no object with id 7"):
        schema.by_id(7)
    with pytest.raises(UnknownName, match="no packet_in metadata field 'zz'"):
        schema.packet_field("packet_in", "zz")
    with pytest.raises(UnknownName, match="no controller header 'digest'"):
        schema.packet_field("digest", "x")
    with pytest.raises(UnknownName, match="no register named 'r'"):
        schema.register("r")
    err = pytest.raises(LookupError, schema.counter, "nope").value
    assert isinstance(err, SchemaError) and str(err) == "the P4Info has no counter named 'nope'"


def _two_actions(first: str, second: str) -> p4info_pb2.P4Info:
    info = p4info_pb2.P4Info()
    info.actions.add().preamble.CopyFrom(p4info_pb2.Preamble(id=0x01000001, name=first))
    info.actions.add().preamble.CopyFrom(p4info_pb2.Preamble(id=0x01000002, name=second))
    return info


def test_suffix_resolution_and_ambiguity():
    s = P4Schema(_two_actions("A.x.go", "B.x.go"))
    with pytest.raises(UnknownName, match="'x.go' is ambiguous: A.x.go, B.x.go"):
        s.action("x.go")
    assert s.action("A.x.go").id == 0x01000001 and s.action("B.x.go").id == 0x01000002
    # A full name wins over another object's suffix.
    s = P4Schema(_two_actions("go", "B.go"))
    assert s.action("go").id == 0x01000001 and s.action("B.go").id == 0x01000002


def test_inconsistent_p4info_is_refused():
    info = _two_actions("a", "b")
    info.actions[1].preamble.id = info.actions[0].preamble.id
    with pytest.raises(InvalidP4Info, match="bad or duplicate id 0x1000001 \\('b'\\)"):
        P4Schema(info)
    info = _two_actions("a", "b")
    t = info.tables.add()
    t.preamble.id, t.preamble.name = 0x02000001, "t"
    t.action_refs.add(id=0x01000009)
    with pytest.raises(InvalidP4Info, match="refers to unknown action 0x1000009"):
        P4Schema(info)
    info = _two_actions("a", "b")
    t = info.tables.add()
    t.preamble.id, t.preamble.name = 0x02000001, "t"
    t.match_fields.add(id=1, name="k", bitwidth=8)     # UNSPECIFIED match type
    with pytest.raises(InvalidP4Info, match="field 'k' has an unsupported match type"):
        P4Schema(info)
    info = p4info_pb2.P4Info()
    info.counters.add(size=1).preamble.name = "zero_id"
    with pytest.raises(InvalidP4Info, match="bad or duplicate id 0x0"):
        P4Schema(info)


def test_registers_and_meters_are_indexed():
    info = p4info_pb2.P4Info()
    r = info.registers.add(size=16)
    r.preamble.id, r.preamble.name = 0x16000001, "Ingress.seen"
    r.type_spec.bitstring.bit.bitwidth = 12
    m = info.meters.add()
    m.preamble.id, m.preamble.name = 0x15000001, "Ingress.m"
    s = P4Schema(info)
    reg = s.register("seen")
    assert (reg.size, reg.bitwidth, reg.limit) == (16, 12, 4096) and s.registers[reg.id] is reg
    assert s.meters == {0x15000001} and s.by_id(0x15000001).preamble.name == "Ingress.m"
    assert s.packet_in is None and s.packet_out is None


def test_load_text_and_binary(tmp_path):
    text = load_p4info(P4INFO)
    binary = tmp_path / "scitags.p4info.bin"
    binary.write_bytes(text.SerializeToString())
    assert load_p4info(binary) == text
    pbtxt = tmp_path / "scitags.pb.txt"
    pbtxt.write_text(P4INFO.read_text())
    assert load_p4info(pbtxt) == text
    a, b = P4Schema(text), P4Schema.from_file(binary)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 64
    changed = load_p4info(P4INFO)
    changed.tables[0].size += 1
    assert P4Schema(changed).fingerprint() != a.fingerprint()
