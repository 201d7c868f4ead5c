"""The OpenFlow 1.3 rendering of p4src/v1model/scitags.p4: tables, cookies, metadata, flow-mods.

Pure functions (no I/O): they build messages with os-ken's parser classes and return them
serialised (base64 text for the JSON channel); the agent stamps an xid and sends the bytes.

One packet is counted once per dimension, as in the P4 program, by walking five tables:

  0 classify   IPv6 label: 0 -> unmarked bucket; (label, 0x3FEFC) -> tag;
               experiment bits only (0x3FE00) -> tag, lower priority; other IPv6 -> unregistered.
               Writes the label class into metadata bits 0-1, and bit 3 for a mirrored tag.
  1 firefly    5-tuples from fireflies (idle timeout, flow-removed). Writes the hit bit (2)
               and the firefly's experiment (bits 8-23) and activity (bits 24-31).
  2 crosscheck hit + registered + label equal to the firefly's tag -> consistent;
               hit + registered -> mismatch; hit -> firefly_only.
  3 punt       UDP to 10514: a copy to the controller, the packet goes on; else a mirrored
               tag: a copy to the monitor port. One entry per packet, so a firefly is not
               mirrored: v1model keeps one ingress clone per packet and the CPU copy wins.
  4 l2         dst MAC -> port; otherwise flood to the topology's flood ports. OpenFlow drops
               output to the ingress port, which gives P4's "never back out of the ingress port".
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as OFP
from os_ken.ofproto import ofproto_v1_3_parser as P

from controller.drivers.base import FlowKey, TagRule
from scitags_core.flowlabel import ACTIVITY_MAX, EXPERIMENT_MAX, TAG_MASK, encode_label

T_CLASSIFY, T_FIREFLY, T_CROSSCHECK, T_PUNT, T_L2 = 0, 1, 2, 3, 4
TABLES = (T_CLASSIFY, T_FIREFLY, T_CROSSCHECK, T_PUNT, T_L2)
PIPELINE_VERSION = 2  # bump when the table layout changes: old layouts get wiped

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
PROTO_TCP, PROTO_UDP = 6, 17
FIREFLY_UDP_PORT = 10514
EXPERIMENT_ONLY_MASK = 0x3FE00

# Cookies: 16-bit magic | 8-bit kind | 40-bit id. The magic marks our entries on a shared switch.
COOKIE_MAGIC = 0x5C17
MAGIC_MASK = 0xFFFF << 48
KIND_MASK = MAGIC_MASK | 0xFF << 40
ID_MASK = (1 << 40) - 1
(KIND_BASE, KIND_BUCKET, KIND_TAG, KIND_FIREFLY, KIND_CONSISTENT, KIND_L2, KIND_PUNT,
 KIND_MIRROR, KIND_PORT_MODE) = range(1, 10)
BUCKET_IDS = {"unmarked": 0, "unregistered": 1, "mismatch": 3, "firefly_only": 4}

# Metadata written by tables 0 and 1, read by table 2.
CLASS_MASK = 0x3
CLASS_UNMARKED, CLASS_UNREGISTERED, CLASS_REGISTERED = 1, 2, 3
HIT_BIT = 0x4
MIRROR_BIT = 0x8
FIREFLY_TAG_MASK = 0xFFFF << 8 | 0xFF << 24
FIREFLY_EXPERIMENT_MAX, FIREFLY_ACTIVITY_MAX = 0xFFFF, 0xFF  # P4: bit<16>, bit<8>

PRIO_UNMARKED, PRIO_TAG, PRIO_TAG_WILDCARD, PRIO_UNREGISTERED = 300, 200, 150, 100
PRIO_FIREFLY = 100
PRIO_CONSISTENT, PRIO_MISMATCH, PRIO_FIREFLY_ONLY = 300, 200, 100
PRIO_PUNT, PRIO_MIRROR = 100, 50
PRIO_MAC = 100
PRIO_MISS = 0


class _StubDatapath:
    """What os-ken's parser classes need from a datapath to build and serialise messages."""

    ofproto = OFP
    ofproto_parser = P


_DP = _StubDatapath()
Wire = str  # a serialised message, base64; xid 0 until the agent stamps one


def _wire(msg: Any) -> Wire:
    msg.xid = 0
    msg.serialize()
    return base64.b64encode(bytes(msg.buf)).decode()


def decode_wire(text: Wire) -> bytearray:
    return bytearray(base64.b64decode(text, validate=True))


def cookie(kind: int, ident: int) -> int:
    return COOKIE_MAGIC << 48 | kind << 40 | (ident & ID_MASK)


def cookie_kind(value: int) -> int | None:
    """The kind of one of our cookies; None for entries someone else installed."""
    return (value >> 40) & 0xFF if value >> 48 == COOKIE_MAGIC else None


def cookie_id(value: int) -> int:
    return value & ID_MASK


def kind_filter(kind: int) -> tuple[int, int]:
    """(cookie, cookie_mask) selecting all our entries of one kind."""
    return cookie(kind, 0), KIND_MASK


def _goto(table: int) -> Any:
    return P.OFPInstructionGotoTable(table)


def _apply(*actions: Any) -> Any:
    return P.OFPInstructionActions(OFP.OFPIT_APPLY_ACTIONS, list(actions))


def _out(port: int) -> Any:
    return P.OFPActionOutput(port, OFP.OFPCML_NO_BUFFER)


def flow_add(table: int, priority: int, match: Any, instructions: list[Any], ck: int,
             idle_timeout: int = 0, flags: int = 0) -> Wire:
    return _wire(P.OFPFlowMod(_DP, cookie=ck, table_id=table, command=OFP.OFPFC_ADD,
                               idle_timeout=idle_timeout, priority=priority, flags=flags,
                               match=match, instructions=instructions))


def flow_delete_strict(table: int, priority: int, match: Any) -> Wire:
    return _wire(P.OFPFlowMod(_DP, table_id=table, command=OFP.OFPFC_DELETE_STRICT,
                               priority=priority, out_port=OFP.OFPP_ANY, out_group=OFP.OFPG_ANY,
                               match=match))


def delete_everything() -> Wire:
    return _wire(P.OFPFlowMod(_DP, table_id=OFP.OFPTT_ALL, command=OFP.OFPFC_DELETE,
                               out_port=OFP.OFPP_ANY, out_group=OFP.OFPG_ANY,
                               match=P.OFPMatch()))


def delete_kind(kind: int) -> Wire:
    ck, mask = kind_filter(kind)
    return _wire(P.OFPFlowMod(_DP, table_id=OFP.OFPTT_ALL, command=OFP.OFPFC_DELETE, cookie=ck,
                               cookie_mask=mask, out_port=OFP.OFPP_ANY, out_group=OFP.OFPG_ANY,
                               match=P.OFPMatch()))


# ---- fixed entries ("the pipeline") ----

def base_entries() -> list[Wire]:
    """Table-miss chain, bucket entries and the firefly punt: everything rule-independent."""
    base = cookie(KIND_BASE, PIPELINE_VERSION)
    md = P.OFPInstructionWriteMetadata
    entries = [flow_add(t, PRIO_MISS, P.OFPMatch(), [_goto(t + 1)], base)
               for t in (T_CLASSIFY, T_FIREFLY, T_CROSSCHECK, T_PUNT)]
    entries += [
        flow_add(T_CLASSIFY, PRIO_UNMARKED, P.OFPMatch(eth_type=ETH_IPV6, ipv6_flabel=0),
                 [md(CLASS_UNMARKED, CLASS_MASK), _goto(T_FIREFLY)],
                 cookie(KIND_BUCKET, BUCKET_IDS["unmarked"])),
        flow_add(T_CLASSIFY, PRIO_UNREGISTERED, P.OFPMatch(eth_type=ETH_IPV6),
                 [md(CLASS_UNREGISTERED, CLASS_MASK), _goto(T_FIREFLY)],
                 cookie(KIND_BUCKET, BUCKET_IDS["unregistered"])),
        flow_add(T_CROSSCHECK, PRIO_MISMATCH,
                 P.OFPMatch(metadata=(HIT_BIT | CLASS_REGISTERED, HIT_BIT | CLASS_MASK)),
                 [_goto(T_PUNT)], cookie(KIND_BUCKET, BUCKET_IDS["mismatch"])),
        flow_add(T_CROSSCHECK, PRIO_FIREFLY_ONLY, P.OFPMatch(metadata=(HIT_BIT, HIT_BIT)),
                 [_goto(T_PUNT)], cookie(KIND_BUCKET, BUCKET_IDS["firefly_only"])),
    ]
    for eth_type in (ETH_IPV4, ETH_IPV6):
        entries.append(flow_add(
            T_PUNT, PRIO_PUNT,
            P.OFPMatch(eth_type=eth_type, ip_proto=PROTO_UDP, udp_dst=FIREFLY_UDP_PORT),
            [_apply(_out(OFP.OFPP_CONTROLLER)), _goto(T_L2)], cookie(KIND_PUNT, eth_type)))
    entries.append(mirror_add(None))
    return entries


def mirror_add(monitor_port: int | None) -> Wire:
    """Copies of mirrored tags go to the monitor port (nowhere until there is one)."""
    outputs = [_apply(_out(monitor_port))] if monitor_port is not None else []
    return flow_add(T_PUNT, PRIO_MIRROR, P.OFPMatch(metadata=(MIRROR_BIT, MIRROR_BIT)),
                    outputs + [_goto(T_L2)], cookie(KIND_MIRROR, 0))


BASE_ENTRY_COUNT = 4  # the table-miss entries carrying cookie(KIND_BASE, PIPELINE_VERSION)


# ---- flow-label tags ----

@dataclass(frozen=True)
class TagEntry:
    """Where a TagRule lives in table 0."""

    priority: int
    label: int
    mask: int

    def match(self) -> Any:
        return P.OFPMatch(eth_type=ETH_IPV6, ipv6_flabel=(self.label, self.mask))


def tag_entry(rule: TagRule) -> TagEntry:
    if rule.activity is None:
        return TagEntry(PRIO_TAG_WILDCARD, encode_label(rule.experiment, 0, 0), EXPERIMENT_ONLY_MASK)
    return TagEntry(PRIO_TAG, encode_label(rule.experiment, rule.activity, 0), TAG_MASK)


def tag_add(rule: TagRule) -> Wire:
    entry = tag_entry(rule)
    md = CLASS_REGISTERED | (MIRROR_BIT if rule.mirror else 0)
    instructions = [P.OFPInstructionWriteMetadata(md, CLASS_MASK | MIRROR_BIT), _goto(T_FIREFLY)]
    # Flow-removed on deletion carries the final counts of a retired tag.
    return flow_add(T_CLASSIFY, entry.priority, entry.match(), instructions,
                    cookie(KIND_TAG, rule.tag_id), flags=OFP.OFPFF_SEND_FLOW_REM)


def tag_delete(entry: TagEntry) -> Wire:
    return flow_delete_strict(T_CLASSIFY, entry.priority, entry.match())


# ---- firefly flows ----

def firefly_metadata(experiment: int, activity: int) -> int:
    return HIT_BIT | experiment << 8 | activity << 24


def firefly_match(key: FlowKey) -> Any:
    fields: dict[str, Any] = {"ip_proto": key.protocol}
    if key.afi == 4:
        fields.update(eth_type=ETH_IPV4, ipv4_src=str(key.src), ipv4_dst=str(key.dst))
    else:
        fields.update(eth_type=ETH_IPV6, ipv6_src=str(key.src), ipv6_dst=str(key.dst))
    l4 = "tcp" if key.protocol == PROTO_TCP else "udp"
    fields[f"{l4}_src"] = key.src_port
    fields[f"{l4}_dst"] = key.dst_port
    return P.OFPMatch(**fields)


def idle_seconds(idle_timeout_s: float) -> int:
    """OpenFlow idle timeouts are whole seconds (uint16); 0 means none."""
    if idle_timeout_s <= 0:
        return 0
    return min(0xFFFF, max(1, round(idle_timeout_s)))


def firefly_add(key: FlowKey, experiment: int, activity: int, idle_timeout_s: float,
                ident: int) -> Wire:
    md = P.OFPInstructionWriteMetadata(firefly_metadata(experiment, activity),
                                       HIT_BIT | FIREFLY_TAG_MASK)
    return flow_add(T_FIREFLY, PRIO_FIREFLY, firefly_match(key), [md, _goto(T_CROSSCHECK)],
                    cookie(KIND_FIREFLY, ident), idle_timeout=idle_seconds(idle_timeout_s),
                    flags=OFP.OFPFF_SEND_FLOW_REM)


def firefly_delete(key: FlowKey) -> Wire:
    return flow_delete_strict(T_FIREFLY, PRIO_FIREFLY, firefly_match(key))


def key_from_match(match: dict[str, Any]) -> FlowKey | None:
    """The FlowKey of a firefly entry read back from the switch (None if not one of ours)."""
    try:
        proto = int(match["ip_proto"])
        l4 = "tcp" if proto == PROTO_TCP else "udp"
        if match.get("eth_type") == ETH_IPV4:
            src, dst = match["ipv4_src"], match["ipv4_dst"]
        else:
            src, dst = match["ipv6_src"], match["ipv6_dst"]
        return FlowKey(ip_address(src), ip_address(dst), proto,
                       int(match[f"{l4}_src"]), int(match[f"{l4}_dst"]))
    except (KeyError, TypeError, ValueError):
        return None


def tag_of_metadata(metadata: int) -> tuple[int, int]:
    """(experiment, activity) a firefly entry writes into metadata."""
    return (metadata >> 8) & 0xFFFF, (metadata >> 24) & 0xFF


def consistent_possible(experiment: int, activity: int) -> bool:
    """Only tags a flow label can carry can ever be consistent with one."""
    return 1 <= experiment <= EXPERIMENT_MAX and 0 <= activity <= ACTIVITY_MAX


def consistent_add(experiment: int, activity: int) -> Wire:
    md = HIT_BIT | CLASS_REGISTERED | experiment << 8 | activity << 24
    match = P.OFPMatch(metadata=(md, HIT_BIT | CLASS_MASK | FIREFLY_TAG_MASK), eth_type=ETH_IPV6,
                       ipv6_flabel=(encode_label(experiment, activity, 0), TAG_MASK))
    return flow_add(T_CROSSCHECK, PRIO_CONSISTENT, match, [_goto(T_PUNT)],
                    cookie(KIND_CONSISTENT, experiment << 8 | activity))


# ---- L2 forwarding ----

def mac_add(mac: str, port: int) -> Wire:
    return flow_add(T_L2, PRIO_MAC, P.OFPMatch(eth_dst=mac), [_apply(_out(port))],
                    cookie(KIND_L2, port))


def mac_delete(mac: str) -> Wire:
    return flow_delete_strict(T_L2, PRIO_MAC, P.OFPMatch(eth_dst=mac))


PRIO_PORT_MODE = 200  # above the MAC entries: a port's placement decides first


def port_mode_add(port: int, action: str, partner: int | None) -> Wire | None:
    """Placement of an ingress port (issue 15) in table 4: wire -> output to the partner,
    whatever the addresses; wire_down and tap -> drop (tables 0-3 have counted it and made
    the controller/monitor copies); learn -> NORMAL (OVS's own MAC learning and flooding; use
    OVS's STP/RSTP on looped topologies); static (a direction label only) -> nothing: OpenFlow
    has no per-direction counter here."""
    match = P.OFPMatch(in_port=port)
    if action == "wire":
        instructions = [_apply(_out(partner))]
    elif action in ("wire_down", "tap"):
        instructions = []
    elif action == "learn":
        instructions = [_apply(_out(OFP.OFPP_NORMAL))]
    else:
        return None
    return flow_add(T_L2, PRIO_PORT_MODE, match, instructions, cookie(KIND_PORT_MODE, port))


def flood_add(ports: list[int]) -> Wire:
    instructions = [_apply(*[_out(p) for p in ports])] if ports else []  # no ports: drop
    return flow_add(T_L2, PRIO_MISS, P.OFPMatch(), instructions, cookie(KIND_L2, 0))
