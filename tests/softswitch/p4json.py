"""A small builder for BMv2 JSON (v1model) programs, shaped as p4c-bm2-ss emits them.

Tests build the exact constructs they exercise, before (and independently of) p4c.
"""
from __future__ import annotations

import copy
from typing import Any

# standard_metadata as current p4c emits it for v1model
STANDARD_METADATA = [
    ["ingress_port", 9, False], ["egress_spec", 9, False], ["egress_port", 9, False],
    ["instance_type", 32, False], ["packet_length", 32, False], ["enq_timestamp", 32, False],
    ["enq_qdepth", 19, False], ["deq_timedelta", 32, False], ["deq_qdepth", 19, False],
    ["ingress_global_timestamp", 48, False], ["egress_global_timestamp", 48, False],
    ["mcast_grp", 16, False], ["egress_rid", 16, False], ["checksum_error", 1, False],
    ["parser_error", 32, False], ["priority", 3, False], ["_padding", 3, False]]
FIELD_ALIASES = [
    ["queueing_metadata.enq_timestamp", ["standard_metadata", "enq_timestamp"]],
    ["queueing_metadata.enq_qdepth", ["standard_metadata", "enq_qdepth"]],
    ["queueing_metadata.deq_timedelta", ["standard_metadata", "deq_timedelta"]],
    ["queueing_metadata.deq_qdepth", ["standard_metadata", "deq_qdepth"]],
    ["intrinsic_metadata.ingress_global_timestamp",
     ["standard_metadata", "ingress_global_timestamp"]],
    ["intrinsic_metadata.egress_global_timestamp",
     ["standard_metadata", "egress_global_timestamp"]],
    ["intrinsic_metadata.mcast_grp", ["standard_metadata", "mcast_grp"]],
    ["intrinsic_metadata.egress_rid", ["standard_metadata", "egress_rid"]],
    ["intrinsic_metadata.priority", ["standard_metadata", "priority"]]]
ERRORS = [["NoError", 0], ["PacketTooShort", 1], ["NoMatch", 2], ["StackOutOfBounds", 3],
          ["HeaderTooShort", 4], ["ParserTimeout", 5], ["ParserInvalidArgument", 6]]

ETHERNET = [("dst", 48), ("src", 48), ("etype", 16)]
IPV4 = [("version", 4), ("ihl", 4), ("dscp", 8), ("total_len", 16), ("ident", 16), ("flags", 3),
        ("frag", 13), ("ttl", 8), ("proto", 8), ("csum", 16), ("src", 32), ("dst", 32)]
IPV6 = [("version", 4), ("tclass", 8), ("flow_label", 20), ("payload_len", 16), ("next_hdr", 8),
        ("hop_limit", 8), ("src", 128), ("dst", 128)]
UDP = [("sport", 16), ("dport", 16), ("len", 16), ("csum", 16)]


# ---- type-value objects -----------------------------------------------------------------
def F(header: str, field: str) -> dict:  # noqa: N802 - reads like the P4 it stands for
    return {"type": "field", "value": [header, field]}


def C(value: int, width: int | None = None) -> dict:  # noqa: N802
    if width is None:
        return {"type": "hexstr", "value": hex(value) if value >= 0 else "-" + hex(-value)}
    return {"type": "hexstr", "value": "0x" + format(value, f"0{(width + 3) // 4}x")}


def P(i: int) -> dict:  # noqa: N802 - action parameter
    return {"type": "runtime_data", "value": i}


def L(i: int) -> dict:  # noqa: N802 - action parameter inside an expression ("local")
    return {"type": "local", "value": i}


def H(header: str) -> dict:  # noqa: N802
    return {"type": "header", "value": header}


def B(v: bool) -> dict:  # noqa: N802
    return {"type": "bool", "value": v}


def E(op: str, left: Any, right: Any, cond: Any = None) -> dict:  # noqa: N802
    v = {"op": op, "left": left, "right": right}
    if cond is not None:
        v["cond"] = cond
    return {"type": "expression", "value": v}


def X(inner: dict) -> dict:  # noqa: N802 - expression wrapper used for primitive params
    return {"type": "expression", "value": inner}


def valid(header: str) -> dict:
    return E("d2b", None, F(header, "$valid$"))


def prim(op: str, *params: Any) -> dict:
    return {"op": op, "parameters": list(params)}


def assign(dst: dict, src: dict) -> dict:
    return prim("assign", dst, src)


def extract(header: str) -> dict:
    return {"op": "extract", "parameters": [{"type": "regular", "value": header}]}


def mark_to_drop() -> dict:
    return prim("mark_to_drop", H("standard_metadata"))


def set_egress(port_param: dict) -> dict:
    return assign(F("standard_metadata", "egress_spec"), port_param)


# ---- program ----------------------------------------------------------------------------
class Program:
    def __init__(self) -> None:
        self.header_types: list[dict] = []
        self.headers: list[dict] = []
        self.header_stacks: list[dict] = []
        self.states: list[dict] = []
        self.actions: list[dict] = []
        self.pipes: dict[str, dict] = {"ingress": self._pipe("ingress", 0),
                                       "egress": self._pipe("egress", 1)}
        self.deparse_order: list[str] = []
        self.counters: list[dict] = []
        self.registers: list[dict] = []
        self.calculations: list[dict] = []
        self.checksums: list[dict] = []
        self.field_lists: list[dict] = []
        self.parse_vsets: list[dict] = []
        self.extra: dict[str, Any] = {}
        self._ids = {"table": 0, "cond": 0, "state": 0}
        self.header_type("scalars_0", [])
        self.headers.append({"name": "scalars", "id": 0, "header_type": "scalars_0",
                             "metadata": True, "pi_omit": True})
        self.header_types.append({"name": "standard_metadata", "id": 1,
                                  "fields": copy.deepcopy(STANDARD_METADATA)})
        self.headers.append({"name": "standard_metadata", "id": 1,
                             "header_type": "standard_metadata", "metadata": True,
                             "pi_omit": True})
        self.action("NoAction", [], [])

    @staticmethod
    def _pipe(name: str, pid: int) -> dict:
        return {"name": name, "id": pid, "init_table": None, "tables": [],
                "action_profiles": [], "conditionals": []}

    def header_type(self, name: str, fields: list[tuple]) -> str:
        self.header_types.append({"name": name, "id": len(self.header_types),
                                  "fields": [[f[0], f[1], f[2] if len(f) > 2 else False]
                                             for f in fields]})
        return name

    def header(self, name: str, fields: list[tuple] | str, metadata: bool = False) -> str:
        htype = fields if isinstance(fields, str) else self.header_type(f"{name}_t", fields)
        self.headers.append({"name": name, "id": len(self.headers), "header_type": htype,
                             "metadata": metadata, "pi_omit": True})
        return name

    def metadata(self, name: str, fields: list[tuple]) -> str:
        return self.header(name, fields, metadata=True)

    def scalar(self, name: str, width: int) -> dict:
        self.header_types[0]["fields"].append([name, width, False])
        return F("scalars", name)

    def stack(self, name: str, htype: str, depth: int) -> str:
        ids = []
        for i in range(depth):
            self.header(f"{name}[{i}]", htype)
            ids.append(self.headers[-1]["id"])
        self.header_stacks.append({"name": name, "id": len(self.header_stacks),
                                   "header_type": htype, "header_ids": ids})
        return name

    def state(self, name: str, ops: list[dict], key: list[dict] | None = None,
              transitions: list[tuple] | None = None) -> None:
        """transitions: (value, mask, next) tuples; value None = default."""
        trans = []
        for value, mask, nxt in transitions or [(None, None, None)]:
            if value is None:
                trans.append({"type": "default", "value": None, "mask": None, "next_state": nxt})
            elif isinstance(value, str) and not value.startswith("0x"):
                trans.append({"type": "parse_vset", "value": value, "mask": mask,
                              "next_state": nxt})
            else:
                trans.append({"type": "hexstr", "value": value, "mask": mask, "next_state": nxt})
        self.states.append({"name": name, "id": self._ids["state"], "parser_ops": ops,
                            "transition_key": key or [], "transitions": trans})
        self._ids["state"] += 1

    def action(self, name: str, params: list[tuple[str, int]], prims: list[dict]) -> int:
        aid = len(self.actions)
        self.actions.append({"name": name, "id": aid,
                             "runtime_data": [{"name": p, "bitwidth": w} for p, w in params],
                             "primitives": prims})
        return aid

    def action_id(self, name: str) -> int:
        return next(a["id"] for a in self.actions if a["name"] == name)

    def table(self, pipe: str, name: str, keys: list[tuple], actions: list[str],
              default: tuple[str, list] = ("NoAction", []), size: int = 1024,
              next_tables: dict | None = None, base_next: str | None = None,
              counters: bool = False, timeout: bool = False, const_default: bool = False,
              entries: list[dict] | None = None) -> str:
        """keys: (match_type, header, field) or (match_type, header, field, mask)."""
        kinds = {k[0] for k in keys}
        mt = ("range" if "range" in kinds else "ternary" if "ternary" in kinds else
              "lpm" if "lpm" in kinds else "exact")
        ids = [self.action_id(a) for a in actions]
        t = {"name": name, "id": self._ids["table"],
             "key": [{"match_type": k[0], "name": f"{k[1]}.{k[2]}",
                      "target": [k[1], k[2]] if k[0] != "valid" else k[1],
                      "mask": k[3] if len(k) > 3 else None} for k in keys],
             "match_type": mt, "type": "simple", "max_size": size, "with_counters": counters,
             "support_timeout": timeout, "direct_meters": None, "action_ids": ids,
             "actions": actions, "base_default_next": base_next,
             "next_tables": next_tables if next_tables is not None else
             {a: base_next for a in actions},
             "default_entry": {"action_id": self.action_id(default[0]),
                               "action_const": const_default,
                               "action_data": [hex(v) for v in default[1]],
                               "action_entry_const": const_default}}
        if entries is not None:
            t["entries"] = entries
        self._ids["table"] += 1
        p = self.pipes[pipe]
        p["tables"].append(t)
        if p["init_table"] is None:
            p["init_table"] = name
        if counters:
            self.counters.append({"name": f"{name}_counter", "id": len(self.counters),
                                  "is_direct": True, "binding": name})
        return name

    def call(self, pipe: str, name: str, action: str, next_node: str | None = None,
             args: list[int] | None = None) -> str:
        """A direct action call, the way p4c emits it: a keyless table with a const default."""
        return self.table(pipe, name, [], [action], default=(action, args or []),
                          base_next=next_node, const_default=True)

    def cond(self, pipe: str, name: str, expr: dict, true_next: str | None,
             false_next: str | None) -> str:
        p = self.pipes[pipe]
        p["conditionals"].append({"name": name, "id": self._ids["cond"], "expression": expr,
                                  "true_next": true_next, "false_next": false_next})
        self._ids["cond"] += 1
        if p["init_table"] is None:
            p["init_table"] = name
        return name

    def init(self, pipe: str, node: str) -> None:
        self.pipes[pipe]["init_table"] = node

    def counter(self, name: str, size: int) -> str:
        self.counters.append({"name": name, "id": len(self.counters), "is_direct": False,
                              "size": size})
        return name

    def register(self, name: str, size: int, width: int) -> str:
        self.registers.append({"name": name, "id": len(self.registers), "size": size,
                               "bitwidth": width})
        return name

    def field_list(self, fid: int, fields: list[tuple[str, str]]) -> int:
        self.field_lists.append({"id": fid, "name": f"fl{fid}",
                                 "elements": [F(h, f) for h, f in fields]})
        return fid

    def calculation(self, name: str, algo: str, inputs: list[dict]) -> str:
        self.calculations.append({"name": name, "id": len(self.calculations), "algo": algo,
                                  "input": inputs})
        return name

    def checksum(self, name: str, target: tuple[str, str], calc: str, cond: dict | None = None,
                 verify: bool = True, update: bool = True) -> None:
        self.checksums.append({"name": name, "id": len(self.checksums), "target": list(target),
                               "type": "generic", "calculation": calc, "verify": verify,
                               "update": update, "if_cond": cond})

    def deparse(self, *headers: str) -> None:
        self.deparse_order = list(headers)

    def _pad_metadata(self) -> None:
        """BMv2 asserts every header type is whole bytes: p4c pads metadata with _padding."""
        meta_types = {h["header_type"] for h in self.headers if h["metadata"]}
        for ht in self.header_types:
            total = sum(f[1] for f in ht["fields"])
            if ht["name"] in meta_types and total % 8:
                ht["fields"].append(["_padding", 8 - total % 8, False])

    def build(self) -> dict:
        self._pad_metadata()
        doc = {
            "header_types": self.header_types, "headers": self.headers,
            "header_stacks": self.header_stacks, "header_union_types": [], "header_unions": [],
            "header_union_stacks": [], "field_lists": self.field_lists, "errors": ERRORS,
            "enums": [],
            "parsers": [{"name": "parser", "id": 0,
                         "init_state": self.states[0]["name"] if self.states else None,
                         "parse_states": self.states}],
            "parse_vsets": self.parse_vsets,
            "deparsers": [{"name": "deparser", "id": 0, "order": self.deparse_order,
                           "primitives": []}],
            "meter_arrays": [], "counter_arrays": self.counters,
            "register_arrays": self.registers, "calculations": self.calculations,
            "learn_lists": [], "actions": self.actions,
            "pipelines": [self.pipes["ingress"], self.pipes["egress"]],
            "checksums": self.checksums, "force_arith": [], "extern_instances": [],
            "field_aliases": FIELD_ALIASES, "program": "test.p4",
            "__meta__": {"version": [2, 23], "compiler": "tests/softswitch/p4json.py"},
        }
        doc.update(self.extra)
        return copy.deepcopy(doc)


def l2_program(with_ipv4: bool = True) -> Program:
    """Ethernet (+ IPv4) parser; ingress table 'fwd' on ethernet.dst -> set_port(port)."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("0x0800", None, "parse_ipv4"), (None, None, None)] if with_ipv4 else None)
    if with_ipv4:
        p.header("ipv4", IPV4)
        p.state("parse_ipv4", [extract("ipv4")])
    p.action("set_port", [("port", 9)], [set_egress(P(0))])
    p.action("drop", [], [mark_to_drop()])
    p.table("ingress", "fwd", [("exact", "ethernet", "dst")], ["set_port", "drop", "NoAction"],
            default=("drop", []))
    p.deparse("ethernet", *(["ipv4"] if with_ipv4 else []))
    return p
