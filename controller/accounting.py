"""Counting: baselines, totals, rates and their persistence.

Each switch counter cell has a baseline (last value read, persisted); every poll adds
`reading - baseline` (or `reading`, when the cell went backwards: the switch was
restarted) to totals keyed by the names the registry gave at that moment. Totals and
baselines are saved together in SQLite, so counts survive controller restarts. Only what
changed since the last save is written: a backup sharing the state directory never
overwrites the primary's totals with older ones.

Everything here is guarded by `lock`. Lock order everywhere: switch session lock, then the
flow service's lock, then this one.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from typing import Callable, Iterable

from controller.drivers.base import BUCKETS, CounterSnapshot, Counts, FlowKey
from controller.events import PollDeltas
from controller.history import History
from controller.store import Store, TotalKey
from controller.tags import TAG_SOURCES

log = logging.getLogger(__name__)


def tag_cell(tag_id: int, source: str = "flowlabel") -> str:
    """The baseline cell of a tag counter: "tag:N" (flow labels, as always), "tag:exthdr:N"..."""
    return f"tag:{tag_id}" if source == "flowlabel" else f"tag:{source}:{tag_id}"


def bucket_cell(name: str) -> str:
    return f"bucket:{name}"


def flow_cell(key: FlowKey) -> str:
    return f"flow:{key}"


class Accounting:
    def __init__(self, store: Store, history: History | None = None) -> None:
        self.store = store
        self.history = history or History(store)  # gets every delta the totals get
        self.lock = threading.RLock()
        self.totals: dict[TotalKey, Counts] = {}
        self.baselines: dict[tuple[str, str], Counts] = {}
        self.rates: dict[TotalKey, tuple[float, float]] = {}  # bytes/s, packets/s
        self._dropped: set[tuple[str, str]] = set()
        self._dirty_baselines: set[tuple[str, str]] = set()  # changed since the last save
        self._dirty_totals: set[TotalKey] = set()

    # ---- persistence ----
    def load(self) -> None:
        with self.lock:
            self.totals = self.store.load_totals()
            self.baselines = self.store.load_baselines()

    def reload_unless_counted(self) -> None:
        """A backup taking over may share the primary's state dir: read what it saved,
        unless this instance has counted already (then its own view is newer)."""
        with self.lock:
            if not (self._dirty_totals or self._dirty_baselines):
                self.load()

    def save(self) -> None:
        with self.history.io_lock:
            with self.lock:
                totals = {k: self.totals[k] for k in self._dirty_totals}
                baselines = {k: self.baselines[k] for k in self._dirty_baselines if k in self.baselines}
                dropped, self._dropped = self._dropped, set()
                self._dirty_totals, self._dirty_baselines = set(), set()
                steps = self.history.take_batch()
            try:
                self.store.save(totals, baselines, dropped, steps)
            except BaseException:  # nothing was written: all of it is still to save
                with self.lock:
                    self._dirty_totals |= totals.keys()
                    self._dirty_baselines |= baselines.keys()
                    self._dropped |= {k for k in dropped if k not in self.baselines}
                self.history.put_back(steps)
                raise
            self.history.maintain()  # retention moves while no answer reads

    # ---- baselines ----
    def baseline(self, switch: str, cell: str) -> Counts:
        with self.lock:
            return self.baselines.get((switch, cell), Counts())

    def drop_baseline(self, switch: str, cell: str) -> None:
        with self.lock:
            if self.baselines.pop((switch, cell), None) is not None:
                self._dropped.add((switch, cell))
            self._dirty_baselines.discard((switch, cell))

    def forget_switch(self, switch: str) -> None:
        """The switch lost its state: every cell starts again from zero."""
        with self.lock:
            for k in [k for k in self.baselines if k[0] == switch]:
                self.drop_baseline(*k)

    def sync_tag_cells(self, switch: str, wanted: Iterable[int], zeroed: Iterable[int]) -> None:
        """After the tag rules were written: cells no longer used lose their baseline;
        cells new to this controller, or zeroed by the driver, start from 0."""
        with self.lock:
            sources = TAG_SOURCES.values()
            before = {c for (s, c) in self.baselines if s == switch and c.startswith("tag:")}
            want = {tag_cell(t, src) for t in wanted for src in sources}
            for cell in before - want:
                self.drop_baseline(switch, cell)
            zeroed_cells = {tag_cell(t, src) for t in zeroed for src in sources}
            for cell in (want - before) | (zeroed_cells & want):
                self._set_baseline(switch, cell, Counts())

    def _set_baseline(self, switch: str, cell: str, value: Counts) -> None:
        self.baselines[(switch, cell)] = value
        self._dirty_baselines.add((switch, cell))
        self._dropped.discard((switch, cell))

    # ---- deltas ----
    def _delta(self, switch: str, cell: str, cur: Counts) -> Counts:
        base = self.baselines.get((switch, cell), Counts())
        if cur != base:
            self._set_baseline(switch, cell, cur)
        if cur.packets < base.packets or cur.bytes < base.bytes:
            log.info("switch %s: counter %s went backwards: switch restarted", switch, cell)
            return cur
        return cur - base

    def _add_total(self, key: TotalKey, d: Counts) -> None:
        self.totals[key] = self.totals.get(key, Counts()) + d
        self._dirty_totals.add(key)
        self.history.add(key, d)

    def flow_delta(self, switch: str, key: FlowKey, flow_counts: dict[str, Counts],
                   cur: Counts) -> Counts:
        """What is new in a flow entry's reading, also added to the flow's own per-switch
        counts (so its history keeps the counts from before a re-push)."""
        with self.lock:
            d = self._delta(switch, flow_cell(key), cur)
            flow_counts[switch] = flow_counts.get(switch, Counts()) + d
            return d

    def fold_final(self, switch: str, key: FlowKey, flow_counts: dict[str, Counts],
                   final: Counts, total_key: TotalKey) -> None:
        """A removed flow entry's last reading goes into the totals; its cell is gone."""
        with self.lock:
            d = self.flow_delta(switch, key, flow_counts, final)
            if d.packets or d.bytes:
                self._add_total(total_key, d)
            self.drop_baseline(switch, flow_cell(key))

    def apply_snapshot(self, snap: CounterSnapshot, tag_keys: dict[int, TotalKey] | None,
                       bucket_registry: str,
                       flow_of: Callable[[FlowKey], tuple[dict[str, Counts], TotalKey] | None],
                       last_poll: float | None) -> PollDeltas:
        """Fold one switch's reading into the totals.

        tag_keys: tag id -> its total key (None: the tags changed during the read, skip
        them this round); flow_of(key) -> (the flow's per-switch counts, its total key),
        or None for an entry whose counts are stale (removed or re-installed meanwhile)."""
        sw = snap.switch
        dt = None if last_poll is None else max(snap.taken_at - last_poll, 1e-6)
        out = PollDeltas(sw, snap.taken_at, dt)
        deltas: dict[TotalKey, Counts] = collections.defaultdict(Counts)
        with self.lock:
            for cells, source in TAG_SOURCES.items():  # the per-tag counters, same cells
                reading, moved = getattr(snap, cells), getattr(out, cells)
                for tag_id, total_key in (tag_keys or {}).items():
                    d = self._delta(sw, tag_cell(tag_id, source), reading.get(tag_id, Counts()))
                    if d.packets or d.bytes:
                        key = total_key if source == "flowlabel" else dataclasses.replace(total_key, source=source)
                        deltas[key] += d
                        moved[tag_id] = d
            for name in BUCKETS:
                d = self._delta(sw, bucket_cell(name), snap.buckets.get(name, Counts()))
                if d.packets or d.bytes:
                    deltas[TotalKey(sw, "bucket", -1, -1, name, "", bucket_registry)] += d
                    out.buckets[name] = d
            for key, cur in snap.flows.items():
                found = flow_of(key)
                if found is None:
                    continue
                counts, total_key = found
                d = self.flow_delta(sw, key, counts, cur)
                if d.packets or d.bytes:
                    deltas[total_key] += d
                    out.flows[key] = d
            for k, d in deltas.items():
                self._add_total(k, d)
            if dt is not None:
                for k in list(self.rates):
                    if k.switch == sw and k not in deltas:
                        self.rates[k] = (0.0, 0.0)
                for k, d in deltas.items():
                    self.rates[k] = (d.bytes / dt, d.packets / dt)
        return out

    # ---- reading ----
    def totals_and_rates(self) -> tuple[list[tuple[TotalKey, Counts]], dict[TotalKey, tuple[float, float]]]:
        with self.lock:
            return list(self.totals.items()), dict(self.rates)
