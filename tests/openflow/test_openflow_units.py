"""The OpenFlow pipeline's encodings and the driver's input checks (no switch needed)."""
from __future__ import annotations

import base64

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3_parser as P

from controller.drivers import openflow_pipeline as pl
from controller.drivers.base import DriverError, FlowKey, FlowRule, TagRule
from controller.drivers.openflow import OpenFlowDriver, make_driver, openflow_target
from controller.drivers.openflow_wire import parse_target
from controller.topology import SwitchSpec
from scitags_core.flowlabel import encode_label


def _rebuilt(text: str) -> object:
    # What the switch receives, parsed back by os-ken.
    buf = pl.decode_wire(text)
    version, msg_type, msg_len, xid = ofproto_parser.header(buf)
    return P.OFPFlowMod.parser(pl._DP, version, msg_type, msg_len, xid, bytes(buf))  # noqa: SLF001


def test_cookies_name_kind_and_id() -> None:
    ck = pl.cookie(pl.KIND_TAG, 4095)
    assert (pl.cookie_kind(ck), pl.cookie_id(ck)) == (pl.KIND_TAG, 4095)
    assert pl.cookie_kind(0x1234) is None  # someone else's entry
    value, mask = pl.kind_filter(pl.KIND_TAG)
    assert ck & mask == value and pl.cookie(pl.KIND_FIREFLY, 1) & mask != value


def test_tag_rules_match_the_label_bits_the_p4_program_decodes() -> None:
    exact = pl.tag_entry(TagRule(1, 3, 14))
    assert (exact.label, exact.mask) == (0x30038, 0x3FEFC)  # SPEC worked example, CMS/14
    wild = pl.tag_entry(TagRule(2, 3, None))
    assert (wild.label, wild.mask) == (0x30000, 0x3FE00) and wild.priority < exact.priority
    for entropy in (0, 7, 31):  # entropy bits never take part in the match
        assert encode_label(3, 14, entropy) & exact.mask == exact.label


def test_flow_mods_survive_the_channel() -> None:
    key = FlowKey.of("2001:db8::1", "2001:db8::2", "udp", 1, 2)
    msg = _rebuilt(pl.firefly_add(key, 3, 14, 2.4, 7))
    assert msg.cookie == pl.cookie(pl.KIND_FIREFLY, 7) and msg.idle_timeout == 2
    assert dict(msg.match.items())["udp_dst"] == 2
    md = msg.instructions[0]
    assert pl.tag_of_metadata(md.metadata) == (3, 14) and md.metadata & pl.HIT_BIT


def test_firefly_match_reads_back_as_its_key() -> None:
    for key in (FlowKey.of("10.0.0.1", "10.0.0.2", "tcp", 10, 20),
                FlowKey.of("2001:db8::1", "2001:db8::2", 17, 1, 65535)):
        assert pl.key_from_match(dict(pl.firefly_match(key).items())) == key
    assert pl.key_from_match({"eth_type": pl.ETH_IPV6}) is None


def test_idle_timeouts_are_whole_seconds() -> None:
    assert [pl.idle_seconds(s) for s in (0, 0.2, 1.6, 1e9)] == [0, 1, 2, 0xFFFF]


def test_consistent_entries_only_for_label_carriable_tags() -> None:
    assert pl.consistent_possible(511, 63) and not pl.consistent_possible(512, 1)
    assert not pl.consistent_possible(3, 64)


def test_targets_are_checked() -> None:
    assert parse_target("tcp:[::1]:6653") == ("connect", "::1", 6653)
    assert parse_target("ptcp:6653") == ("listen", "0.0.0.0", 6653)
    for bad in ("tcp:localhost:6653", "ptcp:0", "ssl:1.2.3.4:6653", "tcp:1.2.3.4"):
        with pytest.raises(ValueError, match="tcp:HOST:PORT"):
            parse_target(bad)
    with pytest.raises(ValueError, match="switch s9"):
        OpenFlowDriver("s9", "tcp:nowhere:1")


def test_topology_switch_to_driver() -> None:
    assert openflow_target(SwitchSpec("s1", 1, 6654, kind="ovs")) == "tcp:127.0.0.1:6654"
    spec = SwitchSpec("s2", 2, None, kind="ovs", options={"openflow": "ptcp:6653"})
    assert make_driver(spec).target == "ptcp:6653"
    with pytest.raises(ValueError, match="s3"):
        openflow_target(SwitchSpec("s3", 3, None, kind="ovs"))


def test_flows_the_p4_program_cannot_match_are_refused() -> None:
    drv = OpenFlowDriver("s1", "tcp:127.0.0.1:6653")  # never connected: checks come first
    with pytest.raises(DriverError, match="only tcp and udp"):
        drv.install_flow(FlowRule(FlowKey.of("10.0.0.1", "10.0.0.2", 1, 0, 0), 3, 1, 5))
    with pytest.raises(DriverError, match="16 / 8 bits"):
        drv.install_flow(FlowRule(FlowKey.of("10.0.0.1", "10.0.0.2", "udp", 1, 2), 70000, 1, 5))


def test_malformed_packet_in_is_counted_not_raised() -> None:
    drv = OpenFlowDriver("s1", "tcp:127.0.0.1:6653")
    drv._on_agent_event({"event": "packet_in", "in_port": 1,  # noqa: SLF001
                         "data": base64.b64encode(b"\x00" * 9).decode()})
    drv._on_agent_event({"event": "packet_in", "in_port": 1, "data": "not base64!"})  # noqa: SLF001
    assert drv.malformed_packet_ins == 2
