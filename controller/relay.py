"""Firefly relay: forward every accepted firefly to collectors, as a firefly should be.

Sites send fireflies to the flow's destination and to a central collector (flowd-go 2.5
`fireflyReceivers`; the scitags firefly-collector is Logstash on UDP 10514 and expects the
RFC 5424 header). The controller sees them all, so it can be the gateway:
- each accepted firefly is forwarded once (per target) as a schema-valid v1 message with
  the RFC 5424 header: the known deviations repaired (firefly_build.repairs), the
  sender's application kept;
- an `end` is held until the controller has removed the flow (at most END_WAIT_S) so that
  `usage` carries what the network saw (bytes at the first and last switch of the path);
- a flow removed by idle timeout or eviction gets a synthesized `end`, the reason in the
  top-level member "scitags-p4" (the schema allows extra members).

Never blocks the controller: the hooks only append to a bounded queue (drops counted as
`queue-full`); one relay thread owns all other state, encodes, rate-limits (token bucket)
and sends on non-blocking sockets (drops counted as `send-buffer-full`, `send-error`). It
works in batches, GATHER_S after the first item, so that encoding does not compete for the
interpreter with the firefly the controller is installing at that moment.
Wiring (RelayExtension, controller/extensions.py): FireflyRelay.on_firefly(record, peer)
from the firefly-accepted hook, FireflyRelay.on_flow_ended(FlowEnded(...)) from the
flow-lifecycle listener; `controller start --relay HOST:PORT` (repeatable) or YAML
`relay: {targets: [HOST:PORT, ...], rate_per_s: N, burst: N, max_queue: N}`; status in
/api/v1/status `relay`, metrics scitags_relay_*.
"""
from __future__ import annotations

import collections
import datetime as dt
import errno
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from scitags_core.firefly import FIREFLY_PORT, FireflyRecord, FlowState, Protocol
from scitags_core.firefly_build import DEFAULT_APPLICATION, build_firefly, encode_record, repairs
from scitags_core.firefly_dedup import FireflyDeduplicator, directed_flow
from controller.extensions import Extension

log = logging.getLogger(__name__)

END_WAIT_S = 1.0  # how long an end firefly waits for the flow's final counters
GATHER_S = 0.02  # after waking, let a burst gather: relaying is off the firefly->entry path
BATCH = 256  # items taken from the queue at once (also wakes a gathering relay thread)
DEFAULT_RATE_PER_S = 5000.0
DEFAULT_BURST = 500
DEFAULT_MAX_QUEUE = 4096  # items are parsed records (a few hundred bytes each)
MAX_HELD = 4096  # end fireflies waiting for counters, and counters waiting for their end
MAX_APPLICATIONS_KEPT = 65_536  # flow -> its sender's application, for synthesized ends
MEMBER = "scitags-p4"  # our top-level member: why an end was synthesized, what the network saw
DROP_REASONS = ("queue-full", "stopped", "send-buffer-full", "send-error", "too-large",
                "encode-error")  # "stopped": still waiting for the rate limit when stop() came

Target = tuple[str, int]
_UTC = dt.timezone.utc


def parse_target(text: str, default_port: int = FIREFLY_PORT) -> Target:
    """`HOST:PORT`, `[V6]:PORT`, `HOST` or `V6` -> (host, port); ValueError names the problem."""
    text = text.strip()
    if not text:
        raise ValueError("relay target is empty")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"relay target {text!r}: expected [ADDRESS]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:  # a hostname, an IPv4 address, or a bare IPv6 address
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"relay target {text!r}: port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535 or not host:
        raise ValueError(f"relay target {text!r}: needs a host and a port in 1..65535")
    return host, port


@dataclass(frozen=True)
class FlowEnded:
    """A flow the controller removed, with what its switches counted."""

    protocol: str  # "tcp" | "udp"
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    experiment_id: int
    activity_id: int
    reason: str  # FlowEvent.reason: "end" (its end firefly), "idle-timeout", "eviction"
    started: float | None  # wall clock (time.time()) of the flow's first firefly
    ended: float  # wall clock of the removal
    sent_bytes: int = 0  # at the first switch of the path (what left the source)
    sent_packets: int = 0
    received_bytes: int = 0  # at the last switch of the path (what reached the destination)
    received_packets: int = 0
    application: str | None = None

    @property
    def flow_id(self) -> tuple:
        """The flow as _flow_id gives it for its fireflies."""
        return directed_flow(Protocol(self.protocol), ipaddress.ip_address(self.src_ip), self.src_port,
                             ipaddress.ip_address(self.dst_ip), self.dst_port)


def _flow_id(record: FireflyRecord) -> tuple:
    return directed_flow(record.protocol, record.src_ip, record.src_port, record.dst_ip, record.dst_port)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, _UTC)


def _end_reason(reason: str) -> str:
    """A removal reason as collectors see it ("idle:s1", the history's spelling, -> "idle-timeout")."""
    kind = reason.partition(":")[0]
    return {"idle": "idle-timeout"}.get(kind, kind)


class FireflyRelay:
    """Forward accepted fireflies to `targets` ((host, port) pairs); start() before use."""

    def __init__(self, targets: Iterable[Target], *, rate_per_s: float = DEFAULT_RATE_PER_S,
                 burst: int = DEFAULT_BURST, max_queue: int = DEFAULT_MAX_QUEUE,
                 end_wait_s: float = END_WAIT_S, hostname: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.targets = list(targets)
        if not self.targets:
            raise ValueError("a relay needs at least one target")
        if rate_per_s <= 0 or burst < 1 or max_queue < 1 or end_wait_s < 0:
            raise ValueError("relay rate_per_s, burst and max_queue must be positive")
        self.rate_per_s, self.burst = rate_per_s, burst
        self.max_queue, self.end_wait_s = max_queue, end_wait_s
        self.hostname = hostname or socket.gethostname() or None
        self._clock, self._wall = clock, wall
        self._addresses = [self._resolve(t) for t in self.targets]  # ValueError now, not later
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._idle = False  # the relay thread waits for work (hooks wake it only then)
        self._sockets: dict[int, socket.socket] = {}
        # owned by the relay thread
        self._tokens, self._refilled = float(burst), clock()
        self._held_ends: collections.OrderedDict[tuple, tuple[FireflyRecord, tuple, float]] = \
            collections.OrderedDict()
        self._held_counts: collections.OrderedDict[tuple, tuple[FlowEnded, float]] = collections.OrderedDict()
        self._dedup = FireflyDeduplicator(clock=clock)
        self._applications: collections.OrderedDict[tuple, str] = collections.OrderedDict()
        # counters (written by the relay thread, except queue-full; read from anywhere)
        self.offered = 0
        self.relayed = 0  # messages sent to every target
        self.sent = collections.Counter({f"{h}:{p}": 0 for h, p in self.targets})
        self.dropped = collections.Counter({r: 0 for r in DROP_REASONS})
        self.duplicates = 0
        self.repaired = 0  # forwarded messages that had deviations
        self.with_usage = 0  # ends sent with the network's counters
        self.synthesized = collections.Counter()  # synthesized ends by reason
        self.last_error: str | None = None

    # -- set-up --------------------------------------------------------------------
    @staticmethod
    def _resolve(target: Target) -> tuple[int, tuple]:
        host, port = target
        try:
            family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as exc:
            raise ValueError(f"relay target {host}:{port}: {exc.strerror}") from None
        return family, address

    def start(self) -> "FireflyRelay":
        if self._thread is not None:
            raise RuntimeError("relay already started")
        for family, _ in self._addresses:
            if family not in self._sockets:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self._sockets[family] = sock
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="firefly-relay", daemon=True)
        self._thread.start()
        log.info("firefly relay to %s", ", ".join(f"{h}:{p}" for h, p in self.targets))
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what is queued and held (within `timeout`), then stop."""
        if self._thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)
        self._thread = None
        for sock in self._sockets.values():
            sock.close()
        self._sockets = {}

    def __enter__(self) -> "FireflyRelay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- hooks (any thread; never block) ---------------------------------------------
    def on_firefly(self, record: FireflyRecord, peer: tuple[str, int] | None = None) -> bool:
        """An accepted firefly; False when the queue was full (counted)."""
        return self._offer(("firefly", record, peer))

    def on_flow_ended(self, ended: FlowEnded) -> bool:
        """A flow the controller removed (its end firefly, idle timeout, eviction)."""
        return self._offer(("ended", ended, None))

    def _offer(self, item: tuple) -> bool:
        with self._cond:
            self.offered += 1
            if len(self._queue) >= self.max_queue:
                self.dropped["queue-full"] += 1
                return False
            self._queue.append(item)
            if self._idle or len(self._queue) >= BATCH:  # else the relay thread is gathering
                self._cond.notify()
        return True

    # -- the relay thread ------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._idle = True
                    self._cond.wait(self._next_deadline())
                    self._idle = False
                    if self._queue and not self._stopping:
                        # Let the controller finish applying what it just handed over before
                        # taking the interpreter for encoding (GIL): woken early only by a
                        # full batch or stop().
                        self._cond.wait(GATHER_S)
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                stopping = self._stopping and not self._queue
            for item in batch:
                self._guarded(self._handle, *item)
            self._guarded(self._expire, stopping)
            if stopping:
                return

    def _guarded(self, fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # never let one message stop the relay
            self.dropped["encode-error"] += 1
            log.exception("firefly relay: unexpected error")

    def _next_deadline(self) -> float:
        """Seconds until the oldest held item is due (0.5 s when nothing is held)."""
        oldest = [next(iter(held.values()))[-1] for held in (self._held_ends, self._held_counts) if held]
        if not oldest:
            return 0.5
        return max(0.0, min(oldest) + self.end_wait_s - self._clock()) + 0.001

    def _handle(self, kind: str, payload: Any, peer: tuple[str, int] | None) -> None:
        now = self._clock()
        if kind == "firefly":
            record: FireflyRecord = payload
            if self._dedup.is_duplicate(record, now):
                self.duplicates += 1
                return
            if record.state is not FlowState.END:
                if record.application is not None:
                    self._remember_application(_flow_id(record), record.application)
                self._emit_record(record, peer)
                return
            key = _flow_id(record)
            self._applications.pop(key, None)
            counted = self._held_counts.pop(key, None)
            if counted is not None:
                self._emit_record(record, peer, counted[0])
                return
            self._hold(self._held_ends, key, (record, peer, now))
            return
        ended: FlowEnded = payload
        if ended.reason != "end":
            self._emit_synthesized(ended)
            return
        key = ended.flow_id
        held = self._held_ends.pop(key, None)
        if held is not None:
            self._emit_record(held[0], held[1], ended)
        else:  # its end firefly is still on its way
            self._hold(self._held_counts, key, (ended, now))

    def _remember_application(self, key: tuple, application: str) -> None:
        apps = self._applications
        if apps.get(key) != application:
            apps[key] = application
            if len(apps) > MAX_APPLICATIONS_KEPT:
                apps.popitem(last=False)

    def _hold(self, held: collections.OrderedDict, key: tuple, value: tuple) -> None:
        held[key] = value
        if len(held) > MAX_HELD:  # bounded: the oldest goes out as it is
            self._release(held, *held.popitem(last=False))

    def _release(self, held: collections.OrderedDict, key: tuple, value: tuple) -> None:
        if held is self._held_ends:
            self._emit_record(value[0], value[1])  # an end of a flow we did not have
        else:
            self._emit_synthesized(value[0])  # removed on an end firefly we never saw

    def _expire(self, flush: bool = False) -> None:
        horizon = self._clock() - self.end_wait_s
        for held in (self._held_ends, self._held_counts):
            while held:
                key, value = next(iter(held.items()))
                if not flush and value[-1] > horizon:
                    break
                del held[key]
                self._release(held, key, value)

    # -- encoding --------------------------------------------------------------------
    def _emit_record(self, record: FireflyRecord, peer: tuple[str, int] | None,
                     ended: FlowEnded | None = None) -> None:
        now = _utc(self._wall())
        start = _utc(ended.started) if ended is not None and ended.started is not None else None
        changes = repairs(record, start_time=start, now=now)
        changes.update(_header_fields(record, peer))
        ours: dict[str, Any] = {"relayed-by": self.hostname or "-"}
        if record.deviations:
            ours["repaired"] = [d.value for d in record.deviations]
            self.repaired += 1
        if ended is not None:  # what the network saw replaces what the sender said
            changes.update(usage_sent=ended.sent_bytes, usage_received=ended.received_bytes)
            ours["network"] = _network(ended)
            if record.usage_received is not None or record.usage_sent is not None:
                ours["sender-usage"] = {k: v for k, v in (("received", record.usage_received),
                                                          ("sent", record.usage_sent)) if v is not None}
            self.with_usage += 1
        extra = {k: v for k, v in record.extra.items() if k != MEMBER}
        extra[MEMBER] = ours
        try:
            data = encode_record(record, extra, **changes)
        except ValueError:  # the sender's extra members no longer fit with ours: drop theirs
            try:
                data = encode_record(record, {MEMBER: ours}, **changes)
            except ValueError as exc:
                self.dropped["too-large"] += 1
                self.last_error = str(exc)
                return
        self._send(data)

    def _emit_synthesized(self, ended: FlowEnded) -> None:
        application = ended.application or self._applications.pop(ended.flow_id, None)
        start = _utc(ended.started if ended.started is not None else ended.ended)
        end = _utc(ended.ended)
        src, dst = ipaddress.ip_address(ended.src_ip), ipaddress.ip_address(ended.dst_ip)
        reason = _end_reason(ended.reason)
        try:
            data = build_firefly(
                state=FlowState.END, src_ip=src, dst_ip=dst, src_port=ended.src_port,
                dst_port=ended.dst_port, protocol=ended.protocol,
                experiment_id=ended.experiment_id, activity_id=ended.activity_id,
                application=application or DEFAULT_APPLICATION, start_time=start,
                end_time=end, current_time=end, usage_received=ended.received_bytes,
                usage_sent=ended.sent_bytes, hostname=self.hostname,
                extra={MEMBER: {"relayed-by": self.hostname or "-", "synthesized": True,
                                "end-reason": reason, "removed": ended.reason,
                                "network": _network(ended)}})
        except (ValueError, TypeError) as exc:  # e.g. port 0 of an adopted entry
            self.dropped["encode-error"] += 1
            self.last_error = f"synthesized end for {ended.src_ip}:{ended.src_port}: {exc}"
            return
        self.synthesized[reason] += 1
        self._send(data)

    # -- sending ---------------------------------------------------------------------
    def _take_token(self) -> bool:
        """Wait for a token (the collector's budget); False when stopping makes us give up."""
        while True:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._refilled) * self.rate_per_s)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            with self._cond:
                if self._stopping:
                    return False
                self._cond.wait((1 - self._tokens) / self.rate_per_s)

    def _send(self, data: bytes) -> None:
        if not self._take_token():
            self.dropped["stopped"] += 1
            return
        for (host, port), (family, address) in zip(self.targets, self._addresses):
            try:
                self._sockets[family].sendto(data, address)
                self.sent[f"{host}:{port}"] += 1
            except BlockingIOError:
                self.dropped["send-buffer-full"] += 1
            except OSError as exc:  # unreachable network, ICMP errors reported on the socket
                self.dropped["send-error"] += 1
                self.last_error = f"{host}:{port}: {exc.strerror or exc}"
                if exc.errno not in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH):
                    log.warning("firefly relay to %s:%d: %s", host, port, exc)
        self.relayed += 1

    # -- status --------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {"targets": [f"{h}:{p}" for h, p in self.targets], "offered": self.offered,
                "relayed": self.relayed, "sent": dict(self.sent), "dropped": dict(self.dropped),
                "dropped_total": sum(self.dropped.values()), "duplicates": self.duplicates,
                "repaired": self.repaired, "with_usage": self.with_usage,
                "synthesized_ends": dict(self.synthesized), "queue_depth": len(self._queue),
                "held_ends": len(self._held_ends), "rate_per_s": self.rate_per_s,
                "max_queue": self.max_queue, "last_error": self.last_error}

    def collect(self):
        """prometheus_client collector: register the relay in the API's CollectorRegistry."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        sent = CounterMetricFamily("scitags_relay_fireflies_sent", "Fireflies relayed, per target",
                                   labels=["target"])
        for target, n in self.sent.items():
            sent.add_metric([target], n)
        dropped = CounterMetricFamily("scitags_relay_fireflies_dropped",
                                      "Fireflies the relay did not send, per reason", labels=["reason"])
        for reason, n in self.dropped.items():
            dropped.add_metric([reason], n)
        synthesized = CounterMetricFamily("scitags_relay_synthesized_ends",
                                          "End fireflies synthesized for removed flows", labels=["reason"])
        for reason, n in self.synthesized.items():
            synthesized.add_metric([reason], n)
        depth = GaugeMetricFamily("scitags_relay_queue_depth", "Fireflies waiting in the relay queue",
                                  value=len(self._queue))
        return [sent, dropped, synthesized, depth]


def _fits(value: str | None, limit: int) -> bool:
    return value is None or (0 < len(value) <= limit and value.isascii() and value.isprintable()
                             and " " not in value)


def _header_fields(record: FireflyRecord, peer: tuple[str, int] | None) -> dict[str, Any]:
    """RFC 5424 field limits for what we re-send: no HOSTNAME (bare JSON) or an unusable one
    becomes the sender's address; an over-long APP-NAME or PROCID becomes nil."""
    hostname = record.syslog_hostname
    if hostname is None or not _fits(hostname, 255):
        hostname = peer[0] if peer is not None else None
    return {"hostname": hostname, "app_name": record.syslog_app if _fits(record.syslog_app, 48) else None,
            "procid": record.syslog_procid if _fits(record.syslog_procid, 128) else None}


def _network(ended: FlowEnded) -> dict[str, int]:
    return {"sent-bytes": ended.sent_bytes, "sent-packets": ended.sent_packets,
            "received-bytes": ended.received_bytes, "received-packets": ended.received_packets}



class RelayExtension(Extension):
    """`controller start --relay HOST:PORT` (repeatable), YAML section `relay:`."""

    name = "relay"
    _KEYS = {"targets", "rate_per_s", "burst", "max_queue"}

    def __init__(self) -> None:
        self.relay: FireflyRelay | None = None
        self.settings: dict[str, Any] = {}

    def add_arguments(self, parser) -> None:
        parser.add_argument("--relay", dest="relay_targets", action="append", metavar="HOST:PORT",
                            help="forward each accepted firefly (repaired, RFC 5424 header) to this "
                                 "collector; repeatable (YAML relay: {targets: [...]})")
        parser.add_argument("--relay-rate", dest="relay_rate_per_s", type=float, metavar="N",
                            help=f"fireflies per second sent to each collector at most "
                                 f"(default {DEFAULT_RATE_PER_S:g})")

    def options(self, args) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if getattr(args, "relay_targets", None):
            out["targets"] = list(args.relay_targets)
        if getattr(args, "relay_rate_per_s", None) is not None:
            out["rate_per_s"] = args.relay_rate_per_s
        return out

    def configure(self, section: dict[str, Any]) -> None:
        unknown = sorted(set(section) - self._KEYS)
        if unknown:
            raise ValueError(f"relay.{unknown[0]}: unknown key (known: {', '.join(sorted(self._KEYS))})")
        targets = section.get("targets") or []
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list):
            raise ValueError("relay.targets: a list of HOST:PORT")
        parsed = [parse_target(str(t)) for t in targets]
        settings: dict[str, Any] = {"targets": parsed}
        for key, kind in (("rate_per_s", float), ("burst", int), ("max_queue", int)):
            if key in section:
                try:
                    settings[key] = kind(section[key])
                except (TypeError, ValueError):
                    raise ValueError(f"relay.{key}: {section[key]!r} is not a number") from None
                if settings[key] <= 0:
                    raise ValueError(f"relay.{key}: must be positive")
        self.settings = settings
        if parsed:  # resolve now: a bad collector name is a usage error at start
            self.relay = FireflyRelay(parsed, **{k: v for k, v in settings.items() if k != "targets"})

    def attach(self, controller) -> None:
        if self.relay is None:
            return
        hooks = controller.hooks
        hooks.on_firefly(self._on_firefly)
        hooks.on_flow(self._on_flow)
        hooks.add_status("relay", self.relay.status)
        hooks.add_collector(self.relay)

    def _on_firefly(self, event) -> None:  # FireflyAccepted
        self.relay.on_firefly(event.record, (event.sender, 0))

    def _on_flow(self, event) -> None:  # FlowEvent
        if event.kind == "ended":
            self.relay.on_flow_ended(flow_ended_from(event))

    def start(self) -> None:
        if self.relay is not None:
            self.relay.start()

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()


def flow_ended_from(event) -> FlowEnded:
    """FlowEnded from the controller's FlowEvent (kind "ended"): the counts of the first and
    last switch of the flow's path are what left the source and what reached the destination."""
    key, flow = event.key, event.flow
    path = [s for s in flow.get("path", []) if s in event.counts] or sorted(event.counts)
    first = event.counts[path[0]] if path else None
    last = event.counts[path[-1]] if path else None
    return FlowEnded(
        protocol="tcp" if key.protocol == 6 else "udp", src_ip=str(key.src), src_port=key.src_port,
        dst_ip=str(key.dst), dst_port=key.dst_port, experiment_id=event.experiment,
        activity_id=event.activity, reason=event.reason, started=flow.get("started"), ended=event.at,
        sent_bytes=first.bytes if first else 0, sent_packets=first.packets if first else 0,
        received_bytes=last.bytes if last else 0, received_packets=last.packets if last else 0)
