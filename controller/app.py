"""The controller: keeps every switch equal to what the registry, the topology and the live
fireflies say, and keeps the counts. This module only assembles the parts and runs their
threads; each concern lives in its own module:

  session.py     one switch: connect, arbitrate, back off, supervise (SwitchSession)
  reconciler.py  desired state and the read-diff-write passes (on (re)connect, periodic)
  tags.py        registry -> tag rules (TagBook)
  flows.py       fireflies -> flows: dedup, policy, entries, ends (FlowService)
  accounting.py  baselines, totals, rates, persistence (Accounting)
  queries.py     what the API and the CLI show
  hooks.py       listeners and status/metrics contributions of other features (Hooks)

Threads: one supervisor per switch, one worker applying queued events in order (fireflies,
idle timeouts), one counter poller, optionally a registry refresher and a UDP bind retry.
Drivers call on_event() from their stream threads; work is queued, never done there.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Callable, Iterable

from controller import label_trust, metrics, queries, windows
from controller.accounting import Accounting
from controller.drivers.base import (ConnectionLost, CounterSnapshot, DriverError, FireflyPacket,
                                     FlowIdle, MastershipChanged, SwitchDriver, SwitchReset,
                                     SwitchUnreachable)
from controller.events import FireflyReceived
from controller.firefly_policy import FireflyPolicy, PolicyConfig
from controller.flows import FlowService, LiveFlow  # noqa: F401 - LiveFlow: the type of .flows values
from controller.hooks import Hooks
from controller.reconciler import DEFAULT_INTERVAL_S, Reconciler
from controller.session import SwitchSession
from controller.store import Store
from controller.tags import TagBook, TagMeta  # noqa: F401 - TagMeta: the type of .tags values
from controller.topology import Topology
from scitags_core.firefly import FireflyRecord
from scitags_core.firefly_receiver import FireflyReceiver
from scitags_core.firefly_stats import FireflyStats
from scitags_core.registry import Registry

log = logging.getLogger(__name__)

QUEUE_MAX = 50_000


class Controller:
    def __init__(self, topology: Topology, drivers: dict[str, SwitchDriver], store: Store,
                 registry_loader: Callable[[], Registry], policy: PolicyConfig | None = None,
                 poll_interval_s: float = 2.0, mirror: Iterable[str] = (),
                 firefly_listen: tuple[str, int] | None = None,
                 registry_refresh_s: float = 0.0,
                 registry_refresher: Callable[[], Registry] | None = None,
                 reconcile_interval_s: float = DEFAULT_INTERVAL_S,
                 hooks: Hooks | None = None,
                 label_trust: dict[str, tuple[str, ...] | None] | None = None,
                 experiment_wildcard: bool = True) -> None:
        """label_trust: the flow-label trust scope per switch (controller/label_trust.py);
        experiment_wildcard: a counting rule per experiment for its unregistered activities."""
        self.topology = topology
        self.label_trust = {name: (label_trust or {}).get(name) for name in drivers}
        self.store = store
        self.registry_loader = registry_loader
        self.registry_refresher = registry_refresher
        self.registry_refresh_s = registry_refresh_s
        self.poll_interval_s = poll_interval_s
        self.reconcile_interval_s = reconcile_interval_s
        self.firefly_listen = firefly_listen
        self.hooks = hooks or Hooks()
        self.firefly_stats = FireflyStats()  # per deviation and sender application, both receivers
        self.hooks.add_collector(self.firefly_stats)
        self.stats = collections.Counter({
            "fireflies_processed": 0, "flows_installed": 0, "flows_removed": 0, "flows_idle": 0,
            "flows_ended": 0, "flows_evicted": 0, "fireflies_duplicate": 0,
            "fireflies_end_unknown": 0, "switch_errors": 0, "registry_refreshes": 0,
            "worker_errors": 0, "reconcile_repairs": 0})
        self.policy = FireflyPolicy(policy or PolicyConfig())
        self.switches = {name: SwitchSession(name, d) for name, d in drivers.items()}
        self.accounting = Accounting(store)
        self._traffic_text = metrics.TrafficText()  # /metrics' traffic families
        self.tagbook = TagBook(store, mirror, experiment_wildcard)
        self.flow_service = FlowService(topology, self.switches, store, self.accounting,
                                        self.tagbook, self.policy, self.hooks, self.stats,
                                        firefly_stats=self.firefly_stats)
        self.reconciler = Reconciler(topology, self.tagbook, self.flow_service, self.accounting,
                                     self.stats, self.label_trust)
        for s in self.switches.values():
            s.driver.set_event_handler(self.on_event)
        self._events: queue.Queue = queue.Queue(maxsize=QUEUE_MAX)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.udp_receiver: FireflyReceiver | None = None
        # parses/counts packet-in fireflies, never bound
        self.inband = FireflyReceiver(name="in-band", stats=self.firefly_stats)
        self.inband.subscribe(self._on_inband_record)
        self._inband_via = "in-band"  # worker thread only: the switch of the packet being parsed
        self.started_at = time.time()

    # ---- state other code reads (tests, CLI, API) ----
    @property
    def flows(self):
        """Live flows by key (owned by the flow service; read a copy under its lock)."""
        return self.flow_service.flows

    @property
    def history(self):
        """Counts per time step (controller/history.py; fed by the accounting)."""
        return self.accounting.history

    @property
    def tags(self):
        return self.tagbook.tags

    @property
    def registry(self) -> Registry | None:
        return self.tagbook.registry

    # ================= lifecycle =================
    def start(self) -> None:
        self.accounting.load()
        self.history.open()
        self.apply_registry(self.registry_loader(), initial=True)
        for s in self.switches.values():
            self._spawn(f"switch-{s.name}", s.supervise, self._stop, self.reconciler, self.stats,
                        self.reconcile_interval_s)
        self._spawn("firefly-worker", self._work)
        self._spawn("counter-poller", self._poll_loop)
        if self.registry_refresh_s > 0 and self.registry_refresher is not None:
            self._spawn("registry-refresh", self._refresh_loop)
        if self.firefly_listen is not None:
            if not self._start_udp():
                self._spawn("udp-bind-retry", self._udp_retry_loop)

    def _start_udp(self) -> bool:
        """Bind the UDP firefly receiver; False while the port is taken (e.g. by the primary
        controller on this host: this one binds it once that one is gone)."""
        host, port = self.firefly_listen
        receiver = FireflyReceiver(port, None if host in ("", "::") else host,
                                   stats=self.firefly_stats)
        receiver.subscribe(self._on_udp_record)
        try:
            receiver.start()
        except OSError as exc:
            log.warning("fireflies: cannot listen on UDP %s:%d (%s): in-band fireflies only, "
                        "retrying every 5 s", host, port, exc.strerror or exc)
            return False
        self.udp_receiver = receiver
        log.info("fireflies: UDP receiver on %s:%d", *receiver.address)
        return True

    def _udp_retry_loop(self) -> None:
        while not self._stop.wait(5.0):
            if self._start_udp():
                return

    def _spawn(self, name: str, target: Callable, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        if self.udp_receiver is not None:
            self.udp_receiver.stop()
        for s in self.switches.values():
            s.wake.set()
        for t in self._threads:
            t.join(timeout=5)
        try:
            self.poll_all()
        except Exception:  # noqa: BLE001 - best effort final read
            pass
        self.save()
        for s in self.switches.values():
            try:
                s.driver.close()
            except Exception:  # noqa: BLE001
                pass

    def wait_ready(self, timeout: float = 30.0, switches: Iterable[str] | None = None) -> bool:
        """True when every (named) switch has been fully synced (tests, bench)."""
        names = list(switches) if switches is not None else list(self.switches)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.switches[n].ready for n in names):
                return True
            time.sleep(0.05)
        return False

    # ================= events =================
    def on_event(self, event: object) -> None:
        """Called by drivers from their own threads: queue work, wake supervisors."""
        if isinstance(event, (ConnectionLost, MastershipChanged)):
            s = self.switches.get(event.switch)
            if s is not None:
                s.on_driver_event(event)
            return
        if isinstance(event, SwitchReset):
            log.warning("switch %s: reset (%s): state re-pushed, earlier counts kept as history",
                        event.switch, event.reason)
            return
        self._queue(event, getattr(event, "src", ("", 0))[0])

    def _queue(self, item: object, sender: str) -> None:
        try:
            self._events.put_nowait(item)
        except queue.Full:
            self.policy.refuse("queue-full", sender, detail=type(item).__name__)

    def _on_udp_record(self, record: FireflyRecord, peer: tuple[str, int]) -> None:
        self._queue(FireflyReceived(record, peer[0], "udp"), peer[0])

    def _on_inband_record(self, record: FireflyRecord, peer: tuple[str, int]) -> None:
        self._queue(FireflyReceived(record, peer[0], self._inband_via), peer[0])

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if isinstance(item, FireflyPacket):
                    self._inband_via = f"in-band:{item.switch}"
                    self.inband.handle_datagram(item.payload, item.src)
                elif isinstance(item, FlowIdle):
                    self.flow_service.on_idle(item)
                elif isinstance(item, FireflyReceived):
                    self.flow_service.handle_record(item.record, item.sender, item.via)
            except Exception:  # noqa: BLE001 - the worker must survive anything
                self.stats["worker_errors"] += 1
                log.exception("firefly worker: unexpected error on %r", type(item).__name__)

    # ---- flows (kept here for callers of the earlier API) ----
    def handle_record(self, rec: FireflyRecord, sender: str, via: str) -> str:
        return self.flow_service.handle_record(rec, sender, via)

    def end_flow(self, key, reason: str) -> bool:
        return self.flow_service.end_flow(key, reason)

    # ================= registry -> tags =================
    def apply_registry(self, registry: Registry, initial: bool = False) -> None:
        """Tag rules from `registry`; on a refresh, counts so far are folded under the old
        names first, then every switch gets the new rules (others' entries untouched)."""
        tags = self.tagbook.build(registry)
        if not initial:
            self.poll_all()  # fold counts under the names they had
        with self.flow_service.lock, self.accounting.lock:
            self.tagbook.install(registry, tags)
        if initial:
            return
        self.stats["registry_refreshes"] += 1
        for s in self.switches.values():
            if s.ready:
                try:
                    self.reconciler.resync_tags(s)
                except (DriverError, SwitchUnreachable) as exc:
                    s.lost()
                    log.warning("switch %s: tag sync failed (%s): will re-sync", s.name, exc)
        self.flow_service.rename_all()

    def refresh_registry(self) -> Registry:
        """Fetch the registry again (API/periodic) and apply it."""
        if self.registry_refresher is None:
            raise RuntimeError("no registry source to refresh from")
        registry = self.registry_refresher()
        if self.registry is not None and registry.digest == self.registry.digest:
            return registry
        self.apply_registry(registry)
        return registry

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.registry_refresh_s):
            try:
                self.refresh_registry()
            except Exception as exc:  # noqa: BLE001
                log.warning("registry refresh failed: %s", exc)

    # ================= counters =================
    def _poll_loop(self) -> None:
        last_save = time.monotonic()
        while not self._stop.wait(self.poll_interval_s):
            self.poll_all()
            if time.monotonic() - last_save >= max(self.poll_interval_s, 5.0):
                self.save()
                last_save = time.monotonic()

    def poll_all(self) -> None:
        for s in self.switches.values():
            if s.ready:
                self.poll_switch(s)

    def poll_switch(self, s: SwitchSession) -> CounterSnapshot | None:
        with s.poll_lock:
            epoch, started = s.tag_epoch, time.monotonic()
            try:
                snap = s.driver.read_counters()
            except SwitchUnreachable as exc:
                s.lost()
                log.warning("%s", exc)
                return None
            except DriverError as exc:
                log.warning("switch %s: counter read failed: %s", s.name, exc)
                return None
            # Lock order everywhere: poll lock, switch lock, then flows, then counts.
            with self.flow_service.lock:
                tag_keys = self.tagbook.total_keys(s.name) if epoch == s.tag_epoch else None
                deltas = self.accounting.apply_snapshot(
                    snap, tag_keys, self.tagbook.identity, self.flow_service.counted(s.name, started),
                    s.last_poll)
                s.last_poll = snap.taken_at
        if self.hooks.poll_listeners:
            self.hooks.poll(deltas)
        return snap

    def save(self) -> None:
        self.accounting.save()

    # ================= queries =================
    def counter_rows(self, switch: str | None = None, experiment: str | None = None,
                     activity: str | None = None) -> list[dict]:
        return queries.counter_rows(self.accounting, switch, experiment, activity, self._label_view())

    def window_counters(self, since: str, until: str | None = None, switch: str | None = None,
                        experiment: str | None = None, activity: str | None = None) -> dict:
        """Counter rows of the window [since, until) (WHENs: controller/windows.py); a bad
        window raises WindowError (a ValueError: HTTP 400)."""
        window = windows.parse_window(since, until, self.history.clock())
        view = self._label_view()
        out = queries.window_counters(self.history, window, switch, experiment, activity, view)
        out["label_background"] = queries.background_summary(self.accounting, view, out.pop("items"))
        return out

    def history_series(self, since: str, until: str | None = None, step: str | None = None,
                       switch: str | None = None, experiment: str | None = None,
                       activity: str | None = None, source: str | None = None) -> dict:
        """GET /api/v1/history: the series of the window, `step` a duration (e.g. 5m)."""
        window = windows.parse_window(since, until, self.history.clock())
        step_s = None if not step else windows.parse_duration(step, "step")
        if step_s is not None and step_s != int(step_s):
            raise windows.WindowError(f"step {step!r} is not a whole number of seconds")
        return queries.history_series(self.history, window, None if step_s is None else int(step_s),
                                      switch, experiment, activity, source)

    def traffic_metrics(self) -> str:
        """/metrics: the per-experiment/activity/source and bucket families (text format)."""
        return self._traffic_text.render(self.accounting, self._label_view())

    def label_background(self) -> dict:
        """Per switch the estimated random-label share of the flow-label counts."""
        return queries.background_summary(self.accounting, self._label_view())

    def _label_view(self) -> queries.LabelView:
        trust = self.label_trust_status()
        return queries.LabelView(self.tagbook.identity,
                                 [(r.experiment, r.activity) for r in self.tagbook.rules()],
                                 {n: s["label_counts"] == "verified" for n, s in trust["switches"].items()})

    def label_trust_status(self) -> dict:
        """Per switch the trust scope and whether its label counts are verified."""
        return label_trust.status(self.label_trust, {n: s.driver for n, s in self.switches.items()})

    def flow_rows(self, recent: int = 50, limit: int | None = None) -> dict:
        """limit: only the `limit` live flows with the most bytes, and `live_total`."""
        if limit is not None:
            return queries.top_flow_rows(self.flow_service.top_rows(limit), len(self.flow_service),
                                         self.store, recent)
        return queries.flow_rows(self.flow_service.rows(), self.store, recent)

    def status(self) -> dict:
        reg = self.registry
        out = {
            "started": self.started_at,
            "registry": None if reg is None else {
                "identity": reg.identity, "source": reg.source, "digest": reg.digest,
                "tags": len(self.tags)},
            "switches": {n: s.as_dict() for n, s in self.switches.items()},
            "flows_live": len(self.flow_service),
            "stats": dict(self.stats),
            "fireflies": self.firefly_status(),
            "reconcile_interval_s": self.reconcile_interval_s,
            "label_trust": self.label_trust_status(),
            "experiment_wildcard": self.tagbook.experiment_wildcard,
        }
        if self.hooks.errors:
            out["hook_errors"] = dict(self.hooks.errors)
        out.update(self.hooks.status_sections())
        return out

    def firefly_status(self) -> dict:
        out = self.policy.snapshot()
        out["in_band"] = self.inband.counters().as_dict()
        out["udp"] = self.udp_receiver.counters().as_dict() if self.udp_receiver else None
        out["queue_depth"] = self._events.qsize()
        out["refused"]["malformed"] = (out["in_band"]["rejected_total"]
                                       + (out["udp"]["rejected_total"] if out["udp"] else 0))
        by_sender = self.firefly_stats.snapshot()  # UDP and in-band together
        out["deviations"], out["applications"] = by_sender["deviations"], by_sender["applications"]
        out["dedup"] = self.flow_service.dedup.snapshot()
        return out
