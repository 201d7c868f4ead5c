"""P4Info index: names <-> ids, bitwidths, and P4Runtime canonical bytestrings.

Every id the controller sends is resolved here from the P4Info the switch runs, never
hard-coded. Names may be given fully qualified ("ScitagsIngress.l2_forward") or by any
unambiguous dotted suffix ("l2_forward"), like p4runtime-shell does.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2


class P4InfoError(LookupError):
    """A name or id the P4Info does not have, or a value that does not fit; names the cause."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class MatchFieldInfo:
    id: int
    name: str
    bitwidth: int
    match_type: str  # "exact" | "lpm" | "ternary" | "range" | "optional"


@dataclass(frozen=True)
class ParamInfo:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True)
class ActionInfo:
    id: int
    name: str
    params: tuple[ParamInfo, ...]

    def param(self, name: str) -> ParamInfo:
        for p in self.params:
            if p.name == name:
                return p
        raise P4InfoError(f"action {self.name} has no parameter {name!r} "
                          f"(has {', '.join(p.name for p in self.params) or 'none'})")


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str
    match_fields: tuple[MatchFieldInfo, ...]
    action_ids: tuple[int, ...]
    direct_counter_id: int | None
    supports_idle_timeout: bool
    size: int
    needs_priority: bool = field(default=False)

    def field(self, name: str) -> MatchFieldInfo:
        for f in self.match_fields:
            if f.name == name:
                return f
        raise P4InfoError(f"table {self.name} has no match field {name!r} "
                          f"(has {', '.join(f.name for f in self.match_fields)})")

    def field_by_id(self, field_id: int) -> MatchFieldInfo:
        for f in self.match_fields:
            if f.id == field_id:
                return f
        raise P4InfoError(f"table {self.name} has no match field id {field_id}")


@dataclass(frozen=True)
class CounterInfo:
    id: int
    name: str
    size: int
    unit: str  # "BYTES" | "PACKETS" | "BOTH" | "UNSPECIFIED"


_MATCH_TYPES = {
    p4info_pb2.MatchField.EXACT: "exact",
    p4info_pb2.MatchField.LPM: "lpm",
    p4info_pb2.MatchField.TERNARY: "ternary",
    p4info_pb2.MatchField.RANGE: "range",
    p4info_pb2.MatchField.OPTIONAL: "optional",
}


def encode(value: int, bitwidth: int) -> bytes:
    """Canonical P4Runtime bytestring: big-endian, no leading zero bytes (0 -> b'\\x00')."""
    if value < 0 or value >= (1 << bitwidth):
        raise P4InfoError(f"value {value} does not fit in {bitwidth} bits")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big")


def load_p4info(path: str | Path) -> p4info_pb2.P4Info:
    """A P4Info from a text (.txt/.txtpb/.pb.txt) or binary (.bin/.pb) file."""
    path = Path(path)
    data = path.read_bytes()
    msg = p4info_pb2.P4Info()
    if path.suffix in (".bin", ".pb") and not path.name.endswith(".pb.txt"):
        msg.ParseFromString(data)
    else:
        text_format.Parse(data.decode(), msg, allow_unknown_field=True)
    return msg


class P4InfoIndex:
    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info
        self.tables: dict[str, TableInfo] = {}
        self.actions: dict[str, ActionInfo] = {}
        self.counters: dict[str, CounterInfo] = {}
        self.direct_counters: dict[str, CounterInfo] = {}
        self.packet_metadata: dict[str, dict[str, ParamInfo]] = {}  # "packet_in" -> fields
        self._by_id: dict[int, object] = {}
        for a in p4info.actions:
            info = ActionInfo(a.preamble.id, a.preamble.name,
                              tuple(ParamInfo(p.id, p.name, p.bitwidth) for p in a.params))
            self._add(self.actions, info)
        for c in p4info.counters:
            self._add(self.counters, CounterInfo(c.preamble.id, c.preamble.name, c.size,
                                                 p4info_pb2.CounterSpec.Unit.Name(c.spec.unit)))
        for c in p4info.direct_counters:
            self._add(self.direct_counters, CounterInfo(
                c.preamble.id, c.preamble.name, 0, p4info_pb2.CounterSpec.Unit.Name(c.spec.unit)))
        direct_ids = {c.id for c in self.direct_counters.values()}
        for t in p4info.tables:
            fields = tuple(MatchFieldInfo(m.id, m.name, m.bitwidth,
                                          _MATCH_TYPES.get(m.match_type, "unspecified"))
                           for m in t.match_fields)
            dc = next((r for r in t.direct_resource_ids if r in direct_ids), None)
            info = TableInfo(
                t.preamble.id, t.preamble.name, fields,
                tuple(r.id for r in t.action_refs), dc,
                t.idle_timeout_behavior == p4info_pb2.Table.NOTIFY_CONTROL, t.size,
                any(f.match_type in ("ternary", "range", "optional") for f in fields))
            self._add(self.tables, info)
        for m in p4info.controller_packet_metadata:
            self.packet_metadata[m.preamble.name] = {
                f.name: ParamInfo(f.id, f.name, f.bitwidth) for f in m.metadata}

    @classmethod
    def from_file(cls, path: str | Path) -> "P4InfoIndex":
        return cls(load_p4info(path))

    def _add(self, kind: dict, info) -> None:
        kind[info.name] = info
        self._by_id[info.id] = info

    # ---- lookups ----
    @staticmethod
    def _resolve(kind: dict, name: str, what: str):
        if name in kind:
            return kind[name]
        matches = [v for k, v in kind.items() if k.endswith("." + name)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise P4InfoError(f"the P4Info has no {what} named {name!r}")
        raise P4InfoError(f"{what} name {name!r} is ambiguous: "
                          f"{', '.join(sorted(m.name for m in matches))}")

    def table(self, name: str) -> TableInfo:
        return self._resolve(self.tables, name, "table")

    def action(self, name: str) -> ActionInfo:
        return self._resolve(self.actions, name, "action")

    def counter(self, name: str) -> CounterInfo:
        return self._resolve(self.counters, name, "counter")

    def direct_counter(self, name: str) -> CounterInfo:
        return self._resolve(self.direct_counters, name, "direct counter")

    def by_id(self, obj_id: int):
        try:
            return self._by_id[obj_id]
        except KeyError:
            raise P4InfoError(f"the P4Info has no object with id {obj_id}") from None

    def packet_field(self, header: str, name: str) -> ParamInfo:
        try:
            return self.packet_metadata[header][name]
        except KeyError:
            raise P4InfoError(f"the P4Info has no {header} metadata field {name!r}") from None

    def fingerprint(self) -> str:
        """Stable digest of the P4Info (deterministic serialization)."""
        return hashlib.sha256(self.p4info.SerializeToString(deterministic=True)).hexdigest()
