"""A flow to mark: its 5-tuple and scitag, validated once at the edge.

Every source (command line, named pipe, connection poller, control socket) turns its input
into a FlowRequest here, so the rules for bad input live in one place:
unknown names, ids a flow label cannot carry, invalid addresses and ports are refused with a
MarkerInputError naming the cause. IPv4 flows are valid (they get fireflies only).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from scitags_core import flowlabel
from scitags_core.registry import EXPERIMENT_MIN_MARKABLE, Registry

Protocol = Literal["tcp", "udp"]
State = Literal["start", "end"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PROTOCOLS: tuple[str, ...] = ("tcp", "udp")


class MarkerInputError(ValueError):
    """Input the marker refuses; the message names the field and the cause."""


@dataclass(frozen=True, order=True)
class FlowKey:
    """The 5-tuple of one direction of a flow (the direction the host sends)."""

    protocol: Protocol
    src: IPAddress
    src_port: int
    dst: IPAddress
    dst_port: int

    @property
    def afi(self) -> int:
        return self.src.version

    @property
    def ident(self) -> str:
        """Stable text id: used in nftables rule comments and state file names."""
        return f"{self.protocol}-{self.src}-{self.src_port}-{self.dst}-{self.dst_port}"

    def __str__(self) -> str:
        if self.afi == 6:
            return f"{self.protocol} [{self.src}]:{self.src_port} -> [{self.dst}]:{self.dst_port}"
        return f"{self.protocol} {self.src}:{self.src_port} -> {self.dst}:{self.dst_port}"


@dataclass(frozen=True)
class Tag:
    experiment_id: int
    activity_id: int
    experiment_name: str | None = None  # None: id not in the registry (allowed only on request)
    activity_name: str | None = None

    def __str__(self) -> str:
        exp = self.experiment_name or "?"
        act = self.activity_name or "?"
        return f"{exp}/{act} ({self.experiment_id}/{self.activity_id})"


@dataclass(frozen=True)
class FlowRequest:
    state: State
    key: FlowKey
    tag: Tag
    source: str = field(default="cli", compare=False)  # which flow source sent it (for logs/counters)


def parse_address(text: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        raise MarkerInputError(f"invalid {what} address {text!r}") from None


def parse_port(value: int | str, what: str) -> int:
    try:
        port = int(str(value).strip(), 10)
    except ValueError:
        raise MarkerInputError(f"invalid {what} port {value!r} (not a number)") from None
    if not 1 <= port <= 65535:
        raise MarkerInputError(f"invalid {what} port {port} (must be 1..65535)")
    return port


def parse_protocol(text: str) -> Protocol:
    proto = text.strip().lower()
    if proto not in PROTOCOLS:
        raise MarkerInputError(f"invalid protocol {text!r} (tcp or udp)")
    return proto  # type: ignore[return-value]


def parse_state(text: str) -> State:
    state = text.strip().lower()
    if state not in ("start", "end"):
        raise MarkerInputError(f"invalid flow state {text!r} (start or end)")
    return state  # type: ignore[return-value]


def make_key(protocol: str, src: str, src_port: int | str, dst: str, dst_port: int | str) -> FlowKey:
    s, d = parse_address(src, "source"), parse_address(dst, "destination")
    if s.version != d.version:
        raise MarkerInputError(f"source {s} and destination {d} are of different address families")
    return FlowKey(parse_protocol(protocol), s, parse_port(src_port, "source"), d,
                   parse_port(dst_port, "destination"))


def _as_id_or_name(value: int | str) -> int | str:
    """Ids may come as ints or digit strings; anything else is a name."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    if not text:
        raise MarkerInputError("empty experiment/activity name")
    return text


def resolve_tag(registry: Registry, experiment: int | str, activity: int | str, *,
                allow_unregistered: bool = False) -> Tag:
    """Tag for names or ids. Names must be registered; ids must fit the label
    (experiment 1..511, activity 0..63) and be registered unless allow_unregistered."""
    exp_key, act_key = _as_id_or_name(experiment), _as_id_or_name(activity)
    if isinstance(exp_key, int) and not EXPERIMENT_MIN_MARKABLE <= exp_key <= flowlabel.EXPERIMENT_MAX:
        raise MarkerInputError(f"experiment id {exp_key} outside the flow-label range "
                               f"{EXPERIMENT_MIN_MARKABLE}..{flowlabel.EXPERIMENT_MAX}")
    if isinstance(act_key, int) and not 0 <= act_key <= flowlabel.ACTIVITY_MAX:
        raise MarkerInputError(f"activity id {act_key} outside the flow-label range 0..{flowlabel.ACTIVITY_MAX}")
    exp = registry.experiment(exp_key)
    if exp is None:
        if isinstance(exp_key, str) or not allow_unregistered:
            raise MarkerInputError(f"unknown experiment {exp_key!r} in registry {registry.identity}")
        if isinstance(act_key, str):
            raise MarkerInputError(f"activity name {act_key!r} needs a registered experiment "
                                   f"(experiment id {exp_key} is not in registry {registry.identity})")
        return Tag(exp_key, act_key)
    if not exp.markable:
        raise MarkerInputError(f"experiment {exp.name!r} id {exp.id} outside the flow-label range "
                               f"{EXPERIMENT_MIN_MARKABLE}..{flowlabel.EXPERIMENT_MAX}")
    act = exp.activity(act_key)
    if act is None:
        if isinstance(act_key, str) or not allow_unregistered:
            raise MarkerInputError(f"unknown activity {act_key!r} for experiment {exp.name!r} "
                                   f"in registry {registry.identity}")
        return Tag(exp.id, act_key, exp.name, None)
    if not act.markable:
        raise MarkerInputError(f"activity {act.name!r} id {act.id} of {exp.name!r} outside the "
                               f"flow-label range 0..{flowlabel.ACTIVITY_MAX}")
    return Tag(exp.id, act.id, exp.name, act.name)


def make_request(registry: Registry, state: str, protocol: str, src: str, src_port: int | str,
                 dst: str, dst_port: int | str, experiment: int | str, activity: int | str, *,
                 source: str = "cli", allow_unregistered: bool = False) -> FlowRequest:
    return FlowRequest(parse_state(state), make_key(protocol, src, src_port, dst, dst_port),
                       resolve_tag(registry, experiment, activity, allow_unregistered=allow_unregistered),
                       source)
