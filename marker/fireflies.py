"""Sending fireflies for marked flows: to the flow's destination port 10514 and collectors.

The datagram itself comes from the core builder (scitags_core.firefly_build); this module
only decides where it goes and keeps the send counters. A send error (no route, host
unreachable) is counted and logged, never raised into the flow source.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Iterable

from marker.flows import FlowKey, Tag

log = logging.getLogger(__name__)

FIREFLY_PORT = 10514
APPLICATION = "scitags-p4 marker"


@dataclass(frozen=True)
class Collector:
    host: str
    port: int = FIREFLY_PORT

    @classmethod
    def parse(cls, text: str) -> "Collector":
        """`host`, `host:port`, `[v6]:port` or a bare IPv6 address."""
        text = text.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.lstrip(":") or str(FIREFLY_PORT)
        elif text.count(":") == 1:
            host, port = text.split(":")
        else:
            host, port = text, str(FIREFLY_PORT)
        if not host:
            raise ValueError(f"collector {text!r}: empty host")
        try:
            number = int(port)
        except ValueError:
            raise ValueError(f"collector {text!r}: bad port {port!r}") from None
        if not 1 <= number <= 65535:
            raise ValueError(f"collector {text!r}: port {number} outside 1..65535")
        return cls(host, number)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def build_datagram(state: str, key: FlowKey, tag: Tag, *, start_time: dt.datetime,
                   end_time: dt.datetime | None = None, hostname: str | None = None) -> bytes:
    """One firefly (syslog header + JSON) built by the core builder."""
    from scitags_core.firefly_build import build_firefly  # core module, built in parallel

    return build_firefly(
        state=state, src_ip=key.src, dst_ip=key.dst, protocol=key.protocol,
        src_port=key.src_port, dst_port=key.dst_port,
        experiment_id=tag.experiment_id, activity_id=tag.activity_id,
        start_time=start_time, end_time=end_time, current_time=utcnow(),
        application=APPLICATION, hostname=hostname)


@dataclass
class SendStats:
    sent: int = 0
    errors: int = 0
    last_error: str | None = None
    by_state: dict[str, int] = field(default_factory=dict)


class FireflySender:
    """UDP sender; one socket per address family, reused for every firefly."""

    def __init__(self, collectors: Iterable[Collector] = (), *, to_destination: bool = True,
                 destination_port: int = FIREFLY_PORT, hostname: str | None = None) -> None:
        self.collectors = list(collectors)
        self.to_destination = to_destination
        self.destination_port = destination_port
        self.hostname = hostname or socket.gethostname()
        self.stats = SendStats()
        self._lock = threading.Lock()
        self._socks: dict[int, socket.socket] = {}

    def _sock(self, family: int) -> socket.socket:
        if family not in self._socks:
            self._socks[family] = socket.socket(family, socket.SOCK_DGRAM)
        return self._socks[family]

    def _targets(self, key: FlowKey) -> list[tuple[int, tuple[str, int]]]:
        targets = []
        if self.to_destination:
            family = socket.AF_INET6 if key.afi == 6 else socket.AF_INET
            targets.append((family, (str(key.dst), self.destination_port)))
        for col in self.collectors:
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(col.host).version == 6 else socket.AF_INET
                targets.append((family, (col.host, col.port)))
            except ValueError:  # a host name: let the resolver pick the family
                info = socket.getaddrinfo(col.host, col.port, type=socket.SOCK_DGRAM)[0]
                targets.append((info[0], info[4][:2]))
        return targets

    def send(self, state: str, key: FlowKey, tag: Tag, *, start_time: dt.datetime,
             end_time: dt.datetime | None = None) -> int:
        """Send one firefly to every target; returns how many sends succeeded."""
        payload = build_datagram(state, key, tag, start_time=start_time, end_time=end_time,
                                 hostname=self.hostname)
        ok = 0
        with self._lock:
            try:
                targets = self._targets(key)
            except OSError as exc:
                targets = []
                self.stats.errors += 1
                self.stats.last_error = f"collector lookup: {exc}"
                log.warning("firefly %s for %s: collector lookup failed: %s", state, key, exc)
            for family, addr in targets:
                try:
                    self._sock(family).sendto(payload, addr)
                    ok += 1
                except OSError as exc:
                    self.stats.errors += 1
                    self.stats.last_error = f"{addr[0]}:{addr[1]}: {exc.strerror or exc}"
                    log.warning("firefly %s for %s to %s:%s failed: %s", state, key, addr[0], addr[1], exc)
            self.stats.sent += ok
            self.stats.by_state[state] = self.stats.by_state.get(state, 0) + ok
        return ok

    def close(self) -> None:
        with self._lock:
            for sock in self._socks.values():
                sock.close()
            self._socks.clear()
