"""The P4Info objects as the schema keeps them: immutable, with what the P4Runtime server
needs precomputed per field (limit, byte width, position) so no request scans the P4Info.

Match types, action scopes and counter units keep their p4info_pb2 enum values; kind and
unit_name give the readable names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

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
