"""Encode the typed entities of p4schema.entities into p4runtime_pb2 messages and decode read
results back, checked against one P4Info index. Shared by the controller's P4Runtime
driver, its reconciler and the built-in target's tests.

Reading 65,536 firefly entries is dominated by decoding: decoded table entries are cached
by their wire bytes (without counter data), and encoded ones by entity, so a periodic
read-back of unchanged tables costs one serialization and one dict lookup per entry. An
entry written and read back decodes to the object that was encoded (same bytes), so the
diff of a table in sync compares identities.
"""
from __future__ import annotations

from typing import Iterable

from p4.v1 import p4runtime_pb2

from .bytestrings import decode as decode_int, encode as encode_int
from .entities import (EXACT, LPM, OPTIONAL, TERNARY, CloneSession, CounterEntry, Lpm,
                       MulticastGroup, Plan, TableEntry, Ternary)
from .errors import UnknownName
from .schema import P4Schema

Update = p4runtime_pb2.Update
CACHE_MAX = 300_000


class EntityCodec:
    def __init__(self, schema: P4Schema, cache_max: int = CACHE_MAX) -> None:
        self.schema = schema
        self.cache_max = cache_max
        self._decoded: dict[bytes, TableEntry] = {}
        self._encoded: dict[TableEntry, p4runtime_pb2.Entity] = {}

    # ---- building with full names ----
    def table_entry(self, table: str, match: dict, action: str | None = None,
                    params: dict | None = None, priority: int = 0,
                    idle_timeout_ns: int = 0) -> TableEntry:
        """A TableEntry whose table and action names are resolved to their full P4Info
        names (so its key equals the key of the same entry read back)."""
        t = self.schema.table(table)
        a = self.schema.action(action).name if action is not None else None
        return TableEntry.of(t.name, match, a, params, priority, idle_timeout_ns)

    # ---- encode ----
    def encode(self, e) -> p4runtime_pb2.Entity:
        if isinstance(e, TableEntry):
            hit = self._encoded.get(e)
            if hit is None:
                hit = p4runtime_pb2.Entity()
                self._encode_table_entry(e, hit.table_entry)
                if len(self._encoded) >= self.cache_max:
                    self._encoded.clear()
                    self._decoded.clear()
                self._encoded[e] = hit
                # the same entry read back decodes to this very object (when the server
                # answers the bytes we wrote): a diff of equal sides then compares identities
                self._decoded.setdefault(hit.table_entry.SerializeToString(), e)
            return hit
        ent = p4runtime_pb2.Entity()
        if isinstance(e, CloneSession):
            msg = ent.packet_replication_engine_entry.clone_session_entry
            msg.session_id = e.session_id
            msg.class_of_service = e.class_of_service
            msg.packet_length_bytes = e.packet_length_bytes
            _replicas(msg, e.replicas)
        elif isinstance(e, MulticastGroup):
            msg = ent.packet_replication_engine_entry.multicast_group_entry
            msg.multicast_group_id = e.group_id
            _replicas(msg, e.replicas)
        elif isinstance(e, CounterEntry):
            ce = ent.counter_entry
            ce.counter_id = self.schema.counter(e.counter).id
            if e.index is not None:
                ce.index.index = e.index
                ce.data.packet_count = e.packets
                ce.data.byte_count = e.bytes
        else:
            raise TypeError(f"not a P4Runtime entity: {e!r}")
        return ent

    def _encode_table_entry(self, e: TableEntry, te: p4runtime_pb2.TableEntry) -> None:
        t = self.schema.table(e.table)
        te.table_id = t.id
        te.priority = e.priority
        te.idle_timeout_ns = e.idle_timeout_ns
        for f, value in sorted(((t.field(name), v) for name, v in e.match),
                               key=lambda fv: fv[0].position):  # P4Info key order
            name = f.name
            m = te.match.add()
            m.field_id = f.id
            if f.match_type == EXACT:
                m.exact.value = encode_int(int(value), f.bitwidth)
            elif f.match_type == OPTIONAL:
                m.optional.value = encode_int(int(value), f.bitwidth)
            elif f.match_type == TERNARY:
                v, mask = (value.value, value.mask) if isinstance(value, Ternary) else (value, f.limit - 1)
                m.ternary.value = encode_int(v & mask, f.bitwidth)
                m.ternary.mask = encode_int(mask, f.bitwidth)
            elif f.match_type == LPM:
                v, plen = (value.value, value.prefix_len) if isinstance(value, Lpm) else (value, f.bitwidth)
                m.lpm.value = encode_int(v & ~((1 << (f.bitwidth - plen)) - 1), f.bitwidth)
                m.lpm.prefix_len = plen
            else:
                raise UnknownName(f"table {t.name} field {name}: {f.kind} matches not supported")
        if e.action is not None:
            a = self.schema.action(e.action)
            te.action.action.action_id = a.id
            for p, value in sorted(((a.param(n), v) for n, v in e.params),
                                   key=lambda pv: pv[0].position):  # P4Info order, as servers answer
                te.action.action.params.add(param_id=p.id, value=encode_int(int(value), p.bitwidth))

    def update(self, op: int, e) -> p4runtime_pb2.Update:
        u = Update(type=op)
        u.entity.CopyFrom(self.encode(e))
        if op == Update.DELETE and u.entity.HasField("counter_entry"):
            raise ValueError("counter cells cannot be deleted")
        return u

    def updates(self, plan: Plan) -> list[p4runtime_pb2.Update]:
        """The plan's writes in its order (deletes, modifies, inserts)."""
        return ([self.update(Update.DELETE, e) for e in plan.delete]
                + [self.update(Update.MODIFY, e) for e in plan.modify]
                + [self.update(Update.INSERT, e) for e in plan.insert])

    # ---- read requests ----
    def read_table(self, table: str, counters: bool = False) -> p4runtime_pb2.Entity:
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = self.schema.table(table).id
        if counters:
            ent.table_entry.counter_data.SetInParent()
        return ent

    @staticmethod
    def read_clone_sessions(session_id: int = 0) -> p4runtime_pb2.Entity:
        """All clone sessions (0), or one."""
        ent = p4runtime_pb2.Entity()
        ent.packet_replication_engine_entry.clone_session_entry.session_id = session_id
        return ent

    @staticmethod
    def read_multicast_groups(group_id: int = 0) -> p4runtime_pb2.Entity:
        ent = p4runtime_pb2.Entity()
        ent.packet_replication_engine_entry.multicast_group_entry.multicast_group_id = group_id
        return ent

    def read_counter(self, counter: str) -> p4runtime_pb2.Entity:
        return self.encode(CounterEntry(counter, None))

    # ---- decode ----
    def decode(self, ent: p4runtime_pb2.Entity):
        kind = ent.WhichOneof("entity")
        if kind == "table_entry":
            return self.decode_table_entry(ent.table_entry)
        if kind == "packet_replication_engine_entry":
            pre = ent.packet_replication_engine_entry
            if pre.HasField("clone_session_entry"):
                cs = pre.clone_session_entry
                return CloneSession.of(cs.session_id, _read_replicas(cs.replicas),
                                       class_of_service=cs.class_of_service,
                                       packet_length_bytes=cs.packet_length_bytes)
            mg = pre.multicast_group_entry
            return MulticastGroup.of(mg.multicast_group_id, _read_replicas(mg.replicas))
        if kind == "counter_entry":
            ce = ent.counter_entry
            return CounterEntry(self.schema.by_id(ce.counter_id).name, ce.index.index,
                                ce.data.packet_count, ce.data.byte_count)
        raise UnknownName(f"entity kind {kind!r} not supported")

    def decode_table_entry(self, te: p4runtime_pb2.TableEntry) -> TableEntry:
        """The entry (its counter data and time since last hit are not part of it: they
        are cleared from `te`; read them first)."""
        if te.HasField("counter_data"):
            te.ClearField("counter_data")
        if te.HasField("time_since_last_hit"):
            te.ClearField("time_since_last_hit")
        raw = te.SerializeToString()
        hit = self._decoded.get(raw)
        if hit is not None:
            return hit
        t = self.schema.tables.get(te.table_id)
        if t is None:
            raise UnknownName(f"the P4Info has no table with id {te.table_id}")
        match = {}
        for m in te.match:
            f = t.field_with_id(m.field_id)
            which = m.WhichOneof("field_match_type")
            if which == "exact":
                match[f.name] = decode_int(m.exact.value)
            elif which == "optional":
                match[f.name] = decode_int(m.optional.value)
            elif which == "ternary":
                match[f.name] = Ternary(decode_int(m.ternary.value), decode_int(m.ternary.mask))
            elif which == "lpm":
                match[f.name] = Lpm(decode_int(m.lpm.value), m.lpm.prefix_len)
            else:
                raise UnknownName(f"table {t.name} field {f.name}: {which} matches not supported")
        action, params = None, {}
        if te.action.HasField("action"):
            a = self.schema.by_id(te.action.action.action_id)
            action = a.name
            for p in te.action.action.params:
                params[a.param_by_id[p.param_id].name] = decode_int(p.value)
        e = TableEntry.of(t.name, match, action, params, te.priority, te.idle_timeout_ns)
        if len(self._decoded) >= self.cache_max:
            self._decoded.clear()
        self._decoded[raw] = e
        return e

    def decode_all(self, entities: Iterable[p4runtime_pb2.Entity]) -> list:
        return [self.decode(e) for e in entities]


def _replicas(msg, replicas: Iterable[tuple[int, int]]) -> None:
    for port, instance in replicas:
        r = msg.replicas.add()
        r.egress_port = port
        r.instance = instance


def _read_replicas(replicas) -> list[tuple[int, int]]:
    # P4Runtime 1.4 servers may answer with the bytes `port` instead of `egress_port`
    return [(r.egress_port or decode_int(r.port), r.instance) for r in replicas]
