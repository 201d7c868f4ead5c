"""Packet-test harness for the P4 program: one test code path for every target.

A target is a switch process (the built-in `softswitch`, or BMv2 `simple_switch_grpc`)
attached to veth pairs: the switch takes one end (port N), the test sends and captures on
the other with AF_PACKET sockets. Both targets are started with the same
simple_switch_grpc flags and programmed over P4Runtime, so the tests cannot tell them apart.
"""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from controller.launcher import free_tcp_port, simple_switch_args, switch_binary
from softswitch.ports import RawSocketPort

CPU_PORT = 255


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class VethPorts:
    """veth pairs named <tag>s<N> (switch side) and <tag>t<N> (test side)."""

    ports: list[int]
    tag: str = field(default_factory=lambda: f"p{os.getpid() % 10000}")
    _socks: dict[int, RawSocketPort] = field(default_factory=dict)

    def switch_iface(self, port: int) -> str:
        return f"{self.tag}s{port}"

    def test_iface(self, port: int) -> str:
        return f"{self.tag}t{port}"

    def create(self) -> None:
        for port in self.ports:
            sw, tb = self.switch_iface(port), self.test_iface(port)
            subprocess.run(["ip", "link", "del", sw], capture_output=True)
            _ip("link", "add", sw, "type", "veth", "peer", "name", tb)
            for iface in (sw, tb):
                # No IPv6 on the wires: the kernel would send its own ND/MLD packets.
                subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"],
                               check=True, capture_output=True)
                _ip("link", "set", iface, "up", "mtu", "9000")
            # The switch's own port class: it restores VLAN tags the kernel strips.
            self._socks[port] = RawSocketPort(tb, promiscuous=False)

    def destroy(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()
        for port in self.ports:
            subprocess.run(["ip", "link", "del", self.switch_iface(port)], capture_output=True)

    # ---- packets ----
    def send(self, port: int, frame: bytes) -> None:
        self._socks[port].send(frame)

    def drain(self) -> None:
        for s in self._socks.values():
            while s.recv() is not None:
                pass

    def receive(self, timeout: float = 1.0, ports: list[int] | None = None,
                until: int | None = None) -> dict[int, list[bytes]]:
        """Frames that came out of the switch on each port within `timeout` seconds
        (returns early once `until` frames arrived in total)."""
        socks = {self._socks[p]: p for p in (ports or self.ports)}
        got: dict[int, list[bytes]] = {p: [] for p in socks.values()}
        deadline = time.monotonic() + timeout
        total = 0
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(socks), [], [], remaining)
            for s in ready:
                while (frame := s.recv()) is not None:
                    got[socks[s]].append(frame)
                    total += 1
            if until is not None and total >= until:
                break
        return got


def switch_command(kind: str, ports: VethPorts, grpc_port: int, device_id: int = 1,
                   json_path: str | None = None) -> list[str]:
    """The controller's own launch command line, for either target."""
    binary = switch_binary(kind)
    if kind == "soft" and not os.path.exists(binary):
        binary = "softswitch"
    cmd = simple_switch_args(kind, binary, device_id=device_id,
                             grpc_addr=f"127.0.0.1:{grpc_port}", cpu_port=CPU_PORT,
                             interfaces={p: ports.switch_iface(p) for p in ports.ports},
                             json_path=json_path)
    if kind == "soft" and binary == "softswitch":
        cmd[0:1] = [sys.executable, "-m", "softswitch.cli"]
    return cmd


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"switch exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"switch did not listen on 127.0.0.1:{port} within {timeout}s")
