"""P4Info indexed by id, built once per pipeline so that no request scans the P4Info."""
from __future__ import annotations

from dataclasses import dataclass, field

from p4.config.v1 import p4info_pb2

from .status import P4RTError, UNKNOWN

MT = p4info_pb2.MatchField
EXACT, LPM, TERNARY, RANGE, OPTIONAL = MT.EXACT, MT.LPM, MT.TERNARY, MT.RANGE, MT.OPTIONAL
MATCH_KIND = {EXACT: "exact", LPM: "lpm", TERNARY: "ternary", RANGE: "range",
              OPTIONAL: "optional"}
SCOPE_TABLE_AND_DEFAULT = p4info_pb2.ActionRef.TABLE_AND_DEFAULT
SCOPE_TABLE_ONLY = p4info_pb2.ActionRef.TABLE_ONLY
SCOPE_DEFAULT_ONLY = p4info_pb2.ActionRef.DEFAULT_ONLY

UNIT_BYTES = p4info_pb2.CounterSpec.BYTES
UNIT_PACKETS = p4info_pb2.CounterSpec.PACKETS
UNIT_BOTH = p4info_pb2.CounterSpec.BOTH


def _nbytes(bitwidth: int) -> int:
    return (bitwidth + 7) // 8


@dataclass(slots=True)
class FieldMeta:
    id: int
    name: str
    bitwidth: int
    match_type: int
    position: int
    limit: int = 0          # 1 << bitwidth: a value must be below it
    nbytes: int = 0

    def __post_init__(self) -> None:
        self.limit = 1 << self.bitwidth
        self.nbytes = _nbytes(self.bitwidth)


@dataclass(slots=True)
class ParamMeta:
    id: int
    name: str
    bitwidth: int
    position: int
    limit: int = 0
    nbytes: int = 0

    def __post_init__(self) -> None:
        self.limit = 1 << self.bitwidth
        self.nbytes = _nbytes(self.bitwidth)


@dataclass(slots=True)
class ActionMeta:
    id: int
    name: str
    params: list[ParamMeta]
    param_by_id: dict[int, ParamMeta]
    zero_args: tuple[bytes, ...]     # one zero bytestring per parameter, declared order


@dataclass(slots=True)
class CounterMeta:
    id: int
    name: str
    unit: int
    size: int
    direct_table_id: int = 0


@dataclass(slots=True)
class RegisterMeta:
    id: int
    name: str
    size: int
    bitwidth: int


@dataclass(slots=True)
class TableMeta:
    id: int
    name: str
    fields: list[FieldMeta]
    field_by_id: dict[int, FieldMeta]
    actions: dict[int, int]            # action id -> ActionRef scope
    need_priority: bool
    size: int
    const_default_action_id: int
    supports_idle_timeout: bool
    is_const: bool
    implementation_id: int
    direct_counter: CounterMeta | None = None
    direct_meter_id: int = 0


@dataclass(slots=True)
class ControllerHeader:
    id: int
    name: str
    fields: list[tuple[int, str, int]]   # (metadata id, name, bitwidth), header order
    nbytes: int = 0
    nbits: int = 0


@dataclass
class P4InfoIndex:
    p4info: p4info_pb2.P4Info
    tables: dict[int, TableMeta] = field(default_factory=dict)
    actions: dict[int, ActionMeta] = field(default_factory=dict)
    counters: dict[int, CounterMeta] = field(default_factory=dict)
    direct_counters: dict[int, CounterMeta] = field(default_factory=dict)
    registers: dict[int, RegisterMeta] = field(default_factory=dict)
    meters: set[int] = field(default_factory=set)
    direct_meters: set[int] = field(default_factory=set)
    action_profiles: set[int] = field(default_factory=set)
    action_by_name: dict[str, ActionMeta] = field(default_factory=dict)
    packet_in: ControllerHeader | None = None
    packet_out: ControllerHeader | None = None

    @classmethod
    def build(cls, p4info: p4info_pb2.P4Info) -> "P4InfoIndex":
        """Index a P4Info; inconsistent ones raise P4RTError(UNKNOWN) as PI's import does."""
        idx = cls(p4info)
        seen: set[int] = set()

        def claim(p4_id: int, name: str) -> None:
            if p4_id == 0 or p4_id in seen:
                raise P4RTError(UNKNOWN, f"Error when importing p4info: bad or duplicate id "
                                         f"{p4_id:#x} ({name!r})")
            seen.add(p4_id)

        for a in p4info.actions:
            claim(a.preamble.id, a.preamble.name)
            params = [ParamMeta(p.id, p.name, p.bitwidth, i) for i, p in enumerate(a.params)]
            meta = ActionMeta(a.preamble.id, a.preamble.name, params,
                              {p.id: p for p in params},
                              tuple(bytes(p.nbytes) for p in params))
            idx.actions[meta.id] = meta
            idx.action_by_name[meta.name] = meta
        for c in p4info.counters:
            claim(c.preamble.id, c.preamble.name)
            idx.counters[c.preamble.id] = CounterMeta(c.preamble.id, c.preamble.name,
                                                      c.spec.unit, c.size)
        for c in p4info.direct_counters:
            claim(c.preamble.id, c.preamble.name)
            idx.direct_counters[c.preamble.id] = CounterMeta(
                c.preamble.id, c.preamble.name, c.spec.unit, 0, c.direct_table_id)
        for m in p4info.meters:
            claim(m.preamble.id, m.preamble.name)
            idx.meters.add(m.preamble.id)
        for m in p4info.direct_meters:
            claim(m.preamble.id, m.preamble.name)
            idx.direct_meters.add(m.preamble.id)
        for ap in p4info.action_profiles:
            claim(ap.preamble.id, ap.preamble.name)
            idx.action_profiles.add(ap.preamble.id)
        for r in p4info.registers:
            claim(r.preamble.id, r.preamble.name)
            bw = r.type_spec.bitstring.bit.bitwidth or r.type_spec.bitstring.int.bitwidth
            idx.registers[r.preamble.id] = RegisterMeta(r.preamble.id, r.preamble.name,
                                                        r.size, bw)
        for t in p4info.tables:
            claim(t.preamble.id, t.preamble.name)
            fields = [FieldMeta(mf.id, mf.name, mf.bitwidth, mf.match_type, i)
                      for i, mf in enumerate(t.match_fields)]
            for f in fields:
                if f.match_type not in MATCH_KIND:
                    raise P4RTError(UNKNOWN, f"Error when importing p4info: table "
                                             f"{t.preamble.name!r} field {f.name!r} has an "
                                             f"unsupported match type")
            actions: dict[int, int] = {}
            for ref in t.action_refs:
                if ref.id not in idx.actions:
                    raise P4RTError(UNKNOWN, f"Error when importing p4info: table "
                                             f"{t.preamble.name!r} refers to unknown action "
                                             f"{ref.id:#x}")
                actions[ref.id] = ref.scope
            meta = TableMeta(
                id=t.preamble.id, name=t.preamble.name, fields=fields,
                field_by_id={f.id: f for f in fields}, actions=actions,
                need_priority=any(f.match_type in (TERNARY, RANGE, OPTIONAL) for f in fields),
                size=t.size, const_default_action_id=t.const_default_action_id,
                supports_idle_timeout=(t.idle_timeout_behavior
                                       == p4info_pb2.Table.NOTIFY_CONTROL),
                is_const=t.is_const_table, implementation_id=t.implementation_id)
            for res_id in t.direct_resource_ids:
                if res_id in idx.direct_counters:
                    meta.direct_counter = idx.direct_counters[res_id]
                elif res_id in idx.direct_meters:
                    meta.direct_meter_id = res_id
            idx.tables[meta.id] = meta
        for hdr in p4info.controller_packet_metadata:
            claim(hdr.preamble.id, hdr.preamble.name)
            fields = [(m.id, m.name, m.bitwidth) for m in hdr.metadata]
            nbits = sum(bw for _, _, bw in fields)
            ch = ControllerHeader(hdr.preamble.id, hdr.preamble.name, fields,
                                  _nbytes(nbits), nbits)
            # PI picks the headers by their preamble name, which is the annotation value.
            if hdr.preamble.name == "packet_in":
                idx.packet_in = ch
            elif hdr.preamble.name == "packet_out":
                idx.packet_out = ch
        return idx
