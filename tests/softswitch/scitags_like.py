"""A hand-built BMv2 JSON that mirrors p4src/v1model/scitags.p4 construct for construct.

It lets tests and the benchmark run the program's shape (packet-out/in headers, VLAN,
IPv4/IPv6/TCP/UDP parser with tuple selects, an exact L2 table with a flood default,
an exact+ternary policy table with a const default, 5-tuple tables with direct counters
and idle timeout, indirect counters, exit, I2E clone with a preserved field list) before
p4c is available. The real compiled program replaces it as soon as it exists.
"""
from __future__ import annotations

from p4json import (C, E, F, H, L, P, Program, X, assign, extract, mark_to_drop, prim, set_egress,
                    valid)

CPU_PORT = 255
CPU_CLONE_SESSION = 100
FIREFLY_PORT = 10514
BUCKET_UNMARKED, BUCKET_UNREGISTERED, BUCKET_CONSISTENT, BUCKET_MISMATCH, \
    BUCKET_FIREFLY_ONLY, BUCKET_PARSER_ERROR = range(6)
SM = "standard_metadata"


def _count(counter: str, index: dict) -> dict:
    return prim("count", {"type": "counter_array", "value": counter}, index)


def _set(dst: dict, src: dict) -> dict:
    return {"op": "set", "parameters": [dst, src]}


def _experiment_from_label() -> dict:
    """meta.label_experiment = fl[9:9] ++ fl[10:10] ++ ... ++ fl[17:17] (bit-reversed)."""
    fl = F("ipv6", "flow_label")
    expr = None
    for i, bit in enumerate(range(9, 18)):  # fl[9] becomes the most significant bit
        term = E("<<", E("&", E(">>", fl, C(bit)), C(1)), C(8 - i))
        expr = term if expr is None else E("|", expr, term)
    return E("&", expr, C(0x1FF))


def build() -> Program:
    p = Program()
    p.header("packet_out", [("egress_port", 9), ("_pad", 7)])
    p.header("packet_in", [("_pad", 7), ("ingress_port", 9), ("reason", 8)])  # as scitags.p4
    p.header("ethernet", [("dst_addr", 48), ("src_addr", 48), ("ether_type", 16)])
    p.header("vlan", [("pcp", 3), ("dei", 1), ("vid", 12), ("ether_type", 16)])
    p.header("ipv4", [("version", 4), ("ihl", 4), ("dscp_ecn", 8), ("total_len", 16),
                      ("identification", 16), ("flags", 3), ("frag_offset", 13), ("ttl", 8),
                      ("protocol", 8), ("hdr_checksum", 16), ("src_addr", 32), ("dst_addr", 32)])
    p.header("ipv6", [("version", 4), ("traffic_class", 8), ("flow_label", 20),
                      ("payload_len", 16), ("next_hdr", 8), ("hop_limit", 8), ("src_addr", 128),
                      ("dst_addr", 128)])
    p.header("tcp", [("src_port", 16), ("dst_port", 16), ("seq_no", 32), ("ack_no", 32),
                     ("data_offset", 4), ("res", 4), ("flags", 8), ("window", 16),
                     ("checksum", 16), ("urgent_ptr", 16)])
    p.header("udp", [("src_port", 16), ("dst_port", 16), ("length", 16), ("checksum", 16)])
    p.metadata("meta", [("l4_src_port", 16), ("l4_dst_port", 16), ("l4_valid", 1),
                        ("label_experiment", 9), ("label_activity", 6), ("label_class", 2),
                        ("firefly_hit", 1), ("firefly_experiment", 16), ("firefly_activity", 8),
                        ("punt_ingress_port", 9), ("punt_reason", 8), ("_padding", 4)])
    p.field_list(1, [("meta", "punt_ingress_port"), ("meta", "punt_reason")])
    p.field_list(2, [])  # p4c's empty field list for a plain clone()

    # ---- parser ----
    p.state("start", [], [F(SM, "ingress_port")],
            [(f"0x{CPU_PORT:04x}", None, "parse_packet_out"), (None, None, "parse_ethernet")])
    p.state("parse_packet_out", [extract("packet_out")], None,
            [(None, None, "parse_ethernet")])
    p.state("parse_ethernet", [extract("ethernet")], [F("ethernet", "ether_type")],
            [("0x8100", None, "parse_vlan"), ("0x0800", None, "parse_ipv4"),
             ("0x86dd", None, "parse_ipv6"), (None, None, None)])
    p.state("parse_vlan", [extract("vlan")], [F("vlan", "ether_type")],
            [("0x0800", None, "parse_ipv4"), ("0x86dd", None, "parse_ipv6"), (None, None, None)])
    p.state("parse_ipv4", [extract("ipv4")],
            [F("ipv4", "ihl"), F("ipv4", "frag_offset"), F("ipv4", "protocol")],
            [("0x05000006", None, "parse_tcp"), ("0x05000011", None, "parse_udp"),
             (None, None, None)])
    p.state("parse_ipv6", [extract("ipv6")], [F("ipv6", "next_hdr")],
            [("0x06", None, "parse_tcp"), ("0x11", None, "parse_udp"), (None, None, None)])
    for l4 in ("tcp", "udp"):
        p.state(f"parse_{l4}", [extract(l4),
                                _set(F("meta", "l4_src_port"), F(l4, "src_port")),
                                _set(F("meta", "l4_dst_port"), F(l4, "dst_port")),
                                _set(F("meta", "l4_valid"), X(E("b2d", None, {"type": "bool",
                                                                             "value": True})))])
    p.deparse("packet_in", "ethernet", "vlan", "ipv4", "ipv6", "tcp", "udp")

    # ---- ingress ----
    p.counter("ingress.tag_counter", 4096)
    p.counter("ingress.bucket_counter", 8)
    bucket = "ingress.bucket_counter"
    p.action("ingress.drop", [], [mark_to_drop()])
    p.action("ingress.set_egress_port", [("port", 9)], [set_egress(P(0))])
    p.action("ingress.flood", [("group", 16)], [assign(F(SM, "mcast_grp"), P(0))])
    p.action("ingress.count_tag", [("tag_id", 16)], [
        assign(F("meta", "label_class"), C(3, 2)),
        _count("ingress.tag_counter", X(E("&", L(0), C(0xFFFFFFFF))))])
    p.action("ingress.count_tag_and_mirror", [("tag_id", 16), ("mirror_session", 32)], [
        assign(F("meta", "label_class"), C(3, 2)),
        _count("ingress.tag_counter", X(E("&", L(0), C(0xFFFFFFFF)))),
        prim("clone_ingress_pkt_to_egress", P(1), C(2))])
    p.action("ingress.unregistered_label", [], [
        assign(F("meta", "label_class"), C(2, 2)),
        _count(bucket, C(BUCKET_UNREGISTERED, 32))])
    for v in ("v4", "v6"):
        p.action(f"ingress.firefly_flow_{v}", [("experiment", 16), ("activity", 8)], [
            assign(F("meta", "firefly_hit"), C(1, 1)),
            assign(F("meta", "firefly_experiment"), P(0)),
            assign(F("meta", "firefly_activity"), P(1))])
    p.action("act_parser_error", [], [_count(bucket, C(BUCKET_PARSER_ERROR, 32)), mark_to_drop(),
                                      prim("exit")])
    p.action("act_packet_out", [], [set_egress(F("packet_out", "egress_port")),
                                    prim("remove_header", H("packet_out")), prim("exit")])
    p.action("act_hairpin", [], [mark_to_drop()])
    p.action("act_unmarked", [], [assign(F("meta", "label_class"), C(1, 2)),
                                  _count(bucket, C(BUCKET_UNMARKED, 32))])
    p.action("act_decode", [], [
        assign(F("meta", "label_experiment"), X(_experiment_from_label())),
        assign(F("meta", "label_activity"),
               X(E("&", E(">>", F("ipv6", "flow_label"), C(2)), C(0x3F))))])
    for name, b in (("consistent", BUCKET_CONSISTENT), ("mismatch", BUCKET_MISMATCH),
                    ("firefly_only", BUCKET_FIREFLY_ONLY)):
        p.action(f"act_{name}", [], [_count(bucket, C(b, 32))])
    p.action("act_punt", [], [
        assign(F("meta", "punt_ingress_port"), F(SM, "ingress_port")),
        assign(F("meta", "punt_reason"), C(1, 8)),
        prim("clone_ingress_pkt_to_egress", C(CPU_CLONE_SESSION, 32), C(1))])

    ig = "ingress"
    p.cond(ig, "node_err", E("!=", F(SM, "parser_error"), C(0, 32)), "tbl_parser_error", "node_po")
    p.call(ig, "tbl_parser_error", "act_parser_error", "node_po")
    p.cond(ig, "node_po", valid("packet_out"), "tbl_packet_out", "node_eth")
    p.call(ig, "tbl_packet_out", "act_packet_out", "node_eth")
    p.cond(ig, "node_eth", valid("ethernet"), "ingress.l2_forward", "node_v6")
    p.table(ig, "ingress.l2_forward", [("exact", "ethernet", "dst_addr")],
            ["ingress.set_egress_port", "ingress.flood", "ingress.drop"],
            default=("ingress.flood", [1]), size=4096, base_next="node_hairpin")
    p.cond(ig, "node_hairpin",
           E("and", E("==", F(SM, "mcast_grp"), C(0, 16)),
             E("==", F(SM, "egress_spec"), F(SM, "ingress_port"))), "tbl_hairpin", "node_v6")
    p.call(ig, "tbl_hairpin", "act_hairpin", "node_v6")
    p.cond(ig, "node_v6", valid("ipv6"), "node_label0", "node_v4")
    p.cond(ig, "node_label0", E("==", F("ipv6", "flow_label"), C(0, 20)), "tbl_unmarked",
           "tbl_decode")
    p.call(ig, "tbl_unmarked", "act_unmarked", "node_l4_v6")
    p.call(ig, "tbl_decode", "act_decode", "ingress.scitag_policy")
    p.table(ig, "ingress.scitag_policy", [("exact", "meta", "label_experiment"),
                                         ("ternary", "meta", "label_activity")],
            ["ingress.count_tag", "ingress.count_tag_and_mirror", "ingress.unregistered_label"],
            default=("ingress.unregistered_label", []), const_default=True, size=4096,
            base_next="node_l4_v6")
    p.cond(ig, "node_l4_v6", E("d2b", None, F("meta", "l4_valid")), "ingress.firefly_v6",
           "node_ff")
    p.cond(ig, "node_v4", E("and", valid("ipv4"), E("d2b", None, F("meta", "l4_valid"))),
           "ingress.firefly_v4", "node_ff")
    for v, hdr, proto in (("v4", "ipv4", "protocol"), ("v6", "ipv6", "next_hdr")):
        p.table(ig, f"ingress.firefly_{v}",
                [("exact", hdr, "src_addr"), ("exact", hdr, "dst_addr"), ("exact", hdr, proto),
                 ("exact", "meta", "l4_src_port"), ("exact", "meta", "l4_dst_port")],
                [f"ingress.firefly_flow_{v}", "NoAction"], default=("NoAction", []),
                const_default=True, size=65536, counters=True, timeout=True,
                base_next="node_ff")
    p.cond(ig, "node_ff", E("d2b", None, F("meta", "firefly_hit")), "node_registered",
           "node_punt")
    p.cond(ig, "node_registered", E("==", F("meta", "label_class"), C(3, 2)), "node_same",
           "tbl_firefly_only")
    p.cond(ig, "node_same",
           E("and", E("==", F("meta", "firefly_experiment"),
                      E("&", F("meta", "label_experiment"), C(0xFFFF))),
             E("==", F("meta", "firefly_activity"), E("&", F("meta", "label_activity"),
                                                      C(0xFF)))),
           "tbl_consistent", "tbl_mismatch")
    for name in ("consistent", "mismatch", "firefly_only"):
        p.call(ig, f"tbl_{name}", f"act_{name}", "node_punt")
    p.cond(ig, "node_punt", E("and", valid("udp"), E("==", F("udp", "dst_port"),
                                                     C(FIREFLY_PORT, 16))),
           "tbl_punt", None)
    p.call(ig, "tbl_punt", "act_punt", None)
    p.init(ig, "node_err")

    # ---- egress ----
    p.action("act_packet_in", [], [
        prim("add_header", H("packet_in")),
        assign(F("packet_in", "ingress_port"), F("meta", "punt_ingress_port")),
        assign(F("packet_in", "reason"), F("meta", "punt_reason")),
        assign(F("packet_in", "_pad"), C(0, 7))])
    p.action("act_prune", [], [mark_to_drop()])
    eg = "egress"
    p.cond(eg, "node_cpu", E("==", F(SM, "egress_port"), C(CPU_PORT, 9)), "tbl_packet_in",
           "node_prune")
    p.call(eg, "tbl_packet_in", "act_packet_in", None)
    p.cond(eg, "node_prune", E("and", E("==", F(SM, "instance_type"), C(5, 32)),
                               E("==", F(SM, "egress_port"), F(SM, "ingress_port"))),
           "tbl_prune", None)
    p.call(eg, "tbl_prune", "act_prune", None)
    p.init(eg, "node_cpu")
    return p


def program() -> dict:
    return build().build()
