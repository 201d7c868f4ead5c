"""Poller of the host's TCP connections (`ss`), like the reference's netstat/netlink plugins.

Every `interval` seconds it lists established TCP connections; a new one whose local or
remote port is in `ports` (empty: every connection) starts a flow with the configured
experiment/activity, and one that is gone or closing ends it. The flow is the direction
this host sends: src = local address, dst = peer. Connections that exist when the poller
starts are ignored, as the reference does (no start time for them).
"""
from __future__ import annotations

import ipaddress
import logging
import subprocess
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from marker.flows import FlowKey, IPAddress

log = logging.getLogger(__name__)

ESTABLISHED = "ESTAB"
CLOSING_STATES = frozenset({"FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK",
                            "CLOSING", "CLOSED", "UNCONN"})


class SsParseError(ValueError):
    """A line of `ss` output that is not `STATE RECVQ SENDQ LOCAL PEER ...`."""


@dataclass(frozen=True)
class Connection:
    state: str
    local: IPAddress
    local_port: int
    peer: IPAddress
    peer_port: int

    def key(self) -> FlowKey:
        return FlowKey("tcp", self.local, self.local_port, self.peer, self.peer_port)


def _endpoint(text: str) -> tuple[IPAddress, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SsParseError(f"bad endpoint {text!r}")
    host = host.strip("[]").split("%", 1)[0]  # drop brackets and a zone id (fe80::1%eth0)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise SsParseError(f"bad address in endpoint {text!r}") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # a v4 peer on a dual-stack socket: the wire carries IPv4
    return addr, int(port)


def parse_ss(output: str) -> list[Connection]:
    """Connections in `ss -tnHa` output; LISTEN sockets skipped, bad lines raise."""
    conns = []
    for line in output.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 5:
            raise SsParseError(f"expected STATE RECVQ SENDQ LOCAL PEER, got {line!r}")
        state = fields[0]
        if state == "LISTEN":
            continue
        local, lport = _endpoint(fields[3])
        peer, pport = _endpoint(fields[4])
        conns.append(Connection(state, local, lport, peer, pport))
    return conns


def list_connections(ss: str = "ss") -> list[Connection]:
    proc = subprocess.run([ss, "-tnHa"], capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"ss failed: {proc.stderr.strip() or proc.returncode}")
    return parse_ss(proc.stdout)


class ConnectionTracker:
    """Pure state machine: given successive connection lists, which flows start and end."""

    def __init__(self, ports: Iterable[int] = ()) -> None:
        self.ports = frozenset(ports)
        self.active: set[FlowKey] = set()
        self._ignored: set[FlowKey] = set()
        self._primed = False

    def matches(self, conn: Connection) -> bool:
        return not self.ports or conn.local_port in self.ports or conn.peer_port in self.ports

    def update(self, conns: Iterable[Connection]) -> tuple[list[FlowKey], list[FlowKey]]:
        """(started, ended) since the previous update."""
        established = {c.key() for c in conns if c.state == ESTABLISHED and self.matches(c)}
        if not self._primed:  # pre-existing connections: never marked (no start time)
            self._primed = True
            self._ignored = established
            return [], []
        self._ignored &= established
        started = sorted(established - self.active - self._ignored)
        ended = sorted(self.active - established)
        self.active = (self.active | set(started)) - set(ended)
        return started, ended


class ConnectionPoller:
    """Thread around ConnectionTracker; `on_start`/`on_end` get FlowKeys (must not raise)."""

    def __init__(self, ports: Iterable[int], on_start: Callable[[FlowKey], None],
                 on_end: Callable[[FlowKey], None], *, interval: float = 2.0,
                 lister: Callable[[], list[Connection]] = list_connections) -> None:
        self.tracker = ConnectionTracker(ports)
        self.on_start, self.on_end = on_start, on_end
        self.interval = interval
        self.lister = lister
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> None:
        try:
            conns = self.lister()
        except (OSError, RuntimeError, SsParseError, subprocess.SubprocessError) as exc:
            self.errors += 1
            log.warning("poller: listing connections failed: %s", exc)
            return
        started, ended = self.tracker.update(conns)
        for key in started:
            self.on_start(key)
        for key in ended:
            self.on_end(key)

    def start(self) -> None:
        self.poll_once()  # prime: pre-existing connections are ignored
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
