"""Topology files: forwarding per switch, paths, and every validation error named."""
from __future__ import annotations

import ipaddress
import textwrap

import pytest

from controller.topology import Topology, TopologyError, load_topology

LINE = textwrap.dedent("""
    name: line
    switches:
      s1: {device_id: 1, grpc_port: 50001, cpu_port: 255, kind: p4}
      s2: {device_id: 2, grpc_port: 50002}
      s3: {device_id: 3, grpc_port: 50003}
    hosts:
      h1: {mac: "00:00:00:00:00:01", ipv6: "2001:db8:1::1/64", ipv4: "10.0.1.1/24"}
      h2: {mac: "00:00:00:00:00:02", ipv6: "2001:db8:1::2/64", ipv4: "10.0.1.2/24"}
      mon1: {mac: "00:00:00:00:00:0f", monitor: true}
    links:
      - {node1: h1, node2: s1, port2: 1}
      - {node1: h2, node2: s3, port2: 2}
      - {node1: mon1, node2: s1, port2: 3}
      - {node1: s1, port1: 4, node2: s2, port2: 1}
      - {node1: s2, port1: 2, node2: s3, port2: 1}
""")


def write(tmp_path, text: str):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    return p


def test_line_forwarding(tmp_path):
    t = load_topology(write(tmp_path, LINE))
    assert t.name == "line"
    assert set(t.switches) == {"s1", "s2", "s3"}
    assert t.switches["s2"].cpu_port == 255 and t.switches["s2"].kind == "p4"
    assert t.graph.nodes["h1"]["kind"] == "host" and t.graph.nodes["s1"]["kind"] == "switch"
    assert t.graph.edges["s1", "s2"]["ports"] == {"s1": 4, "s2": 1}
    assert t.port("s2", "s3") == 2
    assert t.mac_table("s1") == {"00:00:00:00:00:01": 1, "00:00:00:00:00:02": 4, "00:00:00:00:00:0f": 3}
    assert t.mac_table("s2") == {"00:00:00:00:00:01": 1, "00:00:00:00:00:02": 2, "00:00:00:00:00:0f": 1}
    assert t.flood_ports("s1") == [1, 4]  # no monitor port
    assert t.flood_ports("s2") == [1, 2]
    assert t.monitor_port("s1") == 3 and t.monitor_port("s2") is None
    assert t.switches_on_path("10.0.1.1", "10.0.1.2") == ["s1", "s2", "s3"]
    assert t.switches_on_path(ipaddress.ip_address("2001:db8:1::2"), "2001:db8:1::1") == ["s3", "s2", "s1"]
    assert t.switches_on_path("192.0.2.9", "10.0.1.2") == ["s1", "s2", "s3"]  # unknown: all
    assert t.host_by_address("10.0.1.2").name == "h2"
    assert t.host_by_address("not an address") is None


def test_ring_uses_one_spanning_tree_and_consistent_paths(tmp_path):
    text = LINE + "  - {node1: s1, port1: 5, node2: s3, port2: 5}\n"
    t = load_topology(write(tmp_path, text))
    # Flooding must not loop: the three switches use two of the three links.
    st_ports = sum(len([p for p in t.flood_ports(s) if p not in (1, 2, 3) or s == "s2"]) for s in t.switches)
    assert st_ports > 0
    edges = set()
    for a, pa, b, pb in t.switch_links():
        if pa in t.flood_ports(a) and pb in t.flood_ports(b):
            edges.add((a, b))
    assert len(edges) == 2
    assert t.switches_on_path("10.0.1.1", "10.0.1.2") == ["s1", "s3"]
    # the MAC tables follow the same path
    assert t.mac_table("s1")["00:00:00:00:00:02"] == 5


def test_single_switch_builder():
    t = Topology.single_switch(device_id=7, grpc_port=50077)
    assert list(t.switches) == ["s1"] and t.switches["s1"].grpc_addr == "127.0.0.1:50077"
    assert t.mac_table("s1") == {} and t.flood_ports("s1") == [] and t.monitor_port("s1") is None
    assert t.switches_on_path("10.0.0.1", "10.0.0.2") == ["s1"]


@pytest.mark.parametrize("change, message", [
    (("node2: s1, port2: 1", "node2: s9, port2: 1"), "unknown node 's9'"),
    (('h2: {mac: "00:00:00:00:00:02"', 'h2: {mac: "00:00:00:00:00:01"'), "already used by host 'h1'"),
    (("s2: {device_id: 2", "s2: {device_id: 1"), "device_id 1 already used"),
    (("grpc_port: 50002", "grpc_port: 50001"), "grpc_port 50001 already used"),
    (("{node1: h2, node2: s3, port2: 2}", "{node1: h2, node2: s3, port2: 1}"), "port 1 on switch 's3' already used"),
    (('ipv4: "10.0.1.2/24"', 'ipv4: "10.0.1.1/24"'), "address 10.0.1.1 already used"),
    (('ipv4: "10.0.1.2/24"', 'ipv4: "10.0.1.300/24"'), "ipv4 '10.0.1.300/24' is not valid"),
    (('mac: "00:00:00:00:00:02"', 'mac: "zz"'), "is not a MAC address"),
    (("  - {node1: mon1, node2: s1, port2: 3}\n", ""), "host 'mon1': has no link"),
    (("  - {node1: s2, port1: 2, node2: s3, port2: 1}\n", ""), "not connected"),
    (("{node1: s1, port1: 4, node2: s2, port2: 1}", "{node1: s1, node2: s2, port2: 1}"), "port1 (port on switch 's1') is required"),
    (("kind: p4}", "kind: tofino3}"), "kind 'tofino3' is not one of p4, ovs, tofino"),
    (("port2: 3}", "port2: 255}"), "is its CPU port"),
])
def test_validation_errors_name_the_cause(tmp_path, change, message):
    old, new = change
    assert old in LINE
    path = write(tmp_path, LINE.replace(old, new, 1))
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_unreadable_and_bad_yaml(tmp_path):
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "missing.yaml")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load_topology(write(tmp_path, "switches: [\n"))
    with pytest.raises(TopologyError, match="non-empty mapping"):
        load_topology(write(tmp_path, "name: x\n"))
