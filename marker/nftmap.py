"""The verdict-map layout of the marker's nftables table: per-packet cost independent of
the number of marked flows.

nftables 1.0.6 cannot set the flow label from a map, so the hook chain does one lookup of
the packet's 5-tuple in a verdict map, and the map jumps to a one-rule chain per distinct
label value (`label_3000c: ip6 flowlabel set 196620`):

    chain output { ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport vmap @flows }
    map flows { ... : verdict; elements = { 2001:db8::1 . 2001:db8::2 . tcp . 2345 . 5777 : jump label_3000c } }

This module is pure: `plan()` turns the current state and a batch of changes into one nft
script (one transaction: all of it applies or none) and the state after it. Label chains
are created with the first flow that uses the value and deleted with the last one, in the
same transaction. Every statement is written so a stale picture of the kernel makes the
transaction fail (`create element`, `delete element`) or is harmless (`add` + `flush`
before a chain's rule), never applies something other than intended.
"""
from __future__ import annotations

import ipaddress
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from marker.flows import FlowKey, MarkerInputError, make_key

MAP = "flows"
LABEL_CHAIN_PREFIX = "label_"
LOOKUP = "ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport"
MAP_TYPE = "ipv6_addr . ipv6_addr . inet_proto . inet_service . inet_service : verdict"
COMMENT_PREFIX = "scitags-marker "
LABEL_MAX = 0xFFFFF


@dataclass(frozen=True)
class Mark:
    """One marked flow as the kernel has it."""

    flow_ident: str
    label: int


@dataclass
class MapState:
    """What the table holds: `ready` once the map and the lookup rule are in place."""

    ready: bool = False
    labels: dict[FlowKey, int] = field(default_factory=dict)
    users: Counter[int] = field(default_factory=Counter)  # label value -> flows jumping to it
    chains: set[int] = field(default_factory=set)  # label chains that exist

    def copy(self) -> "MapState":
        return MapState(self.ready, dict(self.labels), Counter(self.users), set(self.chains))

    def marks(self) -> list[Mark]:
        return [Mark(key.ident, label) for key, label in sorted(self.labels.items())]


def label_chain(label: int) -> str:
    return f"{LABEL_CHAIN_PREFIX}{label:05x}"


def chain_label(name: str) -> int | None:
    """The label value a chain named by label_chain() sets; None for other chains."""
    digits = name.removeprefix(LABEL_CHAIN_PREFIX)
    if digits == name or len(digits) != 5:
        return None
    try:
        return int(digits, 16)
    except ValueError:
        return None


def element_key(key: FlowKey) -> str:
    if key.afi != 6:
        raise ValueError(f"flow-label marking is IPv6 only, not {key}")
    return f"{key.src} . {key.dst} . {key.protocol} . {key.src_port} . {key.dst_port}"


def element_comment(key: FlowKey) -> str:
    """Names the flow for whoever reads `nft list ruleset` (the key alone is hard to read)."""
    return f"{COMMENT_PREFIX}{key.protocol} {key.src} sport {key.src_port} {key.dst} dport {key.dst_port}"


def base_script(table: str, chain: str) -> str:
    """Table, map, hook chain and its one lookup rule; safe to run over an existing table
    (the flush keeps exactly one rule in the hook chain)."""
    return (f"add table ip6 {table}\n"
            f"add map ip6 {table} {MAP} {{ type {MAP_TYPE}; }}\n"
            f"add chain ip6 {table} {chain} {{ type filter hook output priority mangle; policy accept; }}\n"
            f"flush chain ip6 {table} {chain}\n"
            f"add rule ip6 {table} {chain} {LOOKUP} vmap @{MAP}\n")


def _check_label(label: int) -> None:
    if not 0 <= label <= LABEL_MAX:
        raise ValueError(f"flow label {label} outside 0..0xFFFFF")


def plan(state: MapState, table: str, chain: str, *, mark: Iterable[tuple[FlowKey, int]] = (),
         unmark: Iterable[FlowKey] = ()) -> tuple[str, MapState, int]:
    """(nft script, state after it, flows unmarked). Marking a flow that is marked already
    replaces its label in the same transaction; an empty script means nothing to do."""
    new = state.copy()
    lines: list[str] = []
    touched: set[int] = set()
    removed = 0

    def drop(key: FlowKey) -> None:
        old = new.labels.pop(key)
        new.users[old] -= 1
        touched.add(old)
        lines.append(f"delete element ip6 {table} {MAP} {{ {element_key(key)} }}\n")

    for key in unmark:
        if key in new.labels:
            drop(key)
            removed += 1
    additions = []
    for key, label in dict(mark).items():  # a flow named twice: its last label counts
        _check_label(label)
        element = element_key(key)  # refuses IPv4 before anything is planned
        if new.labels.get(key) == label:
            continue
        if key in new.labels:
            drop(key)
        if label not in new.chains:
            name = label_chain(label)
            lines.append(f"add chain ip6 {table} {name}\nflush chain ip6 {table} {name}\n"
                         f"add rule ip6 {table} {name} ip6 flowlabel set {label}\n")
            new.chains.add(label)
        new.labels[key] = label
        new.users[label] += 1
        additions.append(f'{element} comment "{element_comment(key)}" : jump {label_chain(label)}')
    if additions:
        lines.append(f"create element ip6 {table} {MAP} {{ {', '.join(additions)} }}\n")
    for label in sorted(touched | (new.chains - set(+new.users))):  # last user gone, or left over
        if new.users[label] <= 0 and label in new.chains:
            lines.append(f"delete chain ip6 {table} {label_chain(label)}\n")
            new.chains.discard(label)
            del new.users[label]
    if lines and not new.ready:
        lines.insert(0, base_script(table, chain))
        new.ready = True
    return "".join(lines), new, removed


def parse_state(nft_json: str, table: str, chain: str) -> MapState:
    """The state of `table` from `nft -j list table ip6 <table>` output."""
    state = MapState()
    has_map = has_lookup = False
    for item in json.loads(nft_json).get("nftables", []):
        if "map" in item and item["map"].get("name") == MAP:
            has_map = True
            for elem in item["map"].get("elem", []):
                _add_element(state, elem)
        elif "chain" in item:
            label = chain_label(item["chain"].get("name", ""))
            if label is not None:
                state.chains.add(label)
        elif "rule" in item and item["rule"].get("chain") == chain:
            has_lookup = has_lookup or any("vmap" in e for e in item["rule"].get("expr", []))
    state.ready = has_map and has_lookup
    return state


def _add_element(state: MapState, elem: list) -> None:
    """One `[key, verdict]` pair of the map listing (the key wrapped in {"elem": ...} when
    it has a comment). Users are counted from the verdict even when the key is foreign, so
    a chain something still jumps to is never planned for deletion."""
    try:
        key_doc, verdict = elem
        target = verdict["jump"]["target"]
    except (TypeError, ValueError, KeyError):
        return
    label = chain_label(target)
    if label is None:
        return
    state.users[label] += 1
    if isinstance(key_doc, dict) and "elem" in key_doc:
        key_doc = key_doc["elem"].get("val")
    try:
        src, dst, proto, sport, dport = key_doc["concat"]
        ipaddress.IPv6Address(src)
        state.labels[make_key(str(proto), src, sport, dst, dport)] = label
    except (TypeError, ValueError, KeyError, MarkerInputError):
        pass
