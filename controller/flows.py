"""Fireflies -> flows: duplicate suppression, the protection policy, the live flows and their
entries on the switches of their path, their end (end firefly, idle timeout, eviction) with
the final counts written to the flow history.

The live flows are owned here and guarded by `lock` (lock order: switch session lock, then
this lock, then the accounting lock). They are kept in refresh order: first = oldest.
"""
from __future__ import annotations

import collections
import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.accounting import Accounting, flow_cell
from controller.drivers.base import (Counts, DriverError, FlowIdle, FlowKey, FlowRule,
                                     ReconcileResult, SwitchUnreachable)
from controller.events import FireflyAccepted, FlowEvent
from controller.firefly_policy import FireflyPolicy
from controller.hooks import Hooks
from controller.store import Store, TotalKey
from controller.tags import TagBook
from controller.topology import Topology
from p4schema.constants import FIREFLY_ACTIVITY_MAX, FIREFLY_EXPERIMENT_MAX
from scitags_core.firefly import FireflyRecord, FlowState
from scitags_core.firefly_dedup import FireflyDeduplicator
from scitags_core.firefly_stats import FireflyStats

if TYPE_CHECKING:
    from controller.session import SwitchSession

log = logging.getLogger(__name__)

DEDUP_WINDOW_S = 2.0  # the same firefly seen by several switches and the UDP receiver


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
    # switch -> counts so far, kept across switch restarts (as the totals are)
    counts: dict[str, Counts] = field(default_factory=dict)

    def best(self) -> Counts:
        return max(self.counts.values(), key=lambda c: c.bytes, default=Counts())

    def total_key(self, switch: str) -> TotalKey:
        return TotalKey(switch, "firefly", self.experiment, self.activity,
                        self.experiment_name or f"#{self.experiment}",
                        self.activity_name or f"#{self.activity}", self.registry)

    def as_dict(self) -> dict:
        best = self.best()
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


def listener_reason(end_reason: str) -> str:
    """The flow history's end_reason ("end", "idle:s1", "evicted") as FlowEvent.reason."""
    if end_reason.startswith("idle"):
        return "idle-timeout"
    return {"evicted": "eviction"}.get(end_reason, end_reason)


class FlowService:
    def __init__(self, topology: Topology, sessions: dict[str, "SwitchSession"], store: Store,
                 accounting: Accounting, tags: TagBook, policy: FireflyPolicy, hooks: Hooks,
                 stats: collections.Counter, firefly_stats: FireflyStats | None = None) -> None:
        self.topology = topology
        self.sessions = sessions
        self.store = store
        self.accounting = accounting
        self.tags = tags
        self.policy = policy
        self.hooks = hooks
        self.stats = stats
        self.lock = threading.RLock()
        self.flows: dict[FlowKey, LiveFlow] = {}
        self.dedup = FireflyDeduplicator(DEDUP_WINDOW_S)
        self.firefly_stats = firefly_stats  # duplicates per sender application

    # ---- fireflies ----
    def handle_record(self, rec: FireflyRecord, sender: str, via: str) -> str:
        """Apply one parsed firefly; returns what happened (for logs and tests)."""
        self.stats["fireflies_processed"] += 1
        if self.dedup.is_duplicate(rec):  # XRootD's two directions differ: both applied
            self.stats["fireflies_duplicate"] += 1
            if self.firefly_stats is not None:
                self.firefly_stats.count_duplicate(rec)
            return "duplicate"
        key = FlowKey(rec.src_ip, rec.dst_ip, 6 if rec.protocol.value == "tcp" else 17,
                      rec.src_port, rec.dst_port)
        ends = (str(rec.src_ip), str(rec.dst_ip))
        if rec.state == FlowState.END:
            if not self.policy.check_sender(sender, ends).accepted:
                return "refused"
            self._accepted(rec, sender, via)
            if self.end_flow(key, "end"):
                self.stats["flows_ended"] += 1
                return "ended"
            self.stats["fireflies_end_unknown"] += 1
            return "end-unknown"
        if not (0 <= rec.experiment_id <= FIREFLY_EXPERIMENT_MAX
                and 0 <= rec.activity_id <= FIREFLY_ACTIVITY_MAX):
            self.policy.refuse("not-markable", sender,
                               f"experiment {rec.experiment_id} / activity {rec.activity_id}")
            return "refused"
        with self.lock:
            flow = self.flows.get(key)
            oldest = next(iter(self.flows), None) if flow is None else None
            decision = self.policy.check(sender, ends, flow is None, len(self.flows), oldest)
        if not decision.accepted:
            return "refused"
        self._accepted(rec, sender, via)
        if decision.evict is not None:
            self.end_flow(decision.evict, "evicted")
            self.stats["flows_evicted"] += 1
        with self.lock:
            flow = self.flows.get(key)
            new = flow is None
            changed = new or (flow.experiment, flow.activity) != (rec.experiment_id, rec.activity_id)
            if new:
                flow = self._new_flow(key, rec.experiment_id, rec.activity_id, sender, via)
                self.flows[key] = flow
            elif changed:
                flow.experiment, flow.activity = rec.experiment_id, rec.activity_id
                self._name(flow)
            flow.state = rec.state.value
            flow.last_seen = time.time()
            self.flows[key] = self.flows.pop(key)  # now the most recently refreshed
            flow.fireflies += 1
            targets = [s for s in flow.path if changed or s not in flow.installed]
        for name in targets:
            session = self.sessions.get(name)
            if session is not None and session.ready:
                self.install_on(session, flow)
        if changed:
            self._emit("installed" if new else "updated", rec.state.value, flow)
        return "installed" if targets else "refreshed"

    def _accepted(self, rec: FireflyRecord, sender: str, via: str) -> None:
        if self.hooks.firefly_hooks:
            self.hooks.firefly(FireflyAccepted(rec, sender, via,
                                               tuple(d.value for d in rec.deviations)))

    def _emit(self, kind: str, reason: str, flow: LiveFlow) -> None:
        if self.hooks.flow_listeners:
            with self.lock:
                counts, snapshot = dict(flow.counts), flow.as_dict()
            self.hooks.flow(FlowEvent(kind, reason, flow.key, flow.experiment, flow.activity,
                                      counts, snapshot, time.time()))

    def _new_flow(self, key: FlowKey, exp: int, act: int, sender: str, via: str) -> LiveFlow:
        path = [s for s in self.topology.switches_on_path(key.src, key.dst) if s in self.sessions]
        flow = LiveFlow(key, exp, act, None, None, "", path, time.time(), time.time(), sender, via)
        self._name(flow)
        return flow

    def _name(self, flow: LiveFlow) -> None:
        registry = self.tags.registry
        if registry is not None:
            info = registry.describe(flow.experiment, flow.activity)
            flow.experiment_name, flow.activity_name = info.experiment_name, info.activity_name
            flow.registry = registry.identity

    def rename_all(self) -> None:
        """Names of live flows follow the registry."""
        with self.lock:
            for flow in self.flows.values():
                self._name(flow)

    def rule(self, flow: LiveFlow) -> FlowRule:
        return FlowRule(flow.key, flow.experiment, flow.activity, self.policy.config.idle_timeout_s)

    # ---- entries on switches ----
    def install_on(self, session: "SwitchSession", flow: LiveFlow) -> None:
        try:
            with session.lock:
                fresh = session.name not in flow.installed
                session.driver.install_flow(self.rule(flow))
                if fresh:
                    self.accounting.drop_baseline(session.name, flow_cell(flow.key))
                flow.installed[session.name] = time.monotonic()
            self.stats["flows_installed"] += 1
        except SwitchUnreachable as exc:
            session.lost()
            log.warning("flow %s not installed on %s: %s (installed at re-sync)", flow.key, session.name, exc)
        except DriverError as exc:
            self.policy.refuse("switch-error", flow.sender, str(exc))
            self.stats["switch_errors"] += 1
            log.warning("flow %s not installed on %s: %s", flow.key, session.name, exc)

    def on_idle(self, ev: FlowIdle) -> None:
        with self.lock:
            flow = self.flows.get(ev.key)
            if flow is None or ev.switch not in flow.installed:
                return  # already handled (repeated notification, or another switch's)
        if self.end_flow(ev.key, f"idle:{ev.switch}"):
            self.stats["flows_idle"] += 1

    def end_flow(self, key: FlowKey, reason: str) -> bool:
        """Remove a flow everywhere, reading its final counters into the flow history."""
        with self.lock:
            flow = self.flows.pop(key, None)
        if flow is None:
            return False
        for name in list(flow.installed):
            session = self.sessions.get(name)
            if session is None:
                continue
            try:
                with session.lock:
                    final = session.driver.remove_flow(key)
                    with self.lock:
                        self.accounting.fold_final(name, key, flow.counts, final, flow.total_key(name))
                self.stats["flows_removed"] += 1
            except (SwitchUnreachable, DriverError) as exc:
                log.warning("flow %s: removal from %s failed (%s): removed at re-sync", key, name, exc)
        with self.lock:
            best = flow.best()
            rec = flow.as_dict()
        rec.update(ended=time.time(), end_reason=reason, packets=best.packets, bytes=best.bytes)
        self.store.record_flow(rec)
        log.info("flow %s ended (%s): %d packets, %d bytes", key, reason, best.packets, best.bytes)
        self._emit("ended", listener_reason(reason), flow)
        return True

    # ---- for the reconciler ----
    def adopt(self, switch: str, found: dict[FlowKey, FlowRule]) -> list[LiveFlow]:
        """Entries an earlier controller installed: they become live flows (counts so far
        from the persisted baselines). Returns the adopted flows."""
        adopted = []
        with self.lock:
            for key, rule in found.items():
                if key in self.flows:
                    continue
                flow = self._new_flow(key, rule.experiment, rule.activity, "", f"adopted:{switch}")
                if switch not in flow.path:
                    continue  # not ours to keep: the reconcile removes it
                flow.state = "adopted"
                flow.counts[switch] = self.accounting.baseline(switch, flow_cell(key))
                self.flows[key] = flow
                adopted.append(flow)
                log.info("switch %s: adopted flow %s (installed before this controller started)",
                         switch, key)
        for flow in adopted:
            self._emit("installed", "adopted", flow)
        return adopted

    def count_on(self, switch: str) -> int:
        with self.lock:
            return sum(1 for f in self.flows.values() if switch in f.installed)

    def desired(self, switch: str) -> dict[FlowKey, FlowRule]:
        with self.lock:
            return {k: self.rule(f) for k, f in self.flows.items() if switch in f.path}

    def reconciled(self, switch: str, result: ReconcileResult, wanted: dict[FlowKey, FlowRule]) -> None:
        """Record what a reconcile pass left on the switch: every wanted flow is installed
        there now; entries new on the switch and left-overs removed start from zero."""
        now = time.monotonic()
        with self.lock:
            for key in result.flows_removed:
                self.accounting.drop_baseline(switch, flow_cell(key))
                log.info("switch %s: removed flow entry %s (not a live flow)", switch, key)
            for key in wanted:
                flow = self.flows.get(key)
                if flow is None:
                    continue
                if key in result.flows_inserted:
                    self.accounting.drop_baseline(switch, flow_cell(key))
                    flow.installed[switch] = now
                else:
                    flow.installed.setdefault(switch, now)

    def forget_switch(self, switch: str) -> None:
        """The switch lost its entries (pipeline pushed): none is installed there now."""
        with self.lock:
            for flow in self.flows.values():
                flow.installed.pop(switch, None)  # flow.counts stay: the flow's history

    def pending_elsewhere(self, switch: str) -> list[tuple[str, LiveFlow]]:
        """(other switch, flow) for flows on this switch's paths not yet installed elsewhere."""
        with self.lock:
            return [(other, f) for f in self.flows.values() if switch in f.path
                    for other in f.path if other != switch and other not in f.installed]

    # ---- for the counter poll (called with self.lock held) ----
    def counted(self, switch: str, started: float):
        """flow_of for Accounting.apply_snapshot: entries (re)installed after the read
        started, or of removed flows, are stale."""
        def flow_of(key: FlowKey):
            flow = self.flows.get(key)
            if flow is None or flow.installed.get(switch, float("inf")) > started:
                return None
            return flow.counts, flow.total_key(switch)
        return flow_of

    # ---- queries ----
    def rows(self) -> list[dict]:
        with self.lock:
            return [f.as_dict() for f in self.flows.values()]

    def top_rows(self, limit: int) -> list[dict]:
        """Rows of the `limit` flows with the most bytes, without a row for every flow."""
        with self.lock:  # the rank of best() without a Counts per flow (65,536 flows: ~0.1 s)
            top = heapq.nlargest(limit, self.flows.values(), key=lambda f: max(
                [(c.bytes, c.packets) for c in f.counts.values()], default=(0, 0)))
            return [f.as_dict() for f in top]

    def __len__(self) -> int:
        return len(self.flows)
