"""Differential tests: the same programs, entries and frames on our engine and on BMv2
simple_switch_grpc (the reference) must give the same frames out of the same ports and
the same counters. Skipped when BMv2 is not installed or without root (veths)."""
from __future__ import annotations

import json
import os
import random

import pytest
from diffkit import BMV2_BIN, CPU_PORT, HAVE_BMV2, Scenario, explain, run_bmv2, run_engine
from p4json import l2_program
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw, raw

import scitags_like
import test_fuzz
import test_parser_deparser as tpd
import test_tables as tt
import test_v1model as tv

pytestmark = [
    pytest.mark.bmv2,
    pytest.mark.skipif(not HAVE_BMV2, reason=f"BMv2 simple_switch_grpc not installed "
                                             f"({BMV2_BIN} absent)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for veths in a namespace"),
]


def check(sc: Scenario, tmp_path) -> dict:
    ours = run_engine(sc)
    ref = run_bmv2(sc, tmp_path, [len(o) for o in ours["outputs"]])
    assert ours["errors"] == 0
    same = all(ours[k] == ref[k] for k in ("outputs", "counters", "direct_counters",
                                           "registers"))
    assert same, explain(sc, ours, ref)
    return ours


def b(v: int, n: int) -> bytes:
    return v.to_bytes(n, "big")


def test_l2_forwarding(tmp_path):
    sc = Scenario(l2_program().build(), [1, 2, 3])
    sc.table_add("fwd", [("exact", b(2, 6))], "set_port", [b"\x02"])
    sc.table_add("fwd", [("exact", b(3, 6))], "set_port", [b"\x03"])
    for dst in (2, 3, 4):
        sc.send(1, raw(Ether(dst=b(dst, 6)) / IP() / UDP() / Raw(b"d" * 30)))
    out = check(sc, tmp_path)
    assert [len(o) for o in out["outputs"]] == [1, 1, 0]


def test_match_kinds_and_priorities(tmp_path):
    prog = tt.keyed_program([("ternary", "ethernet", "dst"), ("range", "ethernet", "etype")])
    sc = Scenario(prog.build(), [1, 2, 3, 4, 5])
    sc.table_add("t", [("ternary", b(0x0A0000000000, 6), b(0xFF0000000000, 6)), None],
                 "set_port", [b"\x02"], 10)
    sc.table_add("t", [("ternary", b(0x0A0B00000000, 6), b(0xFFFF00000000, 6)),
                       ("range", b(0x0800, 2), b(0x08FF, 2))], "set_port", [b"\x03"], 20)
    sc.table_add("t", [None, ("range", b(0x86DD, 2), b(0x86DD, 2))], "set_port", [b"\x04"], 5)
    sc.table_add("t", [("ternary", b(0x01, 6), b(0x0F, 6)), None], "set_port", [b"\x05"], 1)
    sc.table_add("t", [("ternary", b(0x11, 6), b(0xFF, 6)), None], "set_port", [b"\x02"], 1)
    for dst, et in [(0x0A0B00000001, 0x0800), (0x0A0B00000001, 0x0900), (0x0A0000000001, 0x86DD),
                    (0x0B0000000000, 0x86DD), (0x11, 0x9000), (0x21, 0x9000), (0x22, 0x9000)]:
        sc.send(1, tt.frame(dst=dst, etype=et))
    check(sc, tmp_path)


def test_lpm_and_direct_counters(tmp_path):
    prog = tt.keyed_program([("exact", "ethernet", "etype"), ("lpm", "ethernet", "dst")],
                            counters=True)
    sc = Scenario(prog.build(), [1, 2, 3])
    e1 = sc.table_add("t", [("exact", b(0x800, 2)), ("lpm", b(0x0A0000000000, 6), 8)],
                      "set_port", [b"\x02"])
    e2 = sc.table_add("t", [("exact", b(0x800, 2)), ("lpm", b(0x0A0B00000000, 6), 16)],
                      "set_port", [b"\x03"])
    for dst in (0x0A0B0C000000, 0x0A0C00000000, 0x0A0B00000000, 0x0B0000000000):
        sc.send(1, tt.frame(dst=dst) + b"\x00" * 20)
    sc.read_direct_counter(e1)
    sc.read_direct_counter(e2)
    check(sc, tmp_path)


def test_traffic_manager(tmp_path):
    """Clone I2E/E2E with field lists, multicast with rid, resubmit, recirculate, drops in
    ingress and egress, counters, registers, exit, packet_length, truncate."""
    sc = Scenario(tv.tm_program().build(), [1, 2, 3, 4, 5, 6, 7, 8, 9])
    for et, action, args in [(tv.ET_FWD, "fwd", [b"\x02"]), (tv.ET_DROP, "drop_", []),
                             (tv.ET_RESUB, "resub", []), (tv.ET_COUNT, "count_", []),
                             (tv.ET_REG, "reg_", []), (tv.ET_EXIT, "exit_", []),
                             (tv.ET_511, "spec511", []), (tv.ET_RECIRC, "recirc", []),
                             (tv.ET_MCAST, "mcast", [b"\x00\x01"]),
                             (tv.ET_CLONE, "clone_fwd", [b"\x00\x00\x00\x05", b"\x02"]),
                             (tv.ET_TRUNC, "trunc", [b"\x00\x00\x00\x16"])]:
        sc.table_add("act", [("exact", et.to_bytes(2, "big"))], action, args)
    sc.table_add("eg", [("exact", b"\x03"), ("exact", b"\x00\x00\x00\x00")], "eg_drop", [])
    sc.table_add("eg", [("exact", b"\x04"), ("exact", b"\x00\x00\x00\x00")], "eg_clone",
                 [b"\x00\x00\x00\x08"])
    sc.table_add("eg_r", [("exact", b"\x30")], "eg_recirc", [])
    sc.mc_group(1, [(3, 10), (1, 10), (2, 20), (4, 30)])
    sc.clone_session(5, [(9, 0)])
    sc.clone_session(8, [(6, 7)])
    for et in (tv.ET_FWD, tv.ET_DROP, tv.ET_RESUB, tv.ET_COUNT, tv.ET_COUNT, tv.ET_REG,
               tv.ET_REG, tv.ET_EXIT, tv.ET_511, tv.ET_RECIRC, tv.ET_MCAST, tv.ET_CLONE,
               tv.ET_TRUNC, 0x1234):
        sc.send(5, tv.pkt(et))
    sc.read_counter("etype_counter", tv.ET_COUNT & 0xF)
    # (PI cannot read registers; the reg_ action reports the value in the frame instead)
    out = check(sc, tmp_path)
    assert sum(len(o) for o in out["outputs"]) >= 12


def test_parser_paths_checksums_and_errors(tmp_path):
    sc = Scenario(tpd._checksum_program().build(), [1, 2, 9])
    sc.send(1, raw(Ether() / IP(dst="192.0.2.1", ttl=64) / UDP() / Raw(b"data")))
    sc.send(1, raw(Ether() / IP(dst="192.0.2.1", ttl=1, chksum=0x1234) / UDP()))
    sc.send(1, raw(Ether() / IP(dst="192.0.2.1", ihl=6, options=[]) / UDP()))
    sc.send(1, raw(Ether(type=0x86DD) / Raw(b"not ipv4 at all")))
    sc.send(1, raw(Ether() / IP())[:20])
    check(sc, tmp_path)
    sc = Scenario(tpd._error_program().build(), [1] + list(range(10, 18)))
    full = raw(Ether(dst="00:00:00:00:00:0a") / IP(dst="10.0.0.1") / UDP())
    for n in (len(full), 14, 20, 33, 34):
        sc.send(1, full[:n])
    check(sc, tmp_path)


def test_fuzz_program_random_frames(tmp_path):
    """The fuzzing program on BMv2 and on the engine, with random and truncated frames."""
    rnd = random.Random(4242)
    sc = Scenario(test_fuzz.fuzz_program().build(), [1, 2, 3])
    sc.clone_session(1, [(3, 0)])
    bases = [raw(Ether() / IP(ihl=6, options=[]) / UDP() / Raw(b"o" * 8)),
             raw(Ether() / Dot1Q(vlan=5) / IPv6(fl=0xABCDE) / UDP() / Raw(b"y" * 20)),
             raw(Ether() / Dot1Q() / IP() / UDP()),
             raw(Ether() / IPv6(fl=0x12345) / UDP(dport=10514) / Raw(b"ok")),
             raw(Ether() / IP(ihl=15) / UDP() / Raw(b"x" * 60))]
    for _ in range(40):
        base = rnd.choice(bases)
        f = base[:rnd.randint(14, len(base))]
        if rnd.random() < 0.3:
            f = f[:14] + bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 60)))
        if f[12:14] in (b"\x81\x00", b"\x88\xa8") and len(f) < 20:
            continue  # the veth's VLAN offload drops these before any switch sees them
        sc.send(1, f)
    check(sc, tmp_path)


def _scitags_sources() -> list:
    from test_scitags_program import COMPILED
    return [pytest.param(scitags_like.program, id="hand-built"),
            pytest.param(lambda: json.loads(COMPILED.read_text()), id="compiled",
                         marks=pytest.mark.skipif(not COMPILED.exists(),
                                                  reason=f"{COMPILED} not built (needs p4c)"))]


@pytest.mark.parametrize("source", _scitags_sources())
def test_scitags_program(source, tmp_path):
    doc = source()
    names = ([t["name"] for p in doc["pipelines"] for t in p["tables"]] +
             [a["name"] for a in doc["actions"]] + [c["name"] for c in doc["counter_arrays"]])

    def n(suffix: str) -> str:
        hits = sorted({x for x in names if x == suffix or x.endswith("." + suffix)})
        assert len(hits) == 1, (suffix, hits)
        return hits[0]

    sc = Scenario(doc, [1, 2, 3])
    for port in (1, 2, 3):
        sc.table_add(n("l2_forward"), [("exact", b(port, 6))], n("set_egress_port"),
                     [b(port, 2)])
    from test_scitags_program import policy_match
    keys = [t for p in doc["pipelines"] for t in p["tables"] if t["name"] == n("scitag_policy")][0]["key"]
    compiled = len(keys) == 1
    sc.table_add(n("scitag_policy"), policy_match([None] * len(keys), 37, 5), n("count_tag"), [b(42, 2)], 10)
    sc.table_add(n("scitag_policy"), policy_match([None] * len(keys), 300, None),
                 n("count_tag_and_mirror"), [b(43, 2), b(7, 2 if compiled else 4)], 1)
    if compiled:  # the option's tags, and a trust scope that leaves 2001:db8::3 outside
        sc.table_add(n("exthdr_policy"), [("ternary", b(37 << 8 | 5, 3), b(0xFFFFFF, 3))],
                     n("exthdr_count_tag"), [b(44, 2)], 10)
        sc.table_add(n("exthdr_policy"), [("ternary", b(300 << 8, 3), b(0xFFFF00, 3))],
                     n("exthdr_count_tag_and_mirror"), [b(45, 2), b(7, 2)], 1)
        sc.table_add(n("label_trust"), [("lpm", bytes.fromhex("20010db8" + "0" * 24), 64)],
                     n("trust_label"), [])
        sc.table_add(n("label_trust"), [("lpm", bytes.fromhex("20010db8" + "0" * 23 + "3"), 128)],
                     n("distrust_label"), [])
    ff = sc.table_add(n("firefly_v6"),
                      [("exact", bytes.fromhex("20010db8" + "0" * 23 + "1")),
                       ("exact", bytes.fromhex("20010db8" + "0" * 23 + "2")),
                       ("exact", b"\x11"), ("exact", b(5555, 2)), ("exact", b(10514, 2))],
                      n("firefly_flow_v6"), [b(37, 2), b"\x05"])
    sc.mc_group(1, [(1, 0), (2, 0), (3, 0)])
    sc.clone_session(100, [(CPU_PORT, 0)])
    sc.clone_session(7, [(3, 0)])

    def v6(label: int, l4, dst: int = 2) -> bytes:
        return raw(Ether(dst=b(dst, 6), src=b(1, 6)) /
                   IPv6(src="2001:db8::1", dst="2001:db8::2", fl=label) / l4 / Raw(b"p" * 20))

    from test_scitags_program import encode_label
    sc.send(1, v6(encode_label(37, 5), TCP()))
    sc.send(1, v6(encode_label(300, 9), TCP()))
    sc.send(1, v6(encode_label(5, 1), UDP()))
    sc.send(1, v6(0, UDP()))
    sc.send(3, v6(encode_label(37, 5), UDP(sport=5555, dport=10514)))
    sc.send(2, raw(Ether(dst="00:00:00:00:00:99", src=b(2, 6)) / IP() / UDP()))
    sc.send(1, raw(Ether(dst=b(2, 6)) / Dot1Q(vlan=4) / IP() / UDP(dport=10514) / Raw(b"f")))
    sc.send(1, v6(encode_label(37, 5), TCP())[:40])
    sc.send(1, raw(Ether(dst=b(3, 6)) / IP() / TCP()))
    if compiled:
        for frame in exthdr_corpus(b):
            sc.send(1, frame)
        sc.send(1, raw(Ether(dst=b(2, 6), src=b(1, 6)) /
                       IPv6(src="2001:db8::3", dst="2001:db8::2", fl=encode_label(37, 5)) / TCP()))
    cells = {c["name"]: c.get("size", 8) for c in doc["counter_arrays"]}
    for i in range(cells[n("bucket_counter")]):
        sc.read_counter(n("bucket_counter"), i)
        if compiled:
            sc.read_counter(n("firefly_bucket_counter"), i)
    for cell in (42, 43, 44, 45):
        sc.read_counter(n("tag_counter"), cell)
        if compiled:
            for c in ("exthdr_tag_counter", "untrusted_tag_counter", "confirmed_tag_counter"):
                sc.read_counter(n(c), cell)
    sc.read_direct_counter(ff)
    check(sc, tmp_path)


def exthdr_corpus(b) -> list[bytes]:
    """IPv6 extension-header frames: flowd-go's three strategies byte for byte, options among
    others, and the truncated and malformed ones the walk must count without crashing."""
    from test_scitags_program import encode_label
    def frame(first_nh: int, ext: bytes, l4: bytes = bytes(TCP(sport=1, dport=2)), label: int = 0,
              cut: int | None = None) -> bytes:
        f = raw(Ether(dst=b(2, 6), src=b(1, 6)) /
                IPv6(src="2001:db8::1", dst="2001:db8::2", fl=label, nh=first_nh) / Raw(ext + l4 + b"p" * 20))
        return f if cut is None else f[:cut]

    def opt(nh: int, exp: int, act: int) -> bytes:
        return bytes([nh, 0, 0x1E, 3, exp >> 8, exp & 0xFF, act, 0])
    udp_ff = bytes(UDP(sport=5555, dport=10514))
    return [
        frame(0, opt(6, 37, 5)),                                  # hopbyhop
        frame(60, opt(6, 37, 5), label=0x5A3C1),                  # destination, kernel label
        frame(0, opt(60, 37, 5) + opt(6, 37, 5)),                 # hopbyhopdestination
        frame(0, opt(17, 300, 9), l4=udp_ff),                     # whole experiment, firefly punted
        frame(0, opt(6, 37, 5), label=encode_label(300, 1)),      # option and label disagree
        frame(0, opt(6, 99, 1)),                                  # unregistered option
        frame(0, bytes([6, 1, 5, 2, 0, 0, 0x1E, 3, 0, 37, 5, 1, 3, 0, 0, 0])),  # 16 bytes: past the limit
        frame(0, bytes([6, 0, 0, 0x1E, 3, 0, 37, 5])),            # Pad1 first
        frame(0, bytes([6, 0, 5, 2, 0, 0, 1, 0])),                # router alert + PadN, no tag
        frame(0, bytes([6, 0, 1, 0, 0x1E, 3, 0, 37])),            # the option overruns its header
        frame(0, bytes([6, 0, 1, 9, 0, 0, 0, 0])),                # PadN overruns its header
        frame(0, bytes([6, 0, 0x1E, 7, 0, 37, 5, 0])),            # scitags type, wrong length
        frame(0, opt(6, 37, 5), cut=14 + 40 + 5),                 # truncated inside the header
        frame(0, opt(43, 37, 5)),                                 # then a routing header: no ports
    ]


def test_expressions_hashes_stacks_lookahead(tmp_path):
    """Arithmetic/bool/signed expression semantics, hash calculations, header stacks with
    push/pop, lookahead selects, masked selects, hit/miss and action_run control flow."""
    import test_load as tl
    a, b_, s, sh = (tl.F("m", "a"), tl.F("m", "b"), tl.F("m", "s"), tl.F("m", "sh"))
    E, C = tl.E, tl.C
    exprs = [("add", 16, E("+", a, b_)), ("sub", 16, E("-", b_, a)),
             ("neg", 16, E("&", E("~", None, a), C(0xFFFF))), ("shl", 16, E("<<", C(1), sh)),
             ("shr", 16, E(">>", a, C(4))), ("mul", 32, E("*", a, b_)),
             ("cond", 8, E("?", C(1), C(2), E(">", a, b_))), ("sadd", 16, E("+", s, C(1))),
             ("cmp", 8, E("b2d", None, E("<", s, C(0))))]
    for prog in (tl._expr_program(exprs),):
        sc = Scenario(prog.build(), [1])
        sc.send(1, raw(Ether()))
        check(sc, tmp_path)

    p = tpd.Program()
    p.header("ethernet", tpd.ETHERNET)
    p.header("out", [("crc", 16), ("sum", 16), ("ident", 16)])
    p.state("start", [tpd.extract("ethernet")])
    for algo in ("crc16", "csum16", "identity", "crc32"):
        p.calculation(f"c_{algo}", algo, [tpd.F("ethernet", "dst"), tpd.F("ethernet", "etype")])
    p.action("hash_it", [], [
        tpd.prim("add_header", tpd.H("out")),
        tpd.prim("modify_field_with_hash_based_offset", tpd.F("out", "crc"), tpd.C(0),
                 {"type": "calculation", "value": "c_crc16"}, tpd.C(65536)),
        tpd.prim("modify_field_with_hash_based_offset", tpd.F("out", "sum"), tpd.C(7),
                 {"type": "calculation", "value": "c_csum16"}, tpd.C(1000)),
        tpd.prim("modify_field_with_hash_based_offset", tpd.F("out", "ident"), tpd.C(0),
                 {"type": "calculation", "value": "c_crc32"}, tpd.C(65536)),
        tpd.set_egress(tpd.C(1, 9))])
    p.call("ingress", "tbl", "hash_it")
    p.deparse("out", "ethernet")
    sc = Scenario(p.build(), [1])
    for dst in ("01:02:03:04:05:06", "ff:00:ff:00:ff:00", "00:00:00:00:00:00"):
        sc.send(1, raw(Ether(dst=dst, type=0x0800)))
    check(sc, tmp_path)


def test_masked_select_and_switch_on_action(tmp_path):
    p = tt.keyed_program([("exact", "ethernet", "dst")])
    p.action("mark", [], [{"op": "assign", "parameters": [tt.F("ethernet", "src"),
                                                          tt.C(0xAB, 48)]}])
    p.table("ingress", "t2", [], ["mark"], default=("mark", []))
    p.pipes["ingress"]["tables"][0]["next_tables"] = {"set_port": "t2", "miss": None}
    sc = Scenario(p.build(), [1, 2, 3])
    sc.table_add("t", [("exact", b(1, 6))], "set_port", [b"\x02"])
    sc.send(1, tt.frame(dst=1))
    sc.send(1, tt.frame(dst=2))
    sc.set_default("t", "set_port", [b"\x03"])
    check(sc, tmp_path)


def test_header_stacks_and_lookahead(tmp_path):
    def label(value: int, bos: int) -> bytes:
        return ((value << 12) | (bos << 8) | 33).to_bytes(4, "big")

    sc = Scenario(tpd.stack_program().build(), [1, 2, 3])
    mpls = raw(Ether(type=0x8847))
    sc.send(1, mpls + label(5, 0) + label(6, 1) + b"payload")
    sc.send(1, mpls + label(1, 1))
    sc.send(1, mpls + label(1, 0) + label(2, 0) + label(3, 0) + label(4, 1))
    sc.send(1, mpls + label(1, 0)[:2])
    check(sc, tmp_path)
    sc = Scenario(tpd.lookahead_program().build(), [1, 4, 6])
    sc.send(1, raw(Ether() / IP()))
    sc.send(1, raw(Ether() / IPv6()))
    sc.send(1, raw(Ether() / Raw(b"\x61")))
    check(sc, tmp_path)


def test_i2e_clone_headers_valid_in_egress(tmp_path):
    sc = Scenario(tv.clone_validity_program().build(), [1, 2, 3])
    sc.clone_session(1, [(3, 0)])
    sc.send(1, raw(Ether() / IP(ttl=64) / Raw(b"x" * 10)))
    sc.send(1, raw(Ether(type=0x1234) / Raw(b"y" * 30)))
    check(sc, tmp_path)


def test_standard_metadata_as_each_stage_sees_it(tmp_path):
    """What ingress and egress read from standard_metadata (timestamps and queue depths
    aside, which depend on time and load)."""
    from p4json import ETHERNET, F as F_, H as H_, Program, assign, extract, prim, set_egress
    sm = "standard_metadata"
    seen = [("ig_egress_port", 16), ("ig_egress_spec", 16), ("ig_instance", 8),
            ("ig_packet_length", 32), ("eg_egress_spec", 16), ("eg_egress_port", 16),
            ("eg_mcast_grp", 16), ("eg_rid", 16), ("eg_instance", 8), ("eg_packet_length", 32),
            ("eg_ingress_port", 16), ("eg_parser_error", 8), ("eg_checksum_error", 8)]
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("seen", seen)
    p.metadata("m", [("ig_egress_port", 16), ("ig_egress_spec", 16), ("ig_instance", 8),
                     ("ig_packet_length", 32)])
    p.state("start", [extract("ethernet")])
    p.action("look", [], [assign(F_("m", "ig_egress_port"), F_(sm, "egress_port")),
                          assign(F_("m", "ig_egress_spec"), F_(sm, "egress_spec")),
                          assign(F_("m", "ig_instance"), F_(sm, "instance_type")),
                          assign(F_("m", "ig_packet_length"), F_(sm, "packet_length"))])
    p.call("ingress", "tbl_look", "look", "t")
    p.action("to", [("port", 9)], [set_egress({"type": "runtime_data", "value": 0})])
    p.action("grp", [("g", 16)], [assign(F_(sm, "mcast_grp"), {"type": "runtime_data",
                                                                "value": 0})])
    p.table("ingress", "t", [("exact", "ethernet", "etype")], ["to", "grp", "NoAction"],
            default=("NoAction", []))
    stamp = [prim("add_header", H_("seen"))]
    for f, _ in seen:
        if f.startswith("ig_"):
            stamp.append(assign(F_("seen", f), F_("m", f)))
    for f, src in [("eg_egress_spec", "egress_spec"), ("eg_egress_port", "egress_port"),
                   ("eg_mcast_grp", "mcast_grp"), ("eg_rid", "egress_rid"),
                   ("eg_instance", "instance_type"), ("eg_packet_length", "packet_length"),
                   ("eg_ingress_port", "ingress_port"), ("eg_parser_error", "parser_error"),
                   ("eg_checksum_error", "checksum_error")]:
        stamp.append(assign(F_("seen", f), F_(sm, src)))
    p.action("stamp", [], stamp)
    p.call("egress", "tbl_stamp", "stamp")
    p.deparse("seen", "ethernet")
    sc = Scenario(p.build(), [1, 2, 3, 4])
    sc.table_add("t", [("exact", b(0x1111, 2))], "to", [b(2, 2)])
    sc.table_add("t", [("exact", b(0x2222, 2))], "grp", [b(9, 2)])
    sc.mc_group(9, [(3, 5), (4, 6)])
    sc.send(1, raw(Ether(type=0x1111) / Raw(b"a" * 30)))
    sc.send(2, raw(Ether(type=0x2222) / Raw(b"b" * 50)))
    sc.send(4, raw(Ether(type=0x3333)))
    check(sc, tmp_path)
