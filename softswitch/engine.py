"""The data-plane engine: runs BMv2 JSON (v1model) programs as simple_switch does.

Engine.load() compiles the JSON into Python functions (see softswitch.pipeline);
Engine.process() is simple_switch's ingress thread, traffic manager and egress
thread run back to back for one received packet, in a deterministic order:
ingress (I2E clones are enqueued before the original), then each queued copy
through egress in FIFO order (E2E clones join the queue's end; resubmitted and
recirculated packets go back to ingress first).

The control-plane API is the one in docs/softswitch-interfaces.md.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Callable

from softswitch.pipeline.compiled import CompiledProgram
from softswitch.pipeline.errors import ImmutableTable, TableFull, UnsupportedProgram
from softswitch.pipeline.pre import ReplicationEngine
from softswitch.pipeline.program import NO_TRUNCATION, Program
from softswitch.pipeline.tables import MatchField, Table, TableInfo

__all__ = ["Engine", "UnsupportedProgram", "TableFull", "ImmutableTable", "TableInfo",
           "MatchField", "DROP_PORT"]

log = logging.getLogger("softswitch.engine")

DROP_PORT = 511
# instance_type values (simple_switch.h PktInstanceType)
NORMAL, INGRESS_CLONE, EGRESS_CLONE, COALESCED, RECIRC, REPLICATION, RESUBMIT = range(7)
MAX_INGRESS_PASSES = 16   # resubmit/recirculate loops are cut here (BMv2 would loop forever)
MAX_COPIES = 4096         # egress jobs for one received packet
MIRROR_ID_MASK = 0x7FFF


class _Slots:
    """Slot numbers of the PHV fields and registers the traffic manager touches."""

    def __init__(self, c: CompiledProgram) -> None:
        g = c.prog.globals
        self.ERR, self.CKERR, self.PKTLEN, self.ILEN = g["ERR"], g["CKERR"], g["PKTLEN"], g["ILEN"]
        self.CLONE, self.CLONE_FL, self.RESUB = g["CLONE"], g["CLONE_FL"], g["RESUB"]
        self.RECIRC, self.EXIT, self.TRUNC = g["RECIRC"], g["EXIT"], g["TRUNC"]
        s = c.sys_slot
        self.ingress_port = s("standard_metadata.ingress_port")
        self.packet_length = s("standard_metadata.packet_length")
        self.instance_type = s("standard_metadata.instance_type")
        self.egress_spec = s("standard_metadata.egress_spec")
        self.egress_port = s("standard_metadata.egress_port")
        self.parser_error = s("standard_metadata.parser_error")
        self.checksum_error = s("standard_metadata.checksum_error")
        self.mcast_grp = s("intrinsic_metadata.mcast_grp")
        self.egress_rid = s("intrinsic_metadata.egress_rid")
        self.priority = s("intrinsic_metadata.priority")
        self.ig_ts = s("intrinsic_metadata.ingress_global_timestamp")
        self.eg_ts = s("intrinsic_metadata.egress_global_timestamp")
        q = [s(f"queueing_metadata.{n}") for n in ("enq_timestamp", "enq_qdepth",
                                                   "deq_timedelta", "deq_qdepth")]
        self.queueing = all(x is not None for x in q)
        self.enq_ts, self.enq_qdepth, self.deq_timedelta, self.deq_qdepth = q
        self.qid = s("queueing_metadata.qid")
        self.timed = self.queueing or self.ig_ts is not None or self.eg_ts is not None
        spec = c.prog.sys_field("standard_metadata.egress_spec")
        self.egress_spec_mask = spec.mask if spec is not None else 0x1FF
        pl = c.prog.sys_field("standard_metadata.packet_length")
        self.packet_length_mask = pl.mask if pl is not None else 0xFFFFFFFF


class Engine:
    def __init__(self, cpu_port: int | None = None, drop_port: int = DROP_PORT,
                 queues_per_port: int = 1) -> None:
        self.cpu_port = cpu_port
        self.drop_port = drop_port
        self.queues_per_port = queues_per_port
        self._lock = threading.RLock()
        self._c: CompiledProgram | None = None
        self._s: _Slots | None = None
        self.pre = ReplicationEngine()
        self._stats: Counter[str] = Counter()
        self.last_error = ""
        self._start = time.monotonic()
        self._now = 0
        self._packet_id = 0
        self._rx = self._tx = 0

    # ---- program -----------------------------------------------------------------------
    @property
    def program_loaded(self) -> bool:
        return self._c is not None

    def load(self, config: bytes | str | dict) -> None:
        """Load BMv2 JSON. Replaces the pipeline and clears ALL state (entries, counters,
        registers, clone sessions, multicast groups). Raises UnsupportedProgram / ValueError."""
        try:
            compiled = CompiledProgram(Program.from_config(config))
        except (UnsupportedProgram, ValueError):
            raise
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"malformed BMv2 JSON: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self._c = compiled
            self._s = _Slots(compiled)
            self.pre.reset()
            self._stats.clear()
            self._rx = self._tx = 0
        log.info("program loaded: %d tables, %d actions", len(compiled.tables),
                 len(compiled.action_fns))

    def unload(self) -> None:
        with self._lock:
            self._c = None
            self._s = None
            self.pre.reset()

    # ---- packets -----------------------------------------------------------------------
    def process(self, ingress_port: int, frame: bytes) -> list[tuple[int, bytes]]:
        """Run one packet through parser, ingress, traffic manager, egress, deparser and
        return every packet that leaves as (egress_port, frame), in BMv2's order. Never
        raises on packet content."""
        with self._lock:
            self._rx += 1
            c = self._c
            if c is None:
                self._stats["dropped_no_program"] += 1
                return []
            out: list[tuple[int, bytes]] = []
            self._packet_id += 1
            try:
                self._run(c, ingress_port, frame if type(frame) is bytes else bytes(frame), out)
            except Exception as exc:  # a bug or a program fault: drop, count, keep going
                self._stats["errors"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("packet %d from port %d dropped: %s", self._packet_id, ingress_port,
                            self.last_error, exc_info=log.isEnabledFor(logging.DEBUG))
            self._tx += len(out)
            return out

    def _run(self, c: CompiledProgram, port: int, frame: bytes,
             out: list[tuple[int, bytes]]) -> None:
        s = self._s
        dbg = log.isEnabledFor(logging.DEBUG)
        # one clock reading per received packet: our queues never hold a packet back
        self._now = now = int((time.monotonic() - self._start) * 1_000_000) if s.timed else 0
        F = c.template[:]
        n = len(frame)
        F[s.ingress_port] = port & 0x1FF
        F[s.packet_length] = n
        F[s.ILEN] = n
        F[s.PKTLEN] = n
        if s.ig_ts is not None:
            F[s.ig_ts] = now
        ingress_q: list[tuple[list, bytes]] = [(F, frame)]
        egress_q: list[tuple[int, list]] = []
        i = j = 0
        while True:
            if i < len(ingress_q):
                F, frame = ingress_q[i]
                i += 1
                if i > MAX_INGRESS_PASSES:
                    self._stats["dropped_loop"] += 1
                    log.warning("packet %d: more than %d ingress passes, dropped",
                                self._packet_id, MAX_INGRESS_PASSES)
                    continue
                self._ingress(c, s, F, frame, egress_q, ingress_q, dbg)
            elif j < len(egress_q):
                port_, F = egress_q[j]
                j += 1
                if j > MAX_COPIES:
                    self._stats["dropped_loop"] += 1
                    continue
                try:
                    self._egress(c, s, port_, F, egress_q, ingress_q, out, dbg)
                except Exception as exc:  # one copy's fault must not lose the others
                    self._stats["errors"] += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("packet %d: copy to port %d dropped: %s", self._packet_id, port_,
                                self.last_error)
            else:
                return

    def _ingress(self, c: CompiledProgram, s: _Slots, F: list, frame: bytes,
                 egress_q: list, ingress_q: list, dbg: bool) -> None:
        if dbg:
            log.debug("[%d.0] [cxt 0] Processing packet received on port %d", self._packet_id,
                      F[s.ingress_port])
        ingress_size = F[s.PKTLEN]
        c.parse(F, frame)
        if s.parser_error is not None:
            F[s.parser_error] = F[s.ERR]
        if s.checksum_error is not None:
            F[s.checksum_error] = F[s.CKERR]
        c.ingress(F)
        F[s.EXIT] = 0
        if F[s.CLONE]:
            def i2e_copy() -> list:
                # the packet as received, parsed again (metadata is reset by _clone)
                cp = c.template[:]
                cp[s.ingress_port] = F[s.ingress_port]
                c.parse(cp, frame)
                cp[s.PKTLEN] = ingress_size
                return cp
            self._clone(c, s, F, i2e_copy, INGRESS_CLONE, egress_q, dbg)
        resub = F[s.RESUB]
        if resub:
            if dbg:
                log.debug("[%d.0] [cxt 0] Resubmitting packet", self._packet_id)
            cp = c.template[:]
            self._copy_field_list(c, resub, F, cp)
            cp[s.instance_type] = RESUBMIT
            cp[s.PKTLEN] = ingress_size
            cp[s.ILEN] = F[s.ILEN]
            cp[s.packet_length] = ingress_size & s.packet_length_mask
            ingress_q.append((cp, frame))
            return
        mgid = F[s.mcast_grp] if s.mcast_grp is not None else 0
        if mgid:
            if dbg:
                log.debug("[%d.0] [cxt 0] Multicast requested for packet", self._packet_id)
            F[s.instance_type] = REPLICATION
            replicas = self.pre.groups.get(mgid)
            if replicas is None:
                self._stats["dropped_unknown_mgid"] += 1
                log.warning("Replication requested for mgid %d, which is not known to the PRE",
                            mgid)
                return
            self._replicate(s, F, replicas, egress_q, dbg)
            return
        egress_port = F[s.egress_spec]
        if dbg:
            log.debug("[%d.0] [cxt 0] Egress port is %d", self._packet_id, egress_port)
        if egress_port == self.drop_port:
            if dbg:
                log.debug("[%d.0] [cxt 0] Dropping packet at the end of ingress", self._packet_id)
            self._stats["dropped_ingress"] += 1
            return
        F[s.instance_type] = NORMAL
        self._enqueue(s, egress_port, F, egress_q)

    def _clone(self, c: CompiledProgram, s: _Slots, F: list, make_copy: Callable[[], list],
               instance_type: int, egress_q: list, dbg: bool) -> None:
        """The clone F asked for: a copy (made only if the session exists: an unknown
        session clones nothing, as in BMv2) with metadata reset but the field list,
        replicated per the session."""
        session = self.pre.sessions.get(F[s.CLONE] & MIRROR_ID_MASK)
        fl = F[s.CLONE_FL]
        F[s.CLONE] = F[s.CLONE_FL] = 0
        if session is None:
            return
        if dbg:
            log.debug("[%d.0] [cxt 0] Cloning packet at %s", self._packet_id,
                      "ingress" if instance_type == INGRESS_CLONE else "egress")
        cp = make_copy()
        cp[:c.meta_end] = c.meta_init
        self._copy_field_list(c, fl, F, cp)
        cp[s.instance_type] = instance_type
        cp[s.ILEN] = F[s.ILEN]
        cp[s.CLONE] = cp[s.CLONE_FL] = 0
        if session.truncate:
            cp[s.TRUNC] = session.truncate
        self._replicate(s, cp, session.replicas, egress_q, dbg)

    def _copy_field_list(self, c: CompiledProgram, fl_id: int, src: list, dst: list) -> None:
        if not fl_id:
            return
        slots = c.field_lists.get(fl_id)
        if slots is None:
            log.warning("unknown field list %d in clone/resubmit/recirculate", fl_id)
            return
        for slot in slots:
            dst[slot] = src[slot]

    def _replicate(self, s: _Slots, F: list, replicas: tuple, egress_q: list, dbg: bool) -> None:
        for port, rid in replicas:
            if dbg:
                log.debug("[%d.0] [cxt 0] Replicating packet on port %d", self._packet_id, port)
            if s.egress_rid is not None:
                F[s.egress_rid] = rid
            cp = F[:]
            cp[s.CLONE] = cp[s.CLONE_FL] = cp[s.RESUB] = cp[s.RECIRC] = 0
            self._enqueue(s, port, cp, egress_q)

    def _enqueue(self, s: _Slots, port: int, F: list, egress_q: list) -> None:
        if s.priority is not None and F[s.priority] >= self.queues_per_port:
            log.error("Priority out of range, dropping packet")
            self._stats["dropped_priority"] += 1
            return
        if s.queueing:
            F[s.enq_ts] = self._now & 0xFFFFFFFF
            F[s.enq_qdepth] = 0
        egress_q.append((port, F))

    def _egress(self, c: CompiledProgram, s: _Slots, port: int, F: list, egress_q: list,
                ingress_q: list, out: list, dbg: bool) -> None:
        if s.eg_ts is not None:
            F[s.eg_ts] = self._now
        if s.queueing:
            F[s.deq_timedelta] = (self._now - F[s.enq_ts]) & 0xFFFFFFFF
            F[s.deq_qdepth] = 0
            if s.qid is not None:
                F[s.qid] = F[s.priority] if s.priority is not None else 0
        F[s.egress_port] = port & 0x1FF
        F[s.egress_spec] = (self.drop_port + 1) & s.egress_spec_mask
        F[s.packet_length] = F[s.PKTLEN] & s.packet_length_mask
        c.egress(F)
        if F[s.CLONE]:
            def e2e_copy() -> list:
                # the headers as egress left them (metadata is reset by _clone)
                cp = F[:]
                cp[s.RESUB] = cp[s.RECIRC] = cp[s.EXIT] = 0
                cp[s.TRUNC] = NO_TRUNCATION
                return cp
            self._clone(c, s, F, e2e_copy, EGRESS_CLONE, egress_q, dbg)
        if F[s.egress_spec] == self.drop_port:
            if dbg:
                log.debug("[%d.0] [cxt 0] Dropping packet at the end of egress", self._packet_id)
            self._stats["dropped_egress"] += 1
            return
        frame = c.deparse(F)
        recirc = F[s.RECIRC]
        if recirc:
            if dbg:
                log.debug("[%d.0] [cxt 0] Recirculating packet", self._packet_id)
            cp = c.template[:]
            self._copy_field_list(c, recirc, F, cp)
            cp[s.instance_type] = RECIRC
            n = len(frame)
            cp[s.PKTLEN] = cp[s.ILEN] = n
            cp[s.packet_length] = n & s.packet_length_mask
            ingress_q.append((cp, frame))
            return
        trunc = F[s.TRUNC]
        if trunc < len(frame):
            frame = frame[:trunc]
        if dbg:
            log.debug("[%d.0] [cxt 0] Transmitting packet of size %d out of port %d", self._packet_id,
                      len(frame), port)
        out.append((port, frame))

    def stats(self) -> dict[str, int]:
        """Packets in (rx) and out (tx), drops by cause, errors."""
        with self._lock:
            return {"rx": self._rx, "tx": self._tx, **self._stats}

    # ---- tables ------------------------------------------------------------------------
    def _table(self, table: str) -> Table:
        if self._c is None:
            raise KeyError(f"no program loaded (table '{table}')")
        try:
            return self._c.tables[table]
        except KeyError:
            raise KeyError(f"unknown table '{table}'") from None

    def table_info(self, table: str) -> TableInfo:
        with self._lock:
            return self._table(table).info()

    def table_names(self) -> list[str]:
        with self._lock:
            return list(self._c.tables) if self._c is not None else []

    def table_add(self, table: str, match: list[MatchField], action: str,
                  args: list[bytes], priority: int = 0) -> int:
        with self._lock:
            return self._table(table).add(match, action, args, priority)

    def table_modify(self, table: str, handle: int, action: str, args: list[bytes]) -> None:
        with self._lock:
            self._table(table).modify(handle, action, args)

    def table_delete(self, table: str, handle: int) -> None:
        with self._lock:
            self._table(table).delete(handle)

    def table_clear(self, table: str) -> None:
        with self._lock:
            self._table(table).clear()

    def table_set_default(self, table: str, action: str, args: list[bytes]) -> None:
        with self._lock:
            self._table(table).set_default(action, args)

    def table_reset_default(self, table: str) -> None:
        with self._lock:
            self._table(table).reset_default()

    def table_get_default(self, table: str) -> tuple[str, list[bytes]]:
        with self._lock:
            return self._table(table).get_default()

    def table_entries(self, table: str) -> list[dict[str, Any]]:
        """Every entry as {handle, match, action, args, priority} (for tooling)."""
        with self._lock:
            t = self._table(table)
            return [t.describe(h) for h in sorted(t.entries)]

    def _counted_entry(self, table: str, handle: int):  # noqa: ANN202
        t = self._table(table)
        if not t.with_counters:
            raise ValueError(f"table '{table}' has no direct counters")
        return t._entry(handle)

    def direct_counter_read(self, table: str, handle: int) -> tuple[int, int]:
        with self._lock:
            e = self._counted_entry(table, handle)
            return e.pkts, e.byts

    def direct_counter_write(self, table: str, handle: int, packets: int, bytes_: int) -> None:
        with self._lock:
            e = self._counted_entry(table, handle)
            e.pkts, e.byts = int(packets), int(bytes_)

    def entry_last_hit(self, table: str, handle: int) -> float:
        with self._lock:
            return self._table(table)._entry(handle).ts

    # ---- externs -----------------------------------------------------------------------
    def _counter(self, name: str):  # noqa: ANN202
        if self._c is None:
            raise KeyError(f"no program loaded (counter '{name}')")
        try:
            return self._c.counters[name]
        except KeyError:
            if name in self._c.direct_counters:
                raise ValueError(f"counter '{name}' is direct: use direct_counter_read") from None
            raise KeyError(f"unknown counter '{name}'") from None

    def counter_size(self, name: str) -> int:
        with self._lock:
            if self._c is not None and name in self._c.direct_counters:
                return self._table(self._c.direct_counters[name]).max_size
            return self._counter(name).size

    def counter_read(self, name: str, index: int) -> tuple[int, int]:
        with self._lock:
            return self._counter(name).read(index)

    def counter_write(self, name: str, index: int, packets: int, bytes_: int) -> None:
        with self._lock:
            self._counter(name).write(index, packets, bytes_)

    def counter_names(self) -> list[str]:
        with self._lock:
            return list(self._c.counters) if self._c is not None else []

    def _register(self, name: str):  # noqa: ANN202
        if self._c is None:
            raise KeyError(f"no program loaded (register '{name}')")
        try:
            return self._c.registers[name]
        except KeyError:
            raise KeyError(f"unknown register '{name}'") from None

    def register_size(self, name: str) -> int:
        with self._lock:
            return self._register(name).size

    def register_read(self, name: str, index: int) -> int:
        with self._lock:
            return self._register(name).checked_read(index)

    def register_write(self, name: str, index: int, value: int) -> None:
        with self._lock:
            self._register(name).checked_write(index, value)

    def value_set_set(self, name: str, values: list[int]) -> None:
        """Replace a parser value set's members (each the concatenated, unpadded key)."""
        with self._lock:
            if self._c is None or name not in self._c.vsets:
                raise KeyError(f"unknown parser value set '{name}'")
            self._c.vsets[name].set_members(values)

    # ---- packet replication engine -------------------------------------------------------
    def clone_session_set(self, session_id: int, replicas: list[tuple[int, int]],
                          packet_length_bytes: int = 0) -> None:
        with self._lock:
            self.pre.clone_session_set(session_id, replicas, packet_length_bytes)

    def clone_session_delete(self, session_id: int) -> None:
        with self._lock:
            self.pre.clone_session_delete(session_id)

    def mc_group_set(self, group_id: int, replicas: list[tuple[int, int]]) -> None:
        with self._lock:
            self.pre.mc_group_set(group_id, replicas)

    def mc_group_delete(self, group_id: int) -> None:
        with self._lock:
            self.pre.mc_group_delete(group_id)
