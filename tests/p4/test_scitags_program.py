"""Packet tests of p4src/v1model/scitags.p4: send frames on ports, expect exact frames on
exact ports, read counters. The same tests run against the built-in target and, when it is
installed, BMv2 simple_switch_grpc (tests/p4/dataplane.py starts either the same way) and
program the switch through the controller's own P4Runtime driver."""
from __future__ import annotations

import queue
import subprocess
import time
from ipaddress import ip_address

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from controller.drivers.base import FireflyPacket, FlowKey, FlowRule, TagRule
from controller.drivers.p4runtime import P4RuntimeDriver
from controller.launcher import free_tcp_port
from labnet.veth import VethPorts, wait_for_port
from labnet.waiting import poll
from p4schema import encode
from scitags_core import flowlabel
from tests.conftest import HAVE_BMV2, P4_BUILD, needs_root
from tests.p4.dataplane import CPU_PORT, switch_command

pytestmark = [needs_root, pytest.mark.netns]

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


@pytest.fixture(scope="module", params=TARGETS)
def sw(request):
    s = Switch(request.param)
    try:
        s.start()
        yield s
    finally:
        s.stop()


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


@pytest.mark.parametrize("entropy", [0, 0b00001, 0b11111, 0b10100])
def test_registered_label_counted_under_its_tag(sw, entropy):
    label = flowlabel.encode_label(CMS, 14, entropy=entropy)
    frame = v6(label=label)
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_CMS_ANALYSIS)[0] == 1)
    assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (1, len(frame))
    assert delta(before, after, "tags", TAG_CMS_ANY) == (0, 0)


def test_experiment_wildcard(sw):
    frame = v6(label=flowlabel.encode_label(CMS, 5, entropy=0b01010))
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_CMS_ANY)[0] == 1)
    assert delta(before, after, "tags", TAG_CMS_ANY) == (1, len(frame))
    assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (0, 0)


def test_unregistered_and_unmarked_buckets(sw):
    unregistered = v6(label=flowlabel.encode_label(77, 1, entropy=0))
    unmarked = v6(label=0)
    before = sw.counters()
    send_expect(sw, 1, unregistered, {2: [unregistered]})
    send_expect(sw, 1, unmarked, {2: [unmarked]})
    after = sw.wait_counters(lambda s: delta(before, s, "buckets", "unmarked")[0] == 1)
    assert delta(before, after, "buckets", "unregistered") == (1, len(unregistered))
    assert delta(before, after, "buckets", "unmarked") == (1, len(unmarked))
    assert after.tags == before.tags


def test_vlan_tagged_ipv6_is_classified(sw):
    inner = Ether(v6(label=flowlabel.encode_label(CMS, 14, entropy=3)))
    frame = bytes(Ether(src=H1, dst=H2, type=0x8100) / Dot1Q(vlan=42, type=0x86DD)
                  / inner[IPv6])
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_CMS_ANALYSIS)[0] == 1)
    assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (1, len(frame))


def test_ipv4_firefly_flow_counted(sw):
    key = FlowKey(ip_address(IP4[1]), ip_address(IP4[2]), 6, 40001, 5201)
    sw.driver.install_flow(FlowRule(key, ATLAS, 2, idle_timeout_s=0))
    try:
        frame = v4(sport=40001)
        other = v4(sport=40002)
        before = sw.counters()
        send_expect(sw, 1, frame, {2: [frame]})
        send_expect(sw, 1, other, {2: [other]})
        after = sw.wait_counters(lambda s: s.flows.get(key) and s.flows[key].packets == 1)
        assert (after.flows[key].packets, after.flows[key].bytes) == (1, len(frame))
        assert delta(before, after, "buckets", "firefly_only") == (1, len(frame))
    finally:
        final = sw.driver.remove_flow(key)
    assert final.packets == 1
    assert key not in sw.driver.installed_flows()


@pytest.mark.parametrize("declared,bucket", [((CMS, 14), "consistent"), ((ATLAS, 2), "mismatch")])
def test_ipv6_firefly_flow_consistency(sw, declared, bucket):
    key = FlowKey(ip_address(IP6[1]), ip_address(IP6[2]), 6, 40003, 5201)
    sw.driver.install_flow(FlowRule(key, *declared, idle_timeout_s=0))
    try:
        frame = v6(label=flowlabel.encode_label(CMS, 14, entropy=9), sport=40003)
        before = sw.counters()
        send_expect(sw, 1, frame, {2: [frame]})
        after = sw.wait_counters(lambda s: delta(before, s, "buckets", bucket)[0] == 1)
        assert delta(before, after, "buckets", bucket) == (1, len(frame))
        assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (1, len(frame))
        assert after.flows[key].packets == 1
    finally:
        sw.driver.remove_flow(key)


def test_mirror_copy_identical(sw):
    frame = v6(label=flowlabel.encode_label(ATLAS, 2, entropy=0b10001))
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame], MONITOR: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_ATLAS_PERFSONAR)[0] == 1)
    assert delta(before, after, "tags", TAG_ATLAS_PERFSONAR) == (1, len(frame))


@pytest.mark.parametrize("family", ["ipv6", "ipv4"])
def test_firefly_punted_and_forwarded(sw, family):
    body = b'<134>1 - h flowd - firefly-json - {"version":1}'
    frame = (v6(proto="udp", dport=10514, sport=5555, payload=body) if family == "ipv6"
             else v4(proto="udp", dport=10514, sport=5555, payload=body))
    while not sw.events.empty():
        sw.events.get_nowait()
    send_expect(sw, 1, frame, {2: [frame]})
    event = sw.events.get(timeout=5)
    assert isinstance(event, FireflyPacket)
    assert event.ingress_port == 1
    assert event.payload == body
    assert event.src == ((IP6 if family == "ipv6" else IP4)[1], 5555)


def test_packet_out(sw):
    frame = v4(src=1, dst=3)
    meta = sw.driver.index.packet_field("packet_out", "egress_port")
    sw.driver.client.send_packet_out(frame, [(meta.id, encode(3, meta.bitwidth))])
    got = sw.ports.receive(timeout=3.0, until=1)
    for p, frames in sw.ports.receive(timeout=0.3).items():
        got[p] += frames
    assert {p: f for p, f in got.items() if f} == {3: [frame]}


def test_flood_pruned_and_never_to_monitor(sw):
    frame = bytes(Ether(src=H1, dst="ff:ff:ff:ff:ff:ff") / IP(src=IP4[1], dst="10.0.0.255")
                  / UDP(sport=1, dport=2) / Raw(b"z" * 20))
    send_expect(sw, 1, frame, {2: [frame], 3: [frame]})
    unknown = bytes(Ether(src=H2, dst="02:00:00:00:99:99") / IP(src=IP4[2], dst=IP4[1]))
    send_expect(sw, 2, unknown, {1: [unknown], 3: [unknown]})


def test_unicast_hairpin_dropped(sw):
    frame = v4(src=2, dst=1)  # destination MAC h1 lives behind port 1
    send_expect(sw, 1, frame, {})


@pytest.mark.parametrize("cut", [10, 20, 50])
def test_truncated_headers_counted_and_dropped(sw, cut):
    whole = v6(label=flowlabel.encode_label(CMS, 14, entropy=0))
    frame = whole[:14 + cut]  # Ethernet + part of IPv6 / TCP
    before = sw.counters()
    send_expect(sw, 1, frame, {})
    after = sw.wait_counters(lambda s: delta(before, s, "buckets", "parser_error")[0] == 1)
    assert delta(before, after, "buckets", "parser_error") == (1, len(frame))
    # and the switch keeps forwarding
    send_expect(sw, 1, whole, {2: [whole]})
