"""The P4Info objects as the schema keeps them: immutable, with what the P4Runtime server
needs precomputed per field (limit, byte width, position) so no request scans the P4Info.
Below them, the P4Runtime entities a controller writes and reads (TableEntry, CloneSession,
MulticastGroup, CounterEntry) with their diff keys; p4schema.codec encodes and decodes them.

Match types, action scopes and counter units keep their p4info_pb2 enum values; kind and
unit_name give the readable names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from p4.config.v1 import p4info_pb2

from .errors import UnknownName

_MF = p4info_pb2.MatchField
EXACT, LPM, TERNARY, RANGE, OPTIONAL = _MF.EXACT, _MF.LPM, _MF.TERNARY, _MF.RANGE, _MF.OPTIONAL
MATCH_KIND = {EXACT: "exact", LPM: "lpm", TERNARY: "ternary", RANGE: "range",
              OPTIONAL: "optional"}

SCOPE_TABLE_AND_DEFAULT = p4info_pb2.ActionRef.TABLE_AND_DEFAULT
SCOPE_TABLE_ONLY = p4info_pb2.ActionRef.TABLE_ONLY
SCOPE_DEFAULT_ONLY = p4info_pb2.ActionRef.DEFAULT_ONLY

UNIT_UNSPECIFIED = p4info_pb2.CounterSpec.UNSPECIFIED
UNIT_BYTES = p4info_pb2.CounterSpec.BYTES
UNIT_PACKETS = p4info_pb2.CounterSpec.PACKETS
UNIT_BOTH = p4info_pb2.CounterSpec.BOTH

# eq=False: objects compare by identity (they hold dicts, and one P4Info id is one object).
_frozen = dataclass(frozen=True, slots=True, eq=False)


def _named(items: tuple, name: str, missing: Callable[[], str]) -> Any:
    """The item called name; UnknownName(missing()) when there is none."""
    for x in items:
        if x.name == name:
            return x
    raise UnknownName(missing())


@_frozen
class MatchField:
    id: int
    name: str
    bitwidth: int
    match_type: int          # EXACT, LPM, ...
    kind: str                # "exact", "lpm", ...
    position: int            # index in the table's key
    limit: int               # 1 << bitwidth: a value must be below it
    nbytes: int


@_frozen
class Param:
    """An action parameter, or a field of a controller packet header."""
    id: int
    name: str
    bitwidth: int
    position: int
    limit: int
    nbytes: int


@_frozen
class Action:
    id: int
    name: str
    params: tuple[Param, ...]
    param_by_id: dict[int, Param]
    zero_args: tuple[bytes, ...]     # one zero bytestring per parameter, declared order

    def param(self, name: str) -> Param:
        return _named(self.params, name, lambda: (
            f"action {self.name} has no parameter {name!r} "
            f"(has {', '.join(p.name for p in self.params) or 'none'})"))


@_frozen
class Counter:
    """An indirect counter (size cells) or a direct one (size 0, direct_table_id set)."""
    id: int
    name: str
    unit: int
    size: int
    direct_table_id: int = 0

    @property
    def unit_name(self) -> str:      # "BYTES" | "PACKETS" | "BOTH" | "UNSPECIFIED"
        return p4info_pb2.CounterSpec.Unit.Name(self.unit)


@_frozen
class Register:
    id: int
    name: str
    size: int
    bitwidth: int
    limit: int               # 1 << bitwidth


@_frozen
class Table:
    id: int
    name: str
    match_fields: tuple[MatchField, ...]
    field_by_id: dict[int, MatchField]
    actions: dict[int, int]            # action id -> ActionRef scope, P4Info order
    needs_priority: bool               # a ternary, range or optional field
    size: int
    const_default_action_id: int
    supports_idle_timeout: bool
    is_const: bool
    implementation_id: int             # action profile / selector, 0 for direct tables
    direct_counter: Counter | None
    direct_meter_id: int

    @property
    def action_ids(self) -> tuple[int, ...]:
        return tuple(self.actions)

    def field(self, name: str) -> MatchField:
        return _named(self.match_fields, name, lambda: (
            f"table {self.name} has no match field {name!r} "
            f"(has {', '.join(f.name for f in self.match_fields)})"))

    def field_with_id(self, field_id: int) -> MatchField:
        try:
            return self.field_by_id[field_id]
        except KeyError:
            raise UnknownName(f"table {self.name} has no match field id {field_id}") from None


@_frozen
class ControllerHeader:
    """A @controller_header (packet_in / packet_out): fields packed in P4Info order."""
    id: int
    name: str
    fields: tuple[Param, ...]
    nbits: int
    nbytes: int

    def field(self, name: str) -> Param:
        return _named(self.fields, name,
                      lambda: f"the P4Info has no {self.name} metadata field {name!r}")


# ======================= P4Runtime entities (what is written to and read from a switch) ===
# Typed, immutable and hashable, named as in the P4Info (tables and actions by full name,
# match fields and parameters by their short names). Each has `key` (identity for a
# read-diff-write: two entities with the same key are "the same entry") and `value` (what
# a MODIFY changes). EntityCodec turns them into p4runtime_pb2.Entity messages and back,
# checked against the P4Info index; diff() says what to write to make `have` become `want`.

@dataclass(frozen=True, slots=True)
class Ternary:
    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class Lpm:
    """An LPM match: the value with its bits beyond prefix_len zero (prefix 0 = don't care:
    leave the field out)."""
    value: int
    prefix_len: int



class Key(tuple):
    """A diff key: a tuple that hashes once (65,536 entries are diffed per pass)."""

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            self._hash = h = tuple.__hash__(self)
            return h


def _items(d: Mapping | Iterable | None) -> tuple:
    if not d:
        return ()
    return tuple(sorted(d.items() if isinstance(d, Mapping) else d))


@dataclass(frozen=True, slots=True)
class TableEntry:
    """A (non-default) table entry. A ternary field with mask 0 is "don't care": leave it
    out of `match` (a server omits it on read too)."""
    table: str
    match: tuple  # ((field name, int | Ternary), ...) sorted by field name
    action: str | None = None
    params: tuple = ()  # ((param name, int), ...) sorted by name
    priority: int = 0
    idle_timeout_ns: int = 0
    key: Key = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = Key(("table_entry", self.table, self.match, self.priority))
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "_hash", hash((key, self.action, self.params, self.idle_timeout_ns)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def of(cls, table: str, match: Mapping, action: str | None = None,
           params: Mapping | None = None, priority: int = 0,
           idle_timeout_ns: int = 0) -> "TableEntry":
        kept = {k: v for k, v in match.items() if not (isinstance(v, Ternary) and v.mask == 0)
                and not (isinstance(v, Lpm) and v.prefix_len == 0)}
        return cls(table, _items(kept), action, _items(params), priority, idle_timeout_ns)

    @property
    def value(self) -> tuple:
        return (self.action, self.params, self.idle_timeout_ns)

    def field(self, name: str, default: Any = None) -> Any:
        for k, v in self.match:
            if k == name:
                return v
        return default

    def param(self, name: str, default: Any = None) -> Any:
        for k, v in self.params:
            if k == name:
                return v
        return default


@dataclass(frozen=True, slots=True)
class CloneSession:
    session_id: int
    replicas: tuple = ()  # ((egress port, instance), ...) sorted
    class_of_service: int = 0
    packet_length_bytes: int = 0

    @classmethod
    def of(cls, session_id: int, replicas: Iterable[tuple[int, int]] = (), **kw) -> "CloneSession":
        return cls(session_id, tuple(sorted(replicas)), **kw)

    @property
    def key(self) -> tuple:
        return ("clone_session", self.session_id)

    @property
    def value(self) -> tuple:
        return (self.replicas, self.class_of_service, self.packet_length_bytes)


@dataclass(frozen=True, slots=True)
class MulticastGroup:
    group_id: int
    replicas: tuple = ()  # ((egress port, instance), ...) sorted

    @classmethod
    def of(cls, group_id: int, replicas: Iterable[tuple[int, int]] = ()) -> "MulticastGroup":
        return cls(group_id, tuple(sorted(replicas)))

    @property
    def key(self) -> tuple:
        return ("multicast_group", self.group_id)

    @property
    def value(self) -> tuple:
        return (self.replicas,)


@dataclass(frozen=True, slots=True)
class CounterEntry:
    """One cell of an indirect counter (index None: every cell, for a read)."""
    counter: str
    index: int | None
    packets: int = 0
    bytes: int = 0

    @property
    def key(self) -> tuple:
        return ("counter_entry", self.counter, self.index)

    @property
    def value(self) -> tuple:
        return (self.packets, self.bytes)


Entity = TableEntry | CloneSession | MulticastGroup | CounterEntry


@dataclass
class Plan:
    """The writes that turn `have` into `want`: deletes first (so a key re-added with
    another value cannot collide), then modifies, then inserts."""
    delete: list = field(default_factory=list)  # entities as read (their keys identify them)
    modify: list = field(default_factory=list)  # wanted entities
    insert: list = field(default_factory=list)  # wanted entities

    def __bool__(self) -> bool:
        return bool(self.delete or self.modify or self.insert)

    def __len__(self) -> int:
        return len(self.delete) + len(self.modify) + len(self.insert)


def diff(want: Iterable, have: Iterable) -> Plan:
    """One read-diff-write step for any entities with `key` and `value` (keys unique per
    side). Entities equal on both sides are set aside first (one set operation: a table
    in sync costs no per-entry Python work beyond hashing)."""
    want_set, have_set = set(want), set(have)
    if want_set == have_set:
        return Plan()
    wanted = {e.key: e for e in want_set - have_set}
    plan = Plan()
    seen = set()
    for e in have_set - want_set:
        k = e.key
        seen.add(k)
        w = wanted.get(k)
        if w is None:
            plan.delete.append(e)
        elif w.value != e.value:
            plan.modify.append(w)
    plan.insert = [w for k, w in wanted.items() if k not in seen]
    return plan
