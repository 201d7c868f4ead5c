"""The OpenFlow rendering of the placement modes (what OVS receives, parsed back by os-ken)."""
from __future__ import annotations

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as OFP
from os_ken.ofproto import ofproto_v1_3_parser as P

from controller.drivers import openflow_pipeline as pl


def rebuilt(text: str):
    buf = pl.decode_wire(text)
    version, msg_type, msg_len, xid = ofproto_parser.header(buf)
    return P.OFPFlowMod.parser(pl._DP, version, msg_type, msg_len, xid, bytes(buf))  # noqa: SLF001


def outputs(mod) -> list[int]:
    return [a.port for i in mod.instructions for a in i.actions]


def test_wire_outputs_to_the_partner_above_the_mac_entries():
    mod = rebuilt(pl.port_mode_add(1, "wire", 2))
    assert mod.table_id == pl.T_L2 and mod.match["in_port"] == 1 and outputs(mod) == [2]
    assert mod.priority > pl.PRIO_MAC
    assert pl.cookie_kind(mod.cookie) == pl.KIND_PORT_MODE and pl.cookie_id(mod.cookie) == 1


def test_tap_and_wire_down_drop_after_counting():
    for action in ("tap", "wire_down"):
        mod = rebuilt(pl.port_mode_add(3, action, 4))
        assert mod.match["in_port"] == 3 and mod.instructions == []


def test_learn_is_normal_and_a_direction_label_alone_writes_nothing():
    assert outputs(rebuilt(pl.port_mode_add(5, "learn", None))) == [OFP.OFPP_NORMAL]
    assert pl.port_mode_add(6, "static", None) is None
