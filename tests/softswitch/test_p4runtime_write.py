"""P4Runtime Write / Read against the softswitch server: real engine, real gRPC on
127.0.0.1. Status codes are PI's (what BMv2's simple_switch_grpc answers)."""
from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2 as p4r

from softswitch.p4rt import sample_program as sp
from softswitch.p4rt.testkit import (BAD_ENTRIES, Harness, clone_session, exact, lpm,
                                     multicast_group, optional, range_, table_entry, ternary,
                                     update, write_errors, write_request)

INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
MAC1 = bytes.fromhex("0000000000aa")
MAC2 = bytes.fromhex("0000000000bb")


@pytest.fixture
def sw():
    h = Harness()
    yield h
    h.close()


def fwd(mac: bytes = MAC1, port: bytes = b"\x01", **kw) -> p4r.TableEntry:
    return table_entry(sp.T_FWD, [exact(1, mac)], sp.A_SET_PORT, [(1, port)], **kw)


def te_update(kind: int, te: p4r.TableEntry) -> p4r.Update:
    return update(kind, "table_entry", te)


def codes(sw: Harness, updates: list[p4r.Update]) -> list[int]:
    """Per-update codes of a batch (all OK when the Write succeeds)."""
    try:
        sw.write(updates)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNKNOWN, err.details()
        errors = write_errors(err)
        assert len(errors) == len(updates)
        return [c for c, _ in errors]
    return [code_pb2.OK] * len(updates)


def one(sw: Harness, kind: int, te: p4r.TableEntry) -> int:
    return codes(sw, [te_update(kind, te)])[0]


def read_table(sw: Harness, table_id: int = 0, **kw) -> list[p4r.TableEntry]:
    ent = p4r.Entity()
    ent.table_entry.CopyFrom(p4r.TableEntry(table_id=table_id, **kw))
    return [e.table_entry for e in sw.read([ent])]


# ---- write status codes ----
def test_insert_read_modify_delete(sw):
    assert one(sw, INSERT, fwd()) == code_pb2.OK
    [got] = read_table(sw, sp.T_FWD)
    assert got.match[0].exact.value == b"\xaa"           # canonical: no leading zeros
    assert got.action.action.action_id == sp.A_SET_PORT
    assert got.action.action.params[0].value == b"\x01"
    assert one(sw, MODIFY, fwd(port=b"\x00\x07")) == code_pb2.OK
    [got] = read_table(sw, sp.T_FWD)
    assert got.action.action.params[0].value == b"\x07"
    assert one(sw, DELETE, table_entry(sp.T_FWD, [exact(1, MAC1)])) == code_pb2.OK
    assert read_table(sw, sp.T_FWD) == []


def test_duplicate_insert_is_already_exists(sw):
    assert one(sw, INSERT, fwd()) == code_pb2.OK
    assert one(sw, INSERT, fwd(port=b"\x02")) == code_pb2.ALREADY_EXISTS
    # non-canonical spellings of the same key are the same entry (PI accepts them)
    assert one(sw, INSERT, fwd(mac=b"\xaa")) == code_pb2.ALREADY_EXISTS
    assert one(sw, INSERT, fwd(mac=b"\x00" * 4 + MAC1)) == code_pb2.ALREADY_EXISTS


def test_missing_entry_is_not_found(sw):
    assert one(sw, MODIFY, fwd()) == code_pb2.NOT_FOUND
    assert one(sw, DELETE, fwd()) == code_pb2.NOT_FOUND


@pytest.mark.parametrize("te", [te for _, te in BAD_ENTRIES],
                         ids=[name for name, _ in BAD_ENTRIES])
def test_bad_entries_are_invalid_argument(sw, te):
    assert one(sw, INSERT, te) == code_pb2.INVALID_ARGUMENT
    assert read_table(sw) == []


def test_scopes_and_const_default_are_permission_denied(sw):
    # @defaultonly action in an entry
    assert one(sw, INSERT, table_entry(sp.T_TINY, [exact(1, b"\x08\x00")], sp.A_NOACTION)) \
        == code_pb2.PERMISSION_DENIED
    # @tableonly action as the default action
    assert one(sw, MODIFY, table_entry(sp.T_LPM, [], sp.A_SET_PORT, [(1, b"\x01")],
                                       is_default_action=True)) == code_pb2.PERMISSION_DENIED
    # const default action
    assert one(sw, MODIFY, table_entry(sp.T_TINY, [], sp.A_NOACTION, is_default_action=True)) \
        == code_pb2.PERMISSION_DENIED


def test_table_full_is_reported_as_pi_does(sw):
    for et in (b"\x08\x00", b"\x86\xdd"):
        assert one(sw, INSERT, table_entry(sp.T_TINY, [exact(1, et)], sp.A_SET_PORT,
                                           [(1, b"\x01")])) == code_pb2.OK
    te = table_entry(sp.T_TINY, [exact(1, b"\x08\x06")], sp.A_SET_PORT, [(1, b"\x01")])
    try:
        sw.write([te_update(INSERT, te)])
        raise AssertionError("the third entry of a 2-entry table was accepted")
    except grpc.RpcError as err:
        [(code, message)] = write_errors(err)
    # PI maps every target failure of an add to UNKNOWN (not RESOURCE_EXHAUSTED)
    assert code == code_pb2.UNKNOWN and "full" in message


def test_mixed_batch_applies_good_updates_and_reports_each(sw):
    updates = [te_update(INSERT, fwd(MAC1)), te_update(INSERT, fwd(MAC1)),
               te_update(INSERT, fwd(MAC2)),
               te_update(INSERT, table_entry(sp.T_FWD, [exact(1, b"\x01" + MAC1)],
                                             sp.A_SET_PORT, [(1, b"\x01")])),
               te_update(DELETE, fwd(bytes.fromhex("0000000000cc")))]
    try:
        sw.write(updates)
        raise AssertionError("batch with bad updates succeeded")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNKNOWN
        got = [c for c, _ in write_errors(err)]
    assert got == [code_pb2.OK, code_pb2.ALREADY_EXISTS, code_pb2.OK,
                   code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND]
    assert sorted(e.match[0].exact.value for e in read_table(sw, sp.T_FWD)) == [b"\xaa", b"\xbb"]


def test_update_type_and_atomicity(sw):
    assert codes(sw, [te_update(p4r.Update.UNSPECIFIED, fwd())]) == [code_pb2.INVALID_ARGUMENT]
    req = write_request(sw.device_id, [te_update(INSERT, fwd())])
    req.atomicity = p4r.WriteRequest.ROLLBACK_ON_ERROR
    with pytest.raises(grpc.RpcError) as exc:
        sw.stub.Write(req)
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_write_without_pipeline_is_failed_precondition():
    h = Harness(load=False)
    try:
        with pytest.raises(grpc.RpcError) as exc:
            h.write([te_update(INSERT, fwd())])
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        h.close()


def test_malformed_request_is_invalid_argument(sw):
    call = sw.channel.unary_unary("/p4.v1.P4Runtime/Write")
    with pytest.raises(grpc.RpcError) as exc:
        call(b"\xff\xff\xff\xff")
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert one(sw, INSERT, fwd()) == code_pb2.OK        # and the server is still serving


# ---- match kinds and priorities ----
def test_ternary_range_optional_entries_round_trip(sw):
    te = table_entry(sp.T_ACL, [ternary(1, b"\x08\x00", b"\xff\xff"),
                                range_(2, b"\x00\x10", b"\x00\x20"), optional(3, b"\x00\x03")],
                     sp.A_SET_PORT, [(1, b"\x02")], priority=10)
    assert one(sw, INSERT, te) == code_pb2.OK
    # same match with another priority is another entry
    te2 = table_entry(sp.T_ACL, [ternary(1, b"\x08\x00", b"\xff\xff")], sp.A_DROP, priority=3)
    assert one(sw, INSERT, te2) == code_pb2.OK
    got = {e.priority: e for e in read_table(sw, sp.T_ACL)}
    assert set(got) == {10, 3}
    m = {f.field_id: f for f in got[10].match}
    assert m[1].ternary.value == b"\x08\x00" and m[1].ternary.mask == b"\xff\xff"
    assert m[2].range.low == b"\x10" and m[2].range.high == b"\x20"
    assert m[3].optional.value == b"\x03"
    assert [f.field_id for f in got[3].match] == [1]     # don't-care fields are omitted
    assert one(sw, DELETE, table_entry(sp.T_ACL, [ternary(1, b"\x08\x00", b"\xff\xff")],
                                       priority=3)) == code_pb2.OK


def test_lpm_entry(sw):
    te = table_entry(sp.T_LPM, [lpm(1, bytes.fromhex("0a0000000000"), 8)], sp.A_SET_PORT,
                     [(1, b"\x03")])
    assert one(sw, INSERT, te) == code_pb2.OK
    [got] = read_table(sw, sp.T_LPM)
    assert got.match[0].lpm.value == bytes.fromhex("0a0000000000")
    assert got.match[0].lpm.prefix_len == 8


# ---- reads ----
def test_wildcard_reads(sw):
    sw.write([te_update(INSERT, fwd(MAC1)), te_update(INSERT, fwd(MAC2)),
              te_update(INSERT, table_entry(sp.T_ACL, [ternary(1, b"\x08\x00", b"\xff\xff")],
                                            sp.A_DROP, priority=1))])
    assert {e.table_id for e in read_table(sw)} == {sp.T_FWD, sp.T_ACL}
    assert len(read_table(sw)) == 3
    assert len(read_table(sw, sp.T_FWD)) == 2
    # one entry by its key (non-canonical key accepted), and a key that is not there
    [got] = read_table(sw, sp.T_FWD, match=[exact(1, b"\x00" + MAC2)])
    assert got.match[0].exact.value == b"\xbb"
    assert read_table(sw, sp.T_FWD, match=[exact(1, b"\x01")]) == []
    with pytest.raises(grpc.RpcError) as exc:
        read_table(sw, 0x02ffffff)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_default_entry_read_modify_reset(sw):
    [d] = read_table(sw, sp.T_FWD, is_default_action=True)
    assert d.is_default_action and d.action.action.action_id == sp.A_NOACTION
    assert one(sw, MODIFY, table_entry(sp.T_FWD, [], sp.A_SET_PORT, [(1, b"\x05")],
                                       is_default_action=True)) == code_pb2.OK
    [d] = read_table(sw, sp.T_FWD, is_default_action=True)
    assert d.action.action.action_id == sp.A_SET_PORT
    assert d.action.action.params[0].value == b"\x05"
    assert one(sw, MODIFY, table_entry(sp.T_FWD, [], is_default_action=True)) == code_pb2.OK
    [d] = read_table(sw, sp.T_FWD, is_default_action=True)
    assert d.action.action.action_id == sp.A_NOACTION
    assert one(sw, DELETE, table_entry(sp.T_FWD, [], is_default_action=True)) \
        == code_pb2.INVALID_ARGUMENT


def frame_to(mac: bytes, payload: bytes = b"x" * 50) -> bytes:
    return mac + bytes.fromhex("000000000001") + b"\x08\x00" + payload


def test_counters_after_packets(sw):
    sw.write([te_update(INSERT, fwd(MAC1, port=b"\x02", controller_metadata=7))])
    for _ in range(3):
        assert sw.inject(1, frame_to(MAC1)) == [(2, frame_to(MAC1))]
    sw.inject(4, frame_to(MAC2))                     # default action: no entry counted
    length = len(frame_to(MAC1))
    # direct counter through the table entry
    [got] = read_table(sw, sp.T_FWD, counter_data=p4r.CounterData())
    assert (got.counter_data.packet_count, got.counter_data.byte_count) == (3, 3 * length)
    assert got.controller_metadata == 7
    # ... through DirectCounterEntry, wildcard and by key
    ent = p4r.Entity()
    ent.direct_counter_entry.table_entry.table_id = sp.T_FWD
    [dc] = sw.read([ent])
    assert dc.direct_counter_entry.data.packet_count == 3
    ent.direct_counter_entry.table_entry.match.append(exact(1, MAC1))
    [dc] = sw.read([ent])
    assert dc.direct_counter_entry.data.byte_count == 3 * length
    # indirect counter (indexed by ingress port): by index, wildcard, and all counters
    ent = p4r.Entity()
    ent.counter_entry.counter_id = sp.C_PORT
    ent.counter_entry.index.index = 1
    [c] = sw.read([ent])
    assert (c.counter_entry.data.packet_count, c.counter_entry.data.byte_count) \
        == (3, 3 * length)
    ent.counter_entry.ClearField("index")
    cells = sw.read([ent])
    assert len(cells) == 512 and cells[4].counter_entry.data.packet_count == 1
    everything = p4r.Entity()
    everything.counter_entry.SetInParent()
    assert len(sw.read([everything])) == 512
    # writes: MODIFY sets, DELETE zeroes (PI), INSERT is refused
    ent.counter_entry.index.index = 1
    ent.counter_entry.data.packet_count = 100
    sw.write([update(MODIFY, "counter_entry", ent.counter_entry)])
    [c] = sw.read([ent])
    assert c.counter_entry.data.packet_count == 100
    assert codes(sw, [update(INSERT, "counter_entry", ent.counter_entry)]) \
        == [code_pb2.INVALID_ARGUMENT]
    dce = p4r.DirectCounterEntry()
    dce.table_entry.CopyFrom(table_entry(sp.T_FWD, [exact(1, MAC1)]))
    sw.write([update(DELETE, "direct_counter_entry", dce)])
    [got] = read_table(sw, sp.T_FWD, counter_data=p4r.CounterData())
    assert got.counter_data.packet_count == 0


def test_time_since_last_hit(sw):
    sw.write([te_update(INSERT, fwd(idle_timeout_ns=60 * 10**9))])
    [got] = read_table(sw, sp.T_FWD, time_since_last_hit=p4r.TableEntry.IdleTimeout())
    assert got.idle_timeout_ns == 60 * 10**9
    assert 0 <= got.time_since_last_hit.elapsed_ns < 60 * 10**9
    with pytest.raises(grpc.RpcError) as exc:
        read_table(sw, sp.T_TINY, time_since_last_hit=p4r.TableEntry.IdleTimeout())
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_registers(sw):
    entry = p4r.RegisterEntry(register_id=sp.R_REG)
    entry.index.index = 3
    entry.data.bitstring = b"\x00\x01\x02"
    sw.write([update(MODIFY, "register_entry", entry)])
    ent = p4r.Entity()
    ent.register_entry.CopyFrom(p4r.RegisterEntry(register_id=sp.R_REG))
    cells = sw.read([ent])
    assert len(cells) == 16 and cells[3].register_entry.data.bitstring == b"\x01\x02"
    assert cells[0].register_entry.data.bitstring == b"\x00"
    entry.data.bitstring = b"\x01" + bytes(4)            # 33 bits
    assert codes(sw, [update(MODIFY, "register_entry", entry)]) == [code_pb2.INVALID_ARGUMENT]


# ---- packet replication engine ----


def pre_update(kind: int, pre: p4r.PacketReplicationEngineEntry) -> p4r.Update:
    return update(kind, "packet_replication_engine_entry", pre)


def test_multicast_groups(sw):
    assert codes(sw, [pre_update(INSERT, multicast_group(1, [(3, 0), (2, 0), (2, 1)])),
                      pre_update(INSERT, multicast_group(1, [(2, 0)])),
                      pre_update(INSERT, multicast_group(0, [(2, 0)])),
                      pre_update(INSERT, multicast_group(1 << 15, [(2, 0)])),
                      pre_update(INSERT, multicast_group(2, [(2, 0), (2, 0)])),
                      pre_update(MODIFY, multicast_group(3, [(2, 0)])),
                      pre_update(DELETE, multicast_group(4, []))]) == [
        code_pb2.OK, code_pb2.ALREADY_EXISTS, code_pb2.INVALID_ARGUMENT,
        code_pb2.OUT_OF_RANGE, code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND,
        code_pb2.NOT_FOUND]
    ent = p4r.Entity()
    ent.packet_replication_engine_entry.multicast_group_entry.SetInParent()
    [g] = sw.read([ent])
    reps = [(r.instance, r.egress_port) for r in
            g.packet_replication_engine_entry.multicast_group_entry.replicas]
    assert reps == [(0, 2), (0, 3), (1, 2)]        # PI's order: instance, then port
    # flooding through the group reaches its ports
    sw.write([pre_update(MODIFY, multicast_group(1, [(5, 0), (6, 0)]))])
    assert sw.read([ent])[0].packet_replication_engine_entry.multicast_group_entry \
        .replicas[0].egress_port == 5
    sw.write([pre_update(DELETE, multicast_group(1, []))])
    assert sw.read([ent]) == []


def test_clone_sessions(sw):
    assert codes(sw, [pre_update(INSERT, clone_session(100, [(sp.CPU_PORT, 1)])),
                      pre_update(INSERT, clone_session(100, [(2, 1)])),
                      pre_update(INSERT, clone_session(0, [(2, 1)])),
                      pre_update(INSERT, clone_session(40000, [(2, 1)])),
                      pre_update(INSERT, clone_session(5, [(2, 1)], cos=1)),
                      pre_update(DELETE, clone_session(7, [])),
                      # BMv2 cannot truncate clones: PI reports the target's refusal
                      pre_update(INSERT, clone_session(6, [(2, 1)], length=64))]) == [
        code_pb2.OK, code_pb2.ALREADY_EXISTS, code_pb2.INVALID_ARGUMENT,
        code_pb2.INVALID_ARGUMENT, code_pb2.UNIMPLEMENTED, code_pb2.NOT_FOUND,
        code_pb2.UNKNOWN]
    ent = p4r.Entity()
    ent.packet_replication_engine_entry.clone_session_entry.session_id = 100
    [s] = sw.read([ent])
    cs = s.packet_replication_engine_entry.clone_session_entry
    assert cs.replicas[0].egress_port == sp.CPU_PORT and cs.replicas[0].instance == 1
    ent.packet_replication_engine_entry.clone_session_entry.session_id = 101
    with pytest.raises(grpc.RpcError) as exc:
        sw.read([ent])
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
