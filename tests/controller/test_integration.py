"""The controller against real switches over real gRPC (softswitch and BMv2 processes on veth
ports) with the compiled P4 program: from an empty switch to counted traffic, registry
refresh, fireflies (UDP and in band; start/ongoing/end; idle timeout), controller restart,
switch restart, primary/backup failover, spoofed and malformed fireflies, two switches in a row.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from controller import cli
from controller.drivers.base import Counts, FlowKey
from controller.drivers.p4runtime import T_POLICY
from labnet.waiting import wait_until
from scitags_core import flowlabel
from scitags_core.firefly_build import build_firefly
from tests.controller.harness import (
    CACHE, CMS, H1, H2, PERFSONAR, SwitchProc, api, api_addr, counters, flow_on_switch,
    observer, row, send_all, send_firefly, start_controller, start_flow, topology_yaml, v4, v6)

pytestmark = pytest.mark.timeout(180)


def test_empty_switch_to_counted_traffic(one_switch):
    sw, start = one_switch
    rt = start(mirror=["cms/perfSONAR"])
    assert rt.controller.switches["s1"].pipeline_pushes == 1
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    other_activity = v6(flowlabel.encode_label(CMS, 60))  # not registered: experiment wildcard
    unregistered = v6(flowlabel.encode_label(300, 1))
    unmarked = v6(0)
    send_all(sw, 1, [tagged] * 5 + [other_activity] + [unregistered] * 3 + [unmarked] * 2)
    # the mirrored tag went to the monitor port too
    rows = counters(rt)
    r = row(rows, source="flowlabel", experiment="cms", activity="perfSONAR")
    assert r is not None and r["packets"] == 5 and r["bytes"] == 5 * len(tagged)
    assert r["experiment_id"] == 3 and r["activity_id"] == 2 and r["registry"]
    assert row(rows, source="flowlabel", experiment="cms", activity_id=None)["packets"] == 1
    assert row(rows, bucket="unregistered")["packets"] == 3
    assert row(rows, bucket="unmarked")["packets"] == 2
    # query filters and the CLI
    only = counters(rt, experiment="cms", activity="perfSONAR")
    assert [x["packets"] for x in only] == [5]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["counters", "--api", api_addr(rt), "--experiment", "cms", "--json"]) == 0
    assert {x["activity"] for x in json.loads(out.getvalue())} == {"perfSONAR", "*"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["counters", "--api", api_addr(rt)]) == 0
    assert "perfSONAR" in out.getvalue() and "unregistered" in out.getvalue()
    metrics = api(rt, "/metrics")
    assert ('scitags_bytes_total{activity="perfSONAR",experiment="cms",source="flowlabel",switch="s1"} '
            f"{float(5 * len(tagged))}") in metrics
    assert 'scitags_bucket_packets_total{bucket="unmarked",switch="s1"} 2.0' in metrics
    from prometheus_client.parser import text_string_to_metric_families
    names = {f.name for f in text_string_to_metric_families(metrics)}
    assert {"scitags_bytes", "scitags_packets", "scitags_fireflies_refused", "scitags_switch_up"} <= names
    import urllib.error
    with pytest.raises(urllib.error.HTTPError) as err:
        api(rt, "/api/v1/nope")
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        api(rt, "/api/v1/flows?recent=x")
    assert err.value.code == 400


def test_concurrent_polls_fold_each_reading_once(one_switch):
    """A poll whose read finished before another poll's read is folded before it: applied
    after, its older reading would look like a restarted switch and count 3 frames again."""
    import threading
    sw, start = one_switch
    rt = start(poll_interval_s=3600)  # only this test's polls
    s1 = rt.controller.switches["s1"]
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    send_all(sw, 1, [tagged] * 3)
    real_read, second_reading = s1.driver.read_counters, threading.Event()
    calls = []

    def read_counters():
        snap = real_read()
        calls.append(snap)
        if len(calls) == 1:  # first poll: more traffic after its read, then let another poll in
            send_all(sw, 1, [tagged] * 5)
            second_reading.wait(timeout=2)  # never set while polls are serialized
        else:
            second_reading.set()
        return snap

    s1.driver.read_counters = read_counters
    first = threading.Thread(target=rt.controller.poll_switch, args=(s1,))
    first.start()
    wait_until(lambda: calls, what="first poll's read")
    rt.controller.poll_switch(s1)
    first.join(timeout=10)
    s1.driver.read_counters = real_read
    r = row(counters(rt), source="flowlabel", experiment="cms", activity="perfSONAR")
    assert (r["packets"], r["bytes"]) == (8, 8 * len(tagged))


def test_mirror_copies_to_monitor_port(one_switch):
    sw, start = one_switch
    start(mirror=["cms/perfSONAR"])
    sw.veth.drain()
    sw.veth.send(1, v6(flowlabel.encode_label(CMS, PERFSONAR)))
    sw.veth.send(1, v6(flowlabel.encode_label(CMS, CACHE)))
    got = sw.veth.receive(timeout=3, ports=[2, 3], until=3)
    assert len(got[2]) == 2 and len(got[3]) == 1


def test_fireflies_start_ongoing_end_udp_and_in_band(one_switch):
    sw, start = one_switch
    rt = start()
    obs = observer(sw)
    try:
        key = FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", 40000, 1094)
        send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 40000, 1094, CMS, PERFSONAR)
        wait_until(lambda: flow_on_switch(obs, key), what="entry on the switch")
        send_all(sw, 1, [v4(40000)] * 4)
        rows = counters(rt)
        r = row(rows, source="firefly", experiment="cms", activity="perfSONAR")
        assert r["packets"] == 4
        assert row(rows, bucket="firefly_only")["packets"] == 4
        send_firefly(rt, "ongoing", H1["ipv4"], H2["ipv4"], 40000, 1094, CMS, PERFSONAR)
        wait_until(lambda: rt.controller.flows[key].fireflies == 2, what="ongoing applied")
        assert len(obs.installed_flows()) == 1
        live = api(rt, "/api/v1/flows")["live"]
        assert live[0]["bytes"] == 4 * len(v4(40000)) and live[0]["via"] == "udp"
        send_firefly(rt, "end", H1["ipv4"], H2["ipv4"], 40000, 1094, CMS, PERFSONAR)
        wait_until(lambda: not flow_on_switch(obs, key), what="entry removed")
        recent = wait_until(lambda: api(rt, "/api/v1/flows")["recent"], what="flow history")
        assert recent[0]["end_reason"] == "end" and recent[0]["packets"] == 4
        assert recent[0]["experiment_name"] == "cms"
        # in band: a firefly crossing the switch is copied to the controller
        key6 = FlowKey.of(H1["ipv6"], H2["ipv6"], "tcp", 41000, 1094)
        ff = build_firefly(state="start", src_ip=H1["ipv6"], dst_ip=H2["ipv6"], src_port=41000,
                           dst_port=1094, experiment_id=CMS, activity_id=CACHE)
        frame = bytes(Ether(src=H1["mac"], dst=H2["mac"]) / IPv6(src=H1["ipv6"], dst=H2["ipv6"])
                      / UDP(sport=33333, dport=10514) / ff)
        send_all(sw, 1, [frame])  # the original still reaches h2
        wait_until(lambda: flow_on_switch(obs, key6), what="in-band firefly entry")
        assert rt.controller.flows[key6].via == "in-band:s1"
        # traffic with a consistent label is counted in the consistent bucket
        send_all(sw, 1, [v6(flowlabel.encode_label(CMS, CACHE), sport=41000)] * 2)
        assert row(counters(rt), bucket="consistent")["packets"] == 2
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["flows", "--api", api_addr(rt)]) == 0
        assert "live" in out.getvalue() and "ended:end" in out.getvalue()
    finally:
        obs.close()


def test_idle_timeout_removes_once(one_switch):
    sw, start = one_switch
    rt = start(**{"firefly.idle_timeout_s": 1.0})
    obs = observer(sw)
    try:
        key = FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", 40001, 1094)
        send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 40001, 1094, CMS, PERFSONAR)
        wait_until(lambda: flow_on_switch(obs, key), what="entry on the switch")
        send_all(sw, 1, [v4(40001)] * 3)
        recent = wait_until(lambda: api(rt, "/api/v1/flows")["recent"], timeout=20, what="idle removal")
        assert key not in rt.controller.flows and not flow_on_switch(obs, key)
        assert recent[0]["end_reason"] == "idle:s1" and recent[0]["packets"] == 3
        assert rt.controller.stats["flows_idle"] == 1
        assert rt.controller.stats["switch_errors"] == 0
    finally:
        obs.close()


def test_registry_refresh_keeps_history_under_old_names(one_switch, tmp_path):
    sw, start = one_switch
    reg_path = tmp_path / "registry.json"
    from tests.controller.harness import REGISTRY
    doc = json.loads(REGISTRY.read_text())
    reg_path.write_text(json.dumps(doc))
    rt = start(registry=str(reg_path))
    obs = observer(sw)
    try:
        before = {e.key: e for e in obs._read_tables([T_POLICY])[T_POLICY]}
        tag_of_cms_ps = next(m.rule.tag_id for m in rt.controller.tags.values()
                             if (m.rule.experiment, m.rule.activity) == (CMS, PERFSONAR))
        send_all(sw, 1, [v6(flowlabel.encode_label(CMS, PERFSONAR))] * 3)
        counters(rt)
        old_identity = rt.controller.registry.identity
        doc["modified"] = "2026-11-25T00:00:00Z"
        cms = next(e for e in doc["experiments"] if e["expId"] == CMS)
        next(a for a in cms["activities"] if a["activityId"] == PERFSONAR)["activityName"] = "perfSONAR-v2"
        doc["experiments"] = [e for e in doc["experiments"] if e["expName"] != "juno"]
        doc["experiments"].append({"expName": "newexp", "expId": 42,
                                   "activities": [{"activityName": "default", "activityId": 1}]})
        reg_path.write_text(json.dumps(doc))
        answer = api(rt, "/api/v1/registry/refresh", method="POST")
        assert answer["registry"] != old_identity
        after = obs._read_tables([T_POLICY])[T_POLICY]
        exps = {obs._tag_rule(e).experiment for e in after}
        assert 42 in exps and 12 not in exps
        assert len(after) == len(before) - 2 + 2  # juno (wildcard + default) out, newexp in
        new_tag = next(m.rule.tag_id for m in rt.controller.tags.values()
                       if (m.rule.experiment, m.rule.activity) == (CMS, PERFSONAR))
        assert new_tag == tag_of_cms_ps  # stable cell
        send_all(sw, 1, [v6(flowlabel.encode_label(CMS, PERFSONAR))] * 2)
        rows = counters(rt, experiment="cms")
        assert row(rows, activity="perfSONAR", registry=old_identity)["packets"] == 3
        assert row(rows, activity="perfSONAR-v2")["packets"] == 2
    finally:
        obs.close()


def test_controller_restart_reconciles_and_keeps_counts(one_switch):
    sw, start = one_switch
    rt = start()
    key = start_flow(rt, 40002)
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    send_all(sw, 1, [tagged] * 3 + [v4(40002)] * 2)
    rows = counters(rt)
    assert row(rows, source="flowlabel", experiment="cms", activity="perfSONAR")["packets"] == 3
    rt.stop()
    rt2 = start()
    st = rt2.controller.switches["s1"]
    assert st.pipeline_pushes == 0  # same pipeline: not pushed again
    assert key in rt2.controller.flows  # adopted: nothing lost
    assert rt2.controller.stats["switch_errors"] == 0
    rows = counters(rt2)
    assert row(rows, source="flowlabel", experiment="cms", activity="perfSONAR")["packets"] == 3
    assert row(rows, source="firefly", experiment="cms", activity="perfSONAR")["packets"] == 2
    # the adopted flow's own counts include what the first controller read
    assert api(rt2, "/api/v1/flows")["live"][0]["per_switch"]["s1"]["packets"] == 2
    send_all(sw, 1, [tagged] * 4)
    rows = counters(rt2)
    assert row(rows, source="flowlabel", experiment="cms", activity="perfSONAR")["packets"] == 7
    obs = observer(sw)
    try:
        assert len(obs._read_table("ScitagsIngress.scitag_policy")) == len(rt2.controller.tags)
        assert list(obs.installed_flows()) == [key]
    finally:
        obs.close()


def test_switch_restart_repushes_and_keeps_history(one_switch):
    sw, start = one_switch
    rt = start()
    key = start_flow(rt, 40003)
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    send_all(sw, 1, [tagged] * 3)
    counters(rt)
    sw.restart()
    st = rt.controller.switches["s1"]
    wait_until(lambda: st.pipeline_pushes == 2 and st.ready, timeout=60, what="re-push after switch restart")
    obs = observer(sw)
    try:
        assert key in obs.installed_flows()
        assert len(obs._read_table("ScitagsIngress.scitag_policy")) == len(rt.controller.tags)
    finally:
        obs.close()
    send_all(sw, 1, [tagged] * 2)  # forwarding is back too
    r = row(counters(rt), source="flowlabel", experiment="cms", activity="perfSONAR")
    assert r["packets"] == 5


def test_flow_history_keeps_counts_across_switch_restart(one_switch):
    """Regression: a flow's end record showed only what was counted since the re-push."""
    sw, start = one_switch
    rt = start()
    key = start_flow(rt, 40004)
    frame = v4(40004)
    send_all(sw, 1, [frame] * 3)
    counters(rt)  # read before the switch goes away
    sw.restart()
    st = rt.controller.switches["s1"]
    wait_until(lambda: st.pipeline_pushes == 2 and st.ready, timeout=60, what="re-push after switch restart")
    assert "s1" in rt.controller.flows[key].installed  # the flow was re-installed
    send_all(sw, 1, [frame] * 2)
    assert row(counters(rt), source="firefly", experiment="cms", activity="perfSONAR")["packets"] == 5
    live = api(rt, "/api/v1/flows")["live"]
    assert live[0]["per_switch"]["s1"]["packets"] == 5
    send_firefly(rt, "end", H1["ipv4"], H2["ipv4"], 40004, 1094, CMS, PERFSONAR)
    recent = wait_until(lambda: api(rt, "/api/v1/flows")["recent"], what="flow history")
    assert recent[0]["per_switch"]["s1"] == {"packets": 5, "bytes": 5 * len(frame)}
    assert (recent[0]["packets"], recent[0]["bytes"]) == (5, 5 * len(frame))
    assert row(counters(rt), source="firefly", experiment="cms", activity="perfSONAR")["packets"] == 5


def test_primary_backup_failover(one_switch):
    sw, start = one_switch
    a = start(name="a")
    b = start(wait=False, name="b")
    # b started later: lower election id -> backup
    assert a.controller.switches["s1"].driver.is_primary
    wait_until(lambda: b.controller.switches["s1"].status == "backup", what="b backup")
    assert not b.controller.switches["s1"].driver.is_primary
    a.stop()
    st = b.controller.switches["s1"]
    wait_until(lambda: st.ready and st.driver.is_primary, timeout=30, what="b takes over")
    key = FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", 40004, 1094)
    send_firefly(b, "start", H1["ipv4"], H2["ipv4"], 40004, 1094, CMS, PERFSONAR)
    obs = observer(sw)
    try:
        wait_until(lambda: flow_on_switch(obs, key), what="entry written by the new primary")
    finally:
        obs.close()
    send_all(sw, 1, [v6(flowlabel.encode_label(CMS, PERFSONAR))])
    assert row(counters(b), source="flowlabel", activity="perfSONAR")["packets"] == 1


def test_spoofed_and_malformed_fireflies(one_switch):
    sw, start = one_switch
    rt = start(**{"firefly.accept_sources": ["127.0.1.0/24"], "firefly.max_flows": 2,
                  "firefly.rate_per_source": 1.0, "firefly.burst": 3.0})
    ctl = rt.controller
    # a third party claims a flow between h1 and h2
    send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 1, 2, CMS, 1, sender="127.0.1.9")
    # a sender outside the accepted prefixes
    send_firefly(rt, "start", "127.0.2.1", H2["ipv4"], 1, 2, CMS, 1)
    # not a firefly at all, and a truncated one
    send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 1, 2, CMS, 1, payload=b"\x00garbage")
    good = build_firefly(state="start", src_ip=H1["ipv4"], dst_ip=H2["ipv4"], src_port=7, dst_port=8,
                         experiment_id=CMS, activity_id=1)
    send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 1, 2, CMS, 1, payload=good[:-20])
    # the cap: two flows, the third new one refused; then the rate limit of h1
    for port in (100, 101, 102):
        send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], port, 1094, CMS, 1)
    for _ in range(3):
        send_firefly(rt, "ongoing", H1["ipv4"], H2["ipv4"], 100, 1094, CMS, 1)

    # a malformed firefly in band (crossing the switch): counted too, the packet still forwarded
    junk = bytes(Ether(src=H1["mac"], dst=H2["mac"]) / IP(src=H1["ipv4"], dst=H2["ipv4"])
                 / UDP(sport=5, dport=10514) / b"<134>1 - - - - firefly-json - {not json")
    send_all(sw, 1, [junk])

    def refused():
        return api(rt, "/api/v1/fireflies")["refused"]
    wait_until(lambda: refused()["rate-limited"] >= 1 and refused()["malformed"] == 3, what="refusals")
    r = refused()
    assert r["sender-not-endpoint"] == 1 and r["source-not-accepted"] == 1
    assert r["malformed"] == 3 and r["table-full"] == 1
    assert api(rt, "/api/v1/fireflies")["in_band"]["rejected_total"] == 1
    assert len(ctl.flows) == 2
    obs = observer(sw)
    try:
        assert len(obs.installed_flows()) == 2
    finally:
        obs.close()
    metrics = api(rt, "/metrics")
    assert 'scitags_fireflies_refused_total{reason="table-full"} 1.0' in metrics
    status = api(rt, "/api/v1/status")
    assert status["switches"]["s1"]["ready"]


def test_two_switches_in_a_row(kind, tmp_path):
    s1 = SwitchProc(kind, 1, [1], tmp_path)
    s2 = SwitchProc(kind, 2, [2], tmp_path)
    link_a, link_b = f"xl{s1.veth.tag}a", f"xl{s1.veth.tag}b"
    subprocess.run(["ip", "link", "del", link_a], capture_output=True)
    subprocess.run(["ip", "link", "add", link_a, "type", "veth", "peer", "name", link_b], check=True)
    for iface in (link_a, link_b):
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "link", "set", iface, "up", "mtu", "9000"], check=True)
    s1.extra_ifaces = {4: link_a}
    s2.extra_ifaces = {1: link_b}
    rt = None
    try:
        s1.start()
        s2.start()
        topo = topology_yaml({"s1": s1, "s2": s2}, {"h1": H1, "h2": H2},
                             [{"node1": "h1", "node2": "s1", "port2": 1},
                              {"node1": "s1", "port1": 4, "node2": "s2", "port2": 1},
                              {"node1": "h2", "node2": "s2", "port2": 2}])
        rt = start_controller(tmp_path, topo)
        assert rt.controller.wait_ready(30), rt.controller.status()
        key = FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", 40005, 1094)
        send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 40005, 1094, CMS, PERFSONAR)
        wait_until(lambda: set(rt.controller.flows.get(key).installed if key in rt.controller.flows else ())
                   == {"s1", "s2"}, what="entry on both switches")
        assert rt.controller.flows[key].path == ["s1", "s2"]
        s2.veth.drain()
        frames = [v4(40005)] * 3 + [v6(flowlabel.encode_label(CMS, CACHE))] * 2
        for f in frames:
            s1.veth.send(1, f)
        got = s2.veth.receive(timeout=5, ports=[2], until=len(frames))
        assert len(got[2]) == len(frames)
        rows = counters(rt)
        for name in ("s1", "s2"):
            assert row(rows, switch=name, source="firefly", activity="perfSONAR")["packets"] == 3
            assert row(rows, switch=name, source="flowlabel", activity="Cache")["packets"] == 2
        send_firefly(rt, "end", H1["ipv4"], H2["ipv4"], 40005, 1094, CMS, PERFSONAR)
        recent = wait_until(lambda: api(rt, "/api/v1/flows")["recent"], what="flow ended")
        assert set(recent[0]["per_switch"]) == {"s1", "s2"} and recent[0]["packets"] == 3
        assert Counts(3, 3 * len(v4(40005))) == Counts(recent[0]["packets"], recent[0]["bytes"])
    finally:
        if rt is not None:
            rt.stop()
        s1.stop()
        s2.stop()


def test_unreachable_switch_retried_while_others_work(kind, tmp_path):
    s1 = SwitchProc(kind, 1, [1, 2], tmp_path)
    s2 = SwitchProc(kind, 2, [2], tmp_path)  # not started yet
    rt = None
    try:
        s1.start()
        topo = topology_yaml({"s1": s1, "s2": s2}, {"h1": H1, "h2": H2},
                             [{"node1": "h1", "node2": "s1", "port2": 1},
                              {"node1": "s1", "port1": 2, "node2": "s2", "port2": 1},
                              {"node1": "h2", "node2": "s2", "port2": 2}])
        rt = start_controller(tmp_path, topo)
        ctl = rt.controller
        assert ctl.wait_ready(30, ["s1"])
        wait_until(lambda: ctl.switches["s2"].status == "unreachable", what="s2 unreachable")
        assert not ctl.switches["s2"].ready
        # s1 keeps working: fireflies are installed where possible
        key = FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", 40006, 1094)
        send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 40006, 1094, CMS, PERFSONAR)
        wait_until(lambda: key in ctl.flows and "s1" in ctl.flows[key].installed, what="installed on s1")
        s2.start()
        assert ctl.wait_ready(60), ctl.status()  # retried with backoff, then synced
        wait_until(lambda: set(ctl.flows[key].installed) == {"s1", "s2"}, what="flow caught up on s2")
        status = api(rt, "/api/v1/status")
        assert status["switches"]["s2"]["ready"] and status["switches"]["s2"]["pipeline_pushes"] == 1
    finally:
        if rt is not None:
            rt.stop()
        s1.stop()
        s2.stop()


def test_failover_with_shared_state_keeps_counts(one_switch):
    sw, start = one_switch
    a = start(name="shared")
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    send_all(sw, 1, [tagged] * 3)
    assert row(counters(a), source="flowlabel", activity="perfSONAR")["packets"] == 3
    b = start(wait=False, name="shared", api="127.0.0.1:0")
    wait_until(lambda: b.controller.switches["s1"].status == "backup", what="b backup")
    a.stop()
    st = b.controller.switches["s1"]
    wait_until(lambda: st.ready, timeout=30, what="b takes over")
    send_all(sw, 1, [tagged])
    assert row(counters(b), source="flowlabel", activity="perfSONAR")["packets"] == 4


def test_pipeline_replaced_by_another_client_is_repaired(one_switch):
    sw, start = one_switch
    rt = start()
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    send_all(sw, 1, [tagged] * 3)
    counters(rt)
    st = rt.controller.switches["s1"]
    syncs = st.syncs
    # An intruder with a higher election id takes over, pushes the program with another
    # cookie (wiping every entry), and leaves.
    from controller.drivers.p4runtime import P4RuntimeDriver
    from tests.controller.harness import DEVICE_JSON, P4INFO
    intruder = P4RuntimeDriver("x", sw.device_id, f"127.0.0.1:{sw.grpc_port}", P4INFO, DEVICE_JSON,
                               election_id=(1, 0))
    intruder.connect()
    intruder.cookie ^= 1
    intruder.p4info_msg.pkg_info.doc.brief = "another build"  # differs from ours
    assert intruder.ensure_pipeline()
    intruder.close()
    wait_until(lambda: st.syncs > syncs and st.ready, timeout=30, what="re-sync after pipeline loss")
    obs = observer(sw)
    try:
        assert len(obs._read_table("ScitagsIngress.scitag_policy")) == len(rt.controller.tags)
    finally:
        obs.close()
    send_all(sw, 1, [tagged] * 2)
    assert row(counters(rt), source="flowlabel", activity="perfSONAR")["packets"] == 5


def test_when_full_evict_oldest(one_switch):
    sw, start = one_switch
    rt = start(**{"firefly.max_flows": 2, "firefly.when_full": "evict-oldest"})
    keys = [FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", p, 1094) for p in (200, 201, 202)]
    send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 200, 1094, CMS, 1)
    send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 201, 1094, CMS, 1)
    wait_until(lambda: len(rt.controller.flows) == 2, what="two flows")
    send_firefly(rt, "ongoing", H1["ipv4"], H2["ipv4"], 200, 1094, CMS, 1)  # 201 is now the oldest
    wait_until(lambda: rt.controller.flows[keys[0]].fireflies == 2, what="refresh")
    send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 202, 1094, CMS, 1)
    recent = wait_until(lambda: api(rt, "/api/v1/flows")["recent"], what="eviction")
    assert recent[0]["end_reason"] == "evicted" and recent[0]["src_port"] == 201
    obs = observer(sw)
    try:
        wait_until(lambda: set(obs.installed_flows()) == {keys[0], keys[2]}, what="entries after eviction")
        assert set(rt.controller.flows) == {keys[0], keys[2]}
    finally:
        obs.close()
