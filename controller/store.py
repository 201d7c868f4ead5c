"""SQLite state that survives controller restarts.

- totals: packets/bytes per (switch, source, experiment id, activity id, experiment name,
  activity name, registry). Names are part of the key, so counts keep the names they had
  when counted (registry ids are not stable over years, SPEC.md).
- baselines: the last value read from each switch counter cell, so a restarted controller
  adds only what is new (and a switch whose counters went backwards was restarted).
- tag_ids: the stable (experiment, activity) -> counter cell assignment.
- flows: history of firefly flows with their final counts.
- history_fine / history_coarse: packets/bytes per time step (epoch of the step's start) and
  per totals key (history_keys: the key's columns once, an integer id per step row); only
  steps with traffic have rows. runs: when a controller on this state dir was running
  ([started, last_seen] heartbeats), so a window it missed is a gap. (controller/history.py)
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

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
CREATE TABLE IF NOT EXISTS history_keys (
    id INTEGER PRIMARY KEY,
    switch TEXT NOT NULL, source TEXT NOT NULL,
    experiment_id INTEGER NOT NULL, activity_id INTEGER NOT NULL,
    experiment_name TEXT NOT NULL, activity_name TEXT NOT NULL, registry TEXT NOT NULL,
    UNIQUE (switch, source, experiment_id, activity_id, experiment_name, activity_name, registry)
);
CREATE TABLE IF NOT EXISTS history_fine (
    t INTEGER NOT NULL, key_id INTEGER NOT NULL,
    packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (t, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_coarse (
    t INTEGER NOT NULL, key_id INTEGER NOT NULL,
    packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (t, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, last_seen REAL NOT NULL
);
"""

HISTORY_TABLES = ("history_fine", "history_coarse")


@dataclass(frozen=True)
class TotalKey:
    switch: str
    source: str  # "flowlabel" | "exthdr" | "untrusted-label" | "confirmed" | "firefly" | "bucket"
    experiment_id: int  # -1 for buckets
    activity_id: int  # -1: whole experiment (wildcard rule) or a bucket
    experiment_name: str  # bucket name for buckets
    activity_name: str
    registry: str


@dataclass
class HistoryBatch:
    """What history adds in one save: per table ("history_fine" | "history_coarse") the
    counts per (step start, key), added to the rows there; and the running controller's
    heartbeat (run id, time)."""
    steps: dict[str, dict[tuple[int, TotalKey], Counts]]
    heartbeat: tuple[int, float] | None = None


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
        self._key_ids: dict[TotalKey, int] = {}  # history_keys, both ways
        self._keys: dict[int, TotalKey] = {}

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
             dropped_baselines: Iterable[tuple[str, str]] = (),
             history: HistoryBatch | None = None) -> None:
        """Write totals, baselines and the history steps in one transaction (they must agree
        after a crash: no count in one and not in the others)."""
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
                if history is not None:
                    self._write_history(history)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._key_ids.clear()  # ids of keys inserted in this transaction are gone
                self._keys.clear()
                raise

    def load_baselines(self) -> dict[tuple[str, str], Counts]:
        with self._lock:
            rows = self._db.execute("SELECT switch, cell, packets, bytes FROM baselines").fetchall()
        return {(r[0], r[1]): Counts(r[2], r[3]) for r in rows}

    # ---- history (controller/history.py decides what goes where) ----
    def _history_key_id(self, k: TotalKey) -> int:
        """Inside a transaction: the key's id, inserted when new."""
        kid = self._key_ids.get(k)
        if kid is None:
            cols = (k.switch, k.source, k.experiment_id, k.activity_id, k.experiment_name,
                    k.activity_name, k.registry)
            self._db.execute("INSERT OR IGNORE INTO history_keys (switch, source, experiment_id,"
                             " activity_id, experiment_name, activity_name, registry)"
                             " VALUES (?,?,?,?,?,?,?)", cols)
            kid = self._db.execute(
                "SELECT id FROM history_keys WHERE switch=? AND source=? AND experiment_id=? AND"
                " activity_id=? AND experiment_name=? AND activity_name=? AND registry=?",
                cols).fetchone()[0]
            self._key_ids[k], self._keys[kid] = kid, k
        return kid

    def _write_history(self, batch: HistoryBatch) -> None:
        for table, steps in batch.steps.items():
            assert table in HISTORY_TABLES
            self._db.executemany(
                f"INSERT INTO {table} VALUES (?,?,?,?) ON CONFLICT (t, key_id) DO UPDATE SET"
                " packets=packets+excluded.packets, bytes=bytes+excluded.bytes",
                [(t, self._history_key_id(k), c.packets, c.bytes) for (t, k), c in steps.items()])
        if batch.heartbeat is not None:
            run_id, now = batch.heartbeat
            self._db.execute("UPDATE runs SET last_seen=MAX(last_seen, ?) WHERE id=?", (now, run_id))

    def _history_key(self, kid: int) -> TotalKey:
        k = self._keys.get(kid)
        if k is None:
            row = self._db.execute("SELECT switch, source, experiment_id, activity_id, experiment_name,"
                                   " activity_name, registry FROM history_keys WHERE id=?", (kid,)).fetchone()
            k = TotalKey(*row)
            self._key_ids[k], self._keys[kid] = kid, k
        return k

    def history_sums(self, table: str, ranges: Iterable[tuple[int, int]]) -> dict[TotalKey, Counts]:
        """Per key, the counts of the table's steps starting in any [t0, t1) of `ranges`."""
        assert table in HISTORY_TABLES
        out: dict[TotalKey, Counts] = {}
        with self._lock:
            for t0, t1 in ranges:
                if t1 <= t0:
                    continue
                for kid, p, b in self._db.execute(
                        f"SELECT key_id, SUM(packets), SUM(bytes) FROM {table} WHERE t >= ? AND t < ?"
                        " GROUP BY key_id", (t0, t1)):
                    k = self._history_key(kid)
                    out[k] = out.get(k, Counts()) + Counts(p, b)
        return out

    def history_key_ids(self, wanted: Callable[[TotalKey], bool]) -> list[int]:
        """The ids of the history keys `wanted` accepts."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM history_keys").fetchall()
            return [kid for (kid,) in rows if wanted(self._history_key(kid))]

    def history_points(self, table: str, t0: int, t1: int, step: int, table_step: int,
                       key_ids: list[int] | None = None) -> dict[TotalKey, list[list[int]]]:
        """Per key (all, or those of key_ids), [bucket start, packets, bytes] of the table's
        steps (each `table_step` long) starting in [t0, t1), summed per `step`-long bucket
        (aligned to multiples of step), sorted by time."""
        assert table in HISTORY_TABLES
        native = step == table_step
        only = "" if key_ids is None else f" AND key_id IN ({','.join(str(int(k)) for k in key_ids)})"
        with self._lock:
            if native:  # one row per point, in (t, key) order: nothing to sum or sort
                rows = self._db.execute(f"SELECT key_id, t, packets, bytes FROM {table}"
                                        f" WHERE t >= ? AND t < ?{only}", (t0, t1)).fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT key_id, (t / ?) * ? AS b, SUM(packets), SUM(bytes) FROM {table}"
                    f" WHERE t >= ? AND t < ?{only} GROUP BY key_id, b ORDER BY b",
                    (step, step, t0, t1)).fetchall()
            by_id: dict[int, list[list[int]]] = {}
            for kid, t, p, b in rows:
                pts = by_id.get(kid)
                if pts is None:
                    pts = by_id[kid] = []
                pts.append([t, p, b])
            return {self._history_key(kid): pts for kid, pts in by_id.items()}

    def history_prune(self, fine_before: int, coarse_before: int) -> tuple[int, int]:
        """Delete fine steps before `fine_before`, coarse steps and runs before
        `coarse_before`; returns the rows deleted (fine, coarse)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                fine = self._db.execute("DELETE FROM history_fine WHERE t < ?", (fine_before,)).rowcount
                coarse = self._db.execute("DELETE FROM history_coarse WHERE t < ?", (coarse_before,)).rowcount
                self._db.execute("DELETE FROM runs WHERE last_seen < ?", (coarse_before,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return fine, coarse

    def start_run(self, now: float) -> int:
        with self._lock:
            return self._db.execute("INSERT INTO runs (started, last_seen) VALUES (?, ?)",
                                    (now, now)).lastrowid

    def runs(self) -> list[tuple[int, float, float]]:
        """(id, started, last_seen) of every controller run on this state dir, oldest first."""
        with self._lock:
            return self._db.execute("SELECT id, started, last_seen FROM runs ORDER BY started").fetchall()

    def history_rows(self) -> dict[str, int]:
        with self._lock:
            return {t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in HISTORY_TABLES}

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
