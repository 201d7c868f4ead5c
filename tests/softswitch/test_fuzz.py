"""Fuzzing the packet path: random and truncated frames never raise out of the engine,
never trip its internal-error counter, and the switch keeps forwarding afterwards."""
from __future__ import annotations

from conftest import make_engine
from hypothesis import HealthCheck, given, settings, strategies as st
from p4json import (ETHERNET, IPV4, IPV6, UDP, C, E, F, H, P, Program, X, assign, extract,
                    prim, set_egress)
from scapy.layers.inet import IP, UDP as sUDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw, raw

GOOD = raw(Ether(dst="00:00:00:00:00:02") / IPv6(fl=0x12345) / sUDP(dport=10514) / Raw(b"ok"))


def fuzz_program() -> Program:
    """A parser with many paths (VLAN, IPv4 with options via advance, IPv6, UDP, a
    checksum) and an ingress that clones, counts by a header-derived index and forwards."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("vlan", [("pcp", 3), ("dei", 1), ("vid", 12), ("etype", 16)])
    p.header("ipv4", IPV4)
    p.header("ipv6", IPV6)
    p.header("udp", UDP)
    p.metadata("meta", [("opt_bits", 32), ("etype", 16)])
    p.state("start", [extract("ethernet"),
                      {"op": "set", "parameters": [F("meta", "etype"), F("ethernet", "etype")]}],
            [F("ethernet", "etype")],
            [("0x8100", None, "vlan"), ("0x0800", None, "ipv4"), ("0x86dd", None, "ipv6"),
             (None, None, None)])
    p.state("vlan", [extract("vlan")], [F("vlan", "etype")],
            [("0x0800", None, "ipv4"), ("0x86dd", None, "ipv6"), (None, None, None)])
    p.state("ipv4", [extract("ipv4"),
                     {"op": "verify", "parameters": [E(">=", F("ipv4", "ihl"), C(5, 4)), C(4)]},
                     {"op": "set", "parameters": [F("meta", "opt_bits"),
                                                  X(E("<<", E("-", F("ipv4", "ihl"), C(5)),
                                                      C(5)))]},
                     {"op": "advance", "parameters": [F("meta", "opt_bits")]}],
            [F("ipv4", "proto")], [("0x11", None, "udp"), (None, None, None)])
    p.state("ipv6", [extract("ipv6")], [F("ipv6", "next_hdr")],
            [("0x11", None, "udp"), (None, None, None)])
    p.state("udp", [extract("udp")])
    p.calculation("c4", "csum16", [F("ipv4", f) for f, _ in IPV4 if f != "csum"])
    p.checksum("k4", ("ipv4", "csum"), "c4", cond=E("d2b", None, F("ipv4", "$valid$")))
    p.counter("by_label", 64)
    p.field_list(1, [])  # p4c emits an empty field list for a plain clone()
    p.action("work", [("port", 9)], [
        prim("count", {"type": "counter_array", "value": "by_label"},
             X(E("&", F("ipv6", "flow_label"), C(0xFF, 20)))),  # index may exceed size
        prim("clone_ingress_pkt_to_egress", C(1), C(1)),
        prim("remove_header", H("vlan")),
        assign(F("ethernet", "etype"), F("meta", "etype")),
        set_egress(P(0))])
    p.table("ingress", "t", [("ternary", "ethernet", "dst")], ["work", "NoAction"],
            default=("work", [2]))
    p.deparse("ethernet", "vlan", "ipv4", "ipv6", "udp")
    return p


ENGINE = make_engine(fuzz_program())
ENGINE.clone_session_set(1, [(3, 0)])

frames = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda f, n: f[:n], st.sampled_from([
        raw(Ether() / IP(ihl=6, options=[]) / sUDP()),
        raw(Ether() / IP(ihl=15) / sUDP() / Raw(b"x" * 60)),
        raw(Ether() / Dot1Q() / IPv6() / sUDP() / Raw(b"y" * 20)),
        raw(Ether() / Dot1Q() / IP() / sUDP()),
        raw(Ether() / IPv6(fl=0xFFFFF) / sUDP()),
        GOOD]), st.integers(0, 120)),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([raw(Ether(type=t)) for t in (0x0800, 0x86DD, 0x8100)]),
              st.binary(max_size=80)),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames, port=st.integers(0, 511))
def test_random_frames_never_raise(frame, port):
    out = ENGINE.process(port, frame)
    assert isinstance(out, list)
    for p, f in out:
        assert isinstance(p, int) and isinstance(f, bytes)
    assert ENGINE.stats().get("errors", 0) == 0, ENGINE.last_error


def test_switch_keeps_forwarding_after_fuzzing():
    out = ENGINE.process(1, GOOD)
    assert [p for p, _ in out] == [3, 2]
    assert out[0][1] == GOOD and out[1][1] == GOOD


def test_fuzzing_exercised_the_engine():
    # runs after the property test in file order: hundreds of frames went through
    assert ENGINE.stats()["rx"] >= 300


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(frames, min_size=1, max_size=20))
def test_running_switch_survives_random_frames(batch):
    """Random frames through a running SoftSwitch's reader thread; a good frame still
    goes through afterwards."""
    from softswitch.ports import MemoryPort
    from softswitch.switch import SoftSwitch
    ports = {p: MemoryPort(f"m{p}") for p in (1, 2, 3)}
    sw = SoftSwitch(ENGINE)
    for p, io in ports.items():
        sw.add_port(p, io)
    sw.start()
    try:
        for f in batch:
            ports[1].put(f)
        ports[1].put(GOOD)
        deadline = 50
        while deadline:
            got = ports[2].get(0.1)
            if got == GOOD:
                break
            deadline -= 1
        assert deadline, "the good frame did not come out"
        assert sw.counters.get("errors", 0) == 0
    finally:
        sw.stop()
