"""Packet-test harness for the P4 program: one test code path for every target.

A target is a switch process (the built-in `softswitch`, or BMv2 `simple_switch_grpc`)
attached to veth pairs (labnet.veth.VethPorts): the switch takes one end (port N), the test
sends and captures on the other. Both targets are started with the same simple_switch_grpc
flags and programmed over P4Runtime, so the tests cannot tell them apart.
"""
from __future__ import annotations

import queue
import subprocess
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller.drivers.base import TagRule
from controller.drivers.p4runtime import P4RuntimeDriver
from controller.launcher import free_tcp_port, simple_switch_args, switch_argv0
from labnet.veth import VethPorts, wait_for_port
from labnet.waiting import poll
from tests.conftest import HAVE_BMV2, P4_BUILD

CPU_PORT = 255


def switch_command(kind: str, ports: VethPorts, grpc_port: int, device_id: int = 1,
                   json_path: str | None = None) -> list[str]:
    """The controller's own launch command line, for either target."""
    return simple_switch_args(kind, switch_argv0(kind), device_id=device_id,
                              grpc_addr=f"127.0.0.1:{grpc_port}", cpu_port=CPU_PORT,
                              interfaces={p: ports.switch_iface(p) for p in ports.ports},
                              json_path=json_path)


H1, H2, H3 = "00:00:00:00:01:01", "00:00:00:00:01:02", "00:00:00:00:01:03"
IP6 = {1: "2001:db8::1", 2: "2001:db8::2", 3: "2001:db8::3"}
IP4 = {1: "10.0.0.1", 2: "10.0.0.2", 3: "10.0.0.3"}
MONITOR = 4
PORTS = [1, 2, 3, MONITOR]
CMS, ATLAS = 3, 2
TAG_CMS_ANALYSIS, TAG_CMS_ANY, TAG_ATLAS_PERFSONAR = 11, 12, 21
RULES = [TagRule(TAG_CMS_ANALYSIS, CMS, 14), TagRule(TAG_CMS_ANY, CMS, None),
         TagRule(TAG_ATLAS_PERFSONAR, ATLAS, 2, mirror=True)]

TARGETS = ["soft", pytest.param("bmv2", marks=pytest.mark.skipif(
    not HAVE_BMV2, reason="BMv2 simple_switch_grpc not installed (/opt/p4/bin)"))]


class Switch:
    """A running target on veths, programmed like the controller does."""

    def __init__(self, kind: str) -> None:
        self.ports = VethPorts(PORTS)
        self.grpc_port = free_tcp_port()
        self.kind = kind
        self.proc: subprocess.Popen | None = None
        self.driver: P4RuntimeDriver | None = None
        self.events: queue.Queue = queue.Queue()

    def start(self) -> None:
        self.ports.create()
        cmd = switch_command(self.kind, self.ports, self.grpc_port)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.grpc_port, self.proc)
        self.driver = P4RuntimeDriver("s1", 1, f"127.0.0.1:{self.grpc_port}",
                                      P4_BUILD / "scitags.p4info.txtpb",
                                      P4_BUILD / "scitags.json", cpu_port=CPU_PORT)
        self.driver.set_event_handler(self.events.put)
        self.driver.connect()
        self.driver.ensure_pipeline()
        self.driver.set_forwarding({H1: 1, H2: 2, H3: 3}, flood_ports=[1, 2, 3],
                                   cpu_port=CPU_PORT, monitor_port=MONITOR)
        self.driver.sync_tags(RULES)
        time.sleep(0.2)
        self.ports.drain()

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.ports.destroy()

    def counters(self):
        return self.driver.read_counters()

    def wait_counters(self, check, timeout: float = 5.0):
        """Counters once `check(snapshot)` holds (packets are processed asynchronously)."""
        snaps = []
        poll(lambda: check(snaps.append(self.counters()) or snaps[-1]), timeout, 0.05)
        return snaps[-1]


def v6(src=1, dst=2, label=0, sport=40000, dport=5201, proto="tcp", payload=b"x" * 40):
    l4 = TCP(sport=sport, dport=dport, flags="A") if proto == "tcp" else UDP(sport=sport, dport=dport)
    mac = {1: H1, 2: H2, 3: H3}
    return bytes(Ether(src=mac[src], dst=mac[dst]) / IPv6(src=IP6[src], dst=IP6[dst], fl=label)
                 / l4 / Raw(payload))


def v4(src=1, dst=2, sport=40000, dport=5201, proto="tcp", payload=b"y" * 40):
    l4 = TCP(sport=sport, dport=dport, flags="A") if proto == "tcp" else UDP(sport=sport, dport=dport)
    mac = {1: H1, 2: H2, 3: H3}
    return bytes(Ether(src=mac[src], dst=mac[dst]) / IP(src=IP4[src], dst=IP4[dst]) / l4
                 / Raw(payload))


def send_expect(sw: Switch, port: int, frame: bytes, expected: dict[int, list[bytes]]) -> None:
    """Send `frame` on `port`; exactly `expected` must come out (nothing on other ports)."""
    sw.ports.send(port, frame)
    want = sum(len(v) for v in expected.values())
    got = sw.ports.receive(timeout=3.0, until=want)
    for p, frames in sw.ports.receive(timeout=0.3).items():  # anything extra that follows
        got[p] += frames
    got = {p: frames for p, frames in got.items() if frames}
    assert got == {p: f for p, f in expected.items() if f}


def delta(before, after, kind: str, key) -> tuple[int, int]:
    b = getattr(before, kind).get(key)
    a = getattr(after, kind).get(key)
    bp, bb = (b.packets, b.bytes) if b else (0, 0)
    return (a.packets - bp, a.bytes - bb) if a else (-bp, -bb)
