"""A real controller (controller/runtime.py) driving a real switch in wire and learn mode,
with hosts the topology file does not list: forwarded, learned, counted, answered per direction
by the API (/api/v1/status "placement", /metrics)."""
from __future__ import annotations

import contextlib
import json

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from controller.placement import PlacementExtension
from labnet.waiting import wait_until
from scitags_core import flowlabel
from tests.controller.harness import (CMS, SwitchProc, api, counters, row, start_controller,
                                      target_params)

pytestmark = pytest.mark.netns

A = {"mac": "02:0a:00:00:00:01", "ipv6": "2001:db8:a::1"}  # in no file
B = {"mac": "02:0b:00:00:00:02", "ipv6": "2001:db8:b::2"}
CACHE = 3


@pytest.fixture(params=target_params())
def kind(request):
    return request.param


def frame(src, dst, label, sport=5000, payload=b"p" * 80) -> bytes:
    return bytes(Ether(src=src["mac"], dst=dst["mac"]) / IPv6(src=src["ipv6"], dst=dst["ipv6"], fl=label)
                 / TCP(sport=sport, dport=1094) / payload)


def exchange(sw, port, data, expect: dict[int, int]) -> None:
    """Send one frame; exactly `expect` ({port: frames}) must come out."""
    sw.veth.drain()
    sw.veth.send(port, data)
    got = sw.veth.receive(timeout=3, until=sum(expect.values()))
    for p, frames in sw.veth.receive(timeout=0.3).items():
        got[p] += frames
    assert {p: len(f) for p, f in got.items() if f} == expect


@pytest.fixture
def run(kind, tmp_path):
    switches, runtimes = [], []

    def start(switch_conf: dict, ports=(1, 2, 3)):
        sw = SwitchProc(kind, 1, list(ports), tmp_path).start()
        switches.append(sw)
        conf = {"device_id": 1, "grpc_port": sw.grpc_port, "cpu_port": 255, **switch_conf}
        topo = json.dumps({"name": "modes", "switches": {"s1": conf}})
        ext = PlacementExtension()
        rt = start_controller(tmp_path, topo, extensions=[ext], sections={"placement": {"interval_s": 0.2}})
        runtimes.append(rt)
        assert rt.controller.wait_ready(30), rt.controller.status()
        return sw, rt, ext

    yield start
    for rt in runtimes:
        with contextlib.suppress(Exception):
            rt.stop()
    for sw in switches:
        sw.stop()


def test_wire_switch_forwards_unlisted_hosts_and_counts_per_direction(run):
    sw, rt, ext = run({"mode": "wire", "pairs": [[1, 2]],
                       "ports": {1: {"direction": "lan"}, 2: {"wan": True}, 3: {}}})
    label = flowlabel.encode_label(CMS, CACHE, entropy=7)
    out = [frame(A, B, label, 5000 + i) for i in range(3)]
    back = [frame(B, A, label, 6000 + i) for i in range(2)]
    for f in out:
        exchange(sw, 1, f, {2: 1})
    for f in back:
        exchange(sw, 2, f, {1: 1})
    exchange(sw, 3, out[0], {})  # a port in no pair forwards nothing
    rows = counters(rt, switch="s1")
    r = row(rows, source="flowlabel", experiment_id=CMS, activity_id=CACHE) or row(
        rows, source="flowlabel", experiment="cms", activity="Cache")
    assert r is not None, rows
    assert r["packets"] == 6 and r["bytes"] == sum(map(len, out + back)) + len(out[0])

    def directions():
        ext.poll()
        return {x["direction"]: (x["packets"], x["bytes"])
                for x in api(rt, "/api/v1/status")["placement"]["direction"]
                if x["switch"] == "s1" and x["activity"] == "Cache"}
    wait_until(lambda: len(directions()) == 2, what="direction counts")
    assert directions() == {"to_wan": (3, sum(map(len, out))), "from_wan": (2, sum(map(len, back)))}
    status = api(rt, "/api/v1/status")["placement"]["switches"]["s1"]
    assert status["mode"] == "wire"
    assert status["ports"]["1"] == {"action": "wire", "partner": 2, "direction": "to_wan"}
    metrics = api(rt, "/metrics")
    assert 'scitags_direction_packets_total{activity="Cache",direction="from_wan",experiment="cms",switch="s1"} 2.0' in metrics


def test_learn_switch_learns_unlisted_hosts(run):
    sw, rt, ext = run({"mode": "learn", "ports": [1, 2, 3], "learn_ageing_s": 120})
    label = flowlabel.encode_label(CMS, CACHE, entropy=9)
    exchange(sw, 1, frame(A, B, label), {2: 1, 3: 1})  # B unknown: flooded
    learning = rt.controller.reconciler.learning
    wait_until(lambda: learning.table("s1") == {A["mac"]: 1}, what="A learned")
    exchange(sw, 2, frame(B, A, label), {1: 1})  # A known: unicast
    wait_until(lambda: learning.table("s1") == {A["mac"]: 1, B["mac"]: 2}, what="B learned")
    exchange(sw, 1, frame(A, B, label, 5001), {2: 1})
    # a reconcile pass keeps the learned entries
    s = rt.controller.switches["s1"]
    rt.controller.reconciler.periodic(s)
    exchange(sw, 1, frame(A, B, label, 5002), {2: 1})
    status = api(rt, "/api/v1/status")["placement"]
    assert status["switches"]["s1"]["learned_macs"] == 2
    assert status["learning"]["learned_macs"] == {"s1": 2} and status["learning"]["learned"] == 2
    rows = counters(rt, switch="s1")
    assert sum(r["packets"] for r in rows if r.get("source") == "flowlabel") == 4
