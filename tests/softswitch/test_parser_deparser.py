"""Parser and deparser: round trips, select with masks / lookahead / value sets, parser
errors on truncated frames, verify, header stacks, checksums."""
from __future__ import annotations

from conftest import make_engine
from p4json import (ETHERNET, IPV4, IPV6, UDP, C, E, F, H, Program, X, assign, extract,
                    l2_program, prim, set_egress)
from scapy.layers.inet import IP, UDP as sUDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

MAC_A = "00:00:00:00:00:0a"
MAC_B = b"\x00\x00\x00\x00\x00\x0b"


def forward_all(p: Program, port: int = 2) -> None:
    """Ingress: send everything to `port`."""
    p.action("to_port", [], [set_egress(C(port))])
    p.call("ingress", "tbl_to_port", "to_port")


def test_round_trip_is_byte_exact(l2):
    l2.table_add("fwd", [("exact", bytes.fromhex("00000000000a"))], "set_port", [b"\x03"])
    frame = raw(Ether(dst=MAC_A, src="00:00:00:00:00:01") / IP(dst="10.0.0.1", ttl=7) /
                sUDP(sport=1, dport=2) / Raw(b"x" * 100))
    assert l2.process(1, frame) == [(3, frame)]


def test_non_ipv4_payload_passes_untouched(l2):
    l2.table_add("fwd", [("exact", bytes.fromhex("00000000000a"))], "set_port", [b"\x03"])
    frame = raw(Ether(dst=MAC_A, type=0x88B5) / Raw(bytes(range(200))))
    assert l2.process(1, frame) == [(3, frame)]


def _error_program() -> Program:
    """Egress port = 10 + parser_error; egress also records checksum_error in port 9."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("ipv4", IPV4)
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("0x0800", None, "parse_ipv4"), (None, None, None)])
    p.state("parse_ipv4", [extract("ipv4")])
    p.action("by_error", [], [set_egress(X(E("+", F("standard_metadata", "parser_error"),
                                               C(10, 32))))])
    p.call("ingress", "tbl_by_error", "by_error")
    p.deparse("ethernet", "ipv4")
    return p


def test_truncated_frames_continue_into_ingress_with_headers_parsed_so_far():
    e = make_engine(_error_program())
    full = raw(Ether(dst=MAC_A) / IP(dst="10.0.0.1") / sUDP())
    assert e.process(1, full) == [(10, full)]  # NoError = 0
    # cut inside IPv4: PacketTooShort (1); ethernet still valid, the rest is payload
    cut = full[:20]
    assert e.process(1, cut) == [(11, cut)]
    # cut inside ethernet: nothing extracted, nothing emitted but the bytes themselves
    assert e.process(1, full[:9]) == [(11, full[:9])]
    assert e.process(1, b"") == [(11, b"")]


def test_verify_sets_the_program_error():
    p = Program()
    p.header("ethernet", ETHERNET)
    p.state("start", [extract("ethernet"),
                      {"op": "verify", "parameters": [
                          E("!=", F("ethernet", "etype"), C(0xDEAD, 16)), C(5)]}])
    p.action("by_error", [], [set_egress(X(E("+", F("standard_metadata", "parser_error"),
                                               C(10, 32))))])
    p.call("ingress", "tbl", "by_error")
    p.deparse("ethernet")
    e = make_engine(p)
    ok = raw(Ether(type=0x0800) / Raw(b"abc"))
    bad = raw(Ether(type=0xDEAD) / Raw(b"abc"))
    assert e.process(1, ok) == [(10, ok)]
    # the failing state's extract stays; HeaderTooShort has value 4 in p4json.ERRORS, 5 is
    # ParserTimeout's value: any program-chosen code is passed through as is
    assert e.process(1, bad) == [(15, bad)]


def test_select_with_mask_and_default_order():
    p = Program()
    p.header("ethernet", ETHERNET)
    p.metadata("meta", [("path", 8)])
    p.action("a", [], [])
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("0x8800", "0xff00", "s88"), ("0x0800", None, "s08"), (None, None, "sdef")])
    for name, val in (("s88", 1), ("s08", 2), ("sdef", 3)):
        p.state(name, [{"op": "set", "parameters": [F("meta", "path"), C(val, 8)]}])
    p.action("by_path", [], [set_egress(F("meta", "path"))])
    p.call("ingress", "tbl", "by_path")
    p.deparse("ethernet")
    e = make_engine(p)
    assert e.process(0, raw(Ether(type=0x88CC)))[0][0] == 1
    assert e.process(0, raw(Ether(type=0x0800)))[0][0] == 2
    assert e.process(0, raw(Ether(type=0x86DD)))[0][0] == 3


def lookahead_program() -> Program:
    """select(lookahead<bit<4>>) picks IPv4 or IPv6 after a header-less tunnel."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.metadata("meta", [("ver", 4), ("peek", 16)])
    p.state("start", [extract("ethernet"),
                      {"op": "set", "parameters": [F("meta", "peek"),
                                                   {"type": "lookahead", "value": [0, 16]}]}],
            [{"type": "lookahead", "value": [0, 4]}],
            [("0x04", None, "v4"), ("0x06", None, "v6")])
    p.state("v4", [{"op": "set", "parameters": [F("meta", "ver"), C(4, 4)]}])
    p.state("v6", [{"op": "set", "parameters": [F("meta", "ver"), C(6, 4)]}])
    p.action("out", [], [set_egress(F("meta", "ver")),
                         assign(F("ethernet", "src"), F("meta", "peek"))])
    p.call("ingress", "tbl", "out")
    p.deparse("ethernet")
    return p


def test_lookahead_in_select_and_set():
    p = lookahead_program()
    e = make_engine(p)
    (port, out), = e.process(0, raw(Ether() / IP()))
    assert port == 4 and Ether(out).src == "00:00:00:00:45:00"
    (port, out), = e.process(0, raw(Ether() / IPv6()))
    assert port == 6
    # lookahead beyond the end: the select sees zeros (no case), the set op fails
    (port, out), = e.process(0, raw(Ether()))
    assert port == 0


def test_parse_value_set():
    p = Program()
    p.header("ethernet", ETHERNET)
    p.parse_vsets.append({"name": "pvs", "id": 0, "compressed_bitwidth": 16})
    p.metadata("meta", [("hit", 8)])
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("pvs", None, "in_set"), (None, None, None)])
    p.state("in_set", [{"op": "set", "parameters": [F("meta", "hit"), C(7, 8)]}])
    p.action("out", [], [set_egress(F("meta", "hit"))])
    p.call("ingress", "tbl", "out")
    p.deparse("ethernet")
    e = make_engine(p)
    frame = raw(Ether(type=0x1234))
    assert e.process(0, frame)[0][0] == 0
    e.value_set_set("pvs", [0x1234, 0x4321])
    assert e.process(0, frame)[0][0] == 7
    e.value_set_set("pvs", [])
    assert e.process(0, frame)[0][0] == 0


def stack_program() -> Program:
    """MPLS-like label stack of 3: pop the outer label, push label 99."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header_type("label_t", [("label", 20), ("tc", 3), ("bos", 1), ("ttl", 8)])
    p.stack("mpls", "label_t", 3)
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("0x8847", None, "parse_mpls"), (None, None, None)])
    p.state("parse_mpls", [{"op": "extract", "parameters": [{"type": "stack", "value": "mpls"}]}],
            [{"type": "stack_field", "value": ["mpls", "bos"]}],
            [("0x00", None, "parse_mpls"), (None, None, None)])
    # pop the outer label, then push a new one with label 99
    p.action("swap", [], [
        prim("pop", {"type": "header_stack", "value": "mpls"}, C(1)),
        prim("push", {"type": "header_stack", "value": "mpls"}, C(1)),
        prim("add_header", H("mpls[0]")),
        assign(F("mpls[0]", "label"), C(99, 20)),
        assign(F("mpls[0]", "ttl"), C(64, 8)),
        set_egress(X(E("size_stack", None, {"type": "header_stack", "value": "mpls"})))])
    p.call("ingress", "tbl", "swap")
    p.deparse("ethernet", "mpls[0]", "mpls[1]", "mpls[2]")
    return p


def test_header_stack_extract_push_pop():
    p = stack_program()
    e = make_engine(p)

    def label(value: int, bos: int) -> bytes:
        return ((value << 12) | (bos << 8) | 33).to_bytes(4, "big")

    frame = raw(Ether(type=0x8847)) + label(5, 0) + label(6, 1) + b"payload"
    (port, out), = e.process(0, frame)
    assert port == 2
    assert out == raw(Ether(type=0x8847)) + ((99 << 12) | 64).to_bytes(4, "big") + \
        label(6, 1) + b"payload"
    # four labels: the stack holds three, the fourth extract is StackOutOfBounds
    deep = raw(Ether(type=0x8847)) + label(1, 0) + label(2, 0) + label(3, 0) + label(4, 1)
    (port, out), = e.process(0, deep)
    assert out.endswith(label(4, 1))


def _checksum_program() -> Program:
    """IPv4 with verify/update csum16 on the header; ingress decrements TTL, sends to port
    2 or, on a checksum error, to port 9."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("ipv4", IPV4)
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("0x0800", None, "parse_ipv4"), (None, None, None)])
    p.state("parse_ipv4", [extract("ipv4")])
    fields = [F("ipv4", f) for f, _ in IPV4 if f != "csum"]
    p.calculation("ipv4_csum", "csum16", fields)
    p.checksum("ipv4_csum_chk", ("ipv4", "csum"), "ipv4_csum",
               cond=E("d2b", None, F("ipv4", "$valid$")))
    p.action("route", [], [
        assign(F("ipv4", "ttl"), X(E("&", E("+", F("ipv4", "ttl"), C(0xFF, 8)), C(0xFF, 8)))),
        set_egress(X(E("?", C(9, 9), C(2, 9),
                       E("==", F("standard_metadata", "checksum_error"), C(1, 1)))))])
    p.call("ingress", "tbl", "route")
    p.deparse("ethernet", "ipv4")
    return p


def test_checksum_verify_and_update_match_scapy():
    e = make_engine(_checksum_program())
    pkt = Ether() / IP(dst="192.0.2.1", ttl=64, id=7) / sUDP() / Raw(b"data")
    (port, out), = e.process(1, raw(pkt))
    assert port == 2
    got = Ether(out)
    assert got[IP].ttl == 63
    want = got.copy()
    del want[IP].chksum
    assert got[IP].chksum == Ether(raw(want))[IP].chksum
    broken = raw(Ether() / IP(dst="192.0.2.1", ttl=64, chksum=0x1234) / sUDP())
    (port, out), = e.process(1, broken)
    assert port == 9
    # the update still writes a correct checksum
    got = Ether(out)
    want = got.copy()
    del want[IP].chksum
    assert got[IP].chksum == Ether(raw(want))[IP].chksum


def test_udp_checksum_with_payload_over_ipv6():
    """update_checksum_with_payload: IPv6 pseudo-header + UDP header + payload."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("ipv6", IPV6)
    p.header("udp", UDP)
    p.state("start", [extract("ethernet")], [F("ethernet", "etype")],
            [("0x86dd", None, "v6"), (None, None, None)])
    p.state("v6", [extract("ipv6")], [F("ipv6", "next_hdr")],
            [("0x11", None, "udp"), (None, None, None)])
    p.state("udp", [extract("udp")])
    inputs = [F("ipv6", "src"), F("ipv6", "dst"), {"type": "hexstr", "value": "0x0", "bitwidth": 16},
              F("udp", "len"), {"type": "hexstr", "value": "0x11", "bitwidth": 16},
              F("udp", "sport"), F("udp", "dport"), F("udp", "len"),
              {"type": "payload", "value": None}]
    p.calculation("udp_csum", "csum16", inputs)
    p.checksum("udp_chk", ("udp", "csum"), "udp_csum", cond=E("d2b", None, F("udp", "$valid$")),
               verify=False)
    p.action("out", [], [set_egress(C(1, 9)), assign(F("udp", "dport"), C(4242, 16))])
    p.call("ingress", "tbl", "out")
    p.deparse("ethernet", "ipv6", "udp")
    e = make_engine(p)
    pkt = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / sUDP(sport=5, dport=6) / \
        Raw(b"hello world!!")
    (_, out), = e.process(0, raw(pkt))
    got = Ether(out)
    assert got[sUDP].dport == 4242
    want = got.copy()
    del want[sUDP].chksum
    assert got[sUDP].chksum == Ether(raw(want))[sUDP].chksum


def test_deparser_emits_valid_headers_in_order_and_skips_invalid():
    p = l2_program()
    p.header("extra", [("tag", 16)])
    p.action("add_extra", [], [prim("add_header", H("extra")),
                               assign(F("extra", "tag"), C(0xBEEF, 16)),
                               prim("remove_header", H("ipv4")),
                               set_egress(C(4, 9))])
    p.call("ingress", "tbl_extra", "add_extra")
    p.init("ingress", "tbl_extra")
    p.deparse("extra", "ethernet", "ipv4")
    e = make_engine(p)
    eth = Ether(dst=MAC_A, type=0x0800)
    frame = raw(eth / IP() / Raw(b"pl"))
    (port, out), = e.process(0, frame)
    assert port == 4
    assert out == b"\xbe\xef" + raw(eth) + b"pl"
