"""Packet tests of the extension-header tags (flowd-go's hopbyhop, destination and
hopbyhopdestination strategies, byte for byte as /work/shared/scitags/SPEC.md describes them)
and of the flow-label trust scope, on every target (built-in and BMv2)."""
from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller.drivers.base import FireflyPacket, FlowKey, FlowRule
from scitags_core import flowlabel
from tests.conftest import needs_root
from tests.p4.dataplane import (ATLAS, CMS, H1, H2, IP6, TAG_CMS_ANALYSIS, TAG_CMS_ANY, delta,
                                send_expect, v6)

pytestmark = [needs_root, pytest.mark.netns]

HOPOPTS, DSTOPTS, TCP_NH, UDP_NH = 0, 60, 6, 17
KERNEL_LABEL = 0x5A3C1  # what auto flow labels leave: a hash, not a tag of ours


def scitag_option_header(next_hdr: int, experiment: int, activity: int) -> bytes:
    """flowd-go's 8-byte options header: NH 00 1E 03 E_hi E_lo A 00 (Pad1 at the end)."""
    return bytes([next_hdr, 0, 0x1E, 3, experiment >> 8, experiment & 0xFF, activity, 0])


def frame_with(ext: bytes, first_nh: int, label: int = 0, sport: int = 40100, dport: int = 5201,
               proto: str = "tcp", payload: bytes = b"p" * 40, src: int = 1) -> bytes:
    l4 = (TCP(sport=sport, dport=dport, flags="A") if proto == "tcp"
          else UDP(sport=sport, dport=dport))
    l4.chksum = 0x1234  # the switch never checks it; fixed so the bytes are ours alone
    return bytes(Ether(src=H1, dst=H2) / IPv6(src=IP6[src], dst=IP6[2], fl=label, nh=first_nh)
                 / Raw(ext + bytes(l4 / Raw(payload))))


def hop(exp=CMS, act=14, nh=TCP_NH, **kw) -> bytes:
    return frame_with(scitag_option_header(nh, exp, act), HOPOPTS, **kw)


def dst(exp=CMS, act=14, nh=TCP_NH, **kw) -> bytes:
    return frame_with(scitag_option_header(nh, exp, act), DSTOPTS, **kw)


def hop_and_dst(exp=CMS, act=14, **kw) -> bytes:
    ext = scitag_option_header(DSTOPTS, exp, act) + scitag_option_header(TCP_NH, exp, act)
    return frame_with(ext, HOPOPTS, **kw)


@pytest.mark.parametrize("build", [hop, dst, hop_and_dst], ids=["hopbyhop", "destination", "both"])
@pytest.mark.parametrize("label", [0, KERNEL_LABEL])
def test_flowd_go_option_counted_under_its_tag(sw, build, label):
    frame = build(label=label)
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})  # forwarded byte for byte, options included
    after = sw.wait_counters(lambda s: delta(before, s, "exthdr_tags", TAG_CMS_ANALYSIS)[0] == 1)
    assert delta(before, after, "exthdr_tags", TAG_CMS_ANALYSIS) == (1, len(frame))
    assert after.tags == before.tags                # the label is not the tag here
    assert after.buckets == before.buckets          # no bucket: it is a registered tag


def test_option_experiment_wildcard_and_unregistered(sw):
    other_activity = hop(act=33)
    unknown = hop(exp=300, act=1)
    before = sw.counters()
    send_expect(sw, 1, other_activity, {2: [other_activity]})
    send_expect(sw, 1, unknown, {2: [unknown]})
    after = sw.wait_counters(lambda s: delta(before, s, "buckets", "exthdr_unregistered")[0] == 1)
    assert delta(before, after, "exthdr_tags", TAG_CMS_ANY) == (1, len(other_activity))
    assert delta(before, after, "buckets", "exthdr_unregistered") == (1, len(unknown))


def test_option_and_label_that_disagree(sw):
    frame = hop(exp=CMS, act=14, label=flowlabel.encode_label(CMS, 5, entropy=1))
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "buckets", "exthdr_mismatch")[0] == 1)
    assert delta(before, after, "buckets", "exthdr_mismatch") == (1, len(frame))
    assert delta(before, after, "exthdr_tags", TAG_CMS_ANALYSIS) == (1, len(frame))
    assert after.tags == before.tags


@pytest.mark.parametrize("options", [
    bytes([0x00, 0x1E, 3, 0, CMS, 14]),                 # Pad1 first, the option last
    bytes([0x1E, 3, 0, CMS, 14, 0x00]),                 # flowd-go's order
], ids=["pad1-first", "pad1-last"])
def test_option_found_among_other_options(sw, options):
    frame = frame_with(bytes([TCP_NH, 0]) + options, HOPOPTS)
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "exthdr_tags", TAG_CMS_ANALYSIS)[0] == 1)
    assert delta(before, after, "exthdr_tags", TAG_CMS_ANALYSIS) == (1, len(frame))


def test_other_options_only_leave_the_label_in_charge(sw):
    """Router alert + PadN: walked, no scitags option, so the label is the tag."""
    ext = bytes([TCP_NH, 0, 0x05, 0x02, 0, 0, 0x01, 0x00])
    frame = frame_with(ext, HOPOPTS, label=flowlabel.encode_label(CMS, 14, entropy=4))
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_CMS_ANALYSIS)[0] == 1)
    assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (1, len(frame))
    assert after.exthdr_tags == before.exthdr_tags


@pytest.mark.parametrize("ext", [
    bytes([TCP_NH, 1, 0x05, 0x02, 0, 0]) + bytes([0x1E, 3, 0, CMS, 14]) + bytes([0x01, 3, 0, 0, 0]),  # 16 bytes: past the walk's limit
    bytes([TCP_NH, 0]) + bytes([0x01, 9]) + bytes(4),                                   # PadN runs past its header
    bytes([TCP_NH, 0, 0x01, 0x00, 0x1E, 3, 0, CMS]),                                    # the option runs past it
], ids=["too-long", "padn-overrun", "option-overrun"])
def test_unwalkable_options_counted_and_forwarded(sw, ext):
    frame = frame_with(ext, HOPOPTS)
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame]})
    after = sw.wait_counters(lambda s: delta(before, s, "buckets", "exthdr_unparsed")[0] == 1)
    assert delta(before, after, "buckets", "exthdr_unparsed") == (1, len(frame))
    assert after.exthdr_tags == before.exthdr_tags


def test_truncated_option_header_is_a_parser_error(sw):
    whole = hop()
    frame = whole[:14 + 40 + 5]  # Ethernet, IPv6, 5 of the 8 option bytes
    before = sw.counters()
    send_expect(sw, 1, frame, {})
    after = sw.wait_counters(lambda s: delta(before, s, "buckets", "parser_error")[0] == 1)
    assert delta(before, after, "buckets", "parser_error") == (1, len(frame))


def test_firefly_flow_behind_options_matches_and_agrees(sw):
    key = FlowKey(ip_address(IP6[1]), ip_address(IP6[2]), 6, 40111, 5201)
    sw.driver.install_flow(FlowRule(key, CMS, 14, idle_timeout_s=0))
    try:
        frame = hop_and_dst(sport=40111, label=KERNEL_LABEL)
        before = sw.counters()
        send_expect(sw, 1, frame, {2: [frame]})
        after = sw.wait_counters(lambda s: s.flows.get(key) and s.flows[key].packets == 1)
        assert (after.flows[key].packets, after.flows[key].bytes) == (1, len(frame))
        assert delta(before, after, "buckets", "consistent") == (1, len(frame))
    finally:
        sw.driver.remove_flow(key)


def test_firefly_behind_options_is_punted(sw):
    body = b'{"version":1}'
    frame = hop(nh=UDP_NH, proto="udp", sport=5555, dport=10514, payload=body)
    while not sw.events.empty():
        sw.events.get_nowait()
    send_expect(sw, 1, frame, {2: [frame]})
    event = sw.events.get(timeout=5)
    assert isinstance(event, FireflyPacket)
    assert event.ingress_port == 1 and event.payload == body


def test_trust_scope_keeps_outside_labels_out_of_the_tags(sw):
    label = flowlabel.encode_label(CMS, 14, entropy=2)
    inside, outside = v6(src=1, label=label, sport=41000), v6(src=3, dst=2, label=label, sport=41001)
    unregistered_outside = v6(src=3, dst=2, label=flowlabel.encode_label(77, 1), sport=41002)
    sw.driver.set_label_trust([f"{IP6[1]}/128"])
    try:
        before = sw.counters()
        send_expect(sw, 1, inside, {2: [inside]})
        send_expect(sw, 3, outside, {2: [outside]})
        send_expect(sw, 3, unregistered_outside, {2: [unregistered_outside]})
        after = sw.wait_counters(lambda s: delta(before, s, "buckets", "untrusted_label")[0] == 2)
        assert delta(before, after, "tags", TAG_CMS_ANALYSIS) == (1, len(inside))
        # what the outside label would have been, and every outside label in its bucket
        assert delta(before, after, "untrusted_tags", TAG_CMS_ANALYSIS) == (1, len(outside))
        assert delta(before, after, "buckets", "untrusted_label") == (
            2, len(outside) + len(unregistered_outside))
        assert delta(before, after, "buckets", "unregistered") == (0, 0)
        # options are tags wherever they come from
        opt = hop(src=3, label=label)
        send_expect(sw, 3, opt, {2: [opt]})
        after2 = sw.wait_counters(lambda s: delta(after, s, "exthdr_tags", TAG_CMS_ANALYSIS)[0] == 1)
        assert delta(after, after2, "exthdr_tags", TAG_CMS_ANALYSIS) == (1, len(opt))
    finally:
        sw.driver.set_label_trust(None)
    before = sw.counters()
    send_expect(sw, 3, outside, {2: [outside]})
    after = sw.wait_counters(lambda s: delta(before, s, "tags", TAG_CMS_ANALYSIS)[0] == 1)
    assert delta(before, after, "untrusted_tags", TAG_CMS_ANALYSIS) == (0, 0)


def test_atlas_label_is_not_an_option_tag(sw):
    """The two tables stay apart: a label pattern never matches as option data."""
    frame = v6(label=flowlabel.encode_label(ATLAS, 2, entropy=0))
    before = sw.counters()
    send_expect(sw, 1, frame, {2: [frame], 4: [frame]})  # mirrored: ATLAS/perfSONAR asks for it
    after = sw.wait_counters(lambda s: any(s.tags.get(t) != before.tags.get(t) for t in s.tags))
    assert after.exthdr_tags == before.exthdr_tags
