"""The controller with a P4 switch and an OpenFlow switch in one topology.

h1 -- s1 (P4 softswitch, port 1 / port 4) -- veth -- (port 1) s2 (OVS, kind: ovs, port 2) -- h2.
A firefly puts the flow on both switches; labelled and firefly traffic is counted on both with
the same semantics, shown in one table by `controller counters` and in the same metrics; a
flushed OVS is noticed and re-synced with its counts kept.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess

import pytest

from controller import cli
from controller.drivers.base import FlowKey
from scitags_core.flowlabel import encode_label
from labnet.waiting import poll as wait_until
from tests.openflow.helpers import v4_frame, v6_frame
from tests.openflow.ovslab import OvsLab, ovs_unavailable_reason

pytestmark = [pytest.mark.netns, pytest.mark.timeout(180)]

CMS, PERFSONAR, CACHE = 3, 2, 3


def test_p4_and_openflow_switches_count_the_same(tmp_path) -> None:
    reason = ovs_unavailable_reason()
    if reason:
        pytest.skip(reason)
    harness = pytest.importorskip("tests.controller.harness")
    if not harness.IS_ROOT or not harness.HAVE_SOFT_CLI:
        pytest.skip("P4 softswitch target unusable (needs root and softswitch/cli.py)")
    H1, H2 = harness.H1, harness.H2

    s1 = harness.SwitchProc("soft", 1, [1], tmp_path)
    link_a, link_b = f"ml{s1.veth.tag}a", f"ml{s1.veth.tag}b"
    subprocess.run(["ip", "link", "del", link_a], capture_output=True)
    subprocess.run(["ip", "link", "add", link_a, "type", "veth", "peer", "name", link_b], check=True)
    for iface in (link_a, link_b):
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "link", "set", iface, "up"], check=True)
    s1.extra_ifaces = {4: link_a}
    lab = OvsLab({"h2": (H2["mac"], 2)}, extra_ports={link_b: 1})
    rt = None
    try:
        s1.start()
        lab.start()
        topo = {"name": "mixed",
                "switches": {"s1": {"device_id": 1, "grpc_port": s1.grpc_port, "cpu_port": 255},
                             "s2": {"device_id": 2, "kind": "ovs", "openflow": lab.target}},
                "hosts": {"h1": {"mac": H1["mac"], "ipv4": f"{H1['ipv4']}/8",
                                 "ipv6": f"{H1['ipv6']}/64"},
                          "h2": {"mac": H2["mac"], "ipv4": f"{H2['ipv4']}/8",
                                 "ipv6": f"{H2['ipv6']}/64"}},
                "links": [{"node1": "h1", "node2": "s1", "port2": 1},
                          {"node1": "s1", "port1": 4, "node2": "s2", "port2": 1},
                          {"node1": "h2", "node2": "s2", "port2": 2}]}
        rt = harness.start_controller(tmp_path, json.dumps(topo))
        assert rt.controller.wait_ready(30), rt.controller.status()

        key = FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", 40005, 1094)
        harness.send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], 40005, 1094, CMS, PERFSONAR)
        wait_until(lambda: key in rt.controller.flows
                   and set(rt.controller.flows[key].installed) == {"s1", "s2"})
        assert set(rt.controller.flows[key].installed) == {"s1", "s2"}
        lab.sync()  # OVS datapath caches follow the new entries (see OvsLab.sync)

        firefly = [v4_frame(H1["mac"], H2["mac"], 40005, 1094, "tcp", H1["ipv4"], H2["ipv4"])] * 3
        cache = [v6_frame(H1["mac"], H2["mac"], encode_label(CMS, CACHE), 40006, 1094, "tcp",
                          H1["ipv6"], H2["ipv6"])] * 2
        unmarked = [v6_frame(H1["mac"], H2["mac"], 0, 40007, 1094, "tcp", H1["ipv6"], H2["ipv6"])]
        frames = firefly + cache + unmarked
        lab.drain()
        for frame in frames:
            s1.veth.send(1, frame)
        assert len(lab.receive(timeout=5, until=len(frames))["h2"]) == len(frames)

        def rows() -> list[dict]:
            rt.controller.poll_all()
            return harness.api(rt, "/api/v1/counters")["counters"]

        def packets(switch: str, **want: object) -> int | None:
            found = [r for r in rows() if r.get("switch") == switch
                     and all(r.get(k) == v for k, v in want.items())]
            return found[0]["packets"] if len(found) == 1 else None

        for switch in ("s1", "s2"):  # OVS pushes flow stats periodically: wait for them
            wait_until(lambda: packets(switch, source="firefly", activity="perfSONAR") == 3)
            assert packets(switch, source="firefly", activity="perfSONAR") == 3
            assert packets(switch, source="flowlabel", activity="Cache") == 2
            assert packets(switch, bucket="unmarked") == 1
            assert packets(switch, bucket="firefly_only") == 3

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["counters", "--api", harness.api_addr(rt), "--json"]) == 0
        table = json.loads(out.getvalue())
        assert {r["switch"] for r in table if r.get("activity") == "Cache"} == {"s1", "s2"}
        metrics = harness.api(rt, "/metrics")
        for switch in ("s1", "s2"):
            assert (f'scitags_bucket_packets_total{{bucket="unmarked",switch="{switch}"}} 1.0'
                    in metrics)

        # Someone flushes the OVS tables: the controller notices (pipeline cookie), re-pushes
        # everything and keeps the counts it had read, as for a P4 switch that lost its pipeline.
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", lab.bridge], check=True)
        s2 = rt.controller.switches["s2"]
        wait_until(lambda: s2.pipeline_pushes == 2 and s2.ready, timeout=30)
        assert s2.pipeline_pushes == 2 and s2.ready
        lab.sync()
        for frame in firefly[:2]:
            s1.veth.send(1, frame)
        assert len(lab.receive(timeout=5, until=2)["h2"]) == 2
        for switch in ("s1", "s2"):
            wait_until(lambda: packets(switch, source="firefly", activity="perfSONAR") == 5)
            assert packets(switch, source="firefly", activity="perfSONAR") == 5

        harness.send_firefly(rt, "end", H1["ipv4"], H2["ipv4"], 40005, 1094, CMS, PERFSONAR)
        recent = wait_until(lambda: harness.api(rt, "/api/v1/flows")["recent"])
        per_switch = recent[0]["per_switch"]
        assert set(per_switch) == {"s1", "s2"}
        assert per_switch["s1"] == {"packets": 5, "bytes": 5 * len(firefly[0])}
        assert per_switch["s2"] == per_switch["s1"]  # s2's counts from before the flush kept
    finally:
        if rt is not None:
            rt.stop()
        s1.stop()
        lab.stop()
        subprocess.run(["ip", "link", "del", link_a], capture_output=True)
