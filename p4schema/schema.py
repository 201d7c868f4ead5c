"""A P4Info, loaded and indexed once: by id (what the P4Runtime server receives) and by
name (what the controller writes), where a name may be fully qualified
("ScitagsIngress.l2_forward") or any unambiguous dotted suffix ("l2_forward"), like
p4runtime-shell resolves them.

Building the index checks the P4Info as PI's import does (non-zero unique ids, known action
references, supported match types) and raises InvalidP4Info otherwise.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Generic, Iterable, TypeVar

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from .bytestrings import nbytes
from .entities import (MATCH_KIND, OPTIONAL, RANGE, TERNARY, Action, ControllerHeader,
                       Counter, MatchField, Param, Register, Table)
from .errors import InvalidP4Info, UnknownName

T = TypeVar("T", Action, Counter, Register, Table)


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


class _Names(Generic[T]):
    """One kind of object by full name and by every dotted suffix of it."""

    def __init__(self, kind: str, objs: Iterable[T]) -> None:
        self.kind = kind
        self.full: dict[str, T] = {}
        self.suffix: dict[str, list[T]] = {}
        for obj in objs:
            self.full[obj.name] = obj
            parts = obj.name.split(".")
            for i in range(1, len(parts)):
                self.suffix.setdefault(".".join(parts[i:]), []).append(obj)

    def resolve(self, name: str) -> T:
        obj = self.full.get(name)
        if obj is not None:
            return obj
        matches = self.suffix.get(name, [])
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UnknownName(f"the P4Info has no {self.kind} named {name!r}")
        raise UnknownName(f"{self.kind} name {name!r} is ambiguous: "
                          f"{', '.join(sorted(m.name for m in matches))}")


def _param(p: p4info_pb2.Action.Param | p4info_pb2.ControllerPacketMetadata.Metadata,
           position: int) -> Param:
    return Param(p.id, p.name, p.bitwidth, position, 1 << p.bitwidth, nbytes(p.bitwidth))


class P4Schema:
    """Read-only index of one P4Info. Dicts by id are public for the server's hot path."""

    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info
        self.tables: dict[int, Table] = {}
        self.actions: dict[int, Action] = {}
        self.counters: dict[int, Counter] = {}
        self.direct_counters: dict[int, Counter] = {}
        self.registers: dict[int, Register] = {}
        self.meters: set[int] = set()
        self.direct_meters: set[int] = set()
        self.action_profiles: set[int] = set()
        self.controller_headers: dict[str, ControllerHeader] = {}
        self._by_id: dict[int, object] = {}
        self._build(p4info)
        for kind in (self.actions, self.counters, self.direct_counters, self.registers,
                     self.tables):
            self._by_id.update(kind)
        self._by_id.update((h.id, h) for h in self.controller_headers.values())
        self._tables = _Names("table", self.tables.values())
        self._actions = _Names("action", self.actions.values())
        self._counters = _Names("counter", self.counters.values())
        self._direct_counters = _Names("direct counter", self.direct_counters.values())
        self._registers = _Names("register", self.registers.values())
        self.action_by_name: dict[str, Action] = self._actions.full
        # PI picks the headers by preamble name, which is the @controller_header value.
        self.packet_in = self.controller_headers.get("packet_in")
        self.packet_out = self.controller_headers.get("packet_out")

    @classmethod
    def from_file(cls, path: str | Path) -> "P4Schema":
        return cls(load_p4info(path))

    # ---- building ----
    def _claim(self, preamble: p4info_pb2.Preamble, obj: object = None) -> None:
        p4_id = preamble.id
        if p4_id == 0 or p4_id in self._by_id:
            raise InvalidP4Info(f"bad or duplicate id {p4_id:#x} ({preamble.name!r})")
        self._by_id[p4_id] = obj      # the typed objects are filled in after the build

    def _build(self, p4info: p4info_pb2.P4Info) -> None:
        for a in p4info.actions:
            self._claim(a.preamble)
            params = tuple(_param(p, i) for i, p in enumerate(a.params))
            action = Action(a.preamble.id, a.preamble.name, params, {p.id: p for p in params},
                            tuple(bytes(p.nbytes) for p in params))
            self.actions[action.id] = action
        for c in p4info.counters:
            self._claim(c.preamble)
            counter = Counter(c.preamble.id, c.preamble.name, c.spec.unit, c.size)
            self.counters[counter.id] = counter
        for c in p4info.direct_counters:
            self._claim(c.preamble)
            counter = Counter(c.preamble.id, c.preamble.name, c.spec.unit, 0, c.direct_table_id)
            self.direct_counters[counter.id] = counter
        for kind, ids in ((p4info.meters, self.meters), (p4info.direct_meters, self.direct_meters),
                          (p4info.action_profiles, self.action_profiles)):
            for m in kind:
                self._claim(m.preamble, m)
                ids.add(m.preamble.id)
        for r in p4info.registers:
            self._claim(r.preamble)
            bw = r.type_spec.bitstring.bit.bitwidth or r.type_spec.bitstring.int.bitwidth
            register = Register(r.preamble.id, r.preamble.name, r.size, bw, 1 << bw)
            self.registers[register.id] = register
        for t in p4info.tables:
            self._claim(t.preamble)
            table = self._table(t)
            self.tables[table.id] = table
        for h in p4info.controller_packet_metadata:
            self._claim(h.preamble)
            fields = tuple(_param(m, i) for i, m in enumerate(h.metadata))
            nbits = sum(f.bitwidth for f in fields)
            header = ControllerHeader(h.preamble.id, h.preamble.name, fields, nbits,
                                      nbytes(nbits))
            self.controller_headers[header.name] = header

    def _table(self, t: p4info_pb2.Table) -> Table:
        name = t.preamble.name
        fields = []
        for i, mf in enumerate(t.match_fields):
            kind = MATCH_KIND.get(mf.match_type)
            if kind is None:
                raise InvalidP4Info(f"table {name!r} field {mf.name!r} has an unsupported "
                                    f"match type")
            fields.append(MatchField(mf.id, mf.name, mf.bitwidth, mf.match_type, kind, i,
                                     1 << mf.bitwidth, nbytes(mf.bitwidth)))
        actions: dict[int, int] = {}
        for ref in t.action_refs:
            if ref.id not in self.actions:
                raise InvalidP4Info(f"table {name!r} refers to unknown action {ref.id:#x}")
            actions[ref.id] = ref.scope
        direct_counter, direct_meter_id = None, 0
        for res_id in t.direct_resource_ids:
            if res_id in self.direct_counters:
                direct_counter = self.direct_counters[res_id]
            elif res_id in self.direct_meters:
                direct_meter_id = res_id
        return Table(
            id=t.preamble.id, name=name, match_fields=tuple(fields),
            field_by_id={f.id: f for f in fields}, actions=actions,
            needs_priority=any(f.match_type in (TERNARY, RANGE, OPTIONAL) for f in fields),
            size=t.size, const_default_action_id=t.const_default_action_id,
            supports_idle_timeout=t.idle_timeout_behavior == p4info_pb2.Table.NOTIFY_CONTROL,
            is_const=t.is_const_table, implementation_id=t.implementation_id,
            direct_counter=direct_counter, direct_meter_id=direct_meter_id)

    # ---- lookups by name ----
    def table(self, name: str) -> Table:
        return self._tables.resolve(name)

    def action(self, name: str) -> Action:
        return self._actions.resolve(name)

    def counter(self, name: str) -> Counter:
        return self._counters.resolve(name)

    def direct_counter(self, name: str) -> Counter:
        return self._direct_counters.resolve(name)

    def register(self, name: str) -> Register:
        return self._registers.resolve(name)

    def controller_header(self, name: str) -> ControllerHeader:
        try:
            return self.controller_headers[name]
        except KeyError:
            raise UnknownName(f"the P4Info has no controller header {name!r}") from None

    def packet_field(self, header: str, name: str) -> Param:
        """A field of a controller header: packet_field("packet_in", "reason")."""
        return self.controller_header(header).field(name)

    # ---- lookups by id ----
    def by_id(self, p4_id: int) -> object:
        """The object with this id: Table, Action, Counter, Register, ControllerHeader, or
        the P4Info message of a meter / action profile."""
        try:
            return self._by_id[p4_id]
        except KeyError:
            raise UnknownName(f"the P4Info has no object with id {p4_id}") from None

    def fingerprint(self) -> str:
        """Stable digest of the P4Info (deterministic serialization)."""
        return hashlib.sha256(self.p4info.SerializeToString(deterministic=True)).hexdigest()
