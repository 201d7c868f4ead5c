"""Continuous reconciliation against real switches: entries deleted, modified or added behind
the controller's back are repaired within two reconcile intervals, counted by kind in
status and /metrics, and counting goes on; a backup never repairs."""
from __future__ import annotations

import contextlib
import io
import time

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from controller import cli
from controller.drivers.p4runtime import T_FF, T_L2, T_POLICY, P4RuntimeDriver
from labnet.waiting import wait_until
from p4schema import CloneSession
from p4schema.constants import MONITOR_MIRROR_SESSION_ID
from scitags_core import flowlabel
from tests.controller.harness import (
    CMS, DEVICE_JSON, P4INFO, PERFSONAR, api, api_addr, counters, observer, row, send_all,
    start_flow, v4, v6)

pytestmark = pytest.mark.timeout(180)
INTERVAL = 1.0
Update = p4runtime_pb2.Update


def tag_entry_of(obs: P4RuntimeDriver, rt, activity: int):
    tag_id = next(m.rule.tag_id for m in rt.controller.tags.values()
                  if (m.rule.experiment, m.rule.activity) == (CMS, activity))
    return next(e for e in obs._read_tables([T_POLICY])[T_POLICY] if e.param("tag_id") == tag_id)


def flow_entry_of(obs: P4RuntimeDriver, key):
    return next(e for e in obs._read_tables([T_FF[4]])[T_FF[4]] if obs._flow_key(e) == key)


class Intruder:
    """A second P4Runtime client that takes mastership (higher election id), writes, and
    hands it back by leaving."""

    def __init__(self, sw) -> None:
        self.d = P4RuntimeDriver("intruder", sw.device_id, f"127.0.0.1:{sw.grpc_port}", P4INFO,
                                 DEVICE_JSON, election_id=(1, 0))

    def __enter__(self) -> P4RuntimeDriver:
        self.d.connect()
        wait_until(lambda: self.d.is_primary, what="intruder primary")
        return self.d

    def __exit__(self, *exc) -> None:
        self.d.close()


def write_as(sw, election_id: tuple[int, int], updates: list) -> None:
    """A Write with the primary's election id from another channel (an operator's tool using
    the controller's credentials): accepted without a mastership change."""
    with grpc.insecure_channel(f"127.0.0.1:{sw.grpc_port}") as ch:
        req = p4runtime_pb2.WriteRequest(device_id=sw.device_id, updates=updates)
        req.election_id.high, req.election_id.low = election_id
        p4runtime_pb2_grpc.P4RuntimeStub(ch).Write(req, timeout=10)


def repairs(rt) -> dict:
    return api(rt, "/api/v1/status")["switches"]["s1"]["reconcile"]["repairs"]


def test_deleted_entries_restored_after_mastership_handback(one_switch):
    sw, start = one_switch
    rt = start(reconcile_interval_s=INTERVAL)
    key = start_flow(rt, 41001)
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    send_all(sw, 1, [tagged] * 2 + [v4(41001)] * 2)
    rows = counters(rt)
    assert row(rows, source="flowlabel", activity="perfSONAR")["packets"] == 2
    assert row(rows, source="firefly", activity="perfSONAR")["packets"] == 2
    with Intruder(sw) as intruder:
        tag = tag_entry_of(intruder, rt, PERFSONAR)
        flow = flow_entry_of(intruder, key)
        intruder._write("delete", [intruder.codec.update(Update.DELETE, tag),
                                   intruder.codec.update(Update.DELETE, flow)])
        assert flow not in intruder._read_tables([T_FF[4]])[T_FF[4]]
    gone = time.monotonic()
    obs = observer(sw)
    try:
        wait_until(lambda: tag in obs._read_tables([T_POLICY])[T_POLICY]
                   and flow in obs._read_tables([T_FF[4]])[T_FF[4]],
                   timeout=2 * INTERVAL + 5, what="both entries restored")
        assert time.monotonic() - gone < 2 * INTERVAL + 5
    finally:
        obs.close()
    assert repairs(rt) == {"flow/missing": 1, "tag/missing": 1}
    send_all(sw, 1, [tagged] * 3 + [v4(41001)] * 4)
    rows = counters(rt)
    assert row(rows, source="flowlabel", activity="perfSONAR")["packets"] == 5
    assert row(rows, source="firefly", activity="perfSONAR")["packets"] == 6


def test_periodic_pass_repairs_every_kind_of_drift(one_switch):
    sw, start = one_switch
    rt = start(reconcile_interval_s=INTERVAL, mirror=["cms/perfSONAR"])
    key = start_flow(rt, 41002)
    session = rt.controller.switches["s1"]
    d = session.driver
    tag = tag_entry_of(d, rt, PERFSONAR)
    flow = flow_entry_of(d, key)
    l2 = d._read_tables([T_L2])[T_L2][0]
    codec = d.codec
    extra = codec.table_entry(T_L2, {"dst_mac": 0x0200000000AA}, "set_egress_port", {"port": 1})
    moved = type(l2)(l2.table, l2.match, l2.action, (("port", 7),), l2.priority, l2.idle_timeout_ns)
    passes = session.reconciles
    write_as(sw, d.election_id, [
        codec.update(Update.DELETE, tag), codec.update(Update.DELETE, flow),
        codec.update(Update.MODIFY, moved), codec.update(Update.INSERT, extra),
        codec.update(Update.MODIFY, CloneSession.of(MONITOR_MIRROR_SESSION_ID, [(2, 1)]))])
    wait_until(lambda: session.reconciles >= passes + 2, timeout=2 * INTERVAL + 5,
               what="two reconcile passes")
    assert repairs(rt) == {"clone_session/modified": 1, "flow/missing": 1, "l2/extra": 1,
                           "l2/modified": 1, "tag/missing": 1}
    assert session.status == "ready" and session.syncs == 1  # repaired without a re-sync
    obs = observer(sw)
    try:
        tables = obs._read_tables([T_L2, T_POLICY, T_FF[4]])
        assert tag in tables[T_POLICY] and flow in tables[T_FF[4]] and l2 in tables[T_L2]
        assert extra not in tables[T_L2]
        assert CloneSession.of(MONITOR_MIRROR_SESSION_ID, [(3, 1)]) in obs._read_pre(
            {("clone_session", MONITOR_MIRROR_SESSION_ID)})
    finally:
        obs.close()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["status", "--api", api_addr(rt)]) == 0
    assert "REPAIRS" in out.getvalue() and "tag/missing 1" in out.getvalue()
    metrics = api(rt, "/metrics")
    assert 'scitags_reconcile_repairs_total{change="missing",kind="tag",switch="s1"} 1.0' in metrics
    assert 'scitags_reconcile_repairs_total{change="extra",kind="l2",switch="s1"} 1.0' in metrics
    # nothing drifted since: later passes repair nothing
    before = dict(repairs(rt))
    n = session.reconciles
    wait_until(lambda: session.reconciles >= n + 2, timeout=2 * INTERVAL + 5, what="quiet passes")
    assert repairs(rt) == before
    send_all(sw, 1, [v6(flowlabel.encode_label(CMS, PERFSONAR))] * 2 + [v4(41002)] * 3)
    rows = counters(rt)
    assert row(rows, source="flowlabel", activity="perfSONAR")["packets"] == 2
    assert row(rows, source="firefly", activity="perfSONAR")["packets"] == 3


def test_backup_never_repairs(one_switch):
    sw, start = one_switch
    a = start(reconcile_interval_s=INTERVAL)
    b = start(wait=False, name="b", reconcile_interval_s=INTERVAL)
    sb = b.controller.switches["s1"]
    wait_until(lambda: sb.status == "backup", what="b backup")
    da = a.controller.switches["s1"].driver
    tag = tag_entry_of(da, a, PERFSONAR)
    sa = a.controller.switches["s1"]
    a.stop()
    # b stays backup to a higher primary that deletes an entry and keeps it deleted
    with Intruder(sw) as intruder:
        intruder._write("delete", [intruder.codec.update(Update.DELETE, tag)])
        time.sleep(3 * INTERVAL)
        assert tag not in intruder._read_tables([T_POLICY])[T_POLICY]  # b did not fight it
        assert sb.repairs == {} and sb.status == "backup"
    wait_until(lambda: sb.ready, timeout=30, what="b primary once the intruder left")
    assert sa.repairs == {}
    obs = observer(sw)
    try:
        wait_until(lambda: tag in obs._read_tables([T_POLICY])[T_POLICY], timeout=2 * INTERVAL + 5,
                   what="b restores the tag entry")
    finally:
        obs.close()
