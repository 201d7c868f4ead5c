"""p4schema entities and codec on the committed scitags P4Info: exact bytes on the wire,
round trips, diff keys, the read-back cache, and errors that name the cause."""
from __future__ import annotations

import pytest
from p4.v1 import p4runtime_pb2

from p4schema import (CloneSession, CounterEntry, EntityCodec, MulticastGroup, P4Schema,
                      SchemaError, TableEntry, Ternary, UnknownName, ValueTooWide, diff)
from tests.p4schema import EXACT_ACTIVITY_P4INFO

Update = p4runtime_pb2.Update


@pytest.fixture(scope="module")
def codec() -> EntityCodec:
    return EntityCodec(P4Schema.from_file(EXACT_ACTIVITY_P4INFO))


def policy(codec, exp, act, tag, prio=20):
    match = {"experiment": exp} | ({"activity": Ternary(act, 0x3F)} if act is not None else {})
    return codec.table_entry("scitag_policy", match, "count_tag", {"tag_id": tag}, prio)


def test_table_entry_wire_bytes(codec):
    e = policy(codec, 3, 2, 258)
    assert e.table == "ScitagsIngress.scitag_policy" and e.action == "ScitagsIngress.count_tag"
    te = codec.encode(e).table_entry
    t = codec.schema.table("scitag_policy")
    assert te.table_id == t.id and te.priority == 20
    exp, act = te.match
    assert (exp.field_id, exp.exact.value) == (t.field("experiment").id, b"\x03")
    assert (act.ternary.value, act.ternary.mask) == (b"\x02", b"\x3f")
    assert [p.value for p in te.action.action.params] == [b"\x01\x02"]


def test_round_trip_every_kind(codec):
    flow = codec.table_entry("firefly_v6", {"src_addr": 1 << 127, "dst_addr": 2, "protocol": 6,
                                            "src_port": 40000, "dst_port": 1094},
                             "firefly_flow_v6", {"experiment": 3, "activity": 2},
                             idle_timeout_ns=120 * 10**9)
    for e in (policy(codec, 3, 2, 7), policy(codec, 3, None, 8, 10), flow,
              CloneSession.of(100, [(255, 1)]), MulticastGroup.of(1, [(2, 1), (1, 1)]),
              CounterEntry("ScitagsIngress.tag_counter", 5, 10, 1000)):
        wire = p4runtime_pb2.Entity()
        wire.CopyFrom(codec.encode(e))
        back = codec.decode(wire)
        assert back == e and back.key == e.key and back.value == e.value


def test_dont_care_ternary_is_left_out(codec):
    wild = codec.table_entry("scitag_policy", {"experiment": 3, "activity": Ternary(0, 0)},
                             "count_tag", {"tag_id": 1}, 10)
    assert wild.field("activity") is None and len(codec.encode(wild).table_entry.match) == 1


def test_counter_data_is_not_part_of_the_entry(codec):
    e = policy(codec, 4, 1, 9)
    te = p4runtime_pb2.TableEntry()
    te.CopyFrom(codec.encode(e).table_entry)
    te.counter_data.packet_count = 12
    assert codec.decode_table_entry(te) == e and not te.HasField("counter_data")


def test_read_back_decoding_is_cached(codec):
    e = policy(codec, 5, 1, 10)
    te1, te2 = p4runtime_pb2.TableEntry(), p4runtime_pb2.TableEntry()
    te1.CopyFrom(codec.encode(e).table_entry)
    te2.CopyFrom(te1)
    assert codec.decode_table_entry(te1) is codec.decode_table_entry(te2)


def test_diff_missing_modified_extra():
    want = [CloneSession.of(100, [(255, 1)]), CloneSession.of(200, [(3, 1)]),
            MulticastGroup.of(1, [(1, 1), (2, 1)])]
    have = [CloneSession.of(200, [(4, 1)]), MulticastGroup.of(1, [(2, 1), (1, 1)]),
            MulticastGroup.of(7, [(9, 1)])]
    plan = diff(want, have)
    assert plan.insert == [CloneSession.of(100, [(255, 1)])]
    assert plan.modify == [CloneSession.of(200, [(3, 1)])]
    assert plan.delete == [MulticastGroup.of(7, [(9, 1)])]
    assert len(plan) == 3 and not diff(want, want)


def test_updates_in_plan_order(codec):
    plan = diff([policy(codec, 3, 2, 1), policy(codec, 3, 3, 2)],
                [policy(codec, 3, 3, 5), policy(codec, 9, 1, 6)])
    ups = codec.updates(plan)
    assert [u.type for u in ups] == [Update.DELETE, Update.MODIFY, Update.INSERT]


def test_errors_name_the_cause(codec):
    with pytest.raises(ValueTooWide, match="9 bits"):
        codec.encode(codec.table_entry("scitag_policy", {"experiment": 512}, "count_tag",
                                       {"tag_id": 1}, 10))
    with pytest.raises(UnknownName, match="no match field 'nope'"):
        codec.encode(TableEntry.of("ScitagsIngress.scitag_policy", {"nope": 1}))
    with pytest.raises(SchemaError):
        codec.table_entry("no_such_table", {})
    bad = p4runtime_pb2.TableEntry(table_id=12345)
    with pytest.raises(UnknownName, match="12345"):
        codec.decode_table_entry(bad)
