"""v1model traffic-manager semantics as simple_switch implements them: drops, I2E/E2E
clones with field lists, multicast with egress_rid, resubmit, recirculate, instance_type,
packet_length, counters, registers, truncate, exit."""
from __future__ import annotations

import pytest
from conftest import make_engine
from p4json import ETHERNET, C, E, F, H, P, Program, X, assign, extract, mark_to_drop, prim, \
    set_egress
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

INFO = [("instance_type", 8), ("rid", 16), ("tag", 8), ("egress_port", 16),
        ("packet_length", 32), ("ingress_port", 16)]
ET_FWD, ET_DROP, ET_MCAST, ET_CLONE, ET_RESUB, ET_COUNT, ET_REG, ET_TRUNC, ET_EXIT, ET_511, \
    ET_RECIRC = range(0x9000, 0x900B)


def tm_program() -> Program:
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("info", INFO)
    p.metadata("meta", [("tag", 8), ("value", 32)])
    p.state("start", [extract("ethernet")])
    sm = "standard_metadata"
    p.field_list(1, [("meta", "tag")])
    p.counter("etype_counter", 16)
    p.register("reg", 4, 32)
    p.action("fwd", [("port", 9)], [set_egress(P(0))])
    p.action("drop_", [], [mark_to_drop()])
    p.action("mcast", [("grp", 16)], [assign(F(sm, "mcast_grp"), P(0))])
    p.action("clone_fwd", [("session", 32), ("port", 9)], [
        prim("clone_ingress_pkt_to_egress", P(0), C(1)),
        assign(F("meta", "tag"), C(0x5A, 8)),
        assign(F("ethernet", "src"), C(0xEE, 48)),
        set_egress(P(1))])
    # resubmit on the first pass only (an 'if' p4c may lower to _jump_if_zero)
    p.action("resub", [], [
        assign(F("meta", "tag"), X(E("+", F(sm, "instance_type"), C(0x70, 8)))),
        prim("_jump_if_zero", X(E("b2d", None, E("==", F(sm, "instance_type"), C(0, 32)))),
             C(3)),
        prim("resubmit", C(1)), set_egress(C(3, 9))])
    p.action("count_", [], [
        prim("count", {"type": "counter_array", "value": "etype_counter"},
             X(E("&", F("ethernet", "etype"), C(0xF, 16)))),
        set_egress(C(1, 9))])
    p.action("reg_", [], [
        prim("register_read", F("meta", "value"), {"type": "register_array", "value": "reg"}, C(1)),
        prim("register_write", {"type": "register_array", "value": "reg"}, C(1),
             X(E("&", E("+", F("meta", "value"), C(1, 32)), C(0xFFFFFFFF, 32)))),
        assign(F("meta", "tag"), F("meta", "value")),
        set_egress(C(1, 9))])
    p.action("trunc", [("len", 32)], [prim("truncate", P(0)), set_egress(C(1, 9))])
    p.action("exit_", [], [set_egress(C(5, 9)), prim("exit"), set_egress(C(6, 9))])
    p.action("spec511", [], [set_egress(C(511, 9))])
    p.action("recirc", [], [
        assign(F("meta", "tag"), X(E("+", F(sm, "instance_type"), C(0x30, 8)))),
        set_egress(C(2, 9))])
    acts = ["fwd", "drop_", "mcast", "clone_fwd", "resub", "count_", "reg_", "trunc", "exit_",
            "spec511", "recirc", "NoAction"]
    p.table("ingress", "act", [("exact", "ethernet", "etype")], acts, default=("NoAction", []),
            base_next="after")
    # after 'exit', this must not run (it would move the packet to port 7)
    p.action("after_", [], [set_egress(X(E("?", C(7, 9), F(sm, "egress_spec"),
                                             E("==", F(sm, "egress_spec"), C(5, 9)))))])
    p.call("ingress", "after", "after_")
    # egress: stamp what egress sees into the 'info' header
    p.action("stamp", [], [
        prim("add_header", H("info")),
        assign(F("info", "instance_type"), F(sm, "instance_type")),
        assign(F("info", "rid"), F(sm, "egress_rid")),
        assign(F("info", "tag"), F("meta", "tag")),
        assign(F("info", "egress_port"), F(sm, "egress_port")),
        assign(F("info", "packet_length"), F(sm, "packet_length")),
        assign(F("info", "ingress_port"), F(sm, "ingress_port"))])
    p.action("eg_drop", [], [mark_to_drop()])
    p.action("eg_clone", [("session", 32)], [prim("clone_egress_pkt_to_egress", P(0), C(1)),
                                             assign(F("meta", "tag"), C(0x33, 8))])
    p.action("eg_recirc", [], [prim("recirculate", C(1))])
    p.table("egress", "eg_r", [("exact", "meta", "tag")], ["eg_recirc", "NoAction"],
            default=("NoAction", []), next_tables={"eg_recirc": None, "NoAction": "eg"})
    p.table("egress", "eg", [("exact", "standard_metadata", "egress_port"),
                             ("exact", "standard_metadata", "instance_type")],
            ["eg_drop", "eg_clone", "NoAction"], default=("NoAction", []),
            base_next="tbl_stamp")
    p.call("egress", "tbl_stamp", "stamp")
    p.deparse("info", "ethernet")
    return p


def info(frame: bytes) -> dict:
    vals = {}
    v = int.from_bytes(frame[:12], "big")
    shift = 96
    for name, w in INFO:
        shift -= w
        vals[name] = (v >> shift) & ((1 << w) - 1)
    return vals


@pytest.fixture
def e():
    eng = make_engine(tm_program())
    for et, action, args in [(ET_FWD, "fwd", [b"\x02"]), (ET_DROP, "drop_", []),
                             (ET_RESUB, "resub", []), (ET_COUNT, "count_", []),
                             (ET_REG, "reg_", []), (ET_EXIT, "exit_", []),
                             (ET_511, "spec511", []), (ET_RECIRC, "recirc", [])]:
        eng.table_add("act", [("exact", et.to_bytes(2, "big"))], action, args)
    return eng


def pkt(etype: int, pad: int = 40) -> bytes:
    return raw(Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:02", type=etype) /
               Raw(bytes(range(pad))))


def test_unicast_normal_instance_and_lengths(e):
    f = pkt(ET_FWD)
    (port, out), = e.process(4, f)
    assert port == 2
    assert out[12:] == f
    i = info(out)
    assert i == {"instance_type": 0, "rid": 0, "tag": 0, "egress_port": 2,
                 "packet_length": len(f), "ingress_port": 4}


@pytest.mark.parametrize("etype", [ET_DROP, ET_511])
def test_drops(e, etype):
    assert e.process(1, pkt(etype)) == []
    assert e.stats()["dropped_ingress"] == 1


def test_no_matching_entry_goes_to_port_0(e):
    (port, _), = e.process(1, pkt(0x1234))
    assert port == 0


def test_mark_to_drop_in_egress(e):
    e.table_add("eg", [("exact", b"\x02"), ("exact", b"\x00")], "eg_drop", [])
    assert e.process(1, pkt(ET_FWD)) == []
    assert e.stats()["dropped_egress"] == 1


def test_clone_i2e_copy_is_the_packet_as_received(e):
    e.table_add("act", [("exact", ET_CLONE.to_bytes(2, "big"))], "clone_fwd",
                [b"\x00\x00\x00\x05", b"\x02"])
    e.clone_session_set(5, [(9, 0)])
    f = pkt(ET_CLONE)
    out = e.process(1, f)
    assert [p for p, _ in out] == [9, 2]  # clones are enqueued before the original
    clone, orig = out[0][1], out[1][1]
    assert clone[12:] == f  # no ingress modification (ethernet.src) in the copy
    assert Ether(orig[12:]).src == "00:00:00:00:00:ee"
    ci, oi = info(clone), info(orig)
    assert ci["instance_type"] == 1 and oi["instance_type"] == 0
    assert ci["tag"] == 0x5A  # preserved by the field list, value at the end of ingress
    assert ci["packet_length"] == len(f)
    assert ci["ingress_port"] == 0  # BMv2 resets all other metadata of the copy


def test_clone_session_with_several_replicas_and_truncation(e):
    e.table_add("act", [("exact", ET_CLONE.to_bytes(2, "big"))], "clone_fwd",
                [b"\x00\x00\x00\x06", b"\x02"])
    e.clone_session_set(6, [(8, 3), (7, 3), (9, 4)], packet_length_bytes=20)
    out = e.process(1, pkt(ET_CLONE))
    assert [p for p, _ in out] == [7, 8, 9, 2]
    assert [info(f)["rid"] for _, f in out[:3]] == [3, 3, 4]
    assert all(len(f) == 20 for _, f in out[:3])


def test_clone_to_unknown_session_does_nothing(e):
    e.table_add("act", [("exact", ET_CLONE.to_bytes(2, "big"))], "clone_fwd",
                [b"\x00\x00\x00\x07", b"\x02"])
    assert [p for p, _ in e.process(1, pkt(ET_CLONE))] == [2]
    e.clone_session_set(7, [(9, 0)])
    e.clone_session_delete(7)
    assert [p for p, _ in e.process(1, pkt(ET_CLONE))] == [2]


def test_multicast_replicas_with_rid(e):
    e.table_add("act", [("exact", ET_MCAST.to_bytes(2, "big"))], "mcast", [b"\x00\x01"])
    e.mc_group_set(1, [(3, 10), (1, 10), (2, 20)])
    f = pkt(ET_MCAST)
    out = e.process(4, f)
    assert [(p, info(x)["rid"]) for p, x in out] == [(1, 10), (3, 10), (2, 20)]
    assert all(info(x)["instance_type"] == 5 for _, x in out)
    assert all(x[12:] == f for _, x in out)
    e.mc_group_delete(1)
    assert e.process(4, f) == []


def test_e2e_clone(e):
    e.table_add("eg", [("exact", b"\x02"), ("exact", b"\x00")], "eg_clone", [b"\x00\x00\x00\x08"])
    e.clone_session_set(8, [(6, 0)])
    out = e.process(1, pkt(ET_FWD))
    assert [p for p, _ in out] == [2, 6]
    ci = info(out[1][1])
    assert ci["instance_type"] == 2 and ci["tag"] == 0x33
    assert out[1][1][12:] == out[0][1][12:]


def test_resubmit_keeps_field_list_and_original_bytes(e):
    f = pkt(ET_RESUB)
    (port, out), = e.process(1, f)
    i = info(out)
    # second pass: instance_type RESUBMIT (6) -> tag 0x76; ingress_port was not preserved
    assert port == 3 and i["tag"] == 0x76 and i["ingress_port"] == 0
    assert i["packet_length"] == len(f) and out[12:] == f


def test_endless_resubmit_is_cut(e):
    e.table_add("act", [("exact", b"\x55\x55")], "resub", [])
    prog = tm_program()
    prog.actions[prog.action_id("resub")]["primitives"] = [prim("resubmit", C(1))]
    eng = make_engine(prog)
    eng.table_add("act", [("exact", b"\x55\x55")], "resub", [])
    assert eng.process(1, pkt(0x5555)) == []
    assert eng.stats()["dropped_loop"] == 1


def test_recirculate(e):
    e.table_add("eg_r", [("exact", b"\x30")], "eg_recirc", [])
    f = pkt(ET_RECIRC)
    (port, out), = e.process(1, f)
    # second pass: ingress saw instance_type RECIRC (4) -> tag 0x34; egress sees NORMAL
    i = info(out)
    assert port == 2 and i["instance_type"] == 0 and i["tag"] == 0x34
    assert out[12:] == f


def test_indirect_counter_counts_ingress_length(e):
    f1, f2 = pkt(ET_COUNT, 10), pkt(ET_COUNT, 100)
    e.process(1, f1)
    e.process(1, f2)
    idx = ET_COUNT & 0xF
    assert e.counter_read("etype_counter", idx) == (2, len(f1) + len(f2))
    assert e.counter_size("etype_counter") == 16
    e.counter_write("etype_counter", idx, 0, 0)
    assert e.counter_read("etype_counter", idx) == (0, 0)
    with pytest.raises(IndexError):
        e.counter_read("etype_counter", 16)
    with pytest.raises(KeyError):
        e.counter_read("nope", 0)


def test_registers(e):
    for expected in (0, 1, 2):
        (_, out), = e.process(1, pkt(ET_REG))
        assert info(out)["tag"] == expected
    assert e.register_read("reg", 1) == 3
    e.register_write("reg", 1, 41)
    (_, out), = e.process(1, pkt(ET_REG))
    assert info(out)["tag"] == 41
    with pytest.raises(IndexError):
        e.register_read("reg", 4)
    with pytest.raises(ValueError):
        e.register_write("reg", 0, 1 << 32)


def test_truncate(e):
    e.table_add("act", [("exact", ET_TRUNC.to_bytes(2, "big"))], "trunc", [b"\x00\x00\x00\x11"])
    (_, out), = e.process(1, pkt(ET_TRUNC))
    assert len(out) == 17


def test_exit_stops_the_control_but_finishes_the_action(e):
    (port, _), = e.process(1, pkt(ET_EXIT))
    assert port == 6  # the rest of the action ran; the following table did not


def test_packet_length_follows_add_header_in_ingress():
    p = tm_program()
    p.action("grow", [], [prim("add_header", H("info")), set_egress(C(2, 9))])
    p.pipes["ingress"]["tables"][0]["actions"].append("grow")
    p.pipes["ingress"]["tables"][0]["action_ids"].append(p.action_id("grow"))
    p.pipes["ingress"]["tables"][0]["next_tables"]["grow"] = "after"
    e = make_engine(p)
    e.table_add("act", [("exact", b"\x77\x77")], "grow", [])
    f = pkt(0x7777)
    (_, out), = e.process(1, f)
    # egress sees the length register, which add_header grew by the header's size
    assert info(out)["packet_length"] == len(f) + 12


def test_priority_out_of_range_is_dropped_like_bmv2():
    p = tm_program()
    p.action("prio", [], [assign(F("standard_metadata", "priority"), C(3, 3)),
                          set_egress(C(2, 9))])
    t = p.pipes["ingress"]["tables"][0]
    t["actions"].append("prio")
    t["action_ids"].append(p.action_id("prio"))
    t["next_tables"]["prio"] = "after"
    e = make_engine(p)
    e.table_add("act", [("exact", b"\x66\x66")], "prio", [])
    assert e.process(1, pkt(0x6666)) == []
    assert e.stats()["dropped_priority"] == 1


def test_process_without_program_drops():
    from softswitch.engine import Engine
    eng = Engine()
    assert not eng.program_loaded
    assert eng.process(1, b"\x00" * 64) == []
    assert eng.stats()["dropped_no_program"] == 1


def test_cpu_port_output_is_returned_like_any_port():
    e = make_engine(tm_program(), cpu_port=255)
    e.table_add("act", [("exact", ET_FWD.to_bytes(2, "big"))], "fwd", [b"\x00\xff"])
    (port, _), = e.process(1, pkt(ET_FWD))
    assert port == 255


def test_ip_packet_through_clone_and_mcast_is_intact(e):
    e.table_add("act", [("exact", b"\x08\x00")], "mcast", [b"\x00\x02"])
    e.mc_group_set(2, [(1, 1), (2, 2)])
    f = raw(Ether() / IP(dst="10.1.1.1") / Raw(b"z" * 30))
    out = e.process(3, f)
    assert [x[12:] for _, x in out] == [f, f]


def clone_validity_program() -> Program:
    """Ingress clones to session 1 and rewrites ipv4.ttl; egress marks ethernet.src with
    what it sees: 0x11 if ipv4 is valid, 0x22 if not."""
    from p4json import IPV4, valid
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("ipv4", IPV4)
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("0x0800", None, "v4"), (None, None, None)])
    p.state("v4", [extract("ipv4")])
    p.field_list(1, [])
    p.action("clone_it", [], [prim("clone_ingress_pkt_to_egress", C(1, 32), C(1)),
                              assign(F("ipv4", "ttl"), C(1, 8)), set_egress(C(2, 9))])
    p.call("ingress", "tbl_clone", "clone_it")
    p.action("seen_valid", [], [assign(F("ethernet", "src"), C(0x11, 48))])
    p.action("seen_invalid", [], [assign(F("ethernet", "src"), C(0x22, 48))])
    p.cond("egress", "node_v", valid("ipv4"), "tbl_v", "tbl_nv")
    p.call("egress", "tbl_v", "seen_valid")
    p.call("egress", "tbl_nv", "seen_invalid")
    p.deparse("ethernet", "ipv4")
    return p


def test_i2e_clone_is_parsed_again_so_its_headers_are_valid_in_egress():
    e = make_engine(clone_validity_program())
    e.clone_session_set(1, [(3, 0)])
    f = raw(Ether() / IP(ttl=64) / Raw(b"x" * 10))
    out = dict(e.process(1, f))
    assert Ether(out[3]).src == "00:00:00:00:00:11"  # headers valid in the clone's egress
    assert Ether(out[3])[IP].ttl == 64                # ...as received, not as modified
    assert Ether(out[2])[IP].ttl == 1
