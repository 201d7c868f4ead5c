"""The reference service's named-pipe API (flowd np_api): line syntax and the pipe reader.

A line is `state prot src_ip src_port dst_ip dst_port exp act`, fields separated by single
spaces, ids numeric (`start tcp 2001:db8::1 2345 2001:db8::2 5777 3 14`). The syntax stage
rejects exactly what the reference rejects (not 8 space-separated fields, an address
ipaddress cannot parse, a port or id int() cannot parse: names are refused). The reference
passes anything else on; the marker then applies its own checks (state start/end, tcp/udp,
ports 1..65535, ids in the label range and registered), so a line may pass the first stage
and still be refused with a MarkerInputError.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import select
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from marker.flows import FlowRequest, MarkerInputError, make_request
from scitags_core.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_PIPE = "/var/run/scitags-marker.np_api"  # reference flowd uses /var/run/flowd
READ_SIZE = 65535


class NpApiSyntaxError(MarkerInputError):
    """A line the reference np_api plugin rejects too."""


@dataclass(frozen=True)
class NpApiLine:
    state: str
    protocol: str
    src: str
    src_port: int
    dst: str
    dst_port: int
    experiment: int
    activity: int


def parse_line(line: str) -> NpApiLine:
    """Reference np_api syntax, rejection for rejection (see the module docstring)."""
    entry = line.strip().split(" ")
    if len(entry) != 8:
        raise NpApiSyntaxError(f"np_api: expected 8 space-separated fields "
                               f"(state prot src_ip src_port dst_ip dst_port exp act), got {len(entry)}: {line.strip()!r}")
    state, proto, src, src_port, dst, dst_port, exp, act = (f.strip() for f in entry)
    for what, addr in (("source", src), ("destination", dst)):
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise NpApiSyntaxError(f"np_api: invalid {what} address {addr!r}") from None
    numbers = []
    for what, text in (("source port", src_port), ("destination port", dst_port),
                       ("experiment id", exp), ("activity id", act)):
        try:
            numbers.append(int(text))
        except ValueError:
            hint = " (np_api takes numeric ids, not names)" if "id" in what else ""
            raise NpApiSyntaxError(f"np_api: {what} {text!r} is not an integer{hint}") from None
    return NpApiLine(state, proto, src, numbers[0], dst, numbers[1], numbers[2], numbers[3])


def to_request(parsed: NpApiLine, registry: Registry, *, allow_unregistered: bool = False) -> FlowRequest:
    """The marker's own checks on a syntactically valid line."""
    # The reference matches states by substring ('start' in state); we require the word.
    return make_request(registry, parsed.state, parsed.protocol, parsed.src, parsed.src_port,
                        parsed.dst, parsed.dst_port, parsed.experiment, parsed.activity,
                        source="np_api", allow_unregistered=allow_unregistered)


def format_line(req: FlowRequest) -> str:
    """A request as an np_api line (what `marker flow` writes to a daemon's pipe)."""
    k, t = req.key, req.tag
    return (f"{req.state} {k.protocol} {k.src} {k.src_port} {k.dst} {k.dst_port} "
            f"{t.experiment_id} {t.activity_id}\n")


def ensure_fifo(path: str | Path) -> None:
    """Create the pipe (mode 0666 like the reference) unless a FIFO is already there."""
    path = Path(path)
    if path.exists():
        if stat.S_ISFIFO(path.stat().st_mode):
            return
        raise MarkerInputError(f"{path} exists and is not a named pipe")
    path.parent.mkdir(parents=True, exist_ok=True)
    old = os.umask(0)
    try:
        os.mkfifo(path, 0o666)
    finally:
        os.umask(old)


class NamedPipeSource:
    """Reads np_api lines from a FIFO and hands each to `on_line` (which must not raise)."""

    def __init__(self, path: str | Path, on_line: Callable[[str], None]) -> None:
        self.path = Path(path)
        self.on_line = on_line
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    def start(self) -> None:
        ensure_fifo(self.path)
        # O_RDWR keeps a writer open ourselves, so poll() does not spin on EOF between writers.
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="np_api", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLPRI)
        pending = b""
        while not self._stop.is_set():
            if not poller.poll(200):
                continue
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    log.error("np_api: reading %s failed: %s", self.path, exc)
                    self._stop.wait(1)
                continue
            pending += chunk
            # Lines may arrive split across reads; keep an unfinished tail for the next read.
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._dispatch(raw)
        if pending.strip():
            self._dispatch(pending)

    def _dispatch(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")  # on_line refuses it with a clear message
        self.on_line(text.rstrip("\r"))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            if stat.S_ISFIFO(self.path.stat().st_mode):
                self.path.unlink()
        except FileNotFoundError:
            pass
