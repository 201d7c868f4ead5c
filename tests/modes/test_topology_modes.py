"""Placement modes in topology files (issue 15): what each mode makes of a switch's ports, and
bad input refused at load naming the file, the switch and the cause."""
from __future__ import annotations

import copy
from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml

from controller.topology import (DIRECTION_FROM_WAN, DIRECTION_NONE, DIRECTION_TO_WAN, PortMode,
                                 Topology, TopologyError, load_topology)

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "switches": {"s1": {"device_id": 1, "grpc_port": 50001}},
    "hosts": {"h1": {"mac": "00:00:00:00:00:01", "ipv6": "2001:db8:1::1/64"},
              "h2": {"mac": "00:00:00:00:00:02", "ipv6": "2001:db8:1::2/64"}},
    "links": [{"node1": "h1", "node2": "s1", "port2": 1},
              {"node1": "h2", "node2": "s1", "port2": 2}],
}


def topo(**switch) -> Topology:
    data = copy.deepcopy(BASE)
    data["switches"]["s1"].update(switch)
    return Topology.from_dict(data, "test.yaml")


def refused(**switch) -> str:
    with pytest.raises(TopologyError) as exc:
        topo(**switch)
    msg = str(exc.value)
    assert msg.startswith("test.yaml: switch 's1': "), msg
    return msg


def test_static_is_the_default_and_existing_files_are_unchanged():
    for f in ("single", "line3", "site2site"):
        t = load_topology(ROOT / "topologies" / f"{f}.yaml")
        for s, spec in t.switches.items():
            assert spec.mode == "static"
            assert t.port_modes(s) == {}
            assert "mode" not in spec.options


def test_wire_pairs_both_ways_no_mac_table_no_flood():
    t = topo(mode="wire", pairs=[[1, 2]], ports={2: {"wan": True}, 1: {"direction": "lan"}})
    assert t.port_modes("s1") == {1: PortMode(1, "wire", 2, DIRECTION_TO_WAN),
                                  2: PortMode(2, "wire", 1, DIRECTION_FROM_WAN)}
    assert t.mac_table("s1") == {}
    assert t.flood_ports("s1") == []


def test_wire_pair_on_declared_ports_without_links():
    t = topo(mode="wire", pairs=[[1, 2], [3, 4]], ports=[3, 4])
    assert {p: m.partner for p, m in t.port_modes("s1").items()} == {1: 2, 2: 1, 3: 4, 4: 3}


def test_tap_all_ports_by_default_and_listed_ports():
    t = topo(mode="tap")
    assert t.port_modes("s1") == {1: PortMode(1, "tap"), 2: PortMode(2, "tap")}
    t = topo(mode="tap", tap_ports=[2], pairs=[[1, 3]], ports=[3])
    assert t.port_modes("s1") == {1: PortMode(1, "wire", 3), 3: PortMode(3, "wire", 1),
                                  2: PortMode(2, "tap")}
    assert t.flood_ports("s1") == [] and t.mac_table("s1") == {}


def test_learn_every_port_floods_declared_ports_too():
    t = topo(mode="learn", ports=[7])
    assert {p: m.action for p, m in t.port_modes("s1").items()} == {1: "learn", 2: "learn", 7: "learn"}
    assert t.flood_ports("s1") == [1, 2, 7]
    assert t.mac_table("s1") == {}


def test_learn_spanning_tree_prunes_the_loop():
    t = load_topology(ROOT / "topologies" / "learn.yaml")
    pruned = {s: t.pruned_ports(s) for s in t.switches}
    assert sum(len(p) for p in pruned.values()) == 2  # one link of the triangle, both ends
    for s in t.switches:
        assert not set(pruned[s]) & set(t.flood_ports(s))
        inter = {p for (a, pa, b, pb) in t.switch_links() for (n, p) in ((a, pa), (b, pb)) if n == s}
        assert set(t.flood_ports(s)) | set(pruned[s]) >= inter


def test_static_switch_with_labelled_ports_gets_direction_entries():
    t = topo(ports={1: {"direction": "wan"}})
    assert t.port_modes("s1") == {1: PortMode(1, "static", None, DIRECTION_FROM_WAN)}
    assert t.mac_table("s1") == {"00:00:00:00:00:01": 1, "00:00:00:00:00:02": 2}


def test_prefixes_narrow_unknown_flows_to_the_switches_that_see_them():
    data = copy.deepcopy(BASE)
    data["switches"]["s2"] = {"device_id": 2, "grpc_port": 50002, "prefixes": ["2001:db8:a::/48"]}
    data["switches"]["s3"] = {"device_id": 3, "grpc_port": 50003,
                              "ports": {5: {"prefixes": ["10.9.0.0/16"]}}}
    data["links"] += [{"node1": "s1", "port1": 9, "node2": "s2", "port2": 9},
                      {"node1": "s2", "port1": 8, "node2": "s3", "port2": 8}]
    t = Topology.from_dict(data, "test.yaml")
    # s1 declares nothing: every unknown flow, as before
    assert t.switches_on_path("2001:db8:a::5", "2001:db8:ff::1") == ["s1", "s2"]
    assert t.switches_on_path("10.9.1.1", "10.1.1.1") == ["s1", "s3"]
    assert t.switches_on_path("192.0.2.1", "198.51.100.1") == ["s1"]
    assert t.sees("s2", ip_address("2001:db8:a:1::1")) and not t.sees("s2", ip_address("10.9.1.1"))


def test_tap_switch_without_links_counts_listed_flows():
    t = load_topology(ROOT / "topologies" / "tap.yaml")
    assert t.switches_on_path("2001:db8:1::1", "2001:db8:1::2") == ["s1", "t1"]
    assert t.port_modes("t1") == {1: PortMode(1, "tap", None, DIRECTION_TO_WAN),
                                  2: PortMode(2, "tap", None, DIRECTION_FROM_WAN)}


@pytest.mark.parametrize("name", ["wire", "tap", "learn"])
def test_mode_files_load(name):
    t = load_topology(ROOT / "topologies" / f"{name}.yaml")
    assert any(s.mode == name for s in t.switches.values())


# ---- refused input ----

def test_port_in_two_pairs():
    assert "port 2 is in two pairs (1 and 2)" in refused(mode="wire", pairs=[[1, 2], [2, 3]], ports=[3])


def test_pair_names_a_port_the_switch_lacks():
    msg = refused(mode="wire", pairs=[[1, 5]])
    assert "pair 1 names port 5, which the switch lacks" in msg


def test_tap_port_also_in_a_pair():
    assert "tap port 1 is also in pair 1" in refused(mode="tap", pairs=[[1, 2]], tap_ports=[1])


def test_tap_port_the_switch_lacks():
    assert "tap port 6 is a port the switch lacks" in refused(mode="tap", tap_ports=[6])


@pytest.mark.parametrize("prefix,cause", [("10.0.0.1/8", "has host bits set"),
                                          ("2001:db8::/200", "not a prefix"),
                                          ("office", "not a prefix")])
def test_prefix_that_is_not_a_prefix(prefix, cause):
    msg = refused(prefixes=[prefix])
    assert f"prefixes: {prefix!r} is not a prefix" in msg and cause in msg


def test_port_prefix_that_is_not_a_prefix():
    assert "port 1: prefixes: '10.0.0.0/33' is not a prefix" in refused(ports={1: {"prefixes": ["10.0.0.0/33"]}})


@pytest.mark.parametrize("switch,cause", [
    ({"mode": "bridge"}, "mode 'bridge' is not one of static, wire, tap, learn"),
    ({"mode": "wire"}, "mode wire needs pairs"),
    ({"mode": "learn", "pairs": [[1, 2]]}, "pairs are for mode wire (or tap), not learn"),
    ({"mode": "wire", "pairs": [[1]]}, "pair 1 must be [port, port]"),
    ({"mode": "wire", "pairs": [[1, 1]]}, "pair 1 names port 1 twice"),
    ({"mode": "wire", "pairs": [[1, 255]]}, "pair 1: port 255 is the CPU port"),
    ({"ports": {1: {"direction": "up"}}}, "port 1: direction 'up' is not one of wan, lan"),
    ({"ports": {1: {"wan": True, "direction": "lan"}}}, "contradicts"),
    ({"ports": {1: {"speed": 10}}}, "port 1: unknown key(s): speed"),
    ({"mode": "learn", "learn_ageing_s": 0}, "learn_ageing_s must be a positive number"),
    ({"prefixes": "10.0.0.0/8"}, "prefixes must be a list"),
])
def test_other_bad_placement(switch, cause):
    assert cause in refused(**switch)


def test_load_names_the_file(tmp_path):
    data = copy.deepcopy(BASE)
    data["switches"]["s1"].update(mode="wire", pairs=[[1, 2], [1, 2]])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TopologyError, match=rf"^{path}: switch 's1': port 1 is in two pairs"):
        load_topology(path)


def test_flow_direction_by_port_prefixes():
    t = topo(mode="wire", pairs=[[1, 2]],
             ports={1: {"direction": "lan", "prefixes": ["2001:db8:1::/48"]},
                    2: {"wan": True, "prefixes": ["2001:db8:99::/48", "192.0.2.0/24"]}})
    a = ip_address
    assert t.flow_direction("s1", a("2001:db8:1::5"), a("2001:db8:99::7")) == DIRECTION_TO_WAN
    assert t.flow_direction("s1", a("2001:db8:99::7"), a("2001:db8:1::5")) == DIRECTION_FROM_WAN
    assert t.flow_direction("s1", a("192.0.2.9"), a("10.1.1.1")) == DIRECTION_FROM_WAN  # one end tells
    assert t.flow_direction("s1", a("2001:db8:1::5"), a("2001:db8:1::6")) == DIRECTION_NONE  # lan to lan
    assert t.flow_direction("s1", a("10.1.1.1"), a("10.2.2.2")) == DIRECTION_NONE
