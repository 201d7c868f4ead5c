"""Indirect counters, direct counters and registers: P4Runtime entities <-> engine calls.

Codes follow PI (counter_write/read, direct_counter_write/read). Registers are served
here although PI answers them UNIMPLEMENTED: reading them through the engine is cheap.
"""
from __future__ import annotations

from typing import Any, Callable

from p4.v1 import p4runtime_pb2 as p4r

from p4schema import P4Schema, canonical, value_of

from .status import INVALID_ARGUMENT, UNIMPLEMENTED, UNKNOWN, P4RTError, invalid_id
from .tables import (DELETE, INSERT, MODIFY, TableManager, counter_values, fill_counter_data,
                     fill_match)

AddEntity = Callable[[], p4r.Entity]


def _update_kind(update_type: int, what: str) -> None:
    if update_type == p4r.Update.UNSPECIFIED:
        raise P4RTError(INVALID_ARGUMENT, "Update type is not set")
    if update_type == INSERT:
        raise P4RTError(INVALID_ARGUMENT, f"INSERT update type not supported for {what}")
    if update_type not in (MODIFY, DELETE):
        raise P4RTError(INVALID_ARGUMENT, "Invalid update type")


class Externs:
    def __init__(self, index: P4Schema, engine: Any, tables: TableManager) -> None:
        self.index = index
        self.engine = engine
        self.tables = tables

    # ---- indirect counters ----
    def counter_write(self, update_type: int, ce: p4r.CounterEntry) -> None:
        meta = self.index.counters.get(ce.counter_id)
        if meta is None:
            raise invalid_id("counter", ce.counter_id)
        if not ce.HasField("index"):
            raise P4RTError(UNIMPLEMENTED,
                            "Wildcard write is not supported for indirect counters yet")
        index = ce.index.index
        if index < 0:
            raise P4RTError(INVALID_ARGUMENT, "A negative number is not a valid index value")
        _update_kind(update_type, "counters")
        packets, bytes_ = ((0, 0) if update_type == DELETE
                           else counter_values(meta.unit, ce.data))
        if index >= meta.size:
            raise P4RTError(UNKNOWN, f"Error when writing to counter: index {index} out of "
                                     f"range for {meta.name!r} (size {meta.size})")
        try:
            self.engine.counter_write(meta.name, index, packets, bytes_)
        except (KeyError, ValueError, IndexError) as exc:
            raise P4RTError(UNKNOWN, f"Error when writing to counter: {exc}") from None

    def counter_read(self, ce: p4r.CounterEntry, add_entity: AddEntity) -> None:
        if ce.counter_id == 0:
            metas = list(self.index.counters.values())
        else:
            meta = self.index.counters.get(ce.counter_id)
            if meta is None:
                if ce.counter_id in self.index.direct_counters:
                    raise P4RTError(INVALID_ARGUMENT,
                                    "Cannot use CounterEntry with a direct counter")
                raise invalid_id("counter", ce.counter_id)
            metas = [meta]
        for meta in metas:
            if ce.HasField("index"):
                index = ce.index.index
                if index < 0:
                    raise P4RTError(INVALID_ARGUMENT,
                                    "A negative number is not a valid index value")
                indices: range | list[int] = [index]
            else:
                indices = range(meta.size)
            for index in indices:
                if index >= meta.size:
                    raise P4RTError(UNKNOWN, f"Error when reading counter from target: index "
                                             f"{index} out of range for {meta.name!r}")
                packets, bytes_ = self.engine.counter_read(meta.name, index)
                out = add_entity().counter_entry
                out.counter_id = meta.id
                out.index.index = index
                fill_counter_data(meta.unit, packets, bytes_, out.data)

    # ---- direct counters ----
    def direct_counter_write(self, update_type: int, dce: p4r.DirectCounterEntry) -> None:
        if not dce.HasField("table_entry"):
            raise P4RTError(INVALID_ARGUMENT, "Missing table_entry field in DirectCounterEntry")
        ts, entry = self.tables.lookup(dce.table_entry)
        meta = ts.meta
        if meta.direct_counter is None:
            raise P4RTError(INVALID_ARGUMENT, "Table has no direct counters")
        _update_kind(update_type, "counters")
        if entry is None:
            raise P4RTError(UNKNOWN, "Error when writing to direct counter: the default entry "
                                     "has no direct counter in this target")
        packets, bytes_ = ((0, 0) if update_type == DELETE
                           else counter_values(meta.direct_counter.unit, dce.data))
        self.engine.direct_counter_write(meta.name, entry.handle, packets, bytes_)

    def direct_counter_read(self, dce: p4r.DirectCounterEntry, add_entity: AddEntity) -> None:
        if not dce.HasField("table_entry"):
            raise P4RTError(INVALID_ARGUMENT, "Missing table_entry field in DirectCounterEntry")
        te = dce.table_entry
        if te.table_id == 0:
            raise P4RTError(UNIMPLEMENTED,
                            "Reading all direct counters for ALL tables is not supported yet")
        ts = self.tables.table(te.table_id)
        meta = ts.meta
        if meta.direct_counter is None:
            raise P4RTError(INVALID_ARGUMENT, "Table has no direct counters")
        unit = meta.direct_counter.unit
        if len(te.match) or te.is_default_action:
            _, entry = self.tables.lookup(te)
            if entry is None:
                raise P4RTError(UNKNOWN, "Error when reading counter from target: the default "
                                         "entry has no direct counter in this target")
            packets, bytes_ = self.engine.direct_counter_read(meta.name, entry.handle)
            out = add_entity().direct_counter_entry
            out.table_entry.CopyFrom(te)
            fill_counter_data(unit, packets, bytes_, out.data)
            return
        for entry in ts.entries.values():
            packets, bytes_ = self.engine.direct_counter_read(meta.name, entry.handle)
            out = add_entity().direct_counter_entry
            out.table_entry.table_id = meta.id
            fill_match(meta, entry.key, out.table_entry)
            fill_counter_data(unit, packets, bytes_, out.data)

    # ---- registers ----
    def register_write(self, update_type: int, re_: p4r.RegisterEntry) -> None:
        meta = self.index.registers.get(re_.register_id)
        if meta is None:
            raise invalid_id("register", re_.register_id)
        if not re_.HasField("index"):
            raise P4RTError(UNIMPLEMENTED, "Wildcard write is not supported for registers")
        index = re_.index.index
        if index < 0:
            raise P4RTError(INVALID_ARGUMENT, "A negative number is not a valid index value")
        _update_kind(update_type, "registers")
        if update_type == DELETE:
            value = 0
        else:
            if re_.data.WhichOneof("data") != "bitstring":
                raise P4RTError(INVALID_ARGUMENT, "Register data must be a bitstring")
            value = value_of(re_.data.bitstring, meta.limit, meta.bitwidth, meta.name)
        if index >= meta.size:
            raise P4RTError(INVALID_ARGUMENT, f"Register index {index} out of range for "
                                              f"{meta.name!r} (size {meta.size})")
        self.engine.register_write(meta.name, index, value)

    def register_read(self, re_: p4r.RegisterEntry, add_entity: AddEntity) -> None:
        if re_.register_id == 0:
            metas = list(self.index.registers.values())
        else:
            meta = self.index.registers.get(re_.register_id)
            if meta is None:
                raise invalid_id("register", re_.register_id)
            metas = [meta]
        for meta in metas:
            if re_.HasField("index"):
                index = re_.index.index
                if index < 0 or index >= meta.size:
                    raise P4RTError(INVALID_ARGUMENT, f"Register index {index} out of range "
                                                      f"for {meta.name!r} (size {meta.size})")
                indices: range | list[int] = [index]
            else:
                indices = range(meta.size)
            for index in indices:
                out = add_entity().register_entry
                out.register_id = meta.id
                out.index.index = index
                out.data.bitstring = canonical(self.engine.register_read(meta.name, index))
