"""A small v1model program, BMv2 JSON + P4Info written by hand in p4c-bm2-ss's format.

It exercises what the P4Runtime server handles: every match kind, a direct counter with
idle timeout, an indirect counter, a register, scopes (@tableonly, @defaultonly, const
default action), a tiny table to fill, and packet-in/packet-out headers. The tests and
the benchmark use it, so they run without p4c. As P4_16 it would read:

    @controller_header("packet_out") header packet_out_t { bit<9> egress_port; bit<7> _pad; }
    @controller_header("packet_in")  header packet_in_t { bit<9> ingress_port; bit<8> reason;
                                                          bit<7> _pad; }
    parser: ingress_port 255 -> extract packet_out; then ethernet.
    ingress: if (packet_out valid) { egress_spec = packet_out.egress_port; remove it }
             else { port_counter.count(ingress_port); fwd; lpm_t; acl; tiny }
      fwd   (dstAddr exact; set_port, to_cpu, drop, NoAction; direct counter; idle timeout;
             size 65536)
      lpm_t (srcAddr lpm; @tableonly set_port, NoAction)
      acl   (etherType ternary, srcAddr range, ingress_port optional; drop, set_port,
             NoAction)
      tiny  (etherType exact; set_port, @defaultonly NoAction; const default NoAction;
             size 2)
    egress: if (egress_port == 255) { packet_in valid, ingress_port, reason = 1 }
    deparser: packet_in, ethernet
"""
from __future__ import annotations

import json
from typing import Any

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

CPU_PORT = 255

T_FWD, T_LPM, T_ACL, T_TINY = 0x02000001, 0x02000002, 0x02000003, 0x02000004
A_NOACTION, A_DROP, A_SET_PORT, A_TO_CPU = 0x01000001, 0x01000002, 0x01000003, 0x01000004
C_PORT, DC_FWD, R_REG = 0x12000001, 0x13000001, 0x16000001
H_PACKET_IN, H_PACKET_OUT = 0x04000001, 0x04000002
FWD_SIZE = 65536

P4INFO_TEXT = f"""
pkg_info {{ arch: "v1model" }}
tables {{
  preamble {{ id: {T_FWD} name: "ingress.fwd" alias: "fwd" }}
  match_fields {{ id: 1 name: "hdr.ethernet.dstAddr" bitwidth: 48 match_type: EXACT }}
  action_refs {{ id: {A_SET_PORT} }}
  action_refs {{ id: {A_TO_CPU} }}
  action_refs {{ id: {A_DROP} }}
  action_refs {{ id: {A_NOACTION} }}
  direct_resource_ids: {DC_FWD}
  size: {FWD_SIZE}
  idle_timeout_behavior: NOTIFY_CONTROL
}}
tables {{
  preamble {{ id: {T_LPM} name: "ingress.lpm_t" alias: "lpm_t" }}
  match_fields {{ id: 1 name: "hdr.ethernet.srcAddr" bitwidth: 48 match_type: LPM }}
  action_refs {{ id: {A_SET_PORT} annotations: "@tableonly" scope: TABLE_ONLY }}
  action_refs {{ id: {A_NOACTION} }}
  size: 1024
}}
tables {{
  preamble {{ id: {T_ACL} name: "ingress.acl" alias: "acl" }}
  match_fields {{ id: 1 name: "hdr.ethernet.etherType" bitwidth: 16 match_type: TERNARY }}
  match_fields {{ id: 2 name: "hdr.ethernet.srcAddr" bitwidth: 48 match_type: RANGE }}
  match_fields {{ id: 3 name: "standard_metadata.ingress_port" bitwidth: 9
                 match_type: OPTIONAL }}
  action_refs {{ id: {A_DROP} }}
  action_refs {{ id: {A_SET_PORT} }}
  action_refs {{ id: {A_NOACTION} }}
  size: 1024
}}
tables {{
  preamble {{ id: {T_TINY} name: "ingress.tiny" alias: "tiny" }}
  match_fields {{ id: 1 name: "hdr.ethernet.etherType" bitwidth: 16 match_type: EXACT }}
  action_refs {{ id: {A_SET_PORT} }}
  action_refs {{ id: {A_NOACTION} annotations: "@defaultonly" scope: DEFAULT_ONLY }}
  const_default_action_id: {A_NOACTION}
  size: 2
}}
actions {{ preamble {{ id: {A_NOACTION} name: "NoAction" alias: "NoAction" }} }}
actions {{ preamble {{ id: {A_DROP} name: "ingress.drop" alias: "drop" }} }}
actions {{
  preamble {{ id: {A_SET_PORT} name: "ingress.set_port" alias: "set_port" }}
  params {{ id: 1 name: "port" bitwidth: 9 }}
}}
actions {{ preamble {{ id: {A_TO_CPU} name: "ingress.to_cpu" alias: "to_cpu" }} }}
counters {{
  preamble {{ id: {C_PORT} name: "ingress.port_counter" alias: "port_counter" }}
  spec {{ unit: BOTH }}
  size: 512
}}
direct_counters {{
  preamble {{ id: {DC_FWD} name: "ingress.fwd_counter" alias: "fwd_counter" }}
  spec {{ unit: BOTH }}
  direct_table_id: {T_FWD}
}}
controller_packet_metadata {{
  preamble {{ id: {H_PACKET_IN} name: "packet_in" alias: "packet_in"
             annotations: "@controller_header(\\"packet_in\\")" }}
  metadata {{ id: 1 name: "ingress_port" bitwidth: 9 }}
  metadata {{ id: 2 name: "reason" bitwidth: 8 }}
  metadata {{ id: 3 name: "_pad" bitwidth: 7 }}
}}
controller_packet_metadata {{
  preamble {{ id: {H_PACKET_OUT} name: "packet_out" alias: "packet_out"
             annotations: "@controller_header(\\"packet_out\\")" }}
  metadata {{ id: 1 name: "egress_port" bitwidth: 9 }}
  metadata {{ id: 2 name: "_pad" bitwidth: 7 }}
}}
registers {{
  preamble {{ id: {R_REG} name: "ingress.reg" alias: "reg" }}
  type_spec {{ bitstring {{ bit {{ bitwidth: 32 }} }} }}
  size: 16
}}
"""

_STANDARD_METADATA = [
    ["ingress_port", 9, False], ["egress_spec", 9, False], ["egress_port", 9, False],
    ["instance_type", 32, False], ["packet_length", 32, False],
    ["enq_timestamp", 32, False], ["enq_qdepth", 19, False], ["deq_timedelta", 32, False],
    ["deq_qdepth", 19, False], ["ingress_global_timestamp", 48, False],
    ["egress_global_timestamp", 48, False], ["mcast_grp", 16, False],
    ["egress_rid", 16, False], ["checksum_error", 1, False], ["parser_error", 32, False],
    ["priority", 3, False], ["_padding", 3, False]]


def _field(header: str, name: str) -> dict[str, Any]:
    return {"type": "field", "value": [header, name]}


def _hex(v: int, nbytes: int = 2) -> dict[str, Any]:
    return {"type": "hexstr", "value": _hexstr(v, nbytes)}


def _hexstr(v: int, nbytes: int) -> str:
    # BMv2 wants parser transition values exactly as wide as the key, in whole bytes
    return "0x" + v.to_bytes(nbytes, "big").hex()


def _action(aid: int, name: str, params: list[tuple[str, int]],
            prims: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "id": aid,
            "runtime_data": [{"name": n, "bitwidth": bw} for n, bw in params],
            "primitives": prims}


def _assign(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    return {"op": "assign", "parameters": [dst, src]}


def _table(tid: int, name: str, keys: list[tuple[str, str, list[str]]], match_type: str,
           actions: list[tuple[int, str]], default: int, nxt: str | None, size: int = 1024,
           counters: bool = False, timeout: bool = False, const_default: bool = False
           ) -> dict[str, Any]:
    return {
        "name": name, "id": tid,
        "key": [{"match_type": mt, "name": kn, "target": tgt, "mask": None}
                for kn, mt, tgt in keys],
        "match_type": match_type, "type": "simple", "max_size": size,
        "with_counters": counters, "support_timeout": timeout, "direct_meters": None,
        "action_ids": [a for a, _ in actions], "actions": [n for _, n in actions],
        "base_default_next": nxt, "next_tables": {n: nxt for _, n in actions},
        "default_entry": {"action_id": default, "action_const": const_default,
                          "action_data": [], "action_entry_const": const_default}}


def bmv2_json() -> dict[str, Any]:
    """The BMv2 JSON document (as p4c-bm2-ss would emit it for the program above)."""
    # JSON action ids (BMv2's own numbering, unrelated to P4Info ids)
    noaction, drop, set_port, to_cpu, po_path, count_port, add_pin = range(7)
    actions = [
        _action(noaction, "NoAction", [], []),
        _action(drop, "ingress.drop", [], [
            {"op": "mark_to_drop", "parameters": [{"type": "header",
                                                   "value": "standard_metadata"}]}]),
        _action(set_port, "ingress.set_port", [("port", 9)], [
            _assign(_field("standard_metadata", "egress_spec"),
                    {"type": "runtime_data", "value": 0})]),
        _action(to_cpu, "ingress.to_cpu", [], [
            _assign(_field("standard_metadata", "egress_spec"), _hex(CPU_PORT))]),
        _action(po_path, "ingress.packet_out_path", [], [
            _assign(_field("standard_metadata", "egress_spec"),
                    _field("packet_out", "egress_port")),
            {"op": "remove_header", "parameters": [{"type": "header",
                                                    "value": "packet_out"}]}]),
        _action(count_port, "ingress.count_port", [], [
            {"op": "count", "parameters": [
                {"type": "counter_array", "value": "ingress.port_counter"},
                _field("standard_metadata", "ingress_port")]}]),
        _action(add_pin, "egress.add_packet_in", [], [
            {"op": "add_header", "parameters": [{"type": "header", "value": "packet_in"}]},
            _assign(_field("packet_in", "ingress_port"),
                    _field("standard_metadata", "ingress_port")),
            _assign(_field("packet_in", "reason"), _hex(1, 1)),
            _assign(_field("packet_in", "_pad"), _hex(0, 1))]),
    ]
    ingress_tables = [
        _table(0, "ingress.fwd", [("hdr.ethernet.dstAddr", "exact", ["ethernet", "dstAddr"])],
               "exact", [(set_port, "ingress.set_port"), (to_cpu, "ingress.to_cpu"),
                         (drop, "ingress.drop"), (noaction, "NoAction")],
               noaction, "ingress.lpm_t", size=FWD_SIZE, counters=True, timeout=True),
        _table(1, "ingress.lpm_t", [("hdr.ethernet.srcAddr", "lpm", ["ethernet", "srcAddr"])],
               "lpm", [(set_port, "ingress.set_port"), (noaction, "NoAction")],
               noaction, "ingress.acl"),
        _table(2, "ingress.acl", [
            ("hdr.ethernet.etherType", "ternary", ["ethernet", "etherType"]),
            ("hdr.ethernet.srcAddr", "range", ["ethernet", "srcAddr"]),
            # p4c-bm2-ss emits an `optional` key as ternary (BMv2 has no optional kind)
            ("standard_metadata.ingress_port", "ternary",
             ["standard_metadata", "ingress_port"])],
               "range", [(drop, "ingress.drop"), (set_port, "ingress.set_port"),
                         (noaction, "NoAction")], noaction, "ingress.tiny"),
        _table(3, "ingress.tiny", [("hdr.ethernet.etherType", "exact",
                                    ["ethernet", "etherType"])],
               "exact", [(set_port, "ingress.set_port"), (noaction, "NoAction")],
               noaction, None, size=2, const_default=True),
        _table(4, "tbl_packet_out_path", [], "exact",
               [(po_path, "ingress.packet_out_path")], po_path, None, const_default=True),
        _table(5, "tbl_count_port", [], "exact", [(count_port, "ingress.count_port")],
               count_port, "ingress.fwd", const_default=True),
    ]
    egress_tables = [
        _table(6, "tbl_add_packet_in", [], "exact", [(add_pin, "egress.add_packet_in")],
               add_pin, None, const_default=True),
    ]
    return {
        "header_types": [
            {"name": "scalars_0", "id": 0, "fields": []},
            {"name": "standard_metadata", "id": 1, "fields": _STANDARD_METADATA},
            {"name": "packet_out_t", "id": 2,
             "fields": [["egress_port", 9, False], ["_pad", 7, False]]},
            {"name": "packet_in_t", "id": 3,
             "fields": [["ingress_port", 9, False], ["reason", 8, False], ["_pad", 7, False]]},
            {"name": "ethernet_t", "id": 4,
             "fields": [["dstAddr", 48, False], ["srcAddr", 48, False],
                        ["etherType", 16, False]]},
        ],
        "headers": [
            {"name": "scalars", "id": 0, "header_type": "scalars_0", "metadata": True,
             "pi_omit": True},
            {"name": "standard_metadata", "id": 1, "header_type": "standard_metadata",
             "metadata": True, "pi_omit": True},
            {"name": "packet_out", "id": 2, "header_type": "packet_out_t", "metadata": False,
             "pi_omit": True},
            {"name": "packet_in", "id": 3, "header_type": "packet_in_t", "metadata": False,
             "pi_omit": True},
            {"name": "ethernet", "id": 4, "header_type": "ethernet_t", "metadata": False,
             "pi_omit": True},
        ],
        "header_stacks": [], "header_union_types": [], "header_unions": [],
        "header_union_stacks": [], "field_lists": [],
        "errors": [["NoError", 0], ["PacketTooShort", 1], ["NoMatch", 2],
                   ["StackOutOfBounds", 3], ["HeaderTooShort", 4], ["ParserTimeout", 5],
                   ["ParserInvalidArgument", 6]],
        "enums": [],
        "parsers": [{
            "name": "parser", "id": 0, "init_state": "start",
            "parse_states": [
                {"name": "start", "id": 0, "parser_ops": [],
                 "transitions": [
                     {"type": "hexstr", "value": _hexstr(CPU_PORT, 2), "mask": None,
                      "next_state": "parse_packet_out"},
                     {"type": "default", "value": None, "mask": None,
                      "next_state": "parse_ethernet"}],
                 "transition_key": [_field("standard_metadata", "ingress_port")]},
                {"name": "parse_packet_out", "id": 1,
                 "parser_ops": [{"parameters": [{"type": "regular", "value": "packet_out"}],
                                 "op": "extract"}],
                 "transitions": [{"type": "default", "value": None, "mask": None,
                                  "next_state": "parse_ethernet"}],
                 "transition_key": []},
                {"name": "parse_ethernet", "id": 2,
                 "parser_ops": [{"parameters": [{"type": "regular", "value": "ethernet"}],
                                 "op": "extract"}],
                 "transitions": [{"type": "default", "value": None, "mask": None,
                                  "next_state": None}],
                 "transition_key": []},
            ]}],
        "parse_vsets": [],
        "deparsers": [{"name": "deparser", "id": 0, "order": ["packet_in", "ethernet"],
                       "primitives": []}],
        "meter_arrays": [],
        "counter_arrays": [
            {"name": "ingress.fwd_counter", "id": 0, "is_direct": True,
             "binding": "ingress.fwd"},
            {"name": "ingress.port_counter", "id": 1, "size": 512, "is_direct": False},
        ],
        "register_arrays": [{"name": "ingress.reg", "id": 0, "size": 16, "bitwidth": 32}],
        "calculations": [], "learn_lists": [], "actions": actions,
        "pipelines": [
            {"name": "ingress", "id": 0, "init_table": "node_2", "tables": ingress_tables,
             "action_profiles": [],
             "conditionals": [{
                 "name": "node_2", "id": 0,
                 "expression": {"type": "expression", "value": {
                     "op": "d2b", "left": None,
                     "right": _field("packet_out", "$valid$")}},
                 "true_next": "tbl_packet_out_path", "false_next": "tbl_count_port"}]},
            {"name": "egress", "id": 1, "init_table": "node_e", "tables": egress_tables,
             "action_profiles": [],
             "conditionals": [{
                 "name": "node_e", "id": 1,
                 "expression": {"type": "expression", "value": {
                     "op": "==", "left": _field("standard_metadata", "egress_port"),
                     "right": _hex(CPU_PORT)}},
                 "true_next": "tbl_add_packet_in", "false_next": None}]},
        ],
        "checksums": [], "force_arith": [], "extern_instances": [], "field_aliases": [],
        "program": "p4rt_sample.p4",
        "__meta__": {"version": [2, 23], "compiler": "hand-written (p4c-bm2-ss format)"},
    }


def device_config() -> bytes:
    return json.dumps(bmv2_json()).encode()


def p4info() -> p4info_pb2.P4Info:
    return text_format.Parse(P4INFO_TEXT, p4info_pb2.P4Info())
