"""Idle-timeout ageing, as BMv2's AgeingMonitor does it.

Every sweep interval (BMv2: 1 s) each entry with an idle timeout whose last hit is older
than its timeout is "expired". BMv2 reports an expired entry, skips it on the next sweep,
reports it again on the one after, and so on until the entry is hit or deleted; PI then
sends one IdleTimeoutNotification per batch to the primary client. We do the same, with
one notification per sweep holding every table's newly reported entries.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from p4.v1 import p4runtime_pb2 as p4r

from .tables import Entry, TableManager, TableState, fill_match

log = logging.getLogger(__name__)

DEFAULT_SWEEP_INTERVAL = 1.0     # seconds, BMv2's default


class AgeingState:
    """Which entries the previous sweep reported, per table (BMv2's prev_sweep_entries)."""

    def __init__(self) -> None:
        self.prev: dict[int, set[tuple]] = {}

    def sweep(self, tables: TableManager, now: float) -> list[tuple[TableState, Entry]]:
        out: list[tuple[TableState, Entry]] = []
        last_hit = tables.engine.entry_last_hit
        for ts in tables.tables.values():
            if not ts.meta.supports_idle_timeout:
                continue
            prev = self.prev.get(ts.meta.id, set())
            reported: set[tuple] = set()
            name = ts.meta.name
            for key, entry in ts.ageing.items():
                if (now - last_hit(name, entry.handle)) * 1e9 >= entry.idle_timeout_ns:
                    if key not in prev:
                        reported.add(key)
                        out.append((ts, entry))
            self.prev[ts.meta.id] = reported
        return out


def notification(expired: list[tuple[TableState, Entry]]) -> p4r.StreamMessageResponse:
    msg = p4r.StreamMessageResponse()
    note = msg.idle_timeout_notification
    for ts, entry in expired:
        te = note.table_entry.add(table_id=ts.meta.id)
        fill_match(ts.meta, entry.key, te)
        if entry.controller_metadata:
            te.controller_metadata = entry.controller_metadata
        te.idle_timeout_ns = entry.idle_timeout_ns
    note.timestamp = time.time_ns()
    return msg


class AgeingMonitor:
    """A thread that calls sweep() every interval seconds until stopped."""

    def __init__(self, sweep: Callable[[], None], interval: float = DEFAULT_SWEEP_INTERVAL
                 ) -> None:
        self.interval = interval
        self._sweep = sweep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="p4rt-ageing", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        deadline = time.monotonic()
        while True:
            deadline += self.interval
            if self._stop.wait(max(0.0, deadline - time.monotonic())):
                return
            try:
                self._sweep()
            except Exception:   # keep ageing alive whatever one sweep hits
                self.errors += 1
                log.exception("idle-timeout sweep failed")
