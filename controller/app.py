"""The controller: keeps every switch equal to what the registry, the topology and the live
fireflies say, and keeps the counts.

Threads: one supervisor per switch (connect, retry with backoff, full sync after a
(re)connect or a mastership gain), one worker applying fireflies and idle timeouts in
order, one counter poller. Drivers call on_event() from their stream threads; work is
queued, never done on those threads.

Counting: each switch counter cell has a baseline (last value read, persisted); every poll
adds `reading - baseline` (or `reading`, when the cell went backwards: the switch was
restarted) to totals keyed by the names the registry gave at that moment. Totals and
baselines are saved together in SQLite, so counts survive controller restarts.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from controller.drivers.base import (
    BUCKETS, ConnectionLost, CounterSnapshot, Counts, DriverError, FireflyPacket, FlowIdle,
    FlowKey, FlowRule, MastershipChanged, SwitchDriver, SwitchReset, SwitchUnreachable, TagRule)
from controller.firefly_policy import FireflyPolicy, PolicyConfig
from controller.store import Store, TotalKey
from controller.topology import Topology
from scitags_core.firefly import FireflyRecord, FlowState
from scitags_core.firefly_receiver import FireflyReceiver
from scitags_core.registry import Registry

log = logging.getLogger(__name__)

TAG_CAPACITY = 4096
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
PIPELINE_CHECK_S = 5.0  # how often a synced switch's pipeline cookie is compared
DEDUP_WINDOW_S = 2.0  # the same firefly seen by several switches and the UDP receiver
WILDCARD_NAME = "*"


@dataclass
class TagMeta:
    rule: TagRule
    experiment_name: str
    activity_name: str
    registry: str


@dataclass
class LiveFlow:
    key: FlowKey
    experiment: int
    activity: int
    experiment_name: str | None
    activity_name: str | None
    registry: str
    path: list[str]
    started: float
    last_seen: float
    sender: str
    via: str  # "udp" | "in-band:<switch>" | "adopted:<switch>"
    state: str = "start"
    fireflies: int = 0
    installed: dict[str, float] = field(default_factory=dict)  # switch -> install time (monotonic)
    # switch -> counts so far, kept across switch restarts (as the totals are: see _flow_delta)
    counts: dict[str, Counts] = field(default_factory=dict)

    def as_dict(self) -> dict:
        best = max(self.counts.values(), key=lambda c: c.bytes, default=Counts())
        return {"flow": str(self.key), "afi": self.key.afi, "src": str(self.key.src),
                "dst": str(self.key.dst), "protocol": self.key.protocol,
                "src_port": self.key.src_port, "dst_port": self.key.dst_port,
                "experiment_id": self.experiment, "activity_id": self.activity,
                "experiment_name": self.experiment_name, "activity_name": self.activity_name,
                "registry": self.registry, "state": self.state, "started": self.started,
                "last_seen": self.last_seen, "sender": self.sender, "via": self.via,
                "fireflies": self.fireflies, "path": self.path,
                "installed_on": sorted(self.installed),
                "packets": best.packets, "bytes": best.bytes,
                "per_switch": {s: {"packets": c.packets, "bytes": c.bytes} for s, c in self.counts.items()}}


@dataclass
class SwitchState:
    name: str
    driver: SwitchDriver
    lock: threading.RLock = field(default_factory=threading.RLock)
    wake: threading.Event = field(default_factory=threading.Event)
    status: str = "connecting"  # connecting | ready | backup | unreachable | error
    error: str | None = None
    ready: bool = False
    first_sync: bool = True
    tag_epoch: int = 0
    syncs: int = 0
    pipeline_pushes: int = 0
    resets: int = 0
    last_poll: float | None = None
    backoff: float = BACKOFF_MIN
    cookie: int | None = None  # pipeline cookie seen at the last sync
    last_check: float = 0.0


class Controller:
    def __init__(self, topology: Topology, drivers: dict[str, SwitchDriver], store: Store,
                 registry_loader: Callable[[], Registry], policy: PolicyConfig | None = None,
                 poll_interval_s: float = 2.0, mirror: Iterable[str] = (),
                 firefly_listen: tuple[str, int] | None = None,
                 registry_refresh_s: float = 0.0,
                 registry_refresher: Callable[[], Registry] | None = None) -> None:
        self.topology = topology
        self.store = store
        self.registry_loader = registry_loader
        self.registry_refresher = registry_refresher
        self.registry_refresh_s = registry_refresh_s
        self.policy = FireflyPolicy(policy or PolicyConfig())
        self.poll_interval_s = poll_interval_s
        self.mirror_specs = list(mirror)
        self.firefly_listen = firefly_listen
        self.switches = {name: SwitchState(name, d) for name, d in drivers.items()}
        for st in self.switches.values():
            st.driver.set_event_handler(self.on_event)
        self.registry: Registry | None = None
        self.tags: dict[int, TagMeta] = {}
        self.flows: dict[FlowKey, LiveFlow] = {}
        self._flows_lock = threading.RLock()
        self._counts_lock = threading.RLock()
        self.totals: dict[TotalKey, Counts] = {}
        self.baselines: dict[tuple[str, str], Counts] = {}
        self._dropped_baselines: set[tuple[str, str]] = set()
        self._dirty_baselines: set[tuple[str, str]] = set()  # changed since the last save
        self._dirty_totals: set[TotalKey] = set()  # only these are written: a backup sharing
        # the state directory never overwrites the primary's totals with older ones
        self.rates: dict[TotalKey, tuple[float, float]] = {}  # bytes/s, packets/s
        self._events: queue.Queue = queue.Queue(maxsize=50_000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seen: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self.udp_receiver: FireflyReceiver | None = None
        self.inband = FireflyReceiver(name="in-band")  # parses/counts packet-in fireflies, never bound
        self.inband.subscribe(self._on_inband_record)
        self._inband_ctx = threading.local()
        self.stats = collections.Counter({"fireflies_processed": 0, "flows_installed": 0,
                                          "flows_removed": 0, "flows_idle": 0, "flows_ended": 0,
                                          "flows_evicted": 0, "fireflies_duplicate": 0,
                                          "fireflies_end_unknown": 0, "switch_errors": 0,
                                          "registry_refreshes": 0, "worker_errors": 0})
        self.started_at = time.time()
        self.primary_ever = False

    # ================= lifecycle =================
    def start(self) -> None:
        self.totals = self.store.load_totals()
        self.baselines = self.store.load_baselines()
        self.apply_registry(self.registry_loader(), initial=True)
        for st in self.switches.values():
            self._spawn(f"switch-{st.name}", self._supervise, st)
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
        receiver = FireflyReceiver(port, None if host in ("", "::") else host)
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
        for st in self.switches.values():
            st.wake.set()
        for t in self._threads:
            t.join(timeout=5)
        try:
            self.poll_all()
        except Exception:  # noqa: BLE001 - best effort final read
            pass
        self.save()
        for st in self.switches.values():
            try:
                st.driver.close()
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

    # ================= driver events =================
    def on_event(self, event: object) -> None:
        """Called by drivers from their own threads: queue work, wake supervisors."""
        if isinstance(event, (ConnectionLost, MastershipChanged)):
            st = self.switches.get(event.switch)
            if st is not None:
                if isinstance(event, ConnectionLost) or not event.primary:
                    st.ready = False
                    st.status = "unreachable" if isinstance(event, ConnectionLost) else "backup"
                    st.error = getattr(event, "reason", None)
                else:
                    st.ready = False  # a new primary re-syncs everything
                    st.status = "connecting"
                log.warning("switch %s: %s", event.switch, event)
                st.wake.set()
            return
        if isinstance(event, SwitchReset):
            log.warning("switch %s: reset (%s): state re-pushed, earlier counts kept as history",
                        event.switch, event.reason)
            return
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.policy.refuse("queue-full", detail=type(event).__name__)

    def _on_udp_record(self, record: FireflyRecord, peer: tuple[str, int]) -> None:
        self._queue_record(record, peer[0], "udp")

    def _on_inband_record(self, record: FireflyRecord, peer: tuple[str, int]) -> None:
        self._queue_record(record, peer[0], getattr(self._inband_ctx, "via", "in-band"))

    def _queue_record(self, record: FireflyRecord, sender: str, via: str) -> None:
        try:
            self._events.put_nowait(("record", record, sender, via, time.monotonic()))
        except queue.Full:
            self.policy.refuse("queue-full", sender)

    # ================= supervisor =================
    def _supervise(self, st: SwitchState) -> None:
        driver = st.driver
        while not self._stop.is_set():
            st.wake.clear()
            connected = getattr(driver, "connected", st.ready)
            if not connected:
                st.ready = False
            if not st.ready:
                try:
                    if not connected:
                        driver.connect()
                    if getattr(driver, "is_primary", True):
                        self.full_sync(st)
                        st.backoff = BACKOFF_MIN
                    else:
                        st.status, st.error = "backup", "another controller is primary"
                        st.backoff = BACKOFF_MIN
                except SwitchUnreachable as exc:
                    st.status, st.error = "unreachable", str(exc)
                    log.warning("%s; retry in %.1fs", exc, st.backoff)
                    self._stop.wait(st.backoff)
                    st.backoff = min(st.backoff * 2, BACKOFF_MAX)
                    continue
                except Exception as exc:  # noqa: BLE001 - a switch error must not kill the thread
                    st.status, st.error = "error", str(exc)
                    self.stats["switch_errors"] += 1
                    log.error("switch %s: sync failed: %s; retry in %.1fs", st.name, exc, st.backoff)
                    if not isinstance(exc, DriverError):
                        log.debug("traceback", exc_info=True)
                    self._stop.wait(st.backoff)
                    st.backoff = min(st.backoff * 2, BACKOFF_MAX)
                    continue
            elif st.ready and time.monotonic() - st.last_check >= PIPELINE_CHECK_S:
                self._check_pipeline(st)
            st.wake.wait(1.0)

    def _check_pipeline(self, st: SwitchState) -> None:
        """Pipeline replaced under us (another client pushed one): re-sync everything."""
        st.last_check = time.monotonic()
        probe = getattr(st.driver, "pipeline_cookie", None)
        if probe is None:
            return
        try:
            cookie = probe()
        except (SwitchUnreachable, DriverError) as exc:
            log.warning("switch %s: pipeline check failed: %s", st.name, exc)
            return
        if cookie != st.cookie:
            log.warning("switch %s: pipeline changed (cookie %s, expected %s): re-syncing",
                        st.name, cookie, st.cookie)
            st.ready = False
            st.wake.set()

    def full_sync(self, st: SwitchState) -> None:
        """Pipeline (if needed), forwarding, tags and flows on one switch."""
        d, topo = st.driver, self.topology
        if not self.primary_ever:
            self._reload_counts()  # a backup taking over may share the primary's state dir
        with st.lock:
            st.status = "syncing"
            pushed = d.ensure_pipeline()
            if pushed:
                st.pipeline_pushes += 1
                self._forget_baselines(st.name)
                if st.syncs:
                    st.resets += 1
                    log.warning("switch %s: restarted or lost its pipeline: pipeline and all state "
                                "re-pushed; counts read before are kept", st.name)
            st.tag_epoch += 1
            cpu = topo.switches[st.name].cpu_port if st.name in topo.switches else None
            d.set_forwarding(topo.mac_table(st.name), topo.flood_ports(st.name), cpu,
                             topo.monitor_port(st.name))
            self._sync_tags_on(st, self._tag_rules())
            others = self._reconcile_flows(st, adopt=st.first_sync and not pushed)
            st.first_sync = False
            probe = getattr(d, "pipeline_cookie", None)
            st.cookie = probe() if probe is not None else None
            st.last_check = time.monotonic()
            st.syncs += 1
            st.status, st.error, st.ready = "ready", None, True
            self.primary_ever = True
        for other, flow in others:
            if self.switches[other].ready:
                self._install_on(self.switches[other], flow)
        log.info("switch %s: in sync (pipeline %s, %d tags, %d flows)", st.name,
                 "pushed" if pushed else "kept", len(self.tags),
                 sum(1 for f in self.flows.values() if st.name in f.installed))

    def _reload_counts(self) -> None:
        with self._counts_lock:
            if self._dirty_totals or self._dirty_baselines:
                return  # this instance has counted already: its own view is newer
            self.totals = self.store.load_totals()
            self.baselines = self.store.load_baselines()

    def _reconcile_flows(self, st: SwitchState, adopt: bool) -> list[tuple[str, LiveFlow]]:
        on_switch = st.driver.installed_flows()
        now = time.monotonic()
        with self._flows_lock:
            for key, rule in on_switch.items():
                flow = self.flows.get(key)
                if flow is None and adopt:
                    flow = self._new_flow(key, rule.experiment, rule.activity, "", f"adopted:{st.name}")
                    flow.state = "adopted"
                    self.flows[key] = flow
                    log.info("switch %s: adopted flow %s (installed before this controller started)",
                             st.name, key)
                if flow is not None and st.name in flow.path:
                    if (rule.experiment, rule.activity) == (flow.experiment, flow.activity):
                        with self._counts_lock:  # adopted: what an earlier controller counted
                            flow.counts.setdefault(st.name, self.baselines.get(
                                (st.name, _flow_cell(key)), Counts()))
                        flow.installed.setdefault(st.name, now)
                        continue
                    st.driver.install_flow(self._flow_rule(flow))
                    flow.installed[st.name] = now
                    continue
                st.driver.remove_flow(key)  # left over: ended while we were away
                self._drop_baseline(st.name, _flow_cell(key))
                log.info("switch %s: removed left-over flow %s", st.name, key)
            for key, flow in list(self.flows.items()):
                if st.name in flow.path and key not in on_switch:
                    st.driver.install_flow(self._flow_rule(flow))
                    flow.installed[st.name] = now
                    self._drop_baseline(st.name, _flow_cell(key))
            # Adopted flows also go to the other switches on their path; done by the caller
            # once this switch's lock is released (locks are never held across switches).
            return [(other, flow) for flow in self.flows.values() for other in flow.path
                    if other != st.name and other not in flow.installed] if adopt else []

    # ================= registry -> tags =================
    def _mirror_wanted(self, exp_name: str, exp_id: int, act_name: str | None, act_id: int | None) -> bool:
        for spec in self.mirror_specs:
            e, _, a = spec.partition("/")
            if e.casefold() not in (exp_name.casefold(), str(exp_id)):
                continue
            if not a or a == "*" or (act_name is not None and a.casefold() in (act_name.casefold(), str(act_id))):
                return True
        return False

    def apply_registry(self, registry: Registry, initial: bool = False) -> None:
        """Tag rules from `registry`; on a refresh, counts so far are folded under the old
        names first, then every switch gets the new rules (others entries untouched)."""
        pairs: list[tuple[int, int | None, str, str]] = []
        for exp in registry.experiments:
            if not exp.markable:
                continue
            pairs.append((exp.id, None, exp.name, WILDCARD_NAME))
            for act in exp.activities:
                if act.markable:
                    pairs.append((exp.id, act.id, exp.name, act.name))
        ids = self.store.assign_tag_ids([(e, a) for e, a, _, _ in pairs], TAG_CAPACITY)
        if not initial:
            self.poll_all()  # fold counts under the names they had
        tags = {}
        for e, a, en, an in pairs:
            rule = TagRule(ids[(e, a)], e, a, self._mirror_wanted(en, e, None if a is None else an, a))
            tags[rule.tag_id] = TagMeta(rule, en, an, registry.identity)
        with self._counts_lock:
            self.registry = registry
            self.tags = tags
        log.info("registry %s (%s): %d experiments -> %d tag rules", registry.identity,
                 registry.source, len(registry.experiments), len(tags))
        if not initial:
            self.stats["registry_refreshes"] += 1
            for st in self.switches.values():
                if st.ready:
                    try:
                        with st.lock:
                            self._sync_tags_on(st, self._tag_rules())
                    except (DriverError, SwitchUnreachable) as exc:
                        st.ready = False
                        st.wake.set()
                        log.warning("switch %s: tag sync failed (%s): will re-sync", st.name, exc)
            with self._flows_lock:  # names of live flows follow the registry
                for flow in self.flows.values():
                    info = registry.describe(flow.experiment, flow.activity)
                    flow.experiment_name, flow.activity_name = info.experiment_name, info.activity_name
                    flow.registry = registry.identity

    def _tag_rules(self) -> list[TagRule]:
        return [m.rule for m in self.tags.values()]

    def _sync_tags_on(self, st: SwitchState, rules: list[TagRule]) -> None:
        before = {cell for (s, cell) in self.baselines if s == st.name and cell.startswith("tag:")}
        st.tag_epoch += 1
        st.driver.sync_tags(rules)
        # Cells new to the switch were zeroed by the driver: start their baselines at 0.
        zeroed = {f"tag:{t}" for t in getattr(st.driver, "last_zeroed", [])}
        with self._counts_lock:
            wanted = {f"tag:{r.tag_id}" for r in rules}
            for cell in before - wanted:
                self._drop_baseline(st.name, cell)
            for cell in (wanted - before) | (zeroed & wanted):
                self.baselines[(st.name, cell)] = Counts()
                self._dirty_baselines.add((st.name, cell))
                self._dropped_baselines.discard((st.name, cell))

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

    # ================= fireflies =================
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if isinstance(item, FireflyPacket):
                    self._inband_ctx.via = f"in-band:{item.switch}"
                    self.inband.handle_datagram(item.payload, item.src)
                elif isinstance(item, FlowIdle):
                    self._on_idle(item)
                elif isinstance(item, tuple) and item[0] == "record":
                    self.handle_record(*item[1:4])
                elif callable(item):
                    item()
            except Exception:  # noqa: BLE001 - the worker must survive anything
                self.stats["worker_errors"] += 1
                log.exception("firefly worker: unexpected error on %r", type(item).__name__)

    def handle_record(self, rec: FireflyRecord, sender: str, via: str) -> str:
        """Apply one parsed firefly; returns what happened (for logs and tests)."""
        self.stats["fireflies_processed"] += 1
        digest = hashlib.blake2b(repr((rec.state, rec.flow_key, rec.experiment_id, rec.activity_id,
                                       rec.current_time, rec.end_time)).encode(), digest_size=12).digest()
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - DEDUP_WINDOW_S:
            self._seen.popitem(last=False)
        if digest in self._seen:
            self.stats["fireflies_duplicate"] += 1
            return "duplicate"
        self._seen[digest] = now
        key = FlowKey(rec.src_ip, rec.dst_ip, 6 if rec.protocol.value == "tcp" else 17,
                      rec.src_port, rec.dst_port)
        if rec.state == FlowState.END:
            if not self.policy.check_sender(sender, (str(rec.src_ip), str(rec.dst_ip))).accepted:
                return "refused"
            if self.end_flow(key, "end"):
                self.stats["flows_ended"] += 1
                return "ended"
            self.stats["fireflies_end_unknown"] += 1
            return "end-unknown"
        if not (0 <= rec.experiment_id <= 0xFFFF and 0 <= rec.activity_id <= 0xFF):
            self.policy.refuse("not-markable", sender,
                               f"experiment {rec.experiment_id} / activity {rec.activity_id}")
            return "refused"
        with self._flows_lock:
            flow = self.flows.get(key)
            # self.flows is kept in refresh order (re-inserted on every firefly): first = oldest
            oldest = next(iter(self.flows), None) if flow is None else None
            decision = self.policy.check(sender, (str(rec.src_ip), str(rec.dst_ip)), flow is None,
                                         len(self.flows), oldest)
        if not decision.accepted:
            return "refused"
        if decision.evict is not None:
            self.end_flow(decision.evict, "evicted")
            self.stats["flows_evicted"] += 1
        with self._flows_lock:
            flow = self.flows.get(key)
            changed = flow is None or (flow.experiment, flow.activity) != (rec.experiment_id, rec.activity_id)
            if flow is None:
                flow = self._new_flow(key, rec.experiment_id, rec.activity_id, sender, via)
                self.flows[key] = flow
            elif changed:
                flow.experiment, flow.activity = rec.experiment_id, rec.activity_id
                self._name_flow(flow)
            flow.state = rec.state.value
            flow.last_seen = time.time()
            self.flows[key] = self.flows.pop(key)  # now the most recently refreshed
            flow.fireflies += 1
            targets = [s for s in flow.path if changed or s not in flow.installed]
        for name in targets:
            st = self.switches.get(name)
            if st is not None and st.ready:
                self._install_on(st, flow)
        return "installed" if targets else "refreshed"

    def _new_flow(self, key: FlowKey, exp: int, act: int, sender: str, via: str) -> LiveFlow:
        path = [s for s in self.topology.switches_on_path(key.src, key.dst) if s in self.switches]
        flow = LiveFlow(key, exp, act, None, None, "", path, time.time(), time.time(), sender, via)
        self._name_flow(flow)
        return flow

    def _name_flow(self, flow: LiveFlow) -> None:
        if self.registry is not None:
            info = self.registry.describe(flow.experiment, flow.activity)
            flow.experiment_name, flow.activity_name = info.experiment_name, info.activity_name
            flow.registry = self.registry.identity

    def _flow_rule(self, flow: LiveFlow) -> FlowRule:
        return FlowRule(flow.key, flow.experiment, flow.activity, self.policy.config.idle_timeout_s)

    def _install_on(self, st: SwitchState, flow: LiveFlow) -> None:
        try:
            with st.lock:
                fresh = st.name not in flow.installed
                st.driver.install_flow(self._flow_rule(flow))
                if fresh:
                    self._drop_baseline(st.name, _flow_cell(flow.key))
                flow.installed[st.name] = time.monotonic()
            self.stats["flows_installed"] += 1
        except SwitchUnreachable as exc:
            st.ready = False
            st.wake.set()
            log.warning("flow %s not installed on %s: %s (installed at re-sync)", flow.key, st.name, exc)
        except DriverError as exc:
            self.policy.refuse("switch-error", flow.sender, str(exc))
            self.stats["switch_errors"] += 1
            log.warning("flow %s not installed on %s: %s", flow.key, st.name, exc)

    def _on_idle(self, ev: FlowIdle) -> None:
        with self._flows_lock:
            flow = self.flows.get(ev.key)
            if flow is None or ev.switch not in flow.installed:
                return  # already handled (repeated notification, or another switch's)
        if self.end_flow(ev.key, f"idle:{ev.switch}"):
            self.stats["flows_idle"] += 1

    def end_flow(self, key: FlowKey, reason: str) -> bool:
        """Remove a flow everywhere, reading its final counters into the flow history."""
        with self._flows_lock:
            flow = self.flows.pop(key, None)
        if flow is None:
            return False
        for name in list(flow.installed):
            st = self.switches.get(name)
            if st is None:
                continue
            try:
                with st.lock:
                    final = st.driver.remove_flow(key)
                    self._fold_flow(st.name, flow, final)
                self.stats["flows_removed"] += 1
            except (SwitchUnreachable, DriverError) as exc:
                log.warning("flow %s: removal from %s failed (%s): removed at re-sync", key, name, exc)
        best = max(flow.counts.values(), key=lambda c: c.bytes, default=Counts())
        rec = flow.as_dict()
        rec.update(ended=time.time(), end_reason=reason, packets=best.packets, bytes=best.bytes)
        self.store.record_flow(rec)
        log.info("flow %s ended (%s): %d packets, %d bytes", key, reason, best.packets, best.bytes)
        return True

    # ================= counters =================
    def _poll_loop(self) -> None:
        last_save = time.monotonic()
        while not self._stop.wait(self.poll_interval_s):
            self.poll_all()
            if time.monotonic() - last_save >= max(self.poll_interval_s, 5.0):
                self.save()
                last_save = time.monotonic()

    def poll_all(self) -> None:
        for st in self.switches.values():
            if st.ready:
                self.poll_switch(st)

    def poll_switch(self, st: SwitchState) -> CounterSnapshot | None:
        epoch, started = st.tag_epoch, time.monotonic()
        try:
            snap = st.driver.read_counters()
        except SwitchUnreachable as exc:
            st.ready = False
            st.wake.set()
            log.warning("%s", exc)
            return None
        except DriverError as exc:
            log.warning("switch %s: counter read failed: %s", st.name, exc)
            return None
        self.apply_snapshot(st, snap, epoch, started)
        return snap

    def apply_snapshot(self, st: SwitchState, snap: CounterSnapshot, epoch: int, started: float) -> None:
        dt = None if st.last_poll is None else max(snap.taken_at - st.last_poll, 1e-6)
        deltas: dict[TotalKey, Counts] = collections.defaultdict(Counts)
        # Lock order everywhere: switch lock, then flows, then counts.
        with self._flows_lock, self._counts_lock:
            reg = self.registry.identity if self.registry else ""
            if epoch == st.tag_epoch:  # tags changed during the read: skip this round
                for tag_id, meta in self.tags.items():
                    cur = snap.tags.get(tag_id, Counts())
                    d = self._delta(st.name, f"tag:{tag_id}", cur)
                    if d.packets or d.bytes:
                        deltas[TotalKey(st.name, "flowlabel", meta.rule.experiment,
                                        -1 if meta.rule.activity is None else meta.rule.activity,
                                        meta.experiment_name, meta.activity_name, meta.registry)] += d
            for name in BUCKETS:
                d = self._delta(st.name, f"bucket:{name}", snap.buckets.get(name, Counts()))
                if d.packets or d.bytes:
                    deltas[TotalKey(st.name, "bucket", -1, -1, name, "", reg)] += d
            for key, cur in snap.flows.items():
                flow = self.flows.get(key)
                if flow is None or flow.installed.get(st.name, float("inf")) > started:
                    continue  # removed or (re)installed during the read: its counts are stale
                d = self._flow_delta(st.name, flow, cur)
                if d.packets or d.bytes:
                    deltas[self._flow_total_key(st.name, flow)] += d
            for k, d in deltas.items():
                self._add_total(k, d)
            if dt is not None:
                for k in list(self.rates):
                    if k.switch == st.name and k not in deltas:
                        self.rates[k] = (0.0, 0.0)
                for k, d in deltas.items():
                    self.rates[k] = (d.bytes / dt, d.packets / dt)
            st.last_poll = snap.taken_at

    def _flow_total_key(self, switch: str, flow: LiveFlow) -> TotalKey:
        return TotalKey(switch, "firefly", flow.experiment, flow.activity,
                        flow.experiment_name or f"#{flow.experiment}",
                        flow.activity_name or f"#{flow.activity}", flow.registry)

    def _delta(self, switch: str, cell: str, cur: Counts) -> Counts:
        base = self.baselines.get((switch, cell), Counts())
        if cur != base:
            self.baselines[(switch, cell)] = cur
            self._dirty_baselines.add((switch, cell))
            self._dropped_baselines.discard((switch, cell))
        if cur.packets < base.packets or cur.bytes < base.bytes:
            log.info("switch %s: counter %s went backwards: switch restarted", switch, cell)
            return cur
        return cur - base

    def _flow_delta(self, switch: str, flow: LiveFlow, cur: Counts) -> Counts:
        """What is new in a flow entry's reading (as for any cell: baseline, restart), also
        added to the flow's own counts, so its history keeps the counts from before a re-push."""
        d = self._delta(switch, _flow_cell(flow.key), cur)
        flow.counts[switch] = flow.counts.get(switch, Counts()) + d
        return d

    def _fold_flow(self, switch: str, flow: LiveFlow, final: Counts) -> None:
        with self._counts_lock:
            d = self._flow_delta(switch, flow, final)
            if d.packets or d.bytes:
                k = self._flow_total_key(switch, flow)
                self._add_total(k, d)
            self._drop_baseline(switch, _flow_cell(flow.key))

    def _add_total(self, key: TotalKey, d: Counts) -> None:
        self.totals[key] = self.totals.get(key, Counts()) + d
        self._dirty_totals.add(key)

    def _drop_baseline(self, switch: str, cell: str) -> None:
        with self._counts_lock:
            if self.baselines.pop((switch, cell), None) is not None:
                self._dropped_baselines.add((switch, cell))
            self._dirty_baselines.discard((switch, cell))

    def _forget_baselines(self, switch: str) -> None:
        """The switch lost its state: every cell starts again from zero."""
        with self._flows_lock, self._counts_lock:
            for k in [k for k in self.baselines if k[0] == switch]:
                self._drop_baseline(*k)
            for flow in self.flows.values():
                flow.installed.pop(switch, None)  # flow.counts stay: the flow's history

    def save(self) -> None:
        with self._counts_lock:
            totals = {k: self.totals[k] for k in self._dirty_totals}
            self._dirty_totals = set()
            baselines = {k: self.baselines[k] for k in self._dirty_baselines if k in self.baselines}
            dropped, self._dropped_baselines = self._dropped_baselines, set()
            self._dirty_baselines = set()
        self.store.save(totals, baselines, dropped)

    # ================= queries =================
    def counter_rows(self, switch: str | None = None, experiment: str | None = None,
                     activity: str | None = None) -> list[dict]:
        with self._counts_lock:
            items = list(self.totals.items())
            rates = dict(self.rates)
        rows = []
        for k, c in items:
            if switch and k.switch != switch:
                continue
            if experiment and experiment.casefold() not in (k.experiment_name.casefold(), str(k.experiment_id)):
                continue
            if activity and activity.casefold() not in (k.activity_name.casefold(), str(k.activity_id)):
                continue
            bps, pps = rates.get(k, (0.0, 0.0))
            rows.append({"switch": k.switch, "source": k.source,
                         "experiment_id": None if k.experiment_id < 0 else k.experiment_id,
                         "experiment": k.experiment_name if k.source != "bucket" else None,
                         "activity_id": None if k.activity_id < 0 else k.activity_id,
                         "activity": k.activity_name if k.source != "bucket" else None,
                         "bucket": k.experiment_name if k.source == "bucket" else None,
                         "registry": k.registry, "packets": c.packets, "bytes": c.bytes,
                         "rate_bps": round(bps * 8, 1), "rate_pps": round(pps, 2)})
        rows.sort(key=lambda r: (r["switch"], r["source"] == "bucket", r["experiment"] or r["bucket"] or "",
                                 r["activity"] or "", r["source"], r["registry"]))
        return rows

    def flow_rows(self, recent: int = 50) -> dict:
        with self._flows_lock:
            live = [f.as_dict() for f in self.flows.values()]
        return {"live": sorted(live, key=lambda f: -f["last_seen"]),
                "recent": self.store.recent_flows(recent)}

    def status(self) -> dict:
        return {
            "started": self.started_at,
            "registry": None if self.registry is None else {
                "identity": self.registry.identity, "source": self.registry.source,
                "digest": self.registry.digest, "tags": len(self.tags)},
            "switches": {n: {"status": st.status, "error": st.error, "ready": st.ready,
                             "primary": getattr(st.driver, "is_primary", None), "syncs": st.syncs,
                             "pipeline_pushes": st.pipeline_pushes, "resets": st.resets,
                             "last_poll": st.last_poll,
                             "driver": dict(getattr(st.driver, "stats", {}))}
                         for n, st in self.switches.items()},
            "flows_live": len(self.flows),
            "stats": dict(self.stats),
            "fireflies": self.firefly_status(),
        }

    def firefly_status(self) -> dict:
        out = self.policy.snapshot()
        out["in_band"] = self.inband.counters().as_dict()
        out["udp"] = self.udp_receiver.counters().as_dict() if self.udp_receiver else None
        out["queue_depth"] = self._events.qsize()
        out["refused"]["malformed"] = (out["in_band"]["rejected_total"]
                                       + (out["udp"]["rejected_total"] if out["udp"] else 0))
        return out


def _flow_cell(key: FlowKey) -> str:
    return f"flow:{key}"
