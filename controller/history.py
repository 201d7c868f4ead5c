"""Counts over time: per totals key (switch, source, experiment, activity with the names and
registry of the moment; buckets as source "bucket") the packets and bytes per time step.

Fed by Accounting with exactly the deltas it adds to the totals (same baselines: a
restarted controller adds what the switch counted meanwhile, a restarted switch's zeroed
counters are new traffic), and saved in the same SQLite transaction as totals and baselines,
so history and totals never disagree after a crash. A delta belongs to the step in which
the controller read it (the counter poll).

Two resolutions, both written on every save (the coarse steps are the fine ones rolled up
at write time): fine steps (default 1 min, kept 2 days) and coarse steps (default 1 h, kept
400 days); the controller prunes what is older by itself. Only steps with traffic take rows.
A window is answered from coarse steps where whole coarse steps fit and fine steps at its
edges (coarse only where the fine steps are pruned), with its bounds widened to the steps
used; each answer states the bounds it covers.

Every run of a controller on the state dir is kept as [started, last_seen] (a heartbeat per
save): a part of a window no controller was running for is reported as a gap, not as zero.
"""
from __future__ import annotations

import argparse
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from controller.drivers.base import Counts
from controller.extensions import Extension
from controller.store import HistoryBatch, Store, TotalKey
from controller.windows import Window, WindowError, parse_duration

FINE, COARSE = "history_fine", "history_coarse"
MAX_POINTS = 720  # per series, when the step is chosen automatically


def _seconds(value: Any, what: str) -> int:
    """A setting in seconds: a number or a duration such as "1m", "2d"."""
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        try:
            seconds = parse_duration(str(value), what)
        except WindowError as exc:
            raise ValueError(str(exc)) from None
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"{what} {value!r} must be a whole number of seconds >= 1")
    return int(seconds)


@dataclass(frozen=True)
class HistorySettings:
    fine_step_s: int = 60
    fine_keep_s: int = 2 * 86400
    coarse_step_s: int = 3600
    coarse_keep_s: int = 400 * 86400

    KEYS = {"fine_step": "fine_step_s", "fine_keep": "fine_keep_s",
            "coarse_step": "coarse_step_s", "coarse_keep": "coarse_keep_s"}

    @classmethod
    def from_section(cls, section: dict) -> "HistorySettings":
        """YAML `history: {fine_step: 1m, fine_keep: 2d, coarse_step: 1h, coarse_keep: 400d}`
        (numbers are seconds); ValueError naming the key on bad input."""
        unknown = set(section) - set(cls.KEYS)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                             f"(known: {', '.join(cls.KEYS)})")
        values = {attr: _seconds(section[key], f"history.{key}")
                  for key, attr in cls.KEYS.items() if section.get(key) is not None}
        s = cls(**values)
        if s.coarse_step_s % s.fine_step_s:
            raise ValueError(f"history.coarse_step ({s.coarse_step_s} s) must be a multiple of "
                             f"history.fine_step ({s.fine_step_s} s)")
        if s.fine_keep_s < s.coarse_step_s:
            raise ValueError(f"history.fine_keep ({s.fine_keep_s} s) must be at least one "
                             f"coarse step ({s.coarse_step_s} s)")
        if s.coarse_keep_s < s.fine_keep_s:
            raise ValueError(f"history.coarse_keep ({s.coarse_keep_s} s) must be at least "
                             f"history.fine_keep ({s.fine_keep_s} s)")
        return s


@dataclass
class WindowCounts:
    """A window's answer: its bounds widened to whole steps, counts per totals key, and
    where no controller was running ([from, to] epoch pairs)."""
    since: int
    until: int
    counts: dict[TotalKey, Counts]
    gaps: list[list[int]] = field(default_factory=list)


@dataclass
class WindowSeries:
    since: int
    until: int
    step_s: int
    points: dict[TotalKey, list[list[int]]]  # key -> [[step start, packets, bytes], ...] by time
    gaps: list[list[int]] = field(default_factory=list)


def _floor(t: float, step: int) -> int:
    return int(math.floor(t / step)) * step


def _ceil(t: float, step: int) -> int:
    return int(math.ceil(t / step)) * step


class History:
    """Owns the history state: unsaved step counts, the current run, retention."""

    def __init__(self, store: Store, settings: HistorySettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings or HistorySettings()
        self.clock = clock
        self.lock = threading.Lock()  # _pending
        # held from take_batch() to the end of the store's save, and by the answers while
        # they read pending + store: a step is counted in one or the other, never both.
        # Order: io_lock, then Accounting.lock, then lock.
        self.io_lock = threading.RLock()
        self._pending: dict[tuple[int, TotalKey], Counts] = {}  # (fine step start, key)
        self.run_id: int | None = None
        self.run_started: float | None = None
        self.fine_from = 0  # fine steps before this were pruned (a coarse step boundary)
        self.coarse_from = 0

    def configure(self, settings: HistorySettings, clock: Callable[[], float] | None = None) -> None:
        """Before start: the settings (and, for tests, the clock)."""
        self.settings = settings
        if clock is not None:
            self.clock = clock

    # ---- lifecycle ----
    def open(self) -> None:
        """The controller starts: a new run, and what earlier runs pruned."""
        now = self.clock()
        self.run_id, self.run_started = self.store.start_run(now), now
        self.fine_from = int(self.store.get_meta("history_fine_from") or 0)
        self.coarse_from = int(self.store.get_meta("history_coarse_from") or 0)
        self.maintain()

    # ---- feeding (called by Accounting under its lock, with what it adds to a total) ----
    def add(self, key: TotalKey, d: Counts) -> None:
        t = _floor(self.clock(), self.settings.fine_step_s)
        with self.lock:
            self._pending[t, key] = self._pending.get((t, key), Counts()) + d

    def take_batch(self) -> HistoryBatch:
        """The unsaved steps (fine, and rolled up into coarse) and the heartbeat, for the
        store's save transaction; put_back() them if that fails."""
        coarse_step = self.settings.coarse_step_s
        with self.lock:
            fine, self._pending = self._pending, {}
        coarse: dict[tuple[int, TotalKey], Counts] = {}
        for (t, k), c in fine.items():
            ck = (_floor(t, coarse_step), k)
            coarse[ck] = coarse.get(ck, Counts()) + c
        beat = None if self.run_id is None else (self.run_id, self.clock())
        return HistoryBatch({FINE: fine, COARSE: coarse}, beat)

    def put_back(self, batch: HistoryBatch) -> None:
        with self.lock:
            for tk, c in batch.steps[FINE].items():
                self._pending[tk] = self._pending.get(tk, Counts()) + c

    def maintain(self) -> None:
        """Prune fine steps older than fine_keep and coarse ones older than coarse_keep
        (cheap when nothing is due: called after every save)."""
        s, now = self.settings, self.clock()
        fine_before = max(self.fine_from, _floor(now - s.fine_keep_s, s.coarse_step_s))
        coarse_before = max(self.coarse_from, _floor(now - s.coarse_keep_s, s.coarse_step_s))
        if fine_before <= self.fine_from and coarse_before <= self.coarse_from:
            return
        self.store.history_prune(fine_before, coarse_before)
        self.fine_from, self.coarse_from = fine_before, coarse_before
        self.store.set_meta("history_fine_from", str(fine_before))
        self.store.set_meta("history_coarse_from", str(coarse_before))

    # ---- answers ----
    def _pending_copy(self) -> dict[tuple[int, TotalKey], Counts]:
        with self.lock:
            return dict(self._pending)

    def _until(self, until: float, step: int) -> int:
        """Exclusive end: a window reaching now includes the current (unfinished) step."""
        now = self.clock()
        return max(_ceil(until, step), _floor(now, step) + step) if until >= now else _ceil(until, step)

    def _bounds(self, w: Window) -> tuple[int, int]:
        """The window widened to fine steps, or to coarse ones where the fine are pruned."""
        fine, coarse = self.settings.fine_step_s, self.settings.coarse_step_s
        s = _floor(w.since, fine)
        if s < self.fine_from:
            s = _floor(w.since, coarse)
        u = self._until(w.until, fine)
        if u <= self.fine_from:
            u = _ceil(w.until, coarse)
        return s, u

    def window_counts(self, w: Window) -> WindowCounts:
        """Counts per key in the window (whole steps: see the bounds in the answer)."""
        coarse = self.settings.coarse_step_s
        with self.io_lock:  # unsaved and saved steps (and retention) from the same moment
            s, u = self._bounds(w)
            cs, cu = _ceil(s, coarse), _floor(u, coarse)
            pending = self._pending_copy()
            if cs < cu:
                counts = self.store.history_sums(COARSE, [(cs, cu)])
                for k, c in self.store.history_sums(FINE, [(s, cs), (cu, u)]).items():
                    counts[k] = counts.get(k, Counts()) + c
            else:
                counts = self.store.history_sums(FINE, [(s, u)])
        for (t, k), c in pending.items():
            if s <= t < u:
                counts[k] = counts.get(k, Counts()) + c
        return WindowCounts(s, u, counts, self.gaps(s, u))

    def choose_step(self, w: Window, step_s: int | None) -> int:
        """The series step: given (a multiple of the fine step; raised to a multiple of the
        coarse step where the window reaches pruned fine steps), or the smallest that keeps a
        series within MAX_POINTS points."""
        fine, coarse = self.settings.fine_step_s, self.settings.coarse_step_s
        if step_s is not None and (step_s <= 0 or step_s % fine):
            raise WindowError(f"step {step_s} s is not a multiple of the fine step ({fine} s)")
        step = step_s or fine * max(1, math.ceil(w.seconds / fine / MAX_POINTS))
        if step % coarse and (step > coarse or _floor(w.since, step) < self.fine_from):
            step = _ceil(step, coarse)  # only whole coarse steps there
        return step

    def series(self, w: Window, step_s: int | None = None,
               wanted: Callable[[TotalKey], bool] | None = None) -> WindowSeries:
        """Counts per key (all, or those `wanted` accepts) and per `step`-long step (aligned
        to multiples of it since the epoch, UTC), for steps with traffic."""
        with self.io_lock:
            step = self.choose_step(w, step_s)
            s, u = _floor(w.since, step), self._until(w.until, step)
            table, table_step = ((COARSE, self.settings.coarse_step_s) if step % self.settings.coarse_step_s == 0
                                 else (FINE, self.settings.fine_step_s))
            pending = self._pending_copy()
            ids = None if wanted is None else self.store.history_key_ids(wanted)
            points = self.store.history_points(table, s, u, step, table_step, ids)
        unsaved: dict[TotalKey, dict[int, Counts]] = {}
        for (t, k), c in pending.items():
            if s <= t < u and (wanted is None or wanted(k)):
                at = unsaved.setdefault(k, {})
                at[_floor(t, step)] = at.get(_floor(t, step), Counts()) + c
        for k, extra in unsaved.items():  # a few recent steps: merge them in
            merged = {p[0]: p for p in points.get(k, [])}
            for t, c in extra.items():
                p = merged.setdefault(t, [t, 0, 0])
                p[1] += c.packets
                p[2] += c.bytes
            points[k] = [merged[t] for t in sorted(merged)]
        return WindowSeries(s, u, step, points, self.gaps(s, u))

    def gaps(self, since: float, until: float) -> list[list[int]]:
        """The parts of [since, min(until, now)) no controller was running for (runs with
        their heartbeats; this run until now), and what retention pruned."""
        now = self.clock()
        end = min(until, now)
        covered = []
        for run_id, started, last_seen in self.store.runs():
            a, b = max(started, self.coarse_from), now if run_id == self.run_id else last_seen
            if b > a:
                covered.append((a, b))
        covered.sort()
        out, at = [], since
        for a, b in covered:
            if b <= at:
                continue
            if a > at:
                out.append([int(math.floor(at)), int(math.ceil(min(a, end)))])
            at = max(at, b)
            if at >= end:
                break
        if at < end:
            out.append([int(math.floor(at)), int(math.ceil(end))])
        return [g for g in out if g[1] > g[0]]

    # ---- status ----
    def status(self) -> dict:
        s = self.settings
        return {"fine_step_s": s.fine_step_s, "fine_keep_s": s.fine_keep_s,
                "coarse_step_s": s.coarse_step_s, "coarse_keep_s": s.coarse_keep_s,
                "fine_from": self.fine_from, "coarse_from": self.coarse_from,
                "run_started": self.run_started}


class HistoryExtension(Extension):
    """The `history:` YAML section and --history-* options of `controller start`; the
    history itself is core (Controller.history, fed by Accounting)."""

    name = "history"

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock  # tests: a controllable clock
        self.settings = HistorySettings()
        self.history: History | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        for key, default in (("fine-step", "1m"), ("fine-keep", "2d"), ("coarse-step", "1h"),
                             ("coarse-keep", "400d")):
            parser.add_argument(f"--history-{key}", dest=f"history_{key.replace('-', '_')}",
                                metavar="DURATION", help=f"history {key.replace('-', ' ')} "
                                f"(default {default}; s, m, h, d)")

    def options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {key: getattr(args, f"history_{key}") for key in HistorySettings.KEYS
                if getattr(args, f"history_{key}", None) is not None}

    def configure(self, section: dict[str, Any]) -> None:
        self.settings = HistorySettings.from_section(section)

    def attach(self, controller) -> None:
        self.history = controller.history
        self.history.configure(self.settings, self.clock)
        controller.hooks.add_status("history", self.history.status)
