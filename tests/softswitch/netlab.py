"""A throwaway network namespace with veth pairs, and sockets opened inside it.

Deleting the namespace deletes every veth in it, so cleanup cannot leak links.
Sockets are created in the namespace by a short-lived thread that joins it with
setns(2) (per-thread on Linux); a socket keeps its namespace for life.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import select
import subprocess
import threading
import time
from typing import Any, Callable, TypeVar

from softswitch.ports import RawSocketPort

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run fn in a thread that has joined network namespace ns; return its result."""
    libc = ctypes.CDLL(None, use_errno=True)
    box: dict[str, Any] = {}

    def target() -> None:
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            os.close(fd)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class NetLab:
    """Namespace <name> with veth pairs s<N> (switch side) / t<N> (test side)."""

    def __init__(self, ports: list[int]) -> None:
        self.ns = f"sst-{secrets.token_hex(3)}"
        self.ports = ports
        self.test_socks: dict[int, RawSocketPort] = {}
        run("ip", "netns", "add", self.ns)
        try:
            self.sh("ip", "link", "set", "lo", "up")
            self.sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            self.sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            for p in ports:
                self.sh("ip", "link", "add", f"s{p}", "type", "veth", "peer", "name", f"t{p}")
                for iface in (f"s{p}", f"t{p}"):
                    self.sh("ip", "link", "set", iface, "up", "mtu", "9000")
            for p in ports:
                self.test_socks[p] = in_netns(self.ns, lambda p=p: self._raw(f"t{p}"))
        except BaseException:
            self.close()
            raise

    def sh(self, *argv: str) -> None:
        run("ip", "netns", "exec", self.ns, *argv)

    @staticmethod
    def _raw(iface: str) -> RawSocketPort:
        # the switch's own port class: it restores VLAN tags and skips our transmissions
        return RawSocketPort(iface)

    def send(self, port: int, frame: bytes) -> None:
        if not self.test_socks[port].send(frame):
            raise OSError(f"could not send {len(frame)} bytes on t{port}")

    def receive(self, port: int, timeout: float = 2.0, count: int = 1) -> list[bytes]:
        """Frames the switch sent out of port (seen on t<port>), up to count."""
        s = self.test_socks[port]
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and (left := deadline - time.monotonic()) > 0:
            if not select.select([s], [], [], left)[0]:
                break
            while len(got) < count:
                frame = s.recv()
                if frame is None:
                    break
                got.append(frame)
        return got

    def close(self) -> None:
        for s in self.test_socks.values():
            s.close()
        self.test_socks.clear()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)
