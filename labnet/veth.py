"""Test networks made of veth pairs: create them (optionally inside a throwaway network
namespace), send frames into them and collect what comes back, over AF_PACKET sockets.

The packet sockets are the switch's own port class (softswitch.ports.RawSocketPort): it
restores VLAN tags the kernel strips and skips the socket's own transmissions, so a test
sees exactly the frames the switch sent. Interfaces carry no IPv6, so the kernel adds no
ND/MLD packets of its own.
"""
from __future__ import annotations

import ctypes
import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Hashable, Iterable, Mapping, TypeVar

from controller import launcher
from softswitch.ports import PortIO, RawSocketPort

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
CLONE_NEWNET = 0x40000000


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run fn in a thread that has joined network namespace ns; return its result.
    setns(2) is per thread, and a socket keeps the namespace it was made in for life."""
    libc = ctypes.CDLL(None, use_errno=True)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def receive_frames(socks: Mapping[PortIO, K], timeout: float = 1.0, until: int | None = None,
                   most: int | None = None) -> dict[K, list[bytes]]:
    """Frames read from each socket within `timeout` seconds, keyed by socks[sock].
    Returns early once `until` frames arrived in total; reads no more than `most` in total
    (the rest stay queued for the next call). select() blocks, so this is no polling loop."""
    got: dict[K, list[bytes]] = {key: [] for key in socks.values()}
    deadline = time.monotonic() + timeout
    total = 0
    while (most is None or total < most) and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(list(socks), [], [], left)
        for s in ready:
            while most is None or total < most:
                frame = s.recv()
                if frame is None:
                    break
                got[socks[s]].append(frame)
                total += 1
        if until is not None and total >= until:
            break
    return got


def drain(socks: Iterable[PortIO]) -> None:
    """Throw away every frame already queued on the sockets."""
    for s in socks:
        while s.recv() is not None:
            pass


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0,
                  host: str = "127.0.0.1") -> None:
    """Wait until proc listens on host:port; RuntimeError if it exits first or times out."""
    if not launcher.wait_listening(host, port, proc, timeout):
        if proc.poll() is not None:
            raise RuntimeError(f"switch exited with {proc.returncode} before listening")
        raise RuntimeError(f"timed out after {timeout:g}s waiting for the switch to listen on "
                           f"{host}:{port}")


@dataclass
class VethPorts:
    """veth pairs named <tag>s<N> (switch side) and <tag>t<N> (test side), one per port N.

    With `netns`, both ends live in that network namespace, made by create() and deleted by
    destroy() (which deletes every veth in it, so cleanup cannot leak links); the test
    sockets are opened inside it.
    """

    ports: list[int]
    tag: str = field(default_factory=lambda: f"p{os.getpid() % 10000}")
    netns: str | None = None
    promiscuous: bool = False
    _socks: dict[int, RawSocketPort] = field(default_factory=dict)

    def switch_iface(self, port: int) -> str:
        return f"{self.tag}s{port}"

    def test_iface(self, port: int) -> str:
        return f"{self.tag}t{port}"

    def sh(self, *argv: str) -> None:
        """Run a command where the veths are (inside the namespace, if any)."""
        run(*(("ip", "netns", "exec", self.netns) if self.netns else ()), *argv)

    def create(self) -> None:
        """Make the namespace (if any), the veth pairs and the test sockets; on failure,
        undo what was made."""
        try:
            if self.netns:
                run("ip", "netns", "add", self.netns)
                self.sh("ip", "link", "set", "lo", "up")
                self.sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
                self.sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            for port in self.ports:
                sw, tb = self.switch_iface(port), self.test_iface(port)
                if not self.netns:
                    run("ip", "link", "del", sw, check=False)
                self.sh("ip", "link", "add", sw, "type", "veth", "peer", "name", tb)
                for iface in (sw, tb):
                    if not self.netns:
                        self.sh("sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1")
                    self.sh("ip", "link", "set", iface, "up", "mtu", "9000")
            for port in self.ports:
                opener = partial(RawSocketPort, self.test_iface(port), promiscuous=self.promiscuous)
                self._socks[port] = in_netns(self.netns, opener) if self.netns else opener()
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()
        if self.netns:
            run("ip", "netns", "del", self.netns, check=False)
        else:
            for port in self.ports:
                run("ip", "link", "del", self.switch_iface(port), check=False)

    # ---- packets ----
    def send(self, port: int, frame: bytes) -> bool:
        """False when the kernel refused the frame (too big, interface down)."""
        return self._socks[port].send(frame)

    def drain(self) -> None:
        drain(self._socks.values())

    def receive(self, timeout: float = 1.0, ports: list[int] | None = None,
                until: int | None = None, most: int | None = None) -> dict[int, list[bytes]]:
        """Frames that came out of the switch on each port within `timeout` seconds
        (returns early once `until` frames arrived in total; reads at most `most`)."""
        socks = {self._socks[p]: p for p in (ports or self.ports)}
        return receive_frames(socks, timeout, until=until, most=most)
