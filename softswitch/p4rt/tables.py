"""Table entries: P4Runtime TableEntry <-> engine calls, entry identity, PI's checks.

The server owns entry identity: each table maps a normalised match key (field values as
integers, in P4Info order, plus the priority) to the engine's entry handle and to what
P4Runtime reads back (action, controller metadata, idle timeout). The checks and their
order follow PI's DeviceMgr (construct_match_key, validate_action, table_insert/modify/
delete), so the first error found is the one BMv2 reports.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from p4.v1 import p4runtime_pb2 as p4r

from p4schema import (EXACT, LPM, OPTIONAL, RANGE, SCOPE_DEFAULT_ONLY, SCOPE_TABLE_ONLY,
                      TERNARY, UNIT_BYTES, UNIT_PACKETS, Action, P4Schema, Table,
                      canonical, canonical_bytes, value_of)

from .status import (ALREADY_EXISTS, INTERNAL, INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
                     UNIMPLEMENTED, UNKNOWN, P4RTError, invalid_id)

INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE

class Entry:
    """One installed entry, as the server remembers it."""

    __slots__ = ("handle", "key", "action_id", "args", "controller_metadata", "metadata",
                 "idle_timeout_ns")

    def __init__(self, handle: int, key: tuple, action_id: int, args: list[bytes],
                 controller_metadata: int, metadata: bytes, idle_timeout_ns: int) -> None:
        self.handle = handle
        self.key = key
        self.action_id = action_id
        self.args = args
        self.controller_metadata = controller_metadata
        self.metadata = metadata
        self.idle_timeout_ns = idle_timeout_ns


class TableState:
    __slots__ = ("meta", "entries", "ageing", "default_controller_metadata",
                 "default_metadata")

    def __init__(self, meta: Table) -> None:
        self.meta = meta
        self.entries: dict[tuple, Entry] = {}
        self.ageing: dict[tuple, Entry] = {}       # entries with idle_timeout_ns > 0
        self.default_controller_metadata = 0
        self.default_metadata = b""


def _missing(meta_field: Any) -> Any:
    """Key element of an omitted (don't care) field, as PI stores it."""
    mt = meta_field.match_type
    if mt == RANGE:
        return (0, meta_field.limit - 1)
    if mt == OPTIONAL:
        return None
    return (0, 0)     # lpm: value 0 / prefix 0, ternary: value 0 / mask 0


def build_match(meta: Table, te: p4r.TableEntry) -> tuple[tuple, list]:
    """(identity key, engine match list) for a non-default entry; PI's construct_match_key."""
    matches = te.match
    n = len(matches)
    fields = meta.match_fields
    if n > len(fields):
        raise P4RTError(INVALID_ARGUMENT, "Too many fields in match key")
    by_id: dict[int, Any] = {}
    for fm in matches:
        by_id.setdefault(fm.field_id, fm)     # PI's find_mf takes the first one
    key: list[Any] = []
    eng: list[Any] = []
    matched = 0
    for f in fields:
        fm = by_id.get(f.id)
        mt = f.match_type
        if fm is None:
            if mt == EXACT:
                raise P4RTError(INVALID_ARGUMENT,
                                f"Missing non-ternary field in match key: {f.name!r}")
            key.append(_missing(f))
            eng.append(None)
            continue
        matched += 1
        kind = fm.WhichOneof("field_match_type")
        nb = f.nbytes
        if mt == EXACT:
            if kind != "exact":
                raise P4RTError(INVALID_ARGUMENT, f"Invalid match type for field {f.name!r}")
            raw = fm.exact.value
            v = value_of(raw, f.limit, f.bitwidth, f.name)
            key.append(v)
            eng.append(("exact", raw if len(raw) == nb else v.to_bytes(nb, "big")))
        elif mt == LPM:
            if kind != "lpm":
                raise P4RTError(INVALID_ARGUMENT, f"Invalid match type for field {f.name!r}")
            v = value_of(fm.lpm.value, f.limit, f.bitwidth, f.name)
            plen = fm.lpm.prefix_len
            if plen < 0:
                raise P4RTError(INVALID_ARGUMENT, "Prefix length cannot be < 0")
            if plen > f.bitwidth:
                raise P4RTError(INVALID_ARGUMENT, "Prefix length cannot be > bitwidth")
            if plen == 0:
                raise P4RTError(INVALID_ARGUMENT,
                                "Invalid reprsentation of 'don't care' LPM match, omit match "
                                "field instead of using a prefix length of 0")
            if v & ((1 << (f.bitwidth - plen)) - 1):
                raise P4RTError(INVALID_ARGUMENT,
                                "Invalid LPM value, incorrect number of trailing zeros")
            key.append((v, plen))
            eng.append(("lpm", v.to_bytes(nb, "big"), plen))
        elif mt == TERNARY:
            if kind != "ternary":
                raise P4RTError(INVALID_ARGUMENT, f"Invalid match type for field {f.name!r}")
            v = value_of(fm.ternary.value, f.limit, f.bitwidth, f.name)
            m = value_of(fm.ternary.mask, f.limit, f.bitwidth, f.name + " mask")
            if m == 0:
                raise P4RTError(INVALID_ARGUMENT,
                                "Invalid representation of 'don't care' ternary match, omit "
                                "match field instead of using 0 mask")
            if v & m != v:
                raise P4RTError(INVALID_ARGUMENT,
                                "Invalid ternary value, make sure value & mask == value")
            key.append((v, m))
            eng.append(("ternary", v.to_bytes(nb, "big"), m.to_bytes(nb, "big")))
        elif mt == RANGE:
            if kind != "range":
                raise P4RTError(INVALID_ARGUMENT, f"Invalid match type for field {f.name!r}")
            lo = value_of(fm.range.low, f.limit, f.bitwidth, f.name + " low")
            hi = value_of(fm.range.high, f.limit, f.bitwidth, f.name + " high")
            if lo == 0 and hi == f.limit - 1:
                raise P4RTError(INVALID_ARGUMENT,
                                "Invalid representation of 'don't care' range match, omit "
                                "match field instead of using low=0 and high=2**bitwidth-1")
            if lo > hi:
                raise P4RTError(INVALID_ARGUMENT, "Invalid range value, make sure low <= high")
            key.append((lo, hi))
            eng.append(("range", lo.to_bytes(nb, "big"), hi.to_bytes(nb, "big")))
        else:  # OPTIONAL
            if kind != "optional":
                raise P4RTError(INVALID_ARGUMENT, f"Invalid match type for field {f.name!r}")
            v = value_of(fm.optional.value, f.limit, f.bitwidth, f.name)
            key.append((v,))
            eng.append(("optional", v.to_bytes(nb, "big")))
    if matched != n:
        raise P4RTError(INVALID_ARGUMENT, "Unknown field in match key")
    priority = te.priority
    if meta.needs_priority:
        if priority == 0:
            raise P4RTError(INVALID_ARGUMENT, "Zero priority for ternary match")
    elif priority > 0:
        raise P4RTError(INVALID_ARGUMENT, "Non-zero priority for non-ternary match")
    else:
        priority = 0
    key.append(priority)
    return tuple(key), eng


def check_default_key(te: p4r.TableEntry) -> None:
    if len(te.match):
        raise P4RTError(INVALID_ARGUMENT, "Non-empty key for default entry")
    if te.priority != 0:
        raise P4RTError(INVALID_ARGUMENT, "Non-zero priority for default entry")


def fill_match(meta: Table, key: tuple, te: p4r.TableEntry) -> None:
    """Write a stored key back as canonical FieldMatch messages (PI's parse_match_key)."""
    priority = key[-1]
    if priority > 0:
        te.priority = priority
    for f, k in zip(meta.match_fields, key):
        mt = f.match_type
        if mt == EXACT:
            fm = te.match.add(field_id=f.id)
            fm.exact.value = canonical(k)
        elif mt == LPM:
            if k[1]:
                fm = te.match.add(field_id=f.id)
                fm.lpm.value = canonical(k[0])
                fm.lpm.prefix_len = k[1]
        elif mt == TERNARY:
            if k[1]:
                fm = te.match.add(field_id=f.id)
                fm.ternary.value = canonical(k[0])
                fm.ternary.mask = canonical(k[1])
        elif mt == RANGE:
            if k != (0, f.limit - 1):
                fm = te.match.add(field_id=f.id)
                fm.range.low = canonical(k[0])
                fm.range.high = canonical(k[1])
        elif k is not None:
            fm = te.match.add(field_id=f.id)
            fm.optional.value = canonical(k[0])


def fill_counter_data(unit: int, packets: int, bytes_: int, data: p4r.CounterData) -> None:
    """Both counts whatever the unit: BMv2 counts packets and bytes in every cell and PI
    answers both, so a packets-only counter still reads its bytes (and a bytes-only one its
    packets). `unit` is kept for the writes' side (counter_values)."""
    del unit
    data.packet_count = packets
    data.byte_count = bytes_


def counter_values(unit: int, data: p4r.CounterData) -> tuple[int, int]:
    packets = data.packet_count if unit != UNIT_BYTES else 0
    bytes_ = data.byte_count if unit != UNIT_PACKETS else 0
    return packets, bytes_


class TableManager:
    """All table entries of one pipeline."""

    def __init__(self, index: P4Schema, engine: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.engine = engine
        self.clock = clock
        self.tables: dict[int, TableState] = {t: TableState(m) for t, m in index.tables.items()}

    # ---- helpers ----
    def table(self, table_id: int) -> TableState:
        ts = self.tables.get(table_id)
        if ts is None:
            raise invalid_id("table", table_id)
        return ts

    def _validate_action(self, meta: Table, te: p4r.TableEntry,
                         is_default: bool) -> Action | None:
        indirect = meta.implementation_id != 0
        if indirect and is_default:
            raise P4RTError(INVALID_ARGUMENT,
                            f"Cannot set / reset default action for indirect table {meta.id}")
        if is_default and meta.const_default_action_id:
            raise P4RTError(PERMISSION_DENIED,
                            f"Cannot set / reset default action for table {meta.name!r} which "
                            f"has a const default action")
        if not te.HasField("action"):
            return None
        kind = te.action.WhichOneof("type")
        if indirect:
            if kind == "action":
                raise P4RTError(INVALID_ARGUMENT,
                                f"Cannot provide direct action for indirect table {meta.id}")
            raise P4RTError(UNIMPLEMENTED, "Action profiles / selectors are not supported")
        if kind != "action":
            raise P4RTError(INVALID_ARGUMENT,
                            f"Cannot provide indirect action for direct table {meta.id}")
        action_id = te.action.action.action_id
        ameta = self.index.actions.get(action_id)
        if ameta is None:
            raise invalid_id("action", action_id)
        scope = meta.actions.get(action_id)
        if scope is None:
            raise P4RTError(INVALID_ARGUMENT,
                            f"Invalid action for table: {ameta.name!r} is not an action of "
                            f"{meta.name!r}")
        if scope == SCOPE_TABLE_ONLY and is_default:
            raise P4RTError(PERMISSION_DENIED, "Cannot use TABLE_ONLY action as default action")
        if scope == SCOPE_DEFAULT_ONLY and not is_default:
            raise P4RTError(PERMISSION_DENIED, "Cannot use DEFAULT_ONLY action in table entry")
        return ameta

    @staticmethod
    def _build_args(ameta: Action, action: p4r.Action) -> list[bytes]:
        params = action.params
        if len(params) != len(ameta.params):
            raise P4RTError(INVALID_ARGUMENT,
                            f"Unexpected number of action parameters for {ameta.name!r}: "
                            f"{len(params)} instead of {len(ameta.params)}")
        args = list(ameta.zero_args)
        by_id = ameta.param_by_id
        for p in params:
            pm = by_id.get(p.param_id)
            if pm is None:
                raise P4RTError(INVALID_ARGUMENT,
                                f"Unknown action parameter {p.param_id} for {ameta.name!r}")
            raw = p.value
            v = value_of(raw, pm.limit, pm.bitwidth, f"{ameta.name}.{pm.name}")
            args[pm.position] = raw if len(raw) == pm.nbytes else v.to_bytes(pm.nbytes, "big")
        return args

    @staticmethod
    def _check_direct_resources(meta: Table, te: p4r.TableEntry) -> None:
        if te.HasField("meter_config") and not meta.direct_meter_id:
            raise P4RTError(INVALID_ARGUMENT, "Table has no direct meters")
        if te.HasField("counter_data") and meta.direct_counter is None:
            raise P4RTError(INVALID_ARGUMENT, "Table has no direct counters")

    @staticmethod
    def _check_ttl(meta: Table, te: p4r.TableEntry) -> None:
        if te.idle_timeout_ns < 0:
            raise P4RTError(INVALID_ARGUMENT, "idle_timeout_ns must be a positive value")
        if te.idle_timeout_ns > 0 and not meta.supports_idle_timeout:
            raise P4RTError(INVALID_ARGUMENT,
                            "idle_timeout_ns must be set to 0 for tables which do not support "
                            "idle timeout")

    def _set_direct_counter(self, meta: Table, handle: int, te: p4r.TableEntry) -> None:
        if te.HasField("counter_data") and meta.direct_counter is not None:
            packets, bytes_ = counter_values(meta.direct_counter.unit, te.counter_data)
            self.engine.direct_counter_write(meta.name, handle, packets, bytes_)

    # ---- writes ----
    def write(self, update_type: int, te: p4r.TableEntry) -> None:
        ts = self.tables.get(te.table_id)
        if ts is None:
            raise invalid_id("table", te.table_id)
        if te.HasField("time_since_last_hit"):
            raise P4RTError(INVALID_ARGUMENT,
                            "has_time_since_last_hit must not be set in WriteRequest")
        if update_type == INSERT:
            self._insert(ts, te)
        elif update_type == MODIFY:
            self._modify(ts, te)
        elif update_type == DELETE:
            self._delete(ts, te)
        elif update_type == p4r.Update.UNSPECIFIED:
            raise P4RTError(INVALID_ARGUMENT, "Update type is not set")
        else:
            raise P4RTError(INVALID_ARGUMENT, "Invalid update type")

    def _insert(self, ts: TableState, te: p4r.TableEntry) -> None:
        meta = ts.meta
        if te.is_default_action:
            raise P4RTError(INVALID_ARGUMENT, "Cannot use INSERT for default entry")
        if not te.HasField("action"):
            raise P4RTError(INVALID_ARGUMENT, "'action' field must be set")
        key, match = build_match(meta, te)
        ameta = self._validate_action(meta, te, False)
        assert ameta is not None
        args = self._build_args(ameta, te.action.action)
        self._check_direct_resources(meta, te)
        self._check_ttl(meta, te)
        if key in ts.entries:
            raise P4RTError(ALREADY_EXISTS,
                            "Match entry exists, use MODIFY if you wish to change action")
        priority = key[-1]
        if priority < 0:   # BMv2 refuses it when adding (PI's UNSUPPORTED_ENTRY_PRIORITY)
            raise P4RTError(UNKNOWN, "Error when adding match entry to target: unsupported "
                                     f"priority {priority}")
        if meta.is_const:
            raise P4RTError(UNKNOWN, "Error when adding match entry to target: table "
                                     f"{meta.name!r} is const")
        try:
            handle = self.engine.table_add(meta.name, match, ameta.name, args, priority)
        except (KeyError, ValueError) as exc:
            raise P4RTError(UNKNOWN, f"Error when adding match entry to target: {exc}") from None
        except Exception as exc:
            # softswitch.engine.TableFull, matched by name so that this module does not
            # import the engine. PI reports a full table as UNKNOWN, not RESOURCE_EXHAUSTED.
            if type(exc).__name__ != "TableFull":
                raise
            raise P4RTError(UNKNOWN, f"Error when adding match entry to target: table "
                                     f"{meta.name!r} is full ({exc})") from None
        entry = Entry(handle, key, ameta.id, args, te.controller_metadata, te.metadata,
                      te.idle_timeout_ns)
        ts.entries[key] = entry
        if entry.idle_timeout_ns:
            ts.ageing[key] = entry
        if te.HasField("counter_data"):
            self._set_direct_counter(meta, handle, te)

    def _modify(self, ts: TableState, te: p4r.TableEntry) -> None:
        meta = ts.meta
        is_default = te.is_default_action
        if is_default:
            check_default_key(te)
            key = None
        else:
            key, _ = build_match(meta, te)
        ameta = self._validate_action(meta, te, is_default)
        args = self._build_args(ameta, te.action.action) if ameta is not None else None
        if ameta is None and not is_default:
            raise P4RTError(INVALID_ARGUMENT,
                            "'action' field must be set for non-default entries")
        self._check_direct_resources(meta, te)
        self._check_ttl(meta, te)
        if is_default:
            try:
                if ameta is not None:
                    self.engine.table_set_default(meta.name, ameta.name, args)
                    ts.default_controller_metadata = te.controller_metadata
                    ts.default_metadata = te.metadata
                else:
                    self.engine.table_reset_default(meta.name)
                    ts.default_controller_metadata = 0
                    ts.default_metadata = b""
            except (KeyError, ValueError) as exc:
                raise P4RTError(UNKNOWN,
                                f"Error when modifying match entry in target: {exc}") from None
            return
        entry = ts.entries.get(key)
        if entry is None:
            raise P4RTError(NOT_FOUND, "Cannot find match entry")
        try:
            self.engine.table_modify(meta.name, entry.handle, ameta.name, args)
        except (KeyError, ValueError) as exc:
            raise P4RTError(UNKNOWN,
                            f"Error when modifying match entry in target: {exc}") from None
        entry.action_id = ameta.id
        entry.args = args
        entry.controller_metadata = te.controller_metadata
        entry.metadata = te.metadata
        entry.idle_timeout_ns = te.idle_timeout_ns
        if entry.idle_timeout_ns:
            ts.ageing[key] = entry
        else:
            ts.ageing.pop(key, None)
        if te.HasField("counter_data"):
            self._set_direct_counter(meta, entry.handle, te)

    def _delete(self, ts: TableState, te: p4r.TableEntry) -> None:
        if te.is_default_action:
            raise P4RTError(INVALID_ARGUMENT, "Cannot use DELETE for default entry")
        key, _ = build_match(ts.meta, te)
        entry = ts.entries.get(key)
        if entry is None:
            raise P4RTError(NOT_FOUND, "Cannot find match entry")
        try:
            self.engine.table_delete(ts.meta.name, entry.handle)
        except (KeyError, ValueError) as exc:
            raise P4RTError(UNKNOWN,
                            f"Error when deleting match entry in target: {exc}") from None
        del ts.entries[key]
        ts.ageing.pop(key, None)

    def lookup(self, te: p4r.TableEntry) -> tuple[TableState, Entry | None]:
        """The entry a TableEntry names (None for the default entry); PI's
        entry_handle_from_table_entry, used by direct counter reads and writes."""
        ts = self.table(te.table_id)
        if te.is_default_action:
            check_default_key(te)
            return ts, None
        key, _ = build_match(ts.meta, te)
        entry = ts.entries.get(key)
        if entry is None:
            raise P4RTError(INVALID_ARGUMENT, "Cannot map table entry to handle")
        return ts, entry

    # ---- reads ----
    def fill_entry(self, ts: TableState, entry: Entry, out: p4r.TableEntry,
                   requested: p4r.TableEntry, now: float) -> None:
        meta = ts.meta
        out.table_id = meta.id
        fill_match(meta, entry.key, out)
        act = out.action.action
        act.action_id = entry.action_id
        ameta = self.index.actions[entry.action_id]
        for pm, raw in zip(ameta.params, entry.args):
            act.params.add(param_id=pm.id, value=canonical_bytes(raw))
        if requested.HasField("counter_data") and meta.direct_counter is not None:
            packets, bytes_ = self.engine.direct_counter_read(meta.name, entry.handle)
            fill_counter_data(meta.direct_counter.unit, packets, bytes_, out.counter_data)
        if entry.controller_metadata:
            out.controller_metadata = entry.controller_metadata
        if entry.metadata:
            out.metadata = entry.metadata
        if entry.idle_timeout_ns:
            out.idle_timeout_ns = entry.idle_timeout_ns
        if requested.HasField("time_since_last_hit"):
            elapsed = 0
            if entry.idle_timeout_ns:
                idle = now - self.engine.entry_last_hit(meta.name, entry.handle)
                elapsed = min(max(0, int(idle * 1e9)), entry.idle_timeout_ns)
            out.time_since_last_hit.elapsed_ns = elapsed

    def read(self, requested: p4r.TableEntry, add_entity: Callable[[], p4r.Entity]) -> None:
        if requested.table_id == 0:
            for ts in self.tables.values():
                self._read_one_table(ts, requested, add_entity)
        else:
            self._read_one_table(self.table(requested.table_id), requested, add_entity)

    def _read_one_table(self, ts: TableState, requested: p4r.TableEntry,
                        add_entity: Callable[[], p4r.Entity]) -> None:
        meta = ts.meta
        if requested.is_default_action:
            if requested.HasField("time_since_last_hit"):
                raise P4RTError(INVALID_ARGUMENT,
                                "Default table entries do not support entry ageing, do not set "
                                "'time_since_last_hit' in your ReadRequest")
            self._read_default(ts, add_entity().table_entry)
            return
        if requested.HasField("time_since_last_hit") and not meta.supports_idle_timeout:
            raise P4RTError(INVALID_ARGUMENT,
                            "Do not set time_since_last_hit for a ReadRequest if the table does "
                            "not support idle timeout; yes, that includes wildcard reads")
        now = self.clock()
        if len(requested.match):
            key, _ = build_match(meta, requested)
            entry = ts.entries.get(key)
            if entry is not None:
                self.fill_entry(ts, entry, add_entity().table_entry, requested, now)
            return
        for entry in ts.entries.values():
            self.fill_entry(ts, entry, add_entity().table_entry, requested, now)

    def _read_default(self, ts: TableState, out: p4r.TableEntry) -> None:
        meta = ts.meta
        out.table_id = meta.id
        out.is_default_action = True
        try:
            action_name, args = self.engine.table_get_default(meta.name)
        except (KeyError, ValueError) as exc:
            raise P4RTError(UNKNOWN, f"Error when reading default entry from target: {exc}") \
                from None
        if action_name:
            ameta = self.index.action_by_name.get(action_name)
            if ameta is None:
                raise P4RTError(INTERNAL, f"default action {action_name!r} of table "
                                          f"{meta.name!r} is not in the P4Info")
            act = out.action.action
            act.action_id = ameta.id
            for pm, raw in zip(ameta.params, args):
                act.params.add(param_id=pm.id, value=canonical_bytes(bytes(raw)))
        if ts.default_controller_metadata:
            out.controller_metadata = ts.default_controller_metadata
        if ts.default_metadata:
            out.metadata = ts.default_metadata
