"""The marker's flow table: what happens when a flow starts, goes on and ends.

start: pick per-flow entropy, install the nftables marking (IPv6 only), send a start firefly.
ongoing: every `ongoing_interval` seconds, an ongoing firefly per active flow.
end: remove the marking, send an end firefly. stop: drop the table, end every flow.
Every source calls `handle()`, which never raises: errors are counted and returned.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from marker.fireflies import FireflySender, utcnow
from marker.flows import FlowKey, FlowRequest, MarkerInputError, Tag
from marker.nftables import NftError
from scitags_core import flowlabel

log = logging.getLogger(__name__)


class Marker(Protocol):
    """What marks packets: nftables (marker.nftables.Nft) or nothing (fireflies only)."""

    def mark(self, key: FlowKey, label: int) -> None: ...
    def unmark(self, key: FlowKey) -> bool: ...
    def drop_table(self) -> bool: ...


@dataclass
class ActiveFlow:
    key: FlowKey
    tag: Tag
    label: int | None  # None: IPv4 (fireflies only)
    start_time: dt.datetime
    source: str

    def as_dict(self) -> dict[str, object]:
        return {"flow": str(self.key), "protocol": self.key.protocol, "src": str(self.key.src),
                "src_port": self.key.src_port, "dst": str(self.key.dst), "dst_port": self.key.dst_port,
                "experiment_id": self.tag.experiment_id, "experiment": self.tag.experiment_name,
                "activity_id": self.tag.activity_id, "activity": self.tag.activity_name,
                "flow_label": None if self.label is None else f"0x{self.label:05x}",
                "start_time": self.start_time.isoformat(), "source": self.source}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    flow: ActiveFlow | None = None


class FlowManager:
    def __init__(self, marker: Marker | None, sender: FireflySender | None, *,
                 ongoing_interval: float = 0.0) -> None:
        self.marker = marker
        self.sender = sender
        self.ongoing_interval = ongoing_interval
        self.flows: dict[FlowKey, ActiveFlow] = {}
        self.counters: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ongoing: threading.Thread | None = None

    # -- requests ------------------------------------------------------------------
    def handle(self, req: FlowRequest) -> Outcome:
        try:
            with self._lock:
                return self._start(req) if req.state == "start" else self._end(req)
        except (MarkerInputError, NftError, OSError, ValueError) as exc:
            self.counters[f"{req.source}_errors"] += 1
            log.error("%s %s from %s refused: %s", req.state, req.key, req.source, exc)
            return Outcome(False, str(exc))

    def reject(self, source: str, message: str) -> Outcome:
        """Record input a source could not turn into a request."""
        self.counters[f"{source}_rejected"] += 1
        log.error("%s: %s", source, message)
        return Outcome(False, message)

    def _start(self, req: FlowRequest) -> Outcome:
        old = self.flows.get(req.key)
        if old is not None and (old.tag.experiment_id, old.tag.activity_id) == (req.tag.experiment_id,
                                                                                req.tag.activity_id):
            return Outcome(True, f"{req.key} already marked as {old.tag}", old)
        label = None
        if req.key.afi == 6:
            label = flowlabel.encode_label(req.tag.experiment_id, req.tag.activity_id)
            if self.marker is not None:
                self.marker.mark(req.key, label)  # a re-tag replaces the old label in one step
        if old is not None:  # re-tag: the old flow ends, the new one starts
            self.counters["flows_ended"] += 1
            self._firefly("end", old, end_time=utcnow())
        flow = ActiveFlow(req.key, req.tag, label, utcnow(), req.source)
        self.flows[req.key] = flow
        self.counters["flows_started"] += 1
        self._firefly("start", flow)
        how = f"label 0x{label:05x}" if label is not None else "IPv4: fireflies only, no packet marking"
        log.info("start %s %s (%s) from %s", req.key, req.tag, how, req.source)
        return Outcome(True, f"started {req.key} {req.tag}: {how}", flow)

    def _end(self, req: FlowRequest) -> Outcome:
        flow = self.flows.get(req.key)
        if flow is None:
            self.counters["unknown_ends"] += 1
            return Outcome(False, f"no active flow {req.key}")
        if flow.label is not None and self.marker is not None:
            self.marker.unmark(req.key)  # if this fails the flow stays, as its marking does
        del self.flows[req.key]
        self.counters["flows_ended"] += 1
        self._firefly("end", flow, end_time=utcnow())
        log.info("end %s %s", req.key, flow.tag)
        return Outcome(True, f"ended {req.key} {flow.tag}", flow)

    def _firefly(self, state: str, flow: ActiveFlow, end_time: dt.datetime | None = None) -> None:
        if self.sender is None:
            return
        try:
            self.sender.send(state, flow.key, flow.tag, start_time=flow.start_time, end_time=end_time)
        except (OSError, ValueError, TypeError) as exc:  # building failed: a bug, counted, not fatal
            self.counters["firefly_errors"] += 1
            log.error("firefly %s for %s not sent: %s", state, flow.key, exc)

    # -- ongoing fireflies ---------------------------------------------------------
    def start_ongoing(self) -> None:
        if self.ongoing_interval > 0 and self.sender is not None:
            self._ongoing = threading.Thread(target=self._ongoing_loop, name="ongoing", daemon=True)
            self._ongoing.start()

    def _ongoing_loop(self) -> None:
        while not self._stop.wait(self.ongoing_interval):
            self.send_ongoing()

    def send_ongoing(self) -> None:
        with self._lock:
            flows = list(self.flows.values())
        for flow in flows:
            self._firefly("ongoing", flow)

    # -- shutdown ------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [f.as_dict() for f in self.flows.values()]

    def stop(self) -> None:
        """End every flow (end fireflies) and drop the table: one nft call for all the
        flows' markings, not one per flow (thousands on a storage node)."""
        self._stop.set()
        with self._lock:
            if self.marker is not None:
                try:
                    self.marker.drop_table()
                except NftError as exc:
                    self.counters["shutdown_errors"] += 1
                    log.error("dropping the nftables table failed: %s", exc)
            ended, self.flows = list(self.flows.values()), {}
            for flow in ended:
                self.counters["flows_ended"] += 1
                self._firefly("end", flow, end_time=utcnow())
                log.info("end %s %s (shutdown)", flow.key, flow.tag)
        if self._ongoing is not None:
            self._ongoing.join(timeout=5)
        if self.sender is not None:
            self.sender.close()
