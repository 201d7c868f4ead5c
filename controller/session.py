"""One switch session: connect, arbitrate (primary/backup), back off, and keep the switch
reconciled: a full sync after every (re)connect or mastership gain (pipeline pushed when
needed), then a reconcile pass every reconcile_interval_s and a pipeline-cookie check every
PIPELINE_CHECK_S. A backup session never writes.

The session's state is written by its supervisor thread and by driver events; `lock` is
held by whoever writes to the switch (sync passes, flow installs and removals); `pass_lock`
by a reconcile pass from its read-back to its write.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

from controller.drivers.base import (ConnectionLost, DriverError, MastershipChanged,
                                     ReconcileResult, SwitchDriver, SwitchUnreachable)

if TYPE_CHECKING:
    from controller.reconciler import Reconciler

log = logging.getLogger(__name__)

BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
PIPELINE_CHECK_S = 5.0  # how often a synced switch's pipeline cookie is compared


class SwitchSession:
    def __init__(self, name: str, driver: SwitchDriver) -> None:
        self.name = name
        self.driver = driver
        self.lock = threading.RLock()
        # one reconcile pass at a time; held across a periodic pass's read-back, which runs
        # without `lock` so flow installs go on (lock order: pass_lock, then lock)
        self.pass_lock = threading.Lock()
        # one counter poll at a time, from its read to its fold: two polls applied out of
        # order would look like a counter going backwards and count a reading twice
        # (lock order: poll_lock, then flows, then counts)
        self.poll_lock = threading.Lock()
        self.wake = threading.Event()
        self.status = "connecting"  # connecting | syncing | ready | backup | unreachable | error
        self.error: str | None = None
        self.ready = False
        self.first_sync = True
        self.tag_epoch = 0  # bumped around tag writes: a counter read spanning one is skipped
        self.syncs = 0
        self.pipeline_pushes = 0
        self.resets = 0
        self.last_poll: float | None = None
        self.backoff = BACKOFF_MIN
        self.cookie: int | None = None  # pipeline cookie seen at the last sync
        self.last_check = 0.0
        # reconciliation
        self.reconciles = 0
        self.last_reconcile = 0.0  # monotonic
        self.last_reconcile_ms: float | None = None
        self.repairs: collections.Counter = collections.Counter()  # (kind, change) -> n
        self.events = 0  # connection/mastership events seen: a sync spanning one is not trusted

    # ---- events (driver threads) ----
    def on_driver_event(self, event: ConnectionLost | MastershipChanged) -> None:
        self.events += 1
        if isinstance(event, ConnectionLost) or not event.primary:
            self.ready = False
            self.status = "unreachable" if isinstance(event, ConnectionLost) else "backup"
            self.error = getattr(event, "reason", None)
        else:
            self.ready = False  # a new primary re-syncs everything
            self.status = "connecting"
        log.warning("switch %s: %s", self.name, event)
        self.wake.set()

    def lost(self) -> None:
        """An operation found the switch unreachable: re-sync when it is back."""
        self.ready = False
        self.wake.set()

    def record(self, result: ReconcileResult, count_repairs: bool) -> None:
        self.reconciles += 1
        self.last_reconcile = time.monotonic()
        self.last_reconcile_ms = round((result.read_s + result.write_s) * 1000, 2)
        if count_repairs and result.repairs:
            # replaced, not updated in place: readers (status, metrics) iterate it unlocked
            self.repairs = self.repairs + collections.Counter(result.repairs)

    # ---- the supervisor thread ----
    def supervise(self, stop: threading.Event, reconciler: "Reconciler", stats: collections.Counter,
                  reconcile_interval_s: float) -> None:
        driver = self.driver
        while not stop.is_set():
            self.wake.clear()
            connected = driver.connected
            if not connected:
                self.ready = False
            if not self.ready:
                try:
                    if not connected:
                        driver.connect()
                    if driver.is_primary:
                        reconciler.full_sync(self)
                    else:
                        self.status, self.error = "backup", "another controller is primary"
                    self.backoff = BACKOFF_MIN
                except SwitchUnreachable as exc:
                    self.status, self.error = "unreachable", str(exc)
                    log.warning("%s; retry in %.1fs", exc, self.backoff)
                    self._back_off(stop)
                    continue
                except Exception as exc:  # noqa: BLE001 - a switch error must not kill the thread
                    self.status, self.error = "error", str(exc)
                    stats["switch_errors"] += 1
                    log.error("switch %s: sync failed: %s; retry in %.1fs", self.name, exc, self.backoff)
                    if not isinstance(exc, DriverError):
                        log.debug("traceback", exc_info=True)
                    self._back_off(stop)
                    continue
            else:
                now = time.monotonic()
                if now - self.last_check >= PIPELINE_CHECK_S:
                    self._check_pipeline()
                if (self.ready and reconcile_interval_s > 0
                        and now - self.last_reconcile >= reconcile_interval_s):
                    reconciler.periodic(self)
            self.wake.wait(1.0 if reconcile_interval_s <= 0 else min(1.0, reconcile_interval_s))

    def _back_off(self, stop: threading.Event) -> None:
        stop.wait(self.backoff)
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)

    def _check_pipeline(self) -> None:
        """Pipeline replaced under us (another client pushed one): re-sync everything."""
        self.last_check = time.monotonic()
        try:
            cookie = self.driver.pipeline_cookie()
        except (SwitchUnreachable, DriverError) as exc:
            log.warning("switch %s: pipeline check failed: %s", self.name, exc)
            return
        if cookie != self.cookie:
            log.warning("switch %s: pipeline changed (cookie %s, expected %s): re-syncing",
                        self.name, cookie, self.cookie)
            self.ready = False
            self.wake.set()

    # ---- queries ----
    def as_dict(self) -> dict:
        d = self.driver
        return {"status": self.status, "error": self.error, "ready": self.ready,
                "primary": d.is_primary, "syncs": self.syncs,
                "pipeline_pushes": self.pipeline_pushes, "resets": self.resets,
                "last_poll": self.last_poll, "driver": dict(d.stats),
                "reconcile": {"passes": self.reconciles, "last_ms": self.last_reconcile_ms,
                              "repairs": {f"{k}/{c}": n for (k, c), n in sorted(self.repairs.items())}}}
