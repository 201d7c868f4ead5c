"""Packet tests of the placement modes (issue 15) on every target (tests/p4/conftest.py `sw`):
wire pairs, a downed wire partner, tap ports, MAC learning from packet-ins with ageing, and the
per-direction tag counter. The switch is programmed through the driver's reconcile with the
port_mode entries the reconciler would write; each test puts the static state back."""
from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller.drivers.base import DesiredState, FireflyPacket, Forwarding, PortEntry
from controller.learning import MacLearning
from controller.topology import DIRECTION_FROM_WAN, DIRECTION_TO_WAN, Topology
from labnet.waiting import poll
from scitags_core import flowlabel
from tests.conftest import needs_root
from tests.p4.dataplane import (ATLAS, CMS, CPU_PORT, H1, H2, H3, MONITOR, RULES,
                                TAG_ATLAS_PERFSONAR, TAG_CMS_ANALYSIS, delta, send_expect, v6)

pytestmark = [needs_root, pytest.mark.netns]

STRANGER_A, STRANGER_B = "02:aa:00:00:00:0a", "02:bb:00:00:00:0b"  # in no table
STATIC = Forwarding({H1: 1, H2: 2, H3: 3}, (1, 2, 3), CPU_PORT, MONITOR)


def program(sw, forwarding: Forwarding) -> None:
    sw.driver.reconcile(DesiredState(forwarding, RULES, {}))
    time.sleep(0.1)
    sw.ports.drain()


@pytest.fixture
def static_after(sw):
    yield
    sw.driver.on_source_mac = sw.driver.on_mac_aged = None
    program(sw, STATIC)


def stranger(src=STRANGER_A, dst=STRANGER_B, label=0, payload=b"s" * 60) -> bytes:
    return bytes(Ether(src=src, dst=dst) / IPv6(src="2001:db8:77::1", dst="2001:db8:88::2", fl=label)
                 / UDP(sport=4000, dport=5000) / Raw(payload))


WIRE = Forwarding({}, (), CPU_PORT, MONITOR,
                  (PortEntry(1, "wire", 2, DIRECTION_TO_WAN), PortEntry(2, "wire", 1, DIRECTION_FROM_WAN)))


def test_wire_forwards_any_addresses_both_ways_and_counts_per_direction(sw, static_after):
    program(sw, WIRE)
    out = stranger(label=flowlabel.encode_label(CMS, 14, entropy=1))
    back = stranger(STRANGER_B, STRANGER_A, label=flowlabel.encode_label(CMS, 14, entropy=2))
    broadcast = bytes(Ether(src=STRANGER_A, dst="ff:ff:ff:ff:ff:ff") / IP() / UDP() / Raw(b"b" * 30))
    before = sw.counters()
    send_expect(sw, 1, out, {2: [out]})
    send_expect(sw, 2, back, {1: [back]})
    send_expect(sw, 1, broadcast, {2: [broadcast]})  # never flooded: only the partner
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_CMS_ANALYSIS)[0] == 2)
    assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (2, len(out) + len(back))
    to_wan = (TAG_CMS_ANALYSIS, DIRECTION_TO_WAN)
    from_wan = (TAG_CMS_ANALYSIS, DIRECTION_FROM_WAN)
    assert delta(before, after, "direction_tags", to_wan) == (1, len(out))
    assert delta(before, after, "direction_tags", from_wan) == (1, len(back))


def test_wire_partner_down_drops_and_counts(sw, static_after):
    program(sw, Forwarding({}, (), CPU_PORT, MONITOR,
                           (PortEntry(1, "wire_down", 2), PortEntry(2, "wire", 1))))
    frame = stranger()
    before = sw.counters()
    send_expect(sw, 1, frame, {})
    after = sw.wait_counters(lambda s: delta(before, s, "wire_down", 1)[0] == 1)
    assert delta(before, after, "wire_down", 1) == (1, len(frame))
    back = stranger(STRANGER_B, STRANGER_A)
    send_expect(sw, 2, back, {1: [back]})


def test_tap_counts_forwards_nothing_mirrors_and_punts_fireflies(sw, static_after):
    program(sw, Forwarding({}, (), CPU_PORT, MONITOR,
                           (PortEntry(1, "tap", None, DIRECTION_TO_WAN),
                            PortEntry(2, "tap", None, DIRECTION_FROM_WAN))))
    cms = v6(label=flowlabel.encode_label(CMS, 14, entropy=3))
    cms_back = v6(src=2, dst=1, label=flowlabel.encode_label(CMS, 14, entropy=4))
    mirrored = v6(label=flowlabel.encode_label(ATLAS, 2, entropy=5))
    before = sw.counters()
    send_expect(sw, 1, cms, {})
    send_expect(sw, 2, cms_back, {})
    send_expect(sw, 1, mirrored, {MONITOR: [mirrored]})  # only the monitor copy leaves
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_CMS_ANALYSIS)[0] == 2)
    assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (2, len(cms) + len(cms_back))
    assert delta(before, after, "tags", TAG_ATLAS_PERFSONAR) == (1, len(mirrored))
    assert delta(before, after, "direction_tags", (TAG_CMS_ANALYSIS, DIRECTION_TO_WAN)) == (1, len(cms))
    assert delta(before, after, "direction_tags", (TAG_CMS_ANALYSIS, DIRECTION_FROM_WAN)) == (1, len(cms_back))
    while not sw.events.empty():
        sw.events.get_nowait()
    firefly = bytes(Ether(src=STRANGER_A, dst=STRANGER_B) / IPv6(src="2001:db8::1", dst="2001:db8::2")
                    / UDP(sport=33333, dport=10514) / Raw(b'<134>1 - h flowd - firefly-json - {}'))
    send_expect(sw, 2, firefly, {})
    event = sw.events.get(timeout=5)
    assert isinstance(event, FireflyPacket) and event.ingress_port == 2


def learn_topology(ageing_s: float) -> Topology:
    return Topology.from_dict({
        "switches": {"s1": {"device_id": 1, "grpc_port": 1, "mode": "learn", "ports": [1, 2, 3],
                            "learn_ageing_s": ageing_s}},
        "hosts": {"mon": {"mac": "00:00:00:00:00:0f", "monitor": True}},
        "links": [{"node1": "mon", "node2": "s1", "port2": MONITOR}]}, "learn-test")


def learn_forwarding(topo: Topology, learning: MacLearning) -> Forwarding:
    learned = learning.table("s1")
    modes = tuple(PortEntry(m.port, m.action, m.partner, m.direction)
                  for m in topo.port_modes("s1").values())
    return Forwarding(dict(learned), tuple(topo.flood_ports("s1")), CPU_PORT, MONITOR, modes,
                      tuple(sorted(learned.items())), topo.switches["s1"].placement.learn_ageing_s)


def test_learn_floods_unknown_learns_from_packet_ins_and_ages_out(sw, static_after):
    topo = learn_topology(ageing_s=2.0)
    assert topo.flood_ports("s1") == [1, 2, 3]
    learning = MacLearning(topo)
    learning.attach("s1", sw.driver)
    try:
        program(sw, learn_forwarding(topo, learning))
        first = stranger(STRANGER_A, STRANGER_B)
        send_expect(sw, 1, first, {2: [first], 3: [first]})  # unknown destination: flooded
        poll(lambda: learning.table("s1") == {STRANGER_A: 1}, 5, 0.05)
        reply = stranger(STRANGER_B, STRANGER_A)
        send_expect(sw, 2, reply, {1: [reply]})  # learned: unicast
        poll(lambda: learning.table("s1") == {STRANGER_A: 1, STRANGER_B: 2}, 5, 0.05)
        again = stranger(STRANGER_A, STRANGER_B)
        punts = sw.driver.stats["learn_packet_in"]
        for _ in range(3):  # learned pairs are no longer punted
            send_expect(sw, 1, again, {2: [again]})
        time.sleep(0.3)
        assert sw.driver.stats["learn_packet_in"] == punts
        # a reconcile pass keeps what was learned (desired state from the learner)
        program(sw, learn_forwarding(topo, learning))
        send_expect(sw, 1, again, {2: [again]})
        assert learning.stats["learned"] == 2
        # the host moves to port 3: its next frame teaches the new port
        moved = stranger(STRANGER_B, STRANGER_A)
        send_expect(sw, 3, moved, {1: [moved]})
        poll(lambda: learning.table("s1").get(STRANGER_B) == 3, 5, 0.05)
        send_expect(sw, 1, again, {3: [again]})
        assert learning.stats["moved"] == 1
        # silence: both age out (idle timeout), and frames toward them flood again
        poll(lambda: learning.table("s1") == {}, 15, 0.2)
        assert learning.stats["aged"] == 2
        send_expect(sw, 1, again, {2: [again], 3: [again]})
        assert learning.install_latencies and max(learning.install_latencies) < 5
    finally:
        learning.stop()


def test_learn_never_floods_back_or_to_the_monitor(sw, static_after):
    topo = learn_topology(ageing_s=30.0)
    learning = MacLearning(topo)
    learning.attach("s1", sw.driver)
    try:
        program(sw, learn_forwarding(topo, learning))
        frame = bytes(Ether(src=STRANGER_A, dst="ff:ff:ff:ff:ff:ff") / IP() / UDP() / Raw(b"z" * 30))
        send_expect(sw, 2, frame, {1: [frame], 3: [frame]})
        poll(lambda: learning.table("s1") == {STRANGER_A: 2}, 5, 0.05)
    finally:
        learning.stop()
