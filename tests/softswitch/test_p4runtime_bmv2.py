"""Differential test: the same P4Runtime requests against the softswitch server and BMv2's
simple_switch_grpc (the reference) must get the same status codes and read results.

Known, deliberate differences (not compared here): registers (BMv2: UNIMPLEMENTED), stream
errors for bad packet-outs (PI reports them only when enabled through its ServerConfig
service), and error message texts.
"""
from __future__ import annotations

import queue
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2 as p4r

from softswitch.p4rt import sample_program as sp
from softswitch.p4rt.testkit import (BAD_ENTRIES, Bmv2, Harness, StreamClient, clone_session,
                                     exact, lpm, multicast_group, optional, pipeline_request,
                                     range_, table_entry, ternary, update, write_errors,
                                     write_request)
from tests.conftest import BMV2_BIN, HAVE_BMV2

pytestmark = [pytest.mark.bmv2,
              pytest.mark.skipif(not HAVE_BMV2, reason=f"BMv2 simple_switch_grpc not "
                                                       f"installed ({BMV2_BIN} absent)")]

INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
DEVICE_ID = 1


class Target:
    """One P4Runtime server seen through a stub, with outcomes reduced to comparable data."""

    def __init__(self, name: str, stub: Any) -> None:
        self.name = name
        self.stub = stub

    def reset(self) -> None:
        try:      # a swap left pending by a failed test would block the new pipeline
            self.stub.SetForwardingPipelineConfig(p4r.SetForwardingPipelineConfigRequest(
                device_id=DEVICE_ID, action=p4r.SetForwardingPipelineConfigRequest.COMMIT))
        except grpc.RpcError:
            pass
        self.stub.SetForwardingPipelineConfig(pipeline_request(
            DEVICE_ID, sp.p4info(), sp.device_config(), cookie=7))

    def write(self, updates: list[p4r.Update], election_id: int | None = None) -> Any:
        try:
            self.stub.Write(write_request(DEVICE_ID, updates, election_id))
            return "OK"
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNKNOWN:
                return err.code().name
            return [code_pb2.Code.Name(c) for c, _ in write_errors(err)]

    def read(self, entities: list[p4r.Entity]) -> Any:
        req = p4r.ReadRequest(device_id=DEVICE_ID)
        req.entities.extend(entities)
        try:
            got = [e for resp in self.stub.Read(req) for e in resp.entities]
        except grpc.RpcError as err:
            return err.code().name
        # P4Runtime specifies neither the order of entries nor that of replicas
        for e in got:
            pre = e.packet_replication_engine_entry
            for reps in (pre.multicast_group_entry.replicas, pre.clone_session_entry.replicas):
                ordered = sorted(reps, key=lambda r: r.SerializeToString(deterministic=True))
                del reps[:]
                reps.extend(ordered)
        return sorted(e.SerializeToString(deterministic=True) for e in got)


@pytest.fixture(scope="module")
def targets():
    soft = Harness(load=False)
    bmv2 = Bmv2(DEVICE_ID)
    try:
        yield [Target("softswitch", soft.stub), Target("bmv2", bmv2.stub)]
    finally:
        soft.close()
        bmv2.close()


@pytest.fixture
def both(targets):
    for t in targets:
        t.reset()
    return targets


def same(both: list[Target], fn: Any) -> Any:
    soft, ref = (fn(t) for t in both)
    assert soft == ref, f"softswitch: {soft!r}\nbmv2:       {ref!r}"
    return soft


def te_up(kind: int, te: p4r.TableEntry) -> p4r.Update:
    return update(kind, "table_entry", te)


def entity(**kw: Any) -> p4r.Entity:
    ent = p4r.Entity()
    for k, v in kw.items():
        getattr(ent, k).CopyFrom(v)
    return ent


MAC1, MAC2 = bytes.fromhex("0000000000aa"), bytes.fromhex("0a00000000bb")


def good_entries() -> list[p4r.TableEntry]:
    return [
        table_entry(sp.T_FWD, [exact(1, MAC1)], sp.A_SET_PORT, [(1, b"\x01")],
                    controller_metadata=9, idle_timeout_ns=5 * 10**9),
        table_entry(sp.T_FWD, [exact(1, b"\x00" + MAC2)], sp.A_TO_CPU),  # non-canonical key
        table_entry(sp.T_FWD, [exact(1, b"\x07")], sp.A_SET_PORT, [(1, b"\x00\x00\x03")]),
        table_entry(sp.T_LPM, [lpm(1, bytes.fromhex("0a0000000000"), 8)], sp.A_SET_PORT,
                    [(1, b"\x02")]),
        table_entry(sp.T_ACL, [ternary(1, b"\x08\x00", b"\xff\xff"),
                               range_(2, b"\x10", b"\x00\x20"), optional(3, b"\x03")],
                    sp.A_DROP, priority=10),
        table_entry(sp.T_ACL, [ternary(1, b"\x08\x00", b"\xff\xff")], sp.A_NOACTION,
                    priority=3, metadata=b"cookie"),
        table_entry(sp.T_ACL, [range_(2, bytes(6), b"\x00\x00\x00\x00\x00\x01")], sp.A_DROP,
                    priority=2),
    ]


def test_bad_entries(both):
    for name, te in BAD_ENTRIES:
        assert same(both, lambda t: t.write([te_up(INSERT, te)])) \
            == ["INVALID_ARGUMENT"], name


def test_write_sequence(both):
    entries = good_entries()
    same(both, lambda t: t.write([te_up(INSERT, te) for te in entries]))
    same(both, lambda t: t.write([te_up(INSERT, entries[0]), te_up(MODIFY, entries[1]),
                                  te_up(DELETE, table_entry(sp.T_FWD, [exact(1, b"\x99")])),
                                  te_up(MODIFY, table_entry(sp.T_FWD, [exact(1, b"\x99")],
                                                            sp.A_DROP)),
                                  te_up(p4r.Update.UNSPECIFIED, entries[2]),
                                  te_up(DELETE, entries[2]), te_up(DELETE, entries[2])]))
    # scopes, const default action, the default entry
    same(both, lambda t: t.write([
        te_up(INSERT, table_entry(sp.T_TINY, [exact(1, b"\x08\x00")], sp.A_NOACTION)),
        te_up(MODIFY, table_entry(sp.T_LPM, [], sp.A_SET_PORT, [(1, b"\x01")],
                                  is_default_action=True)),
        te_up(MODIFY, table_entry(sp.T_TINY, [], sp.A_NOACTION, is_default_action=True)),
        te_up(MODIFY, table_entry(sp.T_FWD, [], sp.A_SET_PORT, [(1, b"\x04")],
                                  is_default_action=True)),
        te_up(MODIFY, table_entry(sp.T_FWD, [exact(1, MAC1)], is_default_action=True)),
        te_up(DELETE, table_entry(sp.T_FWD, [], is_default_action=True))]))
    # a full table
    same(both, lambda t: t.write([
        te_up(INSERT, table_entry(sp.T_TINY, [exact(1, et)], sp.A_SET_PORT, [(1, b"\x01")]))
        for et in (b"\x08\x00", b"\x86\xdd", b"\x08\x06")]))
    # atomic batches are not implemented
    req = write_request(DEVICE_ID, [te_up(INSERT, entries[2])])
    req.atomicity = p4r.WriteRequest.DATAPLANE_ATOMIC

    def atomic(t: Target) -> str:
        try:
            t.stub.Write(req)
            return "OK"
        except grpc.RpcError as err:
            return err.code().name
    same(both, atomic)


def test_reads(both):
    same(both, lambda t: t.write([te_up(INSERT, te) for te in good_entries()]))
    same(both, lambda t: t.write([te_up(MODIFY, table_entry(
        sp.T_FWD, [], sp.A_SET_PORT, [(1, b"\x04")], is_default_action=True))]))
    reads = [
        entity(table_entry=p4r.TableEntry()),
        entity(table_entry=p4r.TableEntry(table_id=sp.T_ACL)),
        entity(table_entry=table_entry(sp.T_FWD, [exact(1, b"\x00\x00" + MAC1)])),
        entity(table_entry=table_entry(sp.T_FWD, [exact(1, b"\x42")])),
        entity(table_entry=p4r.TableEntry(table_id=sp.T_FWD, is_default_action=True)),
        entity(table_entry=p4r.TableEntry(table_id=sp.T_LPM, is_default_action=True)),
        entity(table_entry=p4r.TableEntry(table_id=sp.T_FWD,
                                          counter_data=p4r.CounterData())),
        entity(table_entry=p4r.TableEntry(table_id=0x02ffffff)),
        entity(table_entry=p4r.TableEntry(
            table_id=sp.T_TINY, time_since_last_hit=p4r.TableEntry.IdleTimeout())),
        entity(counter_entry=p4r.CounterEntry(counter_id=sp.C_PORT,
                                              index=p4r.Index(index=3))),
        entity(counter_entry=p4r.CounterEntry(counter_id=sp.C_PORT)),
        entity(counter_entry=p4r.CounterEntry()),
        entity(counter_entry=p4r.CounterEntry(counter_id=sp.DC_FWD)),
        entity(direct_counter_entry=p4r.DirectCounterEntry(
            table_entry=p4r.TableEntry(table_id=sp.T_FWD))),
        entity(direct_counter_entry=p4r.DirectCounterEntry(
            table_entry=table_entry(sp.T_FWD, [exact(1, MAC1)]))),
        entity(direct_counter_entry=p4r.DirectCounterEntry(
            table_entry=table_entry(sp.T_FWD, [exact(1, b"\x42")]))),
        entity(direct_counter_entry=p4r.DirectCounterEntry(
            table_entry=p4r.TableEntry(table_id=sp.T_ACL))),
        entity(direct_counter_entry=p4r.DirectCounterEntry()),
    ]
    for ent in reads:
        same(both, lambda t: t.read([ent]))
    # several entities in one request
    same(both, lambda t: t.read(reads[:3]))


def test_counter_writes(both):
    ce = p4r.CounterEntry(counter_id=sp.C_PORT, index=p4r.Index(index=5),
                          data=p4r.CounterData(packet_count=11, byte_count=22))
    same(both, lambda t: t.write([update(MODIFY, "counter_entry", ce),
                                  update(INSERT, "counter_entry", ce),
                                  update(MODIFY, "counter_entry",
                                         p4r.CounterEntry(counter_id=sp.C_PORT)),
                                  update(MODIFY, "counter_entry",
                                         p4r.CounterEntry(counter_id=0x12ffffff,
                                                          index=p4r.Index(index=1)))]))
    same(both, lambda t: t.read([entity(counter_entry=p4r.CounterEntry(
        counter_id=sp.C_PORT, index=p4r.Index(index=5)))]))
    same(both, lambda t: t.write([te_up(INSERT, good_entries()[0])]))
    dce = p4r.DirectCounterEntry(table_entry=table_entry(sp.T_FWD, [exact(1, MAC1)]),
                                 data=p4r.CounterData(packet_count=5, byte_count=500))
    same(both, lambda t: t.write([update(MODIFY, "direct_counter_entry", dce)]))
    same(both, lambda t: t.read([entity(table_entry=p4r.TableEntry(
        table_id=sp.T_FWD, counter_data=p4r.CounterData()))]))
    same(both, lambda t: t.write([update(DELETE, "direct_counter_entry", dce)]))
    same(both, lambda t: t.read([entity(direct_counter_entry=p4r.DirectCounterEntry(
        table_entry=p4r.TableEntry(table_id=sp.T_FWD)))]))




def test_packet_replication(both):
    def pre(kind: int, p: p4r.PacketReplicationEngineEntry) -> p4r.Update:
        return update(kind, "packet_replication_engine_entry", p)
    mc, cs = multicast_group, clone_session
    byte_port = mc(9, [])
    byte_port.multicast_group_entry.replicas.add(port=b"\x00\x05", instance=1)
    same(both, lambda t: t.write([
        pre(INSERT, mc(1, [(3, 0), (2, 0), (2, 1)])), pre(INSERT, mc(1, [(2, 0)])),
        pre(INSERT, mc(0, [(2, 0)])), pre(INSERT, mc(1 << 15, [(2, 0)])),
        pre(INSERT, mc(2, [(2, 0), (2, 0)])), pre(MODIFY, mc(3, [(2, 0)])),
        pre(DELETE, mc(4, [])), pre(INSERT, byte_port),
        pre(INSERT, cs(100, [(sp.CPU_PORT, 1)], length=64)),
        pre(INSERT, cs(100, [(2, 1)])), pre(INSERT, cs(0, [(2, 1)])),
        pre(INSERT, cs(40000, [(2, 1)])), pre(INSERT, cs(5, [(2, 1)], cos=1)),
        pre(DELETE, cs(7, [])), pre(INSERT, p4r.PacketReplicationEngineEntry())]))
    for p in (mc(0, []), mc(1, []), mc(9, []), mc(5, []), mc(1 << 15, []), cs(0, []),
              cs(100, []), cs(101, [])):
        same(both, lambda t: t.read([entity(packet_replication_engine_entry=p)]))
    same(both, lambda t: t.write([pre(MODIFY, mc(1, [(4, 0)])), pre(DELETE, mc(9, [])),
                                  pre(MODIFY, cs(100, [(3, 2)], length=64)),
                                  pre(MODIFY, cs(100, [(3, 2)])),
                                  pre(DELETE, cs(100, []))]))
    same(both, lambda t: t.read([entity(packet_replication_engine_entry=mc(0, []))]))
    same(both, lambda t: t.read([entity(packet_replication_engine_entry=cs(0, []))]))


def test_pipeline_config(both):
    def get(kind: int) -> Any:
        def run(t: Target) -> bytes:
            cfg = t.stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(
                device_id=DEVICE_ID, response_type=kind)).config
            return cfg.SerializeToString(deterministic=True)
        return run
    for kind in p4r.GetForwardingPipelineConfigRequest.ResponseType.values():
        same(both, get(kind))

    def set_code(action: int) -> Any:
        def run(t: Target) -> str:
            try:
                t.stub.SetForwardingPipelineConfig(pipeline_request(
                    DEVICE_ID, sp.p4info(), sp.device_config(), action))
                return "OK"
            except grpc.RpcError as err:
                return err.code().name
        return run
    SetAction = p4r.SetForwardingPipelineConfigRequest
    for action in (SetAction.VERIFY, SetAction.UNSPECIFIED, SetAction.COMMIT,
                   SetAction.VERIFY_AND_SAVE, SetAction.VERIFY_AND_SAVE,
                   SetAction.VERIFY_AND_COMMIT, SetAction.RECONCILE_AND_COMMIT,
                   SetAction.COMMIT, SetAction.COMMIT, SetAction.RECONCILE_AND_COMMIT,
                   SetAction.VERIFY_AND_COMMIT, SetAction.COMMIT,
                   SetAction.VERIFY_AND_COMMIT):
        same(both, set_code(action))
        same(both, get(p4r.GetForwardingPipelineConfigRequest.COOKIE_ONLY))


def test_arbitration_and_packet_io(both):
    # nobody connected: election ids are refused, none is accepted
    te = table_entry(sp.T_FWD, [exact(1, MAC1)], sp.A_SET_PORT, [(1, b"\x01")])
    same(both, lambda t: t.write([te_up(INSERT, te)], election_id=3))
    same(both, lambda t: t.write([te_up(INSERT, te)]))
    streams = {}

    def connect(t: Target, eid: int) -> tuple[int, int]:
        c = StreamClient(t.stub)
        streams.setdefault(t.name, []).append(c)
        c.arbitrate(DEVICE_ID, eid)
        m = c.get("arbitration").arbitration
        return m.status.code, (m.election_id.high << 64) | m.election_id.low
    try:
        same(both, lambda t: connect(t, 5))
        same(both, lambda t: connect(t, 2))
        for eid in (None, 2, 4, 5):
            same(both, lambda t: t.write([te_up(DELETE, te), te_up(INSERT, te)], eid))

        # packet-out to the CPU port comes back as a packet-in with the ingress port 255
        def round_trip(t: Target) -> Any:
            primary = streams[t.name][0]
            frame = MAC1 + MAC2 + b"\x08\x00" + b"p" * 30
            primary.packet_out(frame, [(1, sp.CPU_PORT.to_bytes(2, "big"))])
            pkt = primary.get("packet").packet
            try:
                streams[t.name][1].get("packet", timeout=0.3)
                backup_got_it = True
            except queue.Empty:
                backup_got_it = False
            return pkt.SerializeToString(deterministic=True), backup_got_it
        same(both, round_trip)

        # the primary leaves: the backup is promoted
        def failover(t: Target) -> Any:
            streams[t.name][0].cancel()
            m = streams[t.name][1].get("arbitration").arbitration
            return m.status.code, m.election_id.low
        same(both, failover)
        same(both, lambda t: t.write([te_up(DELETE, te)], election_id=2))

        # a duplicate election id ends the new stream
        def duplicate(t: Target) -> Any:
            c = StreamClient(t.stub)
            streams[t.name].append(c)
            c.arbitrate(DEVICE_ID, 2)
            err = c.ended.get(timeout=5)
            return err.code().name if err else None
        same(both, duplicate)
    finally:
        for cs in streams.values():
            for c in cs:
                c.cancel()


def test_idle_timeout_notification(both):
    te = table_entry(sp.T_FWD, [exact(1, b"\x00" + MAC1)], sp.A_SET_PORT, [(1, b"\x01")],
                     idle_timeout_ns=500_000_000, controller_metadata=77)

    def notified(t: Target) -> bytes:
        c = StreamClient(t.stub)
        try:
            c.arbitrate(DEVICE_ID, 1)
            c.get("arbitration")
            assert t.write([te_up(INSERT, te)], election_id=1) == "OK"
            note = c.get("idle_timeout_notification", timeout=10).idle_timeout_notification
            assert note.timestamp > 0
            note.ClearField("timestamp")
            return note.SerializeToString(deterministic=True)
        finally:
            c.cancel()
    same(both, notified)
