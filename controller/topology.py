"""Topology files (topologies/*.yaml): switches, hosts, links, and what each switch must do.

Contract: docs/controller-interfaces.md. The graph has a node per switch and per host
(attribute kind="switch"|"host") and an edge per link (attribute ports={node: port}, one
entry per switch end; a host end carries a port only when the file gives one).

Forwarding toward a host follows a breadth-first tree rooted at that host, so every switch
agrees on the path (no loops) and mac_table() and switches_on_path() describe the same path.
Flooding follows one spanning tree of the switches.

Placement (issue 15, docs/controller-interfaces.md "Placement modes"): each switch has a `mode`
(static, the default; wire: port pairs; tap: ports that receive copies; learn: MAC learning),
ports it declares beyond its links (`ports:`, with a `direction` wan|lan and `prefixes`), and
`prefixes:` (the networks whose flows it sees). port_modes() is what the switch's port_mode
table holds; prefixes narrow switches_on_path() for flows between hosts the file does not list.
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
from p4schema.constants import DIRECTION_FROM_WAN, DIRECTION_NONE, DIRECTION_TO_WAN, DROP_PORT

KINDS = ("p4", "ovs", "tofino")  # tofino: a Tofino running Stratum (docs/tofino.md)
MAX_PORT = DROP_PORT - 1  # v1model ports are 9 bits and 511 is the drop port
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_PLACEMENT_KEYS = {"mode", "pairs", "tap_ports", "ports", "prefixes", "learn_ageing_s"}
_SWITCH_KEYS = {"device_id", "grpc_port", "cpu_port", "kind", "grpc_host"} | _PLACEMENT_KEYS
MODES = ("static", "wire", "tap", "learn")
DIRECTIONS = ("wan", "lan")
DEFAULT_LEARN_AGEING_S = 300.0
_HOST_KEYS = {"mac", "ipv4", "ipv6", "monitor"}
_LINK_KEYS = {"node1", "node2", "port1", "port2"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TopologyError(ValueError):
    """A topology that cannot be used; the message names the file, the node/link and the cause."""


@dataclass(frozen=True)
class PortSpec:
    """A port a switch declares in `ports:` (one without a link in the file, or a label)."""
    port: int
    direction: str | None = None  # "wan" | "lan": traffic entering here comes from / goes to the WAN
    prefixes: tuple[IPNetwork, ...] = ()  # networks reached through this port


@dataclass(frozen=True)
class Placement:
    """How a switch sits in the network (topology keys mode, pairs, tap_ports, ports, prefixes)."""
    mode: str = "static"
    pairs: tuple[tuple[int, int], ...] = ()  # wire: each enters one, leaves by the other
    tap_ports: tuple[int, ...] = ()  # ports receiving copies (tap mode: all ports when empty)
    ports: Mapping[int, PortSpec] = field(default_factory=dict)
    prefixes: tuple[IPNetwork, ...] = ()  # switch-level; the ports' prefixes add to these
    learn_ageing_s: float = DEFAULT_LEARN_AGEING_S  # learn: a MAC unseen this long is forgotten

    @property
    def all_prefixes(self) -> tuple[IPNetwork, ...]:
        return self.prefixes + tuple(n for p in self.ports.values() for n in p.prefixes)


@dataclass(frozen=True)
class PortMode:
    """One port_mode entry: what the switch does with what enters `port`."""
    port: int
    action: str  # static | learn | wire | tap
    partner: int | None = None  # wire: the port it leaves by
    direction: int = DIRECTION_NONE  # DIRECTION_*


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
    placement: Placement = field(default_factory=Placement, compare=False, hash=False)

    @property
    def mode(self) -> str:
        return self.placement.mode

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
        """Host MAC -> this switch's port toward that host (shortest path); empty unless the
        switch is static (wire and tap have no MAC table, learn learns it)."""
        self._require_switch(switch)
        if self.switches[switch].mode != "static":
            return {}
        table: dict[str, int] = {}
        for host in self.hosts.values():
            nxt = self._next_hop(switch, host.name)
            if nxt is not None:
                table[host.mac] = self.port(switch, nxt)
        return table

    def flood_ports(self, switch: str) -> list[int]:
        """Ports toward (non-monitor) hosts plus this switch's spanning-tree ports; a learn
        switch also floods to its declared ports (hosts the file does not list); wire and tap
        switches never flood."""
        self._require_switch(switch)
        mode = self.switches[switch].mode
        if mode in ("wire", "tap"):
            return []
        ports: set[int] = set()
        if mode == "learn":
            linked = {self.port(switch, nbr) for nbr in self.graph.neighbors(switch)}
            ports |= {p for p in self.switch_ports(switch) if p not in linked}
        for nbr in self.graph.neighbors(switch):
            if self._is_host(nbr):
                if not self.hosts[nbr].monitor:
                    ports.add(self.port(switch, nbr))
            elif self._spanning_tree.has_edge(switch, nbr):
                ports.add(self.port(switch, nbr))
        return sorted(ports)

    def switch_ports(self, switch: str) -> list[int]:
        """Every port the switch has: its links, its `ports:` and its `interfaces:`."""
        self._require_switch(switch)
        spec = self.switches[switch]
        ports = {self.port(switch, nbr) for nbr in self.graph.neighbors(switch)}
        ports |= set(spec.placement.ports)
        ports |= {int(p) for p in (spec.options.get("interfaces") or {})}
        return sorted(ports)

    def port_direction(self, switch: str, port: int) -> int:
        """DIRECTION_* of traffic entering `port` (by its `direction` label)."""
        spec = self.switches[switch].placement.ports.get(port)
        label = spec.direction if spec else None
        return {"wan": DIRECTION_FROM_WAN, "lan": DIRECTION_TO_WAN}.get(label, DIRECTION_NONE)

    def port_modes(self, switch: str) -> dict[int, PortMode]:
        """The port_mode entries of a switch: every port of a wire/tap/learn switch (wire
        pairs both ways, tap ports, the rest by the mode), and labelled ports of a static one.
        A wire or tap switch's port in neither a pair nor the tap ports gets no entry (static,
        with no MAC entries and no flood ports: it drops)."""
        self._require_switch(switch)
        placement = self.switches[switch].placement
        mode = placement.mode
        monitor = self.monitor_port(switch)
        out: dict[int, PortMode] = {}
        for a, b in placement.pairs:
            out[a] = PortMode(a, "wire", b, self.port_direction(switch, a))
            out[b] = PortMode(b, "wire", a, self.port_direction(switch, b))
        taps = placement.tap_ports
        if mode == "tap" and not taps:
            taps = tuple(p for p in self.switch_ports(switch) if p not in out and p != monitor)
        for p in taps:
            out[p] = PortMode(p, "tap", None, self.port_direction(switch, p))
        for p in self.switch_ports(switch):
            if p in out or p == monitor:
                continue
            direction = self.port_direction(switch, p)
            if mode == "learn":
                out[p] = PortMode(p, "learn", None, direction)
            elif mode == "static" and direction != DIRECTION_NONE:
                out[p] = PortMode(p, "static", None, direction)
        return out

    def sees(self, switch: str, addr: IPAddress) -> bool:
        """The switch's prefixes contain addr (True when it declares none: it may see anything)."""
        nets = self.switches[switch].placement.all_prefixes
        return not nets or any(addr.version == n.version and addr in n for n in nets)

    def flow_direction(self, switch: str, src: IPAddress, dst: IPAddress) -> int:
        """DIRECTION_* of a flow on this switch by its ports' prefixes: a WAN port's prefixes
        are the far side, a LAN port's the near side (NONE when they do not tell, or disagree)."""
        ports = self.switches[switch].placement.ports.values()

        def side(addr: IPAddress) -> str | None:
            for p in ports:
                if p.direction and any(addr.version == n.version and addr in n for n in p.prefixes):
                    return p.direction
            return None
        s, d = side(src), side(dst)
        if (s == "wan" or d == "lan") and not (s == "lan" or d == "wan"):
            return DIRECTION_FROM_WAN
        if (s == "lan" or d == "wan") and not (s == "wan" or d == "lan"):
            return DIRECTION_TO_WAN
        return DIRECTION_NONE

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
        """Switches a flow between two addresses crosses, in order from the source. When an
        address is not in the topology: the switches whose `prefixes` contain the source or the
        destination, and those that declare none (file order; without prefixes anywhere,
        every switch)."""
        src, dst = self.host_by_address(src_addr), self.host_by_address(dst_addr)
        if src is None or dst is None:
            addrs = [a for a in (_ip(src_addr), _ip(dst_addr)) if a is not None]
            return [s for s in self.switches
                    if not self.switches[s].placement.all_prefixes
                    or any(self.sees(s, a) for a in addrs)]
        if src.name == dst.name:
            return []
        parents = self._tree_toward(dst.name)
        path: list[str] = []
        # The source host's first hop: its attached switch closest to dst.
        node = self._next_hop_from_host(src.name, dst.name)
        while node is not None and node != dst.name:
            path.append(node)
            node = parents.get(node)
        # tap switches see copies, not the path: those whose prefixes cover an end (or any)
        path += [s for s, spec in self.switches.items() if spec.mode == "tap" and s not in path
                 and (self.sees(s, _host_ip(src)) or self.sees(s, _host_ip(dst)))]
        return path

    def pruned_ports(self, switch: str) -> list[int]:
        """Inter-switch ports off the spanning tree (never flooded: no loops)."""
        self._require_switch(switch)
        return sorted(self.port(switch, nbr) for nbr in self.graph.neighbors(switch)
                      if not self._is_host(nbr) and not self._spanning_tree.has_edge(switch, nbr))

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
        placement_conf = {k: conf[k] for k in conf if k in _PLACEMENT_KEYS}
        switches[name] = SwitchSpec(name, device_id, grpc_port, cpu_port, kind, grpc_host, options,
                                    _placement(placement_conf, cpu_port, lambda m: fail(f"{where}: {m}")))
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

    for name, spec in switches.items():
        _check_placement_ports(name, spec, graph, used_ports, lambda m, n=name: fail(f"switch {n!r}: {m}"))
    for name in hosts:
        if graph.degree(name) == 0:
            raise fail(f"host {name!r}: has no link")
    # a tap switch fed only by copies needs no link to the others
    linked = graph.subgraph(n for n in graph if not (
        n in switches and switches[n].mode == "tap" and graph.degree(n) == 0))
    if not nx.is_connected(linked):
        parts = sorted(sorted(c) for c in nx.connected_components(graph))
        raise fail("graph is not connected: " + " | ".join(", ".join(p) for p in parts))
    if not nx.is_connected(linked.subgraph(switches)):
        raise fail("switches are connected only through hosts; link the switches directly")
    return Topology(str(data.get("name") or Path(src).stem), graph, switches, hosts,
                    str(data.get("description") or ""), src)


def _host_ip(host: HostSpec) -> IPAddress:
    """An address of a listed host (IPv6 first), for prefix checks."""
    iface = host.ipv6 or host.ipv4
    return iface.ip if iface is not None else ipaddress.ip_address("::")


def _ip(addr: str | IPAddress) -> IPAddress | None:
    try:
        return ipaddress.ip_address(addr) if isinstance(addr, str) else addr
    except ValueError:
        return None


def _prefixes(value: Any, what: str, fail) -> tuple[IPNetwork, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list):
        raise fail(f"{what} must be a list of prefixes like 2001:db8::/32")
    out = []
    for item in value:
        try:
            out.append(ipaddress.ip_network(str(item), strict=True))
        except ValueError as exc:
            raise fail(f"{what}: {item!r} is not a prefix: {exc}") from None
    return tuple(out)


def _placement(conf: dict, cpu_port: int | None, fail) -> Placement:
    """mode, pairs, tap_ports, ports, prefixes of one switch (ports checked against the links
    later, by _check_placement_ports)."""
    mode = conf.get("mode", "static")
    if mode not in MODES:
        raise fail(f"mode {mode!r} is not one of {', '.join(MODES)}")
    pairs_raw = conf.get("pairs") or []
    if pairs_raw and mode not in ("wire", "tap"):
        raise fail(f"pairs are for mode wire (or tap), not {mode}")
    if mode == "wire" and not pairs_raw:
        raise fail("mode wire needs pairs: [[port, port], ...]")
    if not isinstance(pairs_raw, list):
        raise fail("pairs must be a list of [port, port]")
    pairs: list[tuple[int, int]] = []
    in_pair: dict[int, int] = {}
    for i, pair in enumerate(pairs_raw, 1):
        if not isinstance(pair, list) or len(pair) != 2:
            raise fail(f"pair {i} must be [port, port], got {pair!r}")
        a, b = (_int(p, f"pair {i} port", fail, 0, MAX_PORT) for p in pair)
        if a == b:
            raise fail(f"pair {i} names port {a} twice")
        for p in (a, b):
            if p in in_pair:
                raise fail(f"port {p} is in two pairs ({in_pair[p]} and {i})")
            if p == cpu_port:
                raise fail(f"pair {i}: port {p} is the CPU port")
            in_pair[p] = i
        pairs.append((a, b))
    taps_raw = conf.get("tap_ports") or []
    if taps_raw and mode not in ("tap", "wire"):
        raise fail(f"tap_ports are for mode tap (or wire), not {mode}")
    if not isinstance(taps_raw, list):
        raise fail("tap_ports must be a list of ports")
    taps = []
    for p in taps_raw:
        p = _int(p, "tap port", fail, 0, MAX_PORT)
        if p in in_pair:
            raise fail(f"tap port {p} is also in pair {in_pair[p]}")
        if p == cpu_port:
            raise fail(f"tap port {p} is the CPU port")
        taps.append(p)
    ports_raw = conf.get("ports") or {}
    if isinstance(ports_raw, list):
        ports_raw = {p: {} for p in ports_raw}
    if not isinstance(ports_raw, dict):
        raise fail("ports must be a list of ports or a mapping port -> {direction, prefixes}")
    ports: dict[int, PortSpec] = {}
    for p, pconf in ports_raw.items():
        p = _int(int(p) if isinstance(p, str) and p.isdigit() else p, "port", fail, 0, MAX_PORT)
        pconf = pconf or {}
        if not isinstance(pconf, dict):
            raise fail(f"port {p}: settings must be a mapping (direction, wan, prefixes)")
        unknown = set(pconf) - {"direction", "wan", "prefixes"}
        if unknown:
            raise fail(f"port {p}: unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        direction = pconf.get("direction")
        if "wan" in pconf:
            if not isinstance(pconf["wan"], bool):
                raise fail(f"port {p}: wan must be true or false")
            wan = "wan" if pconf["wan"] else "lan"
            if direction is not None and direction != wan:
                raise fail(f"port {p}: wan: {pconf['wan']} contradicts direction: {direction}")
            direction = wan
        if direction is not None and direction not in DIRECTIONS:
            raise fail(f"port {p}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        if p == cpu_port:
            raise fail(f"port {p} is the CPU port")
        ports[p] = PortSpec(p, direction, _prefixes(pconf.get("prefixes"), f"port {p}: prefixes", fail))
    ageing = conf.get("learn_ageing_s", DEFAULT_LEARN_AGEING_S)
    if isinstance(ageing, bool) or not isinstance(ageing, (int, float)) or ageing <= 0:
        raise fail(f"learn_ageing_s must be a positive number of seconds, got {ageing!r}")
    return Placement(mode, tuple(pairs), tuple(taps), ports,
                     _prefixes(conf.get("prefixes"), "prefixes", fail), float(ageing))


def _check_placement_ports(name: str, spec: SwitchSpec, graph: nx.Graph,
                           used_ports: dict[tuple[str, int], int], fail) -> None:
    """Pairs and tap ports name ports the switch has (a link, `ports:` or `interfaces:`)."""
    have = {p for (node, p) in used_ports if node == name} | set(spec.placement.ports)
    have |= {int(p) for p in (spec.options.get("interfaces") or {}) if str(p).isdigit()}
    for i, (a, b) in enumerate(spec.placement.pairs, 1):
        for p in (a, b):
            if p not in have:
                raise fail(f"pair {i} names port {p}, which the switch lacks (no link, "
                           f"no ports: entry; it has {sorted(have) or 'none'})")
    for p in spec.placement.tap_ports:
        if p not in have:
            raise fail(f"tap port {p} is a port the switch lacks (it has {sorted(have) or 'none'})")


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
