"""SoftSwitch: an Engine wired to ports, with packet-in delivery for the CPU port.

One reader thread waits on every port with epoll and runs each received frame
through the engine, so packets are processed one at a time in arrival order, as
by simple_switch's single ingress thread.
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections import Counter
from typing import Callable

from .engine import Engine
from .ports import PortIO

log = logging.getLogger("softswitch.switch")

BURST = 64  # frames read from one port before looking at the others


class SoftSwitch:
    def __init__(self, engine: Engine, cpu_port: int | None = None) -> None:
        self.engine = engine
        self.cpu_port = cpu_port if cpu_port is not None else engine.cpu_port
        self.ports: dict[int, PortIO] = {}
        self._handlers: list[Callable[[bytes], None]] = []
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._running = False
        self.port_stats: dict[int, Counter[str]] = {}
        self.counters: Counter[str] = Counter()

    # ---- ports ---------------------------------------------------------------------------
    def add_port(self, port: int, io: PortIO) -> None:
        if port == self.cpu_port:
            raise ValueError(f"port {port} is the CPU port; it takes no interface")
        with self._lock:
            if port in self.ports:
                raise ValueError(f"port {port} already has an interface ({self.ports[port].name})")
            self.ports[port] = io
            self.port_stats[port] = Counter()
            self._sel.register(io.fileno(), selectors.EVENT_READ, port)
        log.info("Adding interface %s as port %d", io.name, port)
        self._wake()

    def remove_port(self, port: int) -> None:
        with self._lock:
            io = self.ports.pop(port)
            self.port_stats.pop(port, None)
            self._sel.unregister(io.fileno())
        io.close()
        log.info("Removing port %d", port)

    def add_packet_in_handler(self, handler: Callable[[bytes], None]) -> None:
        self._handlers.append(handler)

    # ---- packets -------------------------------------------------------------------------
    def inject(self, port: int, frame: bytes) -> list[tuple[int, bytes]]:
        """Run a frame received on `port` (or a packet-out on the CPU port) through the
        engine, send each output to its port or to the packet-in handlers, and return
        the outputs."""
        stats = self.port_stats.get(port)
        if stats is not None:
            stats["rx"] += 1
        outputs = self.engine.process(port, frame)
        for out_port, out in outputs:
            if out_port == self.cpu_port:
                self._packet_in(out)
                continue
            io = self.ports.get(out_port)
            if io is None:
                self.counters["tx_no_port"] += 1
                continue
            sent = io.send(out)
            stats = self.port_stats.get(out_port)  # the port may be going away
            if stats is not None:
                stats["tx" if sent else "tx_errors"] += 1
        return outputs

    def _packet_in(self, frame: bytes) -> None:
        if not self._handlers:
            self.counters["packet_in_no_handler"] += 1
            return
        self.counters["packet_in"] += 1
        for handler in list(self._handlers):
            try:
                handler(frame)
            except Exception as exc:  # a handler's fault must not stop the data plane
                self.counters["packet_in_handler_errors"] += 1
                log.warning("packet-in handler failed: %s: %s", type(exc).__name__, exc)

    # ---- reader thread -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="softswitch-ports", daemon=True)
        self._thread.start()

    def stop(self, close_ports: bool = True) -> None:
        self._running = False
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if close_ports:
            with self._lock:
                ports, self.ports = self.ports, {}
                for io in ports.values():
                    try:
                        self._sel.unregister(io.fileno())
                    except (KeyError, ValueError, OSError):
                        pass
            for io in ports.values():
                io.close()

    def close(self) -> None:
        self.stop()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _loop(self) -> None:
        while self._running:
            try:
                events = self._sel.select(timeout=1.0)
            except OSError as exc:  # a port closed under us: look again
                log.debug("select failed: %s", exc)
                continue
            for key, _ in events:
                port = key.data
                if port is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                    continue
                io = self.ports.get(port)
                if io is None:
                    continue
                for _ in range(BURST):
                    try:
                        frame = io.recv()
                    except OSError as exc:
                        self.counters["rx_errors"] += 1
                        log.warning("port %d (%s): receive failed: %s", port, io.name, exc)
                        break
                    if frame is None:
                        break
                    try:
                        self.inject(port, frame)
                    except Exception as exc:  # never let one packet stop the switch
                        self.counters["errors"] += 1
                        log.warning("port %d: packet dropped: %s: %s", port,
                                    type(exc).__name__, exc)

    def stats(self) -> dict:
        return {"engine": self.engine.stats(), "switch": dict(self.counters),
                "ports": {p: dict(c) for p, c in self.port_stats.items()}}
