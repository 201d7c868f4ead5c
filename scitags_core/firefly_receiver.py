"""UDP firefly receiver: one thread, IPv4 and IPv6, counts everything, never stops on input.

Accepted records go to subscribers (callbacks run in the receiver thread, so keep them
short or hand off to a queue). A subscriber that raises is logged and counted.
"""
from __future__ import annotations

import collections
import errno
import logging
import select
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable

from scitags_core.firefly import (
    FIREFLY_PORT, MAX_FIREFLY_BYTES, Deviation, FireflyRecord, FireflyRejected, RejectReason,
)
from scitags_core.firefly_parse import parse_firefly
from scitags_core.firefly_stats import FireflyStats

log = logging.getLogger(__name__)

Peer = tuple[str, int]
Subscriber = Callable[[FireflyRecord, Peer], None]
DEFAULT_RCVBUF = 4 * 1024 * 1024  # absorbs bursts; the kernel caps it at net.core.rmem_max
_READ_SIZE = MAX_FIREFLY_BYTES + 1  # anything longer arrives truncated and is counted too-large
_LOG_FIRST_ERRORS = 10
_LOG_EVERY_ERRORS = 1000


@dataclass(frozen=True)
class ReceiverCounters:
    received: int
    accepted: int
    rejected: dict[RejectReason, int]
    deviations: dict[Deviation, int]
    subscriber_errors: int
    socket_errors: int
    last_rejection: dict[RejectReason, str] = field(default_factory=dict)  # "peer: detail"
    applications: dict[str, object] = field(default_factory=dict)  # FireflyStats.snapshot()

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, object]:
        return {"received": self.received, "accepted": self.accepted,
                "rejected_total": self.rejected_total,
                "rejected": {r.value: n for r, n in self.rejected.items()},
                "deviations": {d.value: n for d, n in self.deviations.items()},
                "subscriber_errors": self.subscriber_errors, "socket_errors": self.socket_errors,
                "last_rejection": {r.value: s for r, s in self.last_rejection.items()},
                "applications": self.applications.get("applications", {})}


def _open_socket(host: str | None, port: int, rcvbuf: int) -> socket.socket:
    """Dual-stack [::] when host is None (0.0.0.0 without IPv6), else that address only."""
    if host is None:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            sock, address = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), ("0.0.0.0", port)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            address = ("::", port)
    else:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _peer(address: tuple) -> Peer:
    host = address[0]
    if host.startswith("::ffff:") and "." in host:  # IPv4 client on the dual-stack socket
        host = host[7:]
    return host, address[1]


class FireflyReceiver:
    """Receive fireflies on UDP `port` (default 10514) until stop()."""

    def __init__(self, port: int = FIREFLY_PORT, host: str | None = None, *, strict: bool = False,
                 rcvbuf: int = DEFAULT_RCVBUF, name: str = "firefly-receiver",
                 stats: FireflyStats | None = None) -> None:
        self.host, self.port, self.strict, self.rcvbuf, self.name = host, port, strict, rcvbuf, name
        # per sender application and deviation; pass one instance to share it between receivers
        self.stats = stats if stats is not None else FireflyStats()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()  # guards subscriber list changes only
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._received = 0
        self._accepted = 0
        self._subscriber_errors = 0
        self._socket_errors = 0
        self._rejected: collections.Counter[RejectReason] = collections.Counter()
        self._deviations: collections.Counter[Deviation] = collections.Counter()
        self._last_rejection: dict[RejectReason, str] = {}

    # -- subscribers ---------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(record, (peer_host, peer_port))` per accepted firefly; returns unsubscribe."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)
        return unsubscribe

    # -- lifecycle -----------------------------------------------------------------
    @property
    def address(self) -> Peer:
        """(host, port) actually bound (port 0 asks the kernel for a free one)."""
        if self._sock is None:
            raise RuntimeError("receiver not started")
        return self._sock.getsockname()[:2]

    def start(self) -> "FireflyReceiver":
        """Bind (OSError if the port is taken) and start the receiver thread."""
        if self._thread is not None:
            raise RuntimeError("receiver already started")
        self._sock = _open_socket(self.host, self.port, self.rcvbuf)
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        log.info("firefly receiver listening on %s", self.address)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout)
        self._thread = None
        for sock in (self._sock, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._sock = self._wake_r = self._wake_w = None

    def __enter__(self) -> "FireflyReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counters(self) -> ReceiverCounters:
        """A consistent-enough snapshot (counters only grow; read from any thread)."""
        return ReceiverCounters(self._received, self._accepted, dict(self._rejected),
                                dict(self._deviations), self._subscriber_errors,
                                self._socket_errors, dict(self._last_rejection),
                                self.stats.snapshot())

    # -- the receive loop ----------------------------------------------------------
    def _run(self) -> None:
        sock, wake = self._sock, self._wake_r
        recvfrom, handle = sock.recvfrom, self.handle_datagram
        while not self._stopping.is_set():
            try:
                data, address = recvfrom(_READ_SIZE)
            except BlockingIOError:
                select.select([sock, wake], [], [], 1.0)
                continue
            except OSError as exc:  # e.g. ICMP errors queued on the socket: count, go on
                self._socket_errors += 1
                if exc.errno not in (errno.ECONNREFUSED, errno.EINTR):
                    log.warning("firefly receiver socket error: %s", exc)
                continue
            try:
                handle(data, _peer(address))
            except Exception:  # never let anything stop the receiver
                self._rejected[RejectReason.INTERNAL] += 1
                log.exception("firefly receiver: unexpected error")

    def handle_datagram(self, data: bytes, peer: Peer) -> FireflyRecord | None:
        """Parse, count and deliver one datagram (the receive loop's body)."""
        self._received += 1
        try:
            record = parse_firefly(data, strict=self.strict)
        except FireflyRejected as exc:
            self._rejected[exc.reason] += 1
            self._last_rejection[exc.reason] = f"{peer[0]}:{peer[1]}: {exc.detail}"
            if log.isEnabledFor(logging.DEBUG):
                log.debug("firefly from %s rejected: %s", peer, exc)
            return None
        self._accepted += 1
        for deviation in record.deviations:
            self._deviations[deviation] += 1
        self.stats.count_accepted(record)
        for callback in self._subscribers:
            try:
                callback(record, peer)
            except Exception:
                self._subscriber_errors += 1
                n = self._subscriber_errors
                if n <= _LOG_FIRST_ERRORS or n % _LOG_EVERY_ERRORS == 0:
                    log.exception("firefly subscriber %r failed (%d failures so far)", callback, n)
        return record
