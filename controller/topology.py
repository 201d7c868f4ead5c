"""Topology files (topologies/*.yaml): switches, hosts, links, and what each switch must do.

Contract: docs/controller-interfaces.md. The graph has a node per switch and per host
(attribute kind="switch"|"host") and an edge per link (attribute ports={node: port}, one
entry per switch end; a host end carries a port only when the file gives one).

Forwarding toward a host follows a breadth-first tree rooted at that host, so every switch
agrees on the path (no loops) and mac_table() and switches_on_path() describe the same path.
Flooding follows one spanning tree of the switches.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import networkx as nx
import yaml

from controller.drivers import tofino_ports
from p4schema.constants import DROP_PORT

KINDS = ("p4", "ovs", "tofino")  # tofino: a Tofino running Stratum (docs/tofino.md)
MAX_PORT = DROP_PORT - 1  # v1model ports are 9 bits and 511 is the drop port
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_SWITCH_KEYS = {"device_id", "grpc_port", "cpu_port", "kind", "grpc_host"}
_HOST_KEYS = {"mac", "ipv4", "ipv6", "monitor"}
_LINK_KEYS = {"node1", "node2", "port1", "port2"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TopologyError(ValueError):
    """A topology that cannot be used; the message names the file, the node/link and the cause."""


@dataclass(frozen=True)
class SwitchSpec:
    name: str
    device_id: int
    grpc_port: int | None  # None only for kind=ovs without P4Runtime
    cpu_port: int | None = 255
    kind: str = "p4"
    grpc_host: str = "127.0.0.1"  # extension: where the switch's gRPC server listens
    # Extension: keys this module does not interpret (e.g. an OpenFlow driver's settings).
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def grpc_addr(self) -> str:
        host = f"[{self.grpc_host}]" if ":" in self.grpc_host else self.grpc_host
        return f"{host}:{self.grpc_port}"


@dataclass(frozen=True)
class HostSpec:
    name: str
    mac: str  # lower case, colon separated
    ipv4: ipaddress.IPv4Interface | None = None
    ipv6: ipaddress.IPv6Interface | None = None
    monitor: bool = False


class Topology:
    def __init__(self, name: str, graph: nx.Graph, switches: dict[str, SwitchSpec],
                 hosts: dict[str, HostSpec], description: str = "", source: str = "<dict>"):
        self.name = name
        self.description = description
        self.graph = graph
        self.switches = switches
        self.hosts = hosts
        self.source = source

    # ---- construction ----
    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "Topology":
        return _build(data, source)

    @classmethod
    def single_switch(cls, device_id: int = 1, grpc_port: int = 9559, cpu_port: int | None = 255,
                      grpc_host: str = "127.0.0.1", name: str = "s1") -> "Topology":
        """A topology of one switch and no hosts (the controller run without --topology)."""
        graph = nx.Graph()
        graph.add_node(name, kind="switch")
        spec = SwitchSpec(name, device_id, grpc_port, cpu_port, "p4", grpc_host)
        return cls(name, graph, {name: spec}, {}, "single switch", "<command line>")

    # ---- queries ----
    def port(self, node: str, neighbour: str) -> int:
        """node's port toward neighbour (they must be linked)."""
        try:
            ports = self.graph.edges[node, neighbour]["ports"]
        except KeyError:
            raise TopologyError(f"{self.source}: no link between {node!r} and {neighbour!r}") from None
        if node not in ports:
            raise TopologyError(f"{self.source}: link {node}-{neighbour} gives no port for {node!r}")
        return ports[node]

    def mac_table(self, switch: str) -> dict[str, int]:
        """Host MAC -> this switch's port toward that host (shortest path)."""
        self._require_switch(switch)
        table: dict[str, int] = {}
        for host in self.hosts.values():
            nxt = self._next_hop(switch, host.name)
            if nxt is not None:
                table[host.mac] = self.port(switch, nxt)
        return table

    def flood_ports(self, switch: str) -> list[int]:
        """Ports toward (non-monitor) hosts plus this switch's spanning-tree ports."""
        self._require_switch(switch)
        ports: set[int] = set()
        for nbr in self.graph.neighbors(switch):
            if self._is_host(nbr):
                if not self.hosts[nbr].monitor:
                    ports.add(self.port(switch, nbr))
            elif self._spanning_tree.has_edge(switch, nbr):
                ports.add(self.port(switch, nbr))
        return sorted(ports)

    def monitor_port(self, switch: str) -> int | None:
        """Port toward a monitor host attached to this switch (lowest port), or None."""
        self._require_switch(switch)
        ports = [self.port(switch, nbr) for nbr in self.graph.neighbors(switch)
                 if self._is_host(nbr) and self.hosts[nbr].monitor]
        return min(ports) if ports else None

    def host_by_address(self, addr: str | IPAddress) -> HostSpec | None:
        try:
            ip = ipaddress.ip_address(addr) if isinstance(addr, str) else addr
        except ValueError:
            return None
        return self._hosts_by_ip.get(ip)

    def host_by_mac(self, mac: str) -> HostSpec | None:
        mac = mac.lower()
        return next((h for h in self.hosts.values() if h.mac == mac), None)

    def switches_on_path(self, src_addr: str | IPAddress, dst_addr: str | IPAddress) -> list[str]:
        """Switches a flow between two addresses crosses, in order from the source; all
        switches (file order) when an address is not in the topology."""
        src, dst = self.host_by_address(src_addr), self.host_by_address(dst_addr)
        if src is None or dst is None:
            return list(self.switches)
        if src.name == dst.name:
            return []
        parents = self._tree_toward(dst.name)
        path: list[str] = []
        # The source host's first hop: its attached switch closest to dst.
        node = self._next_hop_from_host(src.name, dst.name)
        while node is not None and node != dst.name:
            path.append(node)
            node = parents.get(node)
        return path

    def host_ports(self, switch: str) -> dict[str, int]:
        """Host name -> port, for hosts attached directly to this switch."""
        self._require_switch(switch)
        return {nbr: self.port(switch, nbr) for nbr in self.graph.neighbors(switch)
                if self._is_host(nbr)}

    def switch_links(self) -> list[tuple[str, int, str, int]]:
        """(switch1, port1, switch2, port2) for every switch-to-switch link."""
        out = []
        for a, b, data in self.graph.edges(data=True):
            if not self._is_host(a) and not self._is_host(b):
                out.append((a, data["ports"][a], b, data["ports"][b]))
        return out

    # ---- internals ----
    def _is_host(self, node: str) -> bool:
        return self.graph.nodes[node]["kind"] == "host"

    def _require_switch(self, switch: str) -> None:
        if switch not in self.switches:
            raise TopologyError(f"{self.source}: no switch named {switch!r}")

    @cached_property
    def _hosts_by_ip(self) -> dict[IPAddress, HostSpec]:
        out: dict[IPAddress, HostSpec] = {}
        for h in self.hosts.values():
            for iface in (h.ipv4, h.ipv6):
                if iface is not None:
                    out[iface.ip] = h
        return out

    @cached_property
    def _switch_graph(self) -> nx.Graph:
        return self.graph.subgraph(self.switches).copy()

    @cached_property
    def _spanning_tree(self) -> nx.Graph:
        return nx.minimum_spanning_tree(self._switch_graph) if self.switches else nx.Graph()

    def _tree_toward(self, host: str) -> dict[str, str]:
        """Switch -> its next hop toward host, over a BFS tree rooted at host (hosts are
        never transit nodes)."""
        cache = self.__dict__.setdefault("_trees", {})
        if host not in cache:
            sub = self.graph.subgraph(list(self.switches) + [host])
            parents: dict[str, str] = {}
            for parent, child in nx.bfs_edges(sub, host, sort_neighbors=sorted):
                parents[child] = parent
            cache[host] = parents
        return cache[host]

    def _next_hop(self, switch: str, host: str) -> str | None:
        return self._tree_toward(host).get(switch)

    def _next_hop_from_host(self, src_host: str, dst_host: str) -> str | None:
        parents = self._tree_toward(dst_host)
        depth: dict[str, int] = {}

        def dist(node: str) -> int:
            if node not in depth:
                n, d = node, 0
                while n in parents:
                    n, d = parents[n], d + 1
                depth[node] = d
            return depth[node]

        attached = [n for n in self.graph.neighbors(src_host) if n in parents]
        return min(attached, key=lambda n: (dist(n), n)) if attached else None


def load_topology(path: str | Path) -> Topology:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from None
    return _build(data, str(path))


# ---- validation and construction ----

def _build(data: Any, src: str) -> Topology:
    def fail(msg: str) -> TopologyError:
        return TopologyError(f"{src}: {msg}")

    if not isinstance(data, dict):
        raise fail("top level must be a mapping with switches, hosts and links")
    unknown = set(data) - {"name", "description", "switches", "hosts", "links"}
    if unknown:
        raise fail(f"unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}")
    sw_data = data.get("switches") or {}
    host_data = data.get("hosts") or {}
    link_data = data.get("links") or []
    if not isinstance(sw_data, dict) or not sw_data:
        raise fail("'switches' must be a non-empty mapping of name -> settings")
    if not isinstance(host_data, dict):
        raise fail("'hosts' must be a mapping of name -> settings")
    if not isinstance(link_data, list):
        raise fail("'links' must be a list")

    graph = nx.Graph()
    switches: dict[str, SwitchSpec] = {}
    seen_dev: dict[int, str] = {}
    seen_grpc: dict[tuple[str, int], str] = {}
    for name, conf in sw_data.items():
        name = str(name)
        where = f"switch {name!r}"
        conf = conf or {}
        if not isinstance(conf, dict):
            raise fail(f"{where}: settings must be a mapping")
        kind = conf.get("kind", "p4")
        if kind not in KINDS:
            raise fail(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        device_id = _int(conf.get("device_id"), f"{where}: device_id", fail, 0, 2**64 - 1)
        grpc_port = conf.get("grpc_port")
        if grpc_port is None and kind != "ovs":
            raise fail(f"{where}: grpc_port is required for a {kind} switch")
        if grpc_port is not None:
            grpc_port = _int(grpc_port, f"{where}: grpc_port", fail, 1, 65535)
        cpu_port = conf.get("cpu_port", None if kind == "tofino" else 255)  # tofino: by chip, below
        if cpu_port is not None:
            cpu_port = _int(cpu_port, f"{where}: cpu_port", fail, 0, MAX_PORT)
        grpc_host = str(conf.get("grpc_host", "127.0.0.1"))
        if device_id in seen_dev:
            raise fail(f"{where}: device_id {device_id} already used by switch {seen_dev[device_id]!r}")
        seen_dev[device_id] = name
        if grpc_port is not None:
            if (grpc_host, grpc_port) in seen_grpc:
                raise fail(f"{where}: grpc_port {grpc_port} already used by switch "
                           f"{seen_grpc[(grpc_host, grpc_port)]!r}")
            seen_grpc[(grpc_host, grpc_port)] = name
        options = {k: v for k, v in conf.items() if k not in _SWITCH_KEYS}
        if kind == "tofino":
            try:
                cpu_port, options = tofino_ports.checked_switch(cpu_port, options, Path(src).parent)
            except ValueError as exc:
                raise fail(f"{where}: {exc}") from None
        switches[name] = SwitchSpec(name, device_id, grpc_port, cpu_port, kind, grpc_host, options)
        graph.add_node(name, kind="switch")

    hosts: dict[str, HostSpec] = {}
    seen_mac: dict[str, str] = {}
    seen_ip: dict[Any, str] = {}
    for name, conf in host_data.items():
        name = str(name)
        where = f"host {name!r}"
        if name in switches:
            raise fail(f"{where}: name already used by a switch")
        if not isinstance(conf, dict):
            raise fail(f"{where}: settings must be a mapping")
        unknown = set(conf) - _HOST_KEYS
        if unknown:
            raise fail(f"{where}: unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        mac = conf.get("mac")
        if not isinstance(mac, str) or not _MAC_RE.match(mac):
            raise fail(f"{where}: mac {mac!r} is not a MAC address like 00:00:00:00:00:01")
        mac = mac.lower()
        if int(mac[:2], 16) & 1:
            raise fail(f"{where}: mac {mac} is a multicast address")
        if mac in seen_mac:
            raise fail(f"{where}: mac {mac} already used by host {seen_mac[mac]!r}")
        seen_mac[mac] = name
        ipv4 = _iface(conf.get("ipv4"), ipaddress.IPv4Interface, f"{where}: ipv4", fail)
        ipv6 = _iface(conf.get("ipv6"), ipaddress.IPv6Interface, f"{where}: ipv6", fail)
        for iface in (ipv4, ipv6):
            if iface is not None:
                if iface.ip in seen_ip:
                    raise fail(f"{where}: address {iface.ip} already used by host {seen_ip[iface.ip]!r}")
                seen_ip[iface.ip] = name
        monitor = conf.get("monitor", False)
        if not isinstance(monitor, bool):
            raise fail(f"{where}: monitor must be true or false")
        hosts[name] = HostSpec(name, mac, ipv4, ipv6, monitor)
        graph.add_node(name, kind="host")

    used_ports: dict[tuple[str, int], int] = {}
    for i, link in enumerate(link_data):
        where = f"link {i + 1}"
        if not isinstance(link, dict):
            raise fail(f"{where}: must be a mapping with node1, node2, port1/port2")
        unknown = set(link) - _LINK_KEYS
        if unknown:
            raise fail(f"{where}: unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        n1, n2 = str(link.get("node1")), str(link.get("node2"))
        where = f"link {i + 1} ({n1}-{n2})"
        for n in (n1, n2):
            if n not in graph:
                raise fail(f"{where}: unknown node {n!r}")
        if n1 == n2:
            raise fail(f"{where}: a node cannot link to itself")
        if n1 in hosts and n2 in hosts:
            raise fail(f"{where}: host-to-host links are not supported (put a switch between)")
        if graph.has_edge(n1, n2):
            raise fail(f"{where}: second link between the same two nodes")
        ports: dict[str, int] = {}
        for node, key in ((n1, "port1"), (n2, "port2")):
            value = link.get(key)
            if node in switches:
                if value is None:
                    raise fail(f"{where}: {key} (port on switch {node!r}) is required")
                port = _int(value, f"{where}: {key}", fail, 0, MAX_PORT)
                problem = tofino_ports.port_problem(port) if switches[node].kind == "tofino" else None
                if problem:
                    raise fail(f"{where}: {key} on Tofino switch {node!r}: device port {problem}")
                if port == switches[node].cpu_port:
                    raise fail(f"{where}: port {port} on switch {node!r} is its CPU port")
                if (node, port) in used_ports:
                    raise fail(f"{where}: port {port} on switch {node!r} already used by link "
                               f"{used_ports[(node, port)]}")
                used_ports[(node, port)] = i + 1
                ports[node] = port
            elif value is not None:
                ports[node] = _int(value, f"{where}: {key}", fail, 0, 2**31)
        graph.add_edge(n1, n2, ports=ports)

    for name in hosts:
        if graph.degree(name) == 0:
            raise fail(f"host {name!r}: has no link")
    if not nx.is_connected(graph):
        parts = sorted(sorted(c) for c in nx.connected_components(graph))
        raise fail("graph is not connected: " + " | ".join(", ".join(p) for p in parts))
    if not nx.is_connected(graph.subgraph(switches)):
        raise fail("switches are connected only through hosts; link the switches directly")
    return Topology(str(data.get("name") or Path(src).stem), graph, switches, hosts,
                    str(data.get("description") or ""), src)


def _int(value: Any, what: str, fail, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"{what} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise fail(f"{what} {value} is outside {lo}..{hi}")
    return value


def _iface(value: Any, cls, what: str, fail):
    if value is None:
        return None
    try:
        return cls(str(value))
    except ValueError as exc:
        raise fail(f"{what} {value!r} is not valid: {exc}") from None
