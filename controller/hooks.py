"""Where features plug into the running controller (see /work/coord/A_API.md and
docs/controller-interfaces.md): listeners for flow lifecycle, counter polls and accepted
fireflies, and contributions to `controller status` (/api/v1/status) and /metrics.

A listener runs on the thread that produced the event (worker or poller): it must be quick
and must not block; one that raises is logged and counted (hook_errors), never stops the
controller. Listeners are called after the controller's locks are released.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable

from controller.events import FireflyAccepted, FlowEvent, PollDeltas

log = logging.getLogger(__name__)

FlowListener = Callable[[FlowEvent], None]
PollListener = Callable[[PollDeltas], None]
FireflyHook = Callable[[FireflyAccepted], None]
StatusContribution = Callable[[], dict]


class Hooks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.flow_listeners: list[FlowListener] = []
        self.poll_listeners: list[PollListener] = []
        self.firefly_hooks: list[FireflyHook] = []
        self.status: dict[str, StatusContribution] = {}
        self.collectors: list[Any] = []  # prometheus_client collectors (have .collect())
        self.errors: collections.Counter = collections.Counter()

    # ---- registering ----
    def on_flow(self, listener: FlowListener) -> None:
        """listener(FlowEvent) when a flow is installed, updated or ended."""
        with self._lock:
            self.flow_listeners = [*self.flow_listeners, listener]

    def on_poll(self, listener: PollListener) -> None:
        """listener(PollDeltas) after each counter poll of each switch."""
        with self._lock:
            self.poll_listeners = [*self.poll_listeners, listener]

    def on_firefly(self, hook: FireflyHook) -> None:
        """hook(FireflyAccepted) for each firefly the policy accepted."""
        with self._lock:
            self.firefly_hooks = [*self.firefly_hooks, hook]

    def add_status(self, name: str, contribution: StatusContribution) -> None:
        """status()[name] = contribution() (JSON-serialisable dict) in /api/v1/status."""
        with self._lock:
            if name in self.status:
                raise ValueError(f"status section {name!r} is taken")
            self.status = {**self.status, name: contribution}

    def add_collector(self, collector: Any) -> None:
        """A prometheus_client collector whose metrics /metrics serves too."""
        with self._lock:
            self.collectors = [*self.collectors, collector]

    # ---- calling (the lists are replaced, never changed in place: no lock to iterate) ----
    def _call(self, what: str, listeners: list, event: object) -> None:
        for fn in listeners:
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - a listener never stops the controller
                self.errors[what] += 1
                log.exception("%s listener %r failed", what, fn)

    def flow(self, event: FlowEvent) -> None:
        self._call("flow", self.flow_listeners, event)

    def poll(self, event: PollDeltas) -> None:
        self._call("poll", self.poll_listeners, event)

    def firefly(self, event: FireflyAccepted) -> None:
        self._call("firefly", self.firefly_hooks, event)

    def status_sections(self) -> dict[str, Any]:
        out = {}
        for name, fn in self.status.items():
            try:
                out[name] = fn()
            except Exception as exc:  # noqa: BLE001
                self.errors["status"] += 1
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return out
