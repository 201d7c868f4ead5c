"""Packet tests of p4src/v1model/scitags.p4: send frames on ports, expect exact frames on
exact ports, read counters. The same tests run against the built-in target and, when it is
installed, BMv2 simple_switch_grpc (tests/p4/dataplane.py starts either the same way) and
program the switch through the controller's own P4Runtime driver."""
from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from controller.drivers.base import FireflyPacket, FlowKey, FlowRule
from p4schema import encode
from scitags_core import flowlabel
from tests.conftest import needs_root
from tests.p4.dataplane import (ATLAS, CMS, H1, H2, IP4, IP6, MONITOR, TAG_ATLAS_PERFSONAR,
                                TAG_CMS_ANALYSIS, TAG_CMS_ANY, delta, send_expect, v4, v6)

pytestmark = [needs_root, pytest.mark.netns]


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
