"""Real firefly receivers for the relay tests: the reference scitags 1.1.7 listener plugin,
run unchanged, and a raw UDP collector keeping every datagram."""
from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
from pathlib import Path

from labnet.waiting import poll


def reference_config(tmp_dir: Path) -> dict:
    """scitags.config exec()s /etc/flowd/flowd.cfg at import: point it at a file in tmp_dir
    (once per process; later calls get the loaded config)."""
    import scitags.settings
    if "scitags.config" not in sys.modules:
        config = tmp_dir / "flowd.cfg"
        config.write_text("PLUGIN = 'firefly'\nBACKEND = 'udp_firefly'\n")
        scitags.settings.CONFIG_PATH = str(config)
    sys.modules.setdefault("scitags.netlink.cache", None)  # type: ignore[arg-type]  (needs pyroute2)
    from scitags.config import config as loaded
    return loaded


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReferenceListener:
    """scitags.plugins.firefly.run(queue, term_event, ip_config), unchanged, on 127.0.0.1."""

    def __init__(self, config: dict) -> None:
        from scitags.plugins import firefly
        self.flows: queue.Queue = queue.Queue()
        self.term = threading.Event()
        # run() binds in its thread a port chosen free a moment before: another socket of the
        # suite may take it meanwhile (run() then dies with EADDRINUSE), so try a few ports.
        for _ in range(5):
            self.port = free_udp_port()
            config.update(FIREFLY_LISTENER_HOST="127.0.0.1", FIREFLY_LISTENER_PORT=self.port)
            self.thread = threading.Thread(target=firefly.run, args=(self.flows, self.term, None),
                                           daemon=True)
            self.thread.start()
            if poll(lambda: not self.thread.is_alive() or not _can_bind(self.port), timeout=5) \
                    and self.thread.is_alive():
                return
        raise AssertionError("reference listener did not bind")

    def take(self, n: int, timeout: float = 10) -> list:
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                out.append(self.flows.get(timeout=0.1))
            except queue.Empty:
                pass
        return out

    def stop(self) -> None:
        self.term.set()
        self.thread.join(5)


def _can_bind(port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


class RawCollector:
    """Every datagram as received (bytes), on a real UDP socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65535))
            except socket.timeout:
                continue
            except OSError:
                return

    def documents(self) -> list[dict]:
        return [json.loads(d.decode().partition(" - firefly-json - ")[2]) for d in self.datagrams]

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()

