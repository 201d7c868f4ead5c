"""The IPFIX exporting process: a bounded queue in front of one sender thread, UDP to each
collector (RFC 7011 section 10).

submit() never blocks and never raises: a full queue drops the record and counts it, so a
slow or unreachable collector costs the caller (counter poll, firefly handling) nothing but
the counting. The sender thread owns the sockets, the sequence numbers (per collector and
observation domain: data records sent before each message, modulo 2^32) and the template
refresh (templates before a domain's first data records to a collector, then again every
`template_refresh_s`, since UDP collectors may start late or restart). Sockets are
non-blocking: a send the kernel cannot take right now is a drop (`send-blocked`), counted,
never a wait.
"""
from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from controller.config import ConfigError, split_addr
from controller.ipfix.encoding import AggregateRecord, FlowRecord, encode_record, header, pack_bodies

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 65_536
DEFAULT_MAX_MESSAGE = 1400  # fits a 1500-byte MTU under IPv6 + UDP headers
DEFAULT_TEMPLATE_REFRESH_S = 60.0
BATCH = 2048  # records taken from the queue per round
RESOLVE_RETRY_S = 5.0
SEND_DROP_REASONS = ("send-blocked", "send-error", "unresolved")  # per collector

Record = FlowRecord | AggregateRecord


def parse_collector(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' -> (host, port); ValueError (ConfigError) naming the problem.
    A destination, unlike a listen address: a host and a port other than 0 are required."""
    host, port = split_addr(text.strip(), "IPFIX collector")
    if not text.strip().rpartition(":")[0].strip("[]") or port == 0:
        raise ConfigError(f"IPFIX collector {text!r} is not HOST:PORT (a host and a port 1..65535)")
    return host, port


@dataclass
class CollectorState:
    """One collector (one transport session): its socket and per-domain stream state."""

    host: str
    port: int
    address: tuple | None = None
    sock: socket.socket | None = None
    next_resolve: float = 0.0
    error: str | None = None
    sequence: dict[int, int] = field(default_factory=dict)  # domain -> data records sent
    templates_sent: dict[int, float] = field(default_factory=dict)  # domain -> monotonic time
    messages: int = 0
    records: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class IpfixExporter:
    def __init__(self, collectors: Iterable[tuple[str, int]], *, queue_size: int = DEFAULT_QUEUE,
                 max_message: int = DEFAULT_MAX_MESSAGE,
                 template_refresh_s: float = DEFAULT_TEMPLATE_REFRESH_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.collectors = [CollectorState(h, p) for h, p in collectors]
        if not self.collectors:
            raise ValueError("IPFIX exporter: no collector given")
        if max_message < 256:
            raise ValueError(f"IPFIX exporter: max message size {max_message} below 256 bytes")
        self.max_message = max_message
        self.template_refresh_s = template_refresh_s
        self.clock = clock
        if queue_size < 1:
            raise ValueError("IPFIX exporter: queue size must be at least 1")
        self.capacity = queue_size
        self._pending: collections.deque[Record] = collections.deque()
        self._in_flight = 0  # records the sender took and has not finished sending
        self._cond = threading.Condition()  # guards the buffer and the counters below
        self.submitted = 0
        self.queue_dropped = 0  # queue full (or exporter stopped): no collector got them
        self.bad_records = 0  # not encodable (a bug upstream): logged, never sent
        self._stopped = False
        self._thread: threading.Thread | None = None

    # ---------- caller side (any thread) ----------
    def submit(self, record: Record) -> bool:
        """Queue one record; False (and counted) when the queue is full or stopped."""
        return self.submit_many((record,)) == 1

    def submit_many(self, records: Iterable[Record]) -> int:
        """Queue records (one lock for all of them); those beyond the free room are dropped
        and counted. Returns how many were queued."""
        recs = records if isinstance(records, (list, tuple)) else list(records)
        if not recs:
            return 0
        with self._cond:
            room = 0 if self._stopped else self.capacity - len(self._pending)
            taken = len(recs) if len(recs) <= room else max(room, 0)
            if taken:
                self._pending.extend(recs if taken == len(recs) else recs[:taken])
                self.submitted += taken
                self._cond.notify_all()  # the sender (flush() waiters wait on it too)
            self.queue_dropped += len(recs) - taken
        return taken

    # ---------- lifecycle ----------
    def start(self) -> "IpfixExporter":
        self._thread = threading.Thread(target=self._run, name="ipfix-exporter", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was handed to the sockets (tests, shutdown)."""
        if self._thread is None or not self._thread.is_alive():
            return not self._pending
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._in_flight, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to timeout), then close the sockets."""
        self.flush(timeout)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        for c in self.collectors:
            if c.sock is not None:
                c.sock.close()
                c.sock = None

    # ---------- sender thread ----------
    def _run(self) -> None:
        pending = self._pending
        while True:
            with self._cond:
                if not pending and not self._stopped:
                    self._cond.wait(0.2)
                if self._stopped:
                    return
                batch = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
                self._in_flight = len(batch)
            if not batch:
                self._refresh_templates()
                continue
            try:
                self._send_batch(batch)
            except Exception:  # noqa: BLE001 - the sender thread must outlive anything
                log.exception("IPFIX: batch of %d records not sent", len(batch))
                for c in self.collectors:
                    c.dropped["send-error"] += len(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _send_batch(self, batch: list[Record]) -> None:
        by_domain: dict[int, list[tuple[int, bytes]]] = collections.defaultdict(list)
        for rec in batch:
            try:  # encoded once for all collectors
                by_domain[int(rec.domain_id)].append((rec.template.template_id, encode_record(rec)))
            except Exception as exc:  # noqa: BLE001 - one bad record must not cost the batch
                with self._cond:
                    self.bad_records += 1
                log.warning("IPFIX: record not encodable (%s): %r", exc, rec)
        now_mono = time.monotonic()
        export_time = int(self.clock())
        for domain, encoded in by_domain.items():
            encoded.sort(key=lambda e: e[0])  # grouped by template: fewer set headers
            for c in self.collectors:
                if not self._ready(c, now_mono):
                    c.dropped["unresolved"] += len(encoded)
                    continue
                due = now_mono - c.templates_sent.get(domain, -1e18) >= self.template_refresh_s
                for body in pack_bodies(encoded, self.max_message, due):
                    self._send(c, domain, body.sets, body.records, export_time)
                if due:
                    c.templates_sent[domain] = now_mono

    def _refresh_templates(self) -> None:
        """RFC 7011 section 8.4 (UDP): re-send templates periodically, with or without data."""
        now_mono = time.monotonic()
        export_time = int(self.clock())
        for c in self.collectors:
            for domain, sent in list(c.templates_sent.items()):
                if now_mono - sent >= self.template_refresh_s and self._ready(c, now_mono):
                    for body in pack_bodies([], self.max_message, True):
                        self._send(c, domain, body.sets, 0, export_time)
                    c.templates_sent[domain] = now_mono

    def _ready(self, c: CollectorState, now_mono: float) -> bool:
        if c.sock is not None:
            return True
        if now_mono < c.next_resolve:
            return False
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                c.host, c.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
        except OSError as exc:
            c.error = f"cannot resolve or open: {exc}"
            c.next_resolve = now_mono + RESOLVE_RETRY_S
            log.warning("IPFIX collector %s: %s (retry in %.0f s)", c.label, c.error, RESOLVE_RETRY_S)
            return False
        c.sock, c.address, c.error = sock, address, None
        return True

    def _send(self, c: CollectorState, domain: int, sets: bytes, records: int,
              export_time: int) -> None:
        seq = c.sequence.get(domain, 0)
        # The sequence counts records given to the network, sent or lost there: a collector
        # sees a local drop below as a gap, as it would see loss on the path.
        c.sequence[domain] = (seq + records) & 0xFFFFFFFF
        message = header(16 + len(sets), export_time, seq, domain) + sets
        try:
            c.sock.sendto(message, c.address)
        except BlockingIOError:
            c.dropped["send-blocked"] += records
            return
        except OSError as exc:  # e.g. ECONNREFUSED reported from an earlier ICMP error
            c.dropped["send-error"] += records
            c.error = str(exc)
            return
        c.messages += 1
        c.records += records

    # ---------- status and metrics ----------
    def status(self) -> dict:
        with self._cond:
            submitted, queue_dropped, bad = self.submitted, self.queue_dropped, self.bad_records
            depth = len(self._pending) + self._in_flight
        return {"submitted": submitted, "queue_depth": depth, "queue_capacity": self.capacity,
                "dropped": {"queue-full": queue_dropped, "bad-record": bad},
                "collectors": [{"collector": c.label, "messages": c.messages,
                                "records": c.records, "error": c.error,
                                "dropped": {r: c.dropped.get(r, 0) for r in SEND_DROP_REASONS},
                                "domains": sorted(c.sequence)} for c in self.collectors]}

    def metric_families(self) -> list:
        """Prometheus families (prometheus_client) for the controller's /metrics."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        st = self.status()
        exported = CounterMetricFamily("scitags_ipfix_records_exported",
                                       "IPFIX data records sent to a collector.", labels=["collector"])
        messages = CounterMetricFamily("scitags_ipfix_messages_sent",
                                       "IPFIX messages sent to a collector.", labels=["collector"])
        dropped = CounterMetricFamily("scitags_ipfix_records_dropped",
                                      "IPFIX data records not sent, by reason (collector \"\": "
                                      "lost before any collector).", labels=["collector", "reason"])
        for reason, n in st["dropped"].items():
            dropped.add_metric(["", reason], n)
        for c in self.collectors:
            exported.add_metric([c.label], c.records)
            messages.add_metric([c.label], c.messages)
            for reason in SEND_DROP_REASONS:
                dropped.add_metric([c.label, reason], c.dropped.get(reason, 0))
        depth = GaugeMetricFamily("scitags_ipfix_queue_records", "IPFIX records waiting to be sent.")
        depth.add_metric([], st["queue_depth"])
        return [exported, messages, dropped, depth]
