"""P4Info for a BMv2 JSON program, derived from the JSON (what p4c would emit beside it).

PI (BMv2's P4Runtime layer) maps P4Info objects to BMv2 objects by name, so a P4Info
whose names, key order and widths follow the JSON lets simple_switch_grpc run programs
this test suite builds by hand.
"""
from __future__ import annotations

from p4.config.v1 import p4info_pb2

ACTION, TABLE, COUNTER, DIRECT_COUNTER, REGISTER = 0x01, 0x02, 0x12, 0x13, 0x16
MATCH = {"exact": p4info_pb2.MatchField.EXACT, "lpm": p4info_pb2.MatchField.LPM,
         "ternary": p4info_pb2.MatchField.TERNARY, "range": p4info_pb2.MatchField.RANGE,
         "valid": p4info_pb2.MatchField.EXACT}


def _id(kind: int, index: int) -> int:
    return (kind << 24) | (index + 1)


class P4InfoIds:
    """Name -> P4Runtime id maps for one generated P4Info."""

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        self.direct_counters: dict[str, int] = {}  # by table name
        self.registers: dict[str, int] = {}
        self.params: dict[str, list[int]] = {}


def generate(doc: dict) -> tuple[p4info_pb2.P4Info, P4InfoIds]:
    info = p4info_pb2.P4Info()
    info.pkg_info.arch = "v1model"
    ids = P4InfoIds()
    widths = {}
    types = {t["name"]: t for t in doc["header_types"]}
    for h in doc["headers"]:
        for f in types[h["header_type"]]["fields"]:
            widths[(h["name"], f[0])] = f[1]
    action_ids: dict[int, int] = {}
    for i, a in enumerate(doc["actions"]):
        if a["name"] in ids.actions:
            action_ids[a["id"]] = ids.actions[a["name"]]
            continue
        pa = info.actions.add()
        pa.preamble.id = _id(ACTION, i)
        pa.preamble.name = pa.preamble.alias = a["name"]
        for j, rd in enumerate(a.get("runtime_data", [])):
            prm = pa.params.add()
            prm.id, prm.name, prm.bitwidth = j + 1, rd["name"], rd["bitwidth"]
        ids.actions[a["name"]] = pa.preamble.id
        ids.params[a["name"]] = [p.id for p in pa.params]
        action_ids[a["id"]] = pa.preamble.id
    tables = [t for p in doc["pipelines"] for t in p["tables"]]
    counters = {c["binding"]: c for c in doc.get("counter_arrays", []) if c.get("is_direct")}
    for i, t in enumerate(tables):
        pt = info.tables.add()
        pt.preamble.id = _id(TABLE, i)
        pt.preamble.name = pt.preamble.alias = t["name"]
        for j, k in enumerate(t["key"]):
            mf = pt.match_fields.add()
            mf.id, mf.name = j + 1, k.get("name") or ".".join(k["target"])
            mf.bitwidth = 1 if k["match_type"] == "valid" else widths[tuple(k["target"])]
            mf.match_type = MATCH[k["match_type"]]
        for aid in t["action_ids"]:
            pt.action_refs.add(id=action_ids[aid])
        pt.size = t["max_size"]
        de = t.get("default_entry")
        if de and de.get("action_const"):
            pt.const_default_action_id = action_ids[de["action_id"]]
        if t.get("entries"):
            pt.is_const_table = True
        if t.get("support_timeout"):
            pt.idle_timeout_behavior = p4info_pb2.Table.NOTIFY_CONTROL
        ids.tables[t["name"]] = pt.preamble.id
        if t["name"] in counters:
            dc = info.direct_counters.add()
            dc.preamble.id = _id(DIRECT_COUNTER, len(info.direct_counters) - 1)
            dc.preamble.name = dc.preamble.alias = counters[t["name"]]["name"]
            dc.spec.unit = p4info_pb2.CounterSpec.BOTH
            dc.direct_table_id = pt.preamble.id
            pt.direct_resource_ids.append(dc.preamble.id)
            ids.direct_counters[t["name"]] = dc.preamble.id
    for i, c in enumerate(c for c in doc.get("counter_arrays", []) if not c.get("is_direct")):
        pc = info.counters.add()
        pc.preamble.id = _id(COUNTER, i)
        pc.preamble.name = pc.preamble.alias = c["name"]
        pc.spec.unit = p4info_pb2.CounterSpec.BOTH
        pc.size = c["size"]
        ids.counters[c["name"]] = pc.preamble.id
    for i, r in enumerate(doc.get("register_arrays", [])):
        pr = info.registers.add()
        pr.preamble.id = _id(REGISTER, i)
        pr.preamble.name = pr.preamble.alias = r["name"]
        pr.type_spec.bitstring.bit.bitwidth = r["bitwidth"]
        pr.size = r["size"]
        ids.registers[r["name"]] = pr.preamble.id
    return info, ids
