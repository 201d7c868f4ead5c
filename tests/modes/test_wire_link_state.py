"""A wire pair whose partner's link is down: the reconciler writes wire_down (drop, counted)
for the port that would send into it (controller/port_state.py reads the interfaces' operstate)."""
from __future__ import annotations

import copy

from controller import port_state
from controller.drivers.base import PortEntry
from controller.reconciler import Reconciler
from controller.topology import DIRECTION_FROM_WAN, DIRECTION_TO_WAN, Topology

TOPO = {"switches": {"w1": {"device_id": 1, "grpc_port": 50001, "mode": "wire",
                            "pairs": [[1, 2], [3, 4]],
                            "ports": {1: {"direction": "lan"}, 2: {"direction": "wan"}, 3: {}, 4: {}},
                            "interfaces": {1: "lab-w1p1", 2: "lab-w1p2", 3: "lab-w1p3"}}}}


def sys_net(tmp_path, states: dict[str, str]):
    for name, state in states.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "operstate").write_text(state + "\n")
    return tmp_path


def test_down_ports_reads_operstate_of_known_interfaces(tmp_path):
    topo = Topology.from_dict(copy.deepcopy(TOPO), "t.yaml")
    net = sys_net(tmp_path, {"lab-w1p1": "up", "lab-w1p2": "lowerlayerdown", "lab-w1p3": "down"})
    # port 4 has no interface: cannot tell, taken as up
    assert port_state.down_ports(topo, "w1", net) == {2, 3}


def test_partner_down_makes_wire_down(tmp_path, monkeypatch):
    topo = Topology.from_dict(copy.deepcopy(TOPO), "t.yaml")
    r = Reconciler(topo, None, None, None, None)
    monkeypatch.setattr(port_state, "down_ports", lambda t, s: {2})
    f = r.forwarding("w1")
    assert f.port_modes == (PortEntry(1, "wire_down", 2, DIRECTION_TO_WAN),
                            PortEntry(2, "wire", 1, DIRECTION_FROM_WAN),
                            PortEntry(3, "wire", 4), PortEntry(4, "wire", 3))
    assert f.mac_ports == {} and f.flood_ports == ()
    monkeypatch.setattr(port_state, "down_ports", lambda t, s: set())
    assert [m.action for m in r.forwarding("w1").port_modes] == ["wire"] * 4
