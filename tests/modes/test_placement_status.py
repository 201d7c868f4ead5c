"""The placement extension's answers from the controller's own objects (topology, live
flows, tag names), without a switch."""
from __future__ import annotations

from types import SimpleNamespace

from controller.drivers.base import CounterSnapshot, Counts, FlowKey, TagRule
from controller.flows import LiveFlow
from controller.learning import MacLearning
from controller.placement import PlacementExtension
from controller.tags import TagMeta
from controller.topology import Topology

TOPO = {"switches": {"w1": {"device_id": 1, "grpc_port": 50001, "mode": "wire", "pairs": [[1, 2]],
                            "ports": {1: {"direction": "lan", "prefixes": ["10.1.0.0/16"]},
                                      2: {"wan": True}}}}}


def flow(src, dst, sport, counts) -> LiveFlow:
    return LiveFlow(FlowKey.of(src, dst, "tcp", sport, 1094), 3, 3, "cms", "Cache", "r", ["w1"],
                    0.0, 0.0, src, "udp", counts={"w1": counts})


def test_status_answers_per_direction():
    topo = Topology.from_dict(TOPO, "t.yaml")
    flows = {f.key: f for f in (flow("10.1.0.5", "192.0.2.1", 1, Counts(10, 1000)),
                                flow("10.1.0.6", "192.0.2.1", 2, Counts(5, 500)),
                                flow("192.0.2.1", "10.1.0.5", 3, Counts(7, 700)),
                                flow("192.0.2.1", "198.51.100.1", 4, Counts(1, 100)))}
    ctl = SimpleNamespace(reconciler=SimpleNamespace(topology=topo, learning=MacLearning(topo)),
                          flows=flows, tags={11: TagMeta(TagRule(11, 3, 3), "cms", "Cache", "r")})
    ext = PlacementExtension()
    ext.ctl = ctl
    snap = CounterSnapshot("w1", 0.0, direction_tags={(11, 1): Counts(4, 400), (11, 2): Counts(2, 200)},
                           wire_down={2: Counts(3, 300)})
    ext._snaps["w1"] = snap  # noqa: SLF001 - what poll() stores
    status = ext.status()
    assert status["direction"] == [
        {"switch": "w1", "tag_id": 11, "experiment": "cms", "activity": "Cache", "direction": "to_wan",
         "packets": 4, "bytes": 400},
        {"switch": "w1", "tag_id": 11, "experiment": "cms", "activity": "Cache", "direction": "from_wan",
         "packets": 2, "bytes": 200}]
    assert status["flow_direction"] == [
        {"switch": "w1", "experiment": "cms", "activity": "Cache", "direction": "from_wan", "flows": 1,
         "packets": 7, "bytes": 700},
        {"switch": "w1", "experiment": "cms", "activity": "Cache", "direction": "to_wan", "flows": 2,
         "packets": 15, "bytes": 1500}]
    assert status["switches"]["w1"]["wire_down_dropped"] == {"2": {"packets": 3, "bytes": 300}}
    assert status["switches"]["w1"]["ports"]["2"] == {"action": "wire", "partner": 1, "direction": "from_wan"}
    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(ext)
    text = generate_latest(registry).decode()
    assert 'scitags_direction_bytes_total{activity="Cache",direction="to_wan",experiment="cms",switch="w1"} 400.0' in text
    assert 'scitags_wire_down_dropped_packets_total{port="2",switch="w1"} 3.0' in text
