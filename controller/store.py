"""SQLite state that survives controller restarts.

- totals: packets/bytes per (switch, source, experiment id, activity id, experiment name,
  activity name, registry). Names are part of the key, so counts keep the names they had
  when counted (registry ids are not stable over years, SPEC.md).
- baselines: the last value read from each switch counter cell, so a restarted controller
  adds only what is new (and a switch whose counters went backwards was restarted).
- tag_ids: the stable (experiment, activity) -> counter cell assignment.
- flows: history of firefly flows with their final counts.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from controller.drivers.base import Counts

SCHEMA = """
CREATE TABLE IF NOT EXISTS totals (
    switch TEXT NOT NULL, source TEXT NOT NULL,
    experiment_id INTEGER NOT NULL, activity_id INTEGER NOT NULL,
    experiment_name TEXT NOT NULL, activity_name TEXT NOT NULL, registry TEXT NOT NULL,
    packets INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (switch, source, experiment_id, activity_id, experiment_name, activity_name, registry)
);
CREATE TABLE IF NOT EXISTS baselines (
    switch TEXT NOT NULL, cell TEXT NOT NULL,
    packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (switch, cell)
);
CREATE TABLE IF NOT EXISTS tag_ids (
    experiment_id INTEGER NOT NULL, activity_id INTEGER NOT NULL,  -- activity -1: wildcard
    tag_id INTEGER NOT NULL UNIQUE, assigned REAL NOT NULL,
    PRIMARY KEY (experiment_id, activity_id)
);
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow TEXT NOT NULL, afi INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,
    protocol INTEGER NOT NULL, src_port INTEGER NOT NULL, dst_port INTEGER NOT NULL,
    experiment_id INTEGER NOT NULL, activity_id INTEGER NOT NULL,
    experiment_name TEXT, activity_name TEXT, registry TEXT,
    started REAL NOT NULL, ended REAL NOT NULL, end_reason TEXT NOT NULL,
    packets INTEGER NOT NULL, bytes INTEGER NOT NULL, per_switch TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_ended ON flows (ended);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class TotalKey:
    switch: str
    source: str  # "flowlabel" | "exthdr" | "untrusted-label" | "confirmed" | "firefly" | "bucket"
    experiment_id: int  # -1 for buckets
    activity_id: int  # -1: whole experiment (wildcard rule) or a bucket
    experiment_name: str  # bucket name for buckets
    activity_name: str
    registry: str


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- totals ----
    def load_totals(self) -> dict[TotalKey, Counts]:
        with self._lock:
            rows = self._db.execute(
                "SELECT switch, source, experiment_id, activity_id, experiment_name, activity_name,"
                " registry, packets, bytes FROM totals").fetchall()
        return {TotalKey(*r[:7]): Counts(r[7], r[8]) for r in rows}

    def save(self, totals: dict[TotalKey, Counts], baselines: dict[tuple[str, str], Counts],
             dropped_baselines: Iterable[tuple[str, str]] = ()) -> None:
        """Write totals and baselines in one transaction (they must agree after a crash)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO totals VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (switch, source,"
                    " experiment_id, activity_id, experiment_name, activity_name, registry)"
                    " DO UPDATE SET packets=excluded.packets, bytes=excluded.bytes, updated=excluded.updated",
                    [(k.switch, k.source, k.experiment_id, k.activity_id, k.experiment_name,
                      k.activity_name, k.registry, c.packets, c.bytes, now) for k, c in totals.items()])
                self._db.executemany(
                    "INSERT INTO baselines VALUES (?,?,?,?) ON CONFLICT (switch, cell)"
                    " DO UPDATE SET packets=excluded.packets, bytes=excluded.bytes",
                    [(s, cell, c.packets, c.bytes) for (s, cell), c in baselines.items()])
                self._db.executemany("DELETE FROM baselines WHERE switch=? AND cell=?",
                                     list(dropped_baselines))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_baselines(self) -> dict[tuple[str, str], Counts]:
        with self._lock:
            rows = self._db.execute("SELECT switch, cell, packets, bytes FROM baselines").fetchall()
        return {(r[0], r[1]): Counts(r[2], r[3]) for r in rows}

    # ---- stable tag ids ----
    def tag_ids(self) -> dict[tuple[int, int | None], int]:
        with self._lock:
            rows = self._db.execute("SELECT experiment_id, activity_id, tag_id FROM tag_ids").fetchall()
        return {(e, None if a < 0 else a): t for e, a, t in rows}

    def assign_tag_ids(self, pairs: Iterable[tuple[int, int | None]], capacity: int,
                       reserved: int = 1) -> dict[tuple[int, int | None], int]:
        """Ids for every pair: kept when known, else the lowest free cell >= `reserved`.
        Cells of pairs no longer wanted are freed only when space runs out (oldest first),
        so a pair that comes back in a later registry usually gets its old cell."""
        wanted = list(dict.fromkeys(pairs))
        with self._lock:
            current = self.tag_ids()
            used = set(current.values())
            missing = [p for p in wanted if p not in current]
            free = (i for i in range(reserved, capacity) if i not in used)
            wanted_set = set(wanted)
            stale = [row for row in self._db.execute(
                "SELECT experiment_id, activity_id, tag_id FROM tag_ids ORDER BY assigned").fetchall()
                if (row[0], None if row[1] < 0 else row[1]) not in wanted_set]
            now = time.time()
            self._db.execute("BEGIN")
            try:
                for pair in missing:
                    tag = next(free, None)
                    if tag is None:
                        if not stale:
                            raise ValueError(f"more than {capacity - reserved} tags: no counter cell left")
                        e, a, tag = stale.pop(0)
                        self._db.execute("DELETE FROM tag_ids WHERE experiment_id=? AND activity_id=?", (e, a))
                    self._db.execute("INSERT INTO tag_ids VALUES (?,?,?,?)",
                                     (pair[0], -1 if pair[1] is None else pair[1], tag, now))
                    current[pair] = tag
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return {p: current[p] for p in wanted}

    # ---- flow history ----
    FLOW_HISTORY_KEPT = 200_000  # newest ended flows kept; older ones are pruned

    def record_flow(self, flow: dict) -> None:
        with self._lock:
            self._recorded = getattr(self, "_recorded", 0) + 1
            if self._recorded % 1000 == 0:
                self._db.execute("DELETE FROM flows WHERE id <= (SELECT MAX(id) FROM flows) - ?",
                                 (self.FLOW_HISTORY_KEPT,))
            self._db.execute(
                "INSERT INTO flows (flow, afi, src, dst, protocol, src_port, dst_port, experiment_id,"
                " activity_id, experiment_name, activity_name, registry, started, ended, end_reason,"
                " packets, bytes, per_switch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (flow["flow"], flow["afi"], flow["src"], flow["dst"], flow["protocol"],
                 flow["src_port"], flow["dst_port"], flow["experiment_id"], flow["activity_id"],
                 flow.get("experiment_name"), flow.get("activity_name"), flow.get("registry"),
                 flow["started"], flow["ended"], flow["end_reason"], flow["packets"], flow["bytes"],
                 json.dumps(flow.get("per_switch", {}))))

    def recent_flows(self, limit: int = 100) -> list[dict]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM flows ORDER BY ended DESC, id DESC LIMIT ?", (limit,))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        out = []
        for r in rows:
            d = dict(zip(names, r))
            d["per_switch"] = json.loads(d["per_switch"])
            out.append(d)
        return out

    # ---- meta ----
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta VALUES (?,?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                             (key, value))
