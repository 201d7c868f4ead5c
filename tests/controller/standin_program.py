"""A hand-built BMv2 JSON of p4src/v1model/scitags.p4, used ONLY while p4c cannot build the
real one (tests prefer p4src/build/v1model/scitags.json whenever it exists).

Same table, action, counter and header names as p4c would emit, same behaviour for what the
controller drives: L2 forwarding, flood group, flow-label decode (reversed experiment bits)
into scitag_policy, firefly 5-tuple tables with direct counters and idle timeout, buckets,
the firefly punt (clone session 100) with the packet_in header, flood pruning. Simplified:
no parser-error bucket, IPv4 ports parsed without the ihl/fragment check.
Its P4Info is tests/controller/data/scitags.p4info.txtpb.
"""
from __future__ import annotations

import json
from pathlib import Path

from tests.softswitch.p4json import (
    IPV4, C, E, F, P, Program, X, assign, extract, mark_to_drop, prim, valid)

IPV6 = [("version", 4), ("traffic_class", 8), ("flow_label", 20), ("payload_len", 16),
        ("next_hdr", 8), ("hop_limit", 8), ("src_addr", 128), ("dst_addr", 128)]
TCP = [("src_port", 16), ("dst_port", 16), ("seq_no", 32), ("ack_no", 32), ("data_offset", 4),
       ("res", 4), ("flags", 8), ("window", 16), ("checksum", 16), ("urgent_ptr", 16)]
UDP = [("src_port", 16), ("dst_port", 16), ("length", 16), ("checksum", 16)]
IN = "ScitagsIngress."
M = "scitags_meta"


def build() -> dict:
    p = Program()
    p.header("packet_out", [("egress_port", 9), ("_pad", 7)])
    p.header("packet_in", [("ingress_port", 9), ("reason", 8), ("_pad", 7)])
    p.header("ethernet", [("dst_addr", 48), ("src_addr", 48), ("ether_type", 16)])
    p.header("vlan", [("pcp", 3), ("dei", 1), ("vid", 12), ("ether_type", 16)])
    p.header("ipv4", [(n.replace("src", "src_addr").replace("dst", "dst_addr")
                       .replace("proto", "protocol"), w) for n, w in IPV4])
    p.header("ipv6", IPV6)
    p.header("tcp", TCP)
    p.header("udp", UDP)
    p.metadata(M, [("l4_src_port", 16), ("l4_dst_port", 16), ("l4_valid", 1),
                   ("label_experiment", 9), ("label_activity", 6), ("label_class", 2),
                   ("firefly_hit", 1), ("firefly_experiment", 16), ("firefly_activity", 8),
                   ("punt_ingress_port", 9), ("punt_reason", 8), ("_padding_0", 4)])
    p.field_list(1, [(M, "punt_ingress_port"), (M, "punt_reason")])
    p.field_list(2, [])  # mirror clones carry no metadata

    # ---- parser ----
    l4 = lambda h: [extract(h), prim("set", F(M, "l4_src_port"), F(h, "src_port")),  # noqa: E731
                    prim("set", F(M, "l4_dst_port"), F(h, "dst_port")),
                    prim("set", F(M, "l4_valid"), C(1, 1))]
    p.state("start", [], [F("standard_metadata", "ingress_port")],
            [("0x00ff", None, "parse_packet_out"), (None, None, "parse_ethernet")])
    p.state("parse_packet_out", [extract("packet_out")], [], [(None, None, "parse_ethernet")])
    eth_next = [("0x8100", None, "parse_vlan"), ("0x0800", None, "parse_ipv4"),
                ("0x86dd", None, "parse_ipv6"), (None, None, None)]
    p.state("parse_ethernet", [extract("ethernet")], [F("ethernet", "ether_type")], eth_next)
    p.state("parse_vlan", [extract("vlan")], [F("vlan", "ether_type")], eth_next[1:])
    p.state("parse_ipv4", [extract("ipv4")], [F("ipv4", "protocol")],
            [("0x06", None, "parse_tcp"), ("0x11", None, "parse_udp"), (None, None, None)])
    p.state("parse_ipv6", [extract("ipv6")], [F("ipv6", "next_hdr")],
            [("0x06", None, "parse_tcp"), ("0x11", None, "parse_udp"), (None, None, None)])
    p.state("parse_tcp", l4("tcp"))
    p.state("parse_udp", l4("udp"))

    def bucket(i: int) -> dict:
        return prim("count", {"type": "counter_array", "value": IN + "bucket_counter"}, C(i, 32))

    # ---- actions ----
    p.action(IN + "drop", [], [mark_to_drop()])
    p.action(IN + "set_egress_port", [("port", 9)], [assign(F("standard_metadata", "egress_spec"), P(0))])
    p.action(IN + "flood", [("group", 16)], [assign(F("standard_metadata", "mcast_grp"), P(0))])
    tag_count = prim("count", {"type": "counter_array", "value": IN + "tag_counter"}, P(0))
    p.action(IN + "count_tag", [("tag_id", 16)], [assign(F(M, "label_class"), C(3, 2)), tag_count])
    p.action(IN + "count_tag_and_mirror", [("tag_id", 16), ("mirror_session", 32)],
             [assign(F(M, "label_class"), C(3, 2)), tag_count,
              prim("clone_ingress_pkt_to_egress", P(1), C(2, 32))])
    p.action(IN + "unregistered_label", [], [assign(F(M, "label_class"), C(2, 2)), bucket(1)])
    for v in (4, 6):
        p.action(f"{IN}firefly_flow_v{v}", [("experiment", 16), ("activity", 8)],
                 [assign(F(M, "firefly_hit"), C(1, 1)), assign(F(M, "firefly_experiment"), P(0)),
                  assign(F(M, "firefly_activity"), P(1))])
    fl = F("ipv6", "flow_label")
    rev = None
    for i in range(9):  # experiment id bit i sits at label bit 17 - i
        term = E("<<", E("&", E(">>", fl, C(17 - i)), C(1)), C(i))
        rev = term if rev is None else E("|", rev, term)
    p.action("act_decode", [], [assign(F(M, "label_experiment"), X(rev)),
                                assign(F(M, "label_activity"), X(E("&", E(">>", fl, C(2)), C(0x3F))))])
    p.action("act_unmarked", [], [assign(F(M, "label_class"), C(1, 2)), bucket(0)])
    p.action("act_packet_out", [], [assign(F("standard_metadata", "egress_spec"),
                                           F("packet_out", "egress_port")),
                                    prim("remove_header", {"type": "header", "value": "packet_out"})])
    p.action("act_hairpin_drop", [], [mark_to_drop()])
    p.action("act_consistent", [], [bucket(2)])
    p.action("act_mismatch", [], [bucket(3)])
    p.action("act_firefly_only", [], [bucket(4)])
    p.action("act_punt", [], [assign(F(M, "punt_ingress_port"), F("standard_metadata", "ingress_port")),
                              assign(F(M, "punt_reason"), C(1, 8)),
                              prim("clone_ingress_pkt_to_egress", C(100, 32), C(1, 32))])
    p.action("act_packet_in", [], [
        prim("add_header", {"type": "header", "value": "packet_in"}),
        assign(F("packet_in", "ingress_port"), F(M, "punt_ingress_port")),
        assign(F("packet_in", "reason"), F(M, "punt_reason")),
        assign(F("packet_in", "_pad"), C(0, 7))])
    p.action("act_prune", [], [mark_to_drop()])

    # ---- ingress, built back to front ----
    ig = "ingress"
    p.call(ig, "tbl_punt", "act_punt", None)
    p.cond(ig, "c_punt", E("and", valid("udp"), E("==", F("udp", "dst_port"), C(10514, 16))),
           "tbl_punt", None)
    for name, act in (("tbl_consistent", "act_consistent"), ("tbl_mismatch", "act_mismatch"),
                      ("tbl_firefly_only", "act_firefly_only")):
        p.call(ig, name, act, "c_punt")
    same = E("and", E("==", F(M, "firefly_experiment"), F(M, "label_experiment")),
             E("==", F(M, "firefly_activity"), F(M, "label_activity")))
    p.cond(ig, "c_same", same, "tbl_consistent", "tbl_mismatch")
    p.cond(ig, "c_registered", E("==", F(M, "label_class"), C(3, 2)), "c_same", "tbl_firefly_only")
    p.cond(ig, "c_hit", E("d2b", None, F(M, "firefly_hit")), "c_registered", "c_punt")
    for v, hdr, proto in ((4, "ipv4", "protocol"), (6, "ipv6", "next_hdr")):
        p.table(ig, f"{IN}firefly_v{v}",
                    [("exact", hdr, "src_addr"), ("exact", hdr, "dst_addr"), ("exact", hdr, proto),
                     ("exact", M, "l4_src_port"), ("exact", M, "l4_dst_port")],
                    [f"{IN}firefly_flow_v{v}", "NoAction"], default=("NoAction", []),
                    size=65536, base_next="c_hit", counters=True, timeout=True, const_default=True)
        names = ["src_addr", "dst_addr", "protocol", "src_port", "dst_port"]
        for k, n in zip(p.pipes[ig]["tables"][-1]["key"], names):
            k["name"] = n
    p.cond(ig, "c_l4_v6", E("d2b", None, F(M, "l4_valid")), IN + "firefly_v6", "c_hit")
    p.table(ig, IN + "scitag_policy", [("exact", M, "label_experiment"), ("ternary", M, "label_activity")],
            [IN + "count_tag", IN + "count_tag_and_mirror", IN + "unregistered_label"],
            default=(IN + "unregistered_label", []), size=4096, base_next="c_l4_v6", const_default=True)
    pol = p.pipes[ig]["tables"][-1]
    pol["key"][0]["name"], pol["key"][1]["name"] = "experiment", "activity"
    p.call(ig, "tbl_decode", "act_decode", IN + "scitag_policy")
    p.call(ig, "tbl_unmarked", "act_unmarked", "c_l4_v6")
    p.cond(ig, "c_v4", E("and", valid("ipv4"), E("d2b", None, F(M, "l4_valid"))), IN + "firefly_v4", "c_hit")
    p.cond(ig, "c_label0", E("==", fl, C(0, 20)), "tbl_unmarked", "tbl_decode")
    p.cond(ig, "c_v6", valid("ipv6"), "c_label0", "c_v4")
    p.call(ig, "tbl_hairpin", "act_hairpin_drop", "c_v6")
    p.cond(ig, "c_hairpin", E("and", E("==", F("standard_metadata", "mcast_grp"), C(0, 16)),
                              E("==", F("standard_metadata", "egress_spec"),
                                F("standard_metadata", "ingress_port"))), "tbl_hairpin", "c_v6")
    p.table(ig, IN + "l2_forward", [("exact", "ethernet", "dst_addr")],
            [IN + "set_egress_port", IN + "flood", IN + "drop"], default=(IN + "flood", [1]),
            size=4096, base_next="c_hairpin")
    p.pipes[ig]["tables"][-1]["key"][0]["name"] = "dst_mac"
    p.cond(ig, "c_eth", valid("ethernet"), IN + "l2_forward", "c_v6")
    p.call(ig, "tbl_packet_out", "act_packet_out", None)
    p.cond(ig, "c_packet_out", valid("packet_out"), "tbl_packet_out", "c_eth")
    p.init(ig, "c_packet_out")

    # ---- egress ----
    eg = "egress"
    p.call(eg, "tbl_packet_in", "act_packet_in", None)
    p.call(eg, "tbl_prune", "act_prune", None)
    p.cond(eg, "c_prune", E("and", E("==", F("standard_metadata", "instance_type"), C(5, 32)),
                            E("==", F("standard_metadata", "egress_port"),
                              F("standard_metadata", "ingress_port"))), "tbl_prune", None)
    p.cond(eg, "c_cpu", E("==", F("standard_metadata", "egress_port"), C(255, 9)), "tbl_packet_in", "c_prune")
    p.init(eg, "c_cpu")

    p.counter(IN + "tag_counter", 4096)
    p.counter(IN + "bucket_counter", 8)
    p.deparse("packet_in", "ethernet", "vlan", "ipv4", "ipv6", "tcp", "udp")
    doc = p.build()
    doc["program"] = "scitags.p4 (hand-built stand-in)"
    return doc


def write(path: Path) -> Path:
    path.write_text(json.dumps(build()))
    return path


if __name__ == "__main__":
    import sys
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "scitags_standin.json")))
