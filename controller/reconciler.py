"""The reconciler: the desired state of each switch (forwarding from the topology, tag rules
from the registry, firefly entries from the live flows) and the passes that make the switch
hold it, through the driver's one read-diff-write (SwitchDriver.reconcile):

- full_sync: after every (re)connect or mastership gain: pipeline pushed if needed, flows an
  earlier controller installed adopted (first sync only), then a pass;
- periodic: every reconcile interval while primary and in sync: a pass whose changes are
  repairs of drift (entries deleted, modified or added by someone else), counted per
  switch by (kind, change) in status and metrics;
- after a registry refresh: a pass that writes the new tag rules.
"""
from __future__ import annotations

import collections
import logging
import time

from controller.accounting import Accounting
from controller import port_state
from controller.drivers.base import DesiredState, DriverError, Forwarding, PortEntry, SwitchUnreachable
from controller.flows import FlowService
from controller.learning import MacLearning
from controller.session import SwitchSession
from controller.tags import TagBook
from controller.topology import Topology

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 10.0


class Reconciler:
    def __init__(self, topology: Topology, tags: TagBook, flows: FlowService,
                 accounting: Accounting, stats: collections.Counter,
                 label_trust: dict[str, tuple[str, ...] | None] | None = None) -> None:
        """label_trust: the trust scope per switch (controller/label_trust.py; absent: none)."""
        self.topology = topology
        self.label_trust = dict(label_trust or {})
        self.tags = tags
        self.flows = flows
        self.accounting = accounting
        self.stats = stats
        self.primary_ever = False
        self.learning = MacLearning(topology)  # learned MACs of the learn-mode switches

    def forwarding(self, switch: str) -> Forwarding:
        """The topology's forwarding for a switch, its ports' placement (a wire port whose
        partner's link is down: wire_down) and, on a learn switch, what it learned."""
        topo = self.topology
        cpu = topo.switches[switch].cpu_port if switch in topo.switches else None
        macs = topo.mac_table(switch)
        modes = topo.port_modes(switch) if switch in topo.switches else {}
        down = port_state.down_ports(topo, switch) if any(
            m.action == "wire" for m in modes.values()) else set()
        entries = tuple(PortEntry(m.port, "wire_down" if m.partner in down else m.action,
                                  m.partner, m.direction)
                        for m in (modes[p] for p in sorted(modes)))
        learned = self.learning.table(switch)
        ageing = topo.switches[switch].placement.learn_ageing_s if switch in topo.switches else 0.0
        return Forwarding({**macs, **learned}, tuple(topo.flood_ports(switch)), cpu,
                          topo.monitor_port(switch), entries, tuple(sorted(learned.items())),
                          ageing if learned else 0.0)

    def desired(self, switch: str) -> DesiredState:
        return DesiredState(self.forwarding(switch), self.tags.rules(), self.flows.desired(switch),
                            self.label_trust.get(switch))

    def _pass(self, s: SwitchSession, count_repairs: bool, read: object | None = None) -> None:
        """One read-diff-write on a switch (caller holds s.pass_lock and s.lock); `read`
        from driver.read_back() (None: the driver reads now)."""
        desired = self.desired(s.name)
        s.tag_epoch += 1  # a counter read spanning the tag writes skips the tag cells
        result = s.driver.reconcile(desired, read)
        if result.repairs.get(("tag", "missing")) or result.repairs.get(("tag", "modified")) \
                or result.repairs.get(("tag", "extra")):
            s.tag_epoch += 1
        self.accounting.sync_tag_cells(s.name, (r.tag_id for r in desired.tags), result.zeroed_tags)
        self.flows.reconciled(s.name, result, desired.flows)
        s.record(result, count_repairs)
        if count_repairs and result.total:
            self.stats["reconcile_repairs"] += result.total
            log.warning("switch %s: repaired drift: %s", s.name,
                        ", ".join(f"{k} {c} x{n}" for (k, c), n in sorted(result.repairs.items())))

    def full_sync(self, s: SwitchSession) -> None:
        """Pipeline (if needed), forwarding, tags and flows on one switch."""
        d = s.driver
        if not self.primary_ever:
            self.accounting.reload_unless_counted()
        events = s.events
        with s.pass_lock, s.lock:
            s.status = "syncing"
            pushed = d.ensure_pipeline()
            if pushed:
                s.pipeline_pushes += 1
                self.accounting.forget_switch(s.name)
                self.flows.forget_switch(s.name)
                if s.syncs:
                    s.resets += 1
                    log.warning("switch %s: restarted or lost its pipeline: pipeline and all state "
                                "re-pushed; counts read before are kept", s.name)
            if pushed:
                self.learning.forget_switch(s.name)
            self.learning.attach(s.name, d)
            adopt = s.first_sync and not pushed
            if adopt:
                self.flows.adopt(s.name, d.installed_flows())
            # a re-sync without a new pipeline finds what drifted while we were away
            self._pass(s, count_repairs=not pushed and not s.first_sync)
            s.first_sync = False
            s.cookie = d.pipeline_cookie()
            s.last_check = time.monotonic()
            s.syncs += 1
            if s.events != events or not d.is_primary:
                # mastership moved (or the stream broke) during the sync: the supervisor
                # looks again (backup, or another full sync)
                log.warning("switch %s: mastership or connection changed during the sync", s.name)
                s.wake.set()
                return
            s.status, s.error, s.ready = "ready", None, True
            self.primary_ever = True
        if adopt:  # adopted flows go to the other switches of their path too (one lock at a time)
            for other, flow in self.flows.pending_elsewhere(s.name):
                session = self.flows.sessions.get(other)
                if session is not None and session.ready:
                    self.flows.install_on(session, flow)
        log.info("switch %s: in sync (pipeline %s, %d tags, %d flows)", s.name,
                 "pushed" if pushed else "kept", len(self.tags.tags), self.flows.count_on(s.name))

    def periodic(self, s: SwitchSession) -> None:
        """Read back and repair drift; never as backup (the primary owns the switch). The
        read-back runs without the session lock: fireflies keep being installed meanwhile."""
        with s.pass_lock:
            if not s.ready or not s.driver.is_primary:
                return
            if not s.driver.reconciles_cheaply:
                s.last_reconcile = time.monotonic()
                return
            try:
                read = s.driver.read_back()
                with s.lock:
                    if not s.ready or not s.driver.is_primary:
                        return  # lost or demoted during the read: the re-sync does it
                    self._pass(s, count_repairs=True, read=read)
            except SwitchUnreachable as exc:
                log.warning("switch %s: reconcile: %s", s.name, exc)
                s.lost()
            except Exception as exc:  # noqa: BLE001 - the supervisor must survive: retry next interval
                self.stats["switch_errors"] += 1
                s.last_reconcile = time.monotonic()
                log.warning("switch %s: reconcile failed: %s", s.name, exc,
                            exc_info=not isinstance(exc, DriverError))

    def resync_tags(self, s: SwitchSession) -> None:
        """After a registry refresh: write the new tag rules (not counted as repairs)."""
        with s.pass_lock, s.lock:
            self._pass(s, count_repairs=False)
