"""`marker run`: the long-running marker hosting the flow sources.

Sources: control socket (what `marker flow` talks to), np_api named pipe, TCP connection
poller. All feed one FlowManager. SIGTERM/SIGINT end every flow (end fireflies), drop the
nftables table and remove the pipe and socket.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from marker.config import MarkerConfig
from marker.control import ControlServer
from marker.fireflies import FireflySender
from marker.flows import FlowKey, FlowRequest, MarkerInputError, make_request, resolve_tag
from marker.manager import FlowManager
from marker.nftables import Nft
from marker.npapi import NamedPipeSource, parse_line, to_request
from marker.poller import ConnectionPoller
from scitags_core.registry import Registry

log = logging.getLogger(__name__)


def load_registry(path: str | None) -> Registry:
    if path:
        return Registry.from_file(path)
    from scitags_core.registry_store import RegistryStore

    return RegistryStore().current


class MarkerDaemon:
    def __init__(self, cfg: MarkerConfig, registry: Registry, *, nft: Nft | None = None) -> None:
        self.cfg = cfg
        self.registry = registry
        self.nft = nft if nft is not None else Nft(cfg.table)
        self.sender = FireflySender(cfg.collectors, to_destination=cfg.fireflies_to_destination)
        self.manager = FlowManager(self.nft, self.sender, ongoing_interval=cfg.ongoing_interval)
        self.control = ControlServer(cfg.control_socket, self.on_control)
        self.pipe = NamedPipeSource(cfg.np_api, self.on_np_api_line) if cfg.np_api else None
        self.poller: ConnectionPoller | None = None
        if cfg.poller is not None:
            self.poller_tag = resolve_tag(registry, cfg.poller.experiment, cfg.poller.activity,
                                          allow_unregistered=cfg.allow_unregistered)
            self.poller = ConnectionPoller(cfg.poller.ports, self.on_poll_start, self.on_poll_end,
                                           interval=cfg.poller.interval)
        self.stopped = threading.Event()

    # -- sources -------------------------------------------------------------------
    def on_np_api_line(self, line: str) -> None:
        try:
            req = to_request(parse_line(line), self.registry, allow_unregistered=self.cfg.allow_unregistered)
        except MarkerInputError as exc:
            self.manager.reject("np_api", str(exc))
            return
        self.manager.handle(req)

    def on_poll_start(self, key: FlowKey) -> None:
        self.manager.handle(FlowRequest("start", key, self.poller_tag, "poller"))

    def on_poll_end(self, key: FlowKey) -> None:
        self.manager.handle(FlowRequest("end", key, self.poller_tag, "poller"))

    def on_control(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "message": "running", "flows": len(self.manager.flows),
                    "counters": dict(self.manager.counters),
                    "fireflies": {"sent": self.sender.stats.sent, "errors": self.sender.stats.errors,
                                  "last_error": self.sender.stats.last_error},
                    "nftables": {"layout": self.nft.layout, **self.nft.stats},
                    "table": self.cfg.table, "np_api": self.cfg.np_api,
                    "registry": self.registry.identity}
        if op == "list":
            return {"ok": True, "message": f"{len(self.manager.flows)} active flow(s)",
                    "flows": self.manager.snapshot()}
        if op != "flow":
            return {"ok": False, "message": f"unknown op {op!r} (flow, list, status)"}
        try:
            state = str(request.get("state", ""))
            exp, act = request.get("experiment"), request.get("activity")
            if state == "end" and (exp is None or act is None):
                key = make_request(self.registry, "end", *(str(request.get(k, "")) for k in
                                   ("protocol", "src", "src_port", "dst", "dst_port")), 1, 0,
                                   allow_unregistered=True).key
                flow = self.manager.flows.get(key)
                if flow is None:
                    return {"ok": False, "message": f"no active flow {key}"}
                req = FlowRequest("end", key, flow.tag, "control")
            else:
                if exp is None or act is None:
                    raise MarkerInputError("experiment and activity are required to start a flow")
                req = make_request(self.registry, state, str(request.get("protocol", "")),
                                   str(request.get("src", "")), str(request.get("src_port", "")),
                                   str(request.get("dst", "")), str(request.get("dst_port", "")),
                                   exp, act, source="control",
                                   allow_unregistered=self.cfg.allow_unregistered)
        except MarkerInputError as exc:
            out = self.manager.reject("control", str(exc))
            return {"ok": False, "message": out.message, "bad_input": True}
        outcome = self.manager.handle(req)
        reply: dict[str, Any] = {"ok": outcome.ok, "message": outcome.message}
        if outcome.flow is not None:
            reply["flow"] = outcome.flow.as_dict()
        return reply

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self.nft.table_exists()  # fails early (NftError) when nft is missing or not permitted
        self.control.start()
        if self.pipe is not None:
            self.pipe.start()
        if self.poller is not None:
            self.poller.start()
        self.manager.start_ongoing()
        log.info("marker running: control %s, np_api %s, poller %s, table ip6 %s, registry %s",
                 self.cfg.control_socket, self.cfg.np_api or "off",
                 f"ports {self.cfg.poller.ports or 'all'} as {self.poller_tag}" if self.poller else "off",
                 self.cfg.table, self.registry.identity)

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self.poller is not None:
            self.poller.stop()
        if self.pipe is not None:
            self.pipe.stop()
        self.control.stop()
        self.manager.stop()
        log.info("marker stopped: %s", dict(self.manager.counters))

    def serve_forever(self) -> None:
        done = threading.Event()

        def _on_signal(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping", signum)
            done.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        print(f"marker: ready (control socket {self.cfg.control_socket})", flush=True)
        try:
            done.wait()
        finally:
            self.stop()
