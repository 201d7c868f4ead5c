"""The switch-driver interface (docs/controller-interfaces.md).

One driver instance per switch. The P4Runtime driver (drivers/p4runtime.py) and the OpenFlow
driver (drivers/openflow.py) implement SwitchDriver, so the controller model above them does
not know which one it talks to. Events reach the controller through the handler set with
set_event_handler(); a driver calls it from its own threads.
"""
from __future__ import annotations

import abc
import collections
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from p4schema.constants import BUCKETS  # noqa: F401 - re-exported: the drivers' bucket names


class DriverError(Exception):
    """A switch refused or failed an operation; the message names the switch and the cause."""


class SwitchUnreachable(DriverError):
    """The switch cannot be reached (connection refused, timed out, lost mastership)."""

    def __init__(self, name: str, cause: object) -> None:
        super().__init__(f"switch {name}: unreachable: {cause}")
        self.name = name
        self.cause = cause


@dataclass(frozen=True)
class TagRule:
    """One counting rule per registered (experiment, activity)."""

    tag_id: int  # counter cell / rule id the controller assigns (stable per exp/act)
    experiment: int  # 1..511
    activity: int | None  # None: whole experiment (wildcard, lower priority)
    mirror: bool = False


@dataclass(frozen=True)
class FlowKey:
    """A firefly-declared flow."""

    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    protocol: int
    src_port: int
    dst_port: int
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # computed once: ipaddress hashes through hex(); 65,536 flows are hashed per pass
        object.__setattr__(self, "_hash", hash((int(self.src), int(self.dst), self.protocol,
                                                 self.src_port, self.dst_port)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def afi(self) -> int:
        return self.src.version

    @classmethod
    def of(cls, src: str, dst: str, protocol: int | str, src_port: int, dst_port: int) -> "FlowKey":
        """From strings; protocol as a number or 'tcp'/'udp'."""
        proto = {"tcp": 6, "udp": 17}.get(protocol, protocol) if isinstance(protocol, str) else protocol
        key = cls(ip_address(src), ip_address(dst), int(proto), int(src_port), int(dst_port))
        if key.src.version != key.dst.version:
            raise ValueError(f"flow {src} -> {dst}: source and destination families differ")
        return key

    def __str__(self) -> str:
        proto = {6: "tcp", 17: "udp"}.get(self.protocol, str(self.protocol))
        if self.afi == 6:
            return f"{proto} [{self.src}]:{self.src_port} -> [{self.dst}]:{self.dst_port}"
        return f"{proto} {self.src}:{self.src_port} -> {self.dst}:{self.dst_port}"


@dataclass(frozen=True)
class FlowRule:
    key: FlowKey
    experiment: int
    activity: int
    idle_timeout_s: float


@dataclass(frozen=True)
class Counts:
    packets: int = 0
    bytes: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.packets + other.packets, self.bytes + other.bytes)

    def __sub__(self, other: "Counts") -> "Counts":
        return Counts(self.packets - other.packets, self.bytes - other.bytes)


@dataclass
class CounterSnapshot:
    switch: str
    taken_at: float
    tags: dict[int, Counts] = field(default_factory=dict)  # tag_id -> counts (flow-label source)
    buckets: dict[str, Counts] = field(default_factory=dict)  # names in BUCKETS
    flows: dict[FlowKey, Counts] = field(default_factory=dict)  # firefly flows (firefly source)
    # tag_id -> counts of the other per-tag counters (empty on a program without them):
    exthdr_tags: dict[int, Counts] = field(default_factory=dict)  # IPv6 option tags (exthdr source)
    untrusted_tags: dict[int, Counts] = field(default_factory=dict)  # labels from outside the trust scope
    confirmed_tags: dict[int, Counts] = field(default_factory=dict)  # label tags a firefly flow agrees with
    # (tag_id, direction) -> counts on ports labelled wan/lan (direction 1 to the WAN, 2 from it)
    direction_tags: dict[tuple[int, int], Counts] = field(default_factory=dict)
    wire_down: dict[int, Counts] = field(default_factory=dict)  # ingress port -> dropped: partner down


# ---- events a driver hands to the controller ----

@dataclass(frozen=True)
class FireflyPacket:
    switch: str
    ingress_port: int
    payload: bytes  # UDP payload
    src: tuple[str, int]  # sender address and port


@dataclass(frozen=True)
class FlowIdle:
    switch: str
    key: FlowKey


@dataclass(frozen=True)
class SwitchReset:
    switch: str
    reason: str  # restarted / pipeline lost


EventHandler = Callable[[object], None]


@dataclass(frozen=True)
class PortEntry:
    """One port_mode entry (placement mode of an ingress port, controller/topology.py)."""
    port: int
    action: str  # static | learn | wire | wire_down | tap
    partner: int | None = None  # wire / wire_down: the partner port
    direction: int = 0  # 0 none, 1 to the WAN, 2 from the WAN


@dataclass(frozen=True)
class Forwarding:
    """What the topology says a switch forwards: MAC -> port, flood ports, CPU and monitor port;
    the placement of its ports and, on a learn switch, the learned (MAC, port) pairs (also in
    mac_ports) with their ageing."""
    mac_ports: dict[str, int]
    flood_ports: tuple[int, ...]
    cpu_port: int | None
    monitor_port: int | None
    port_modes: tuple[PortEntry, ...] = ()
    learned: tuple[tuple[str, int], ...] = ()
    learn_ageing_s: float = 0.0


@dataclass
class DesiredState:
    """Everything the controller owns on one switch (the reconciler builds it)."""
    forwarding: Forwarding
    tags: list[TagRule]
    flows: dict[FlowKey, FlowRule]
    # source prefixes whose flow labels are tags (None: no scope, every label is one)
    label_trust: tuple[str, ...] | None = None


@dataclass
class ReconcileResult:
    """What one reconcile pass found and changed on a switch."""
    # (kind, change) -> entries written; kind: l2 | multicast_group | clone_session | tag |
    # flow; change: missing (inserted) | modified | extra (deleted)
    repairs: collections.Counter = field(default_factory=collections.Counter)
    zeroed_tags: list[int] = field(default_factory=list)  # tag cells that now start from 0
    flows_inserted: set[FlowKey] = field(default_factory=set)  # entries new on the switch
    flows_removed: set[FlowKey] = field(default_factory=set)  # left-over entries removed
    read_s: float = 0.0  # time spent reading back
    write_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.repairs.values())


class SwitchDriver(abc.ABC):
    """One switch. Besides the methods, every driver has the state below (the class
    attributes are the defaults for a driver that cannot tell)."""

    name: str
    #: counters of driver-level events (packet-ins, idle notifications ...), by name
    stats: Mapping[str, int] = MappingProxyType({})
    #: tag cells the last sync_tags / reconcile zeroed (rules new to the switch)
    last_zeroed: Sequence[int] = ()
    #: reconcile() reads everything back in one batch: cheap enough to run periodically
    reconciles_cheaply: bool = False
    #: the switch can count labels from outside DesiredState.label_trust apart (P4Runtime);
    #: a driver that cannot ignores the scope and its label counts stay unverified
    enforces_label_trust: bool = False

    @property
    def connected(self) -> bool:
        """The session to the switch is up."""
        return True

    @property
    def is_primary(self) -> bool:
        """This controller may write (P4Runtime mastership); False while backup."""
        return True

    def pipeline_cookie(self) -> int | None:
        """An id of the pipeline the switch runs now (None: cannot tell): a change means
        someone else replaced it."""
        return None

    @abc.abstractmethod
    def connect(self) -> None:
        """Connect; raises SwitchUnreachable(name, cause)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def ensure_pipeline(self) -> bool:
        """Push the pipeline unless the switch already runs it; True when it had to push."""

    @abc.abstractmethod
    def set_forwarding(self, mac_ports: dict[str, int], flood_ports: list[int],
                       cpu_port: int | None, monitor_port: int | None) -> None: ...

    @abc.abstractmethod
    def sync_tags(self, rules: list[TagRule]) -> None:
        """Make the switch hold exactly these tag rules."""

    @abc.abstractmethod
    def install_flow(self, rule: FlowRule) -> None:
        """Insert, or refresh if present."""

    @abc.abstractmethod
    def remove_flow(self, key: FlowKey) -> Counts:
        """Remove; returns the flow's final counters."""

    @abc.abstractmethod
    def installed_flows(self) -> dict[FlowKey, FlowRule]:
        """Read back what the switch holds (reconcile after a restart)."""

    @abc.abstractmethod
    def read_counters(self) -> CounterSnapshot: ...

    @abc.abstractmethod
    def set_event_handler(self, handler: EventHandler) -> None: ...

    def read_back(self) -> object | None:
        """Read what the controller owns on the switch, for a later reconcile(desired, read):
        the slow half of a pass, done without the controller's locks so that flow installs
        go on meanwhile (a flow installed or removed after it started is left alone by that
        reconcile). None: this driver reads inside reconcile."""
        return None

    def reconcile(self, desired: DesiredState, read: object | None = None) -> ReconcileResult:
        """Make the switch hold exactly `desired` (forwarding, tags, flows) and say what had
        to change; `read` from read_back() (None: read now). This default uses the methods
        above; a driver that can read back its entries in one go (P4Runtime) does one
        read-diff-write over typed entities instead."""
        f = desired.forwarding
        result = ReconcileResult()
        self.set_forwarding(f.mac_ports, list(f.flood_ports), f.cpu_port, f.monitor_port)
        set_port_modes = getattr(self, "set_port_modes", None)
        if set_port_modes is not None:
            set_port_modes(f.port_modes)
        elif f.port_modes:
            raise DriverError(f"switch {self.name}: this driver has no placement modes")
        self.sync_tags(desired.tags)
        result.zeroed_tags = list(self.last_zeroed)
        have = self.installed_flows()
        for key, rule in have.items():
            want = desired.flows.get(key)
            if want is None:
                self.remove_flow(key)
                result.flows_removed.add(key)
                result.repairs["flow", "extra"] += 1
            elif (want.experiment, want.activity) != (rule.experiment, rule.activity):
                self.install_flow(want)
                result.repairs["flow", "modified"] += 1
        for key, rule in desired.flows.items():
            if key not in have:
                self.install_flow(rule)
                result.flows_inserted.add(key)
                result.repairs["flow", "missing"] += 1
        return result


# Extension events (beyond the contract's three): connection and mastership changes, so the
# controller can retry with backoff and take over as primary.

@dataclass(frozen=True)
class ConnectionLost:
    switch: str
    reason: str


@dataclass(frozen=True)
class MastershipChanged:
    switch: str
    primary: bool
