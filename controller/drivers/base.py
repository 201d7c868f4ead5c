"""The switch-driver interface (docs/controller-interfaces.md).

One driver instance per switch. The P4Runtime driver (drivers/p4runtime.py) and the OpenFlow
driver (drivers/openflow.py) implement SwitchDriver, so the controller model above them does
not know which one it talks to. Events reach the controller through the handler set with
set_event_handler(); a driver calls it from its own threads.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Callable

BUCKETS = ("unmarked", "unregistered", "consistent", "mismatch", "firefly_only", "parser_error")


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


class SwitchDriver(abc.ABC):
    name: str

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
