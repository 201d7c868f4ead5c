"""Marking on the marker's own sockets: the extension-header option (IPV6_HOPOPTS /
IPV6_DSTOPTS) and the flow label, checked byte for byte on packets leaving a veth."""
from __future__ import annotations

import json
import os
import socket
import sys

import pytest

from labnet.veth import in_netns
from marker.flows import make_key
from marker.socketlabel import ExtHdrMarking, labelled_socket
from scitags_core import flowlabel
from tests.marker.netns import ROOT, VETH, VETH_ADDRS, run_in, veth_pair
from tests.marker.wire import capture, open_capture

MARKER = os.path.join(os.path.dirname(sys.executable), "marker")
UDP, TCP, HBH, DST = 17, 6, 0, 60


def option_header(next_header: int, experiment: int, activity: int) -> bytes:
    """SPEC.md: `NH 00 1E 03 E_hi E_lo A 00`, written out by hand."""
    return bytes([next_header, 0x00, 0x1E, 0x03, experiment >> 8, experiment & 0xFF, activity, 0x00])


def test_option_header_bytes_and_bad_input():
    assert ExtHdrMarking("hopbyhop", 3, 14).header() == bytes.fromhex("00001e030003" "0e00")
    assert ExtHdrMarking("destination", 300, 255).header() == bytes.fromhex("00001e03012cff00")
    with pytest.raises(ValueError, match="strategy 'hbh' unknown"):
        ExtHdrMarking("hbh", 3, 14)
    with pytest.raises(ValueError, match="do not fit"):
        ExtHdrMarking("hopbyhop", 1 << 16, 1)
    with pytest.raises(ValueError, match="do not fit"):
        ExtHdrMarking("hopbyhop", 3, 256)


@pytest.fixture
def veth():
    yield from veth_pair()


EXPECTED = {  # strategy -> the headers between IPv6 and the transport, last one's NH = transport
    "hopbyhop": lambda l4, e, a: (option_header(l4, e, a),),
    "destination": lambda l4, e, a: (option_header(l4, e, a),),
    "hopbyhopdestination": lambda l4, e, a: (option_header(DST, e, a), option_header(l4, e, a)),
}


@pytest.mark.netns
@pytest.mark.parametrize("strategy", list(EXPECTED))
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_own_socket_carries_the_option_and_the_label_on_the_wire(veth, strategy, protocol):
    sender, receiver = veth
    port = 42000 + list(EXPECTED).index(strategy) * 2 + (protocol == "tcp")
    key = make_key(protocol, VETH_ADDRS[0], port, VETH_ADDRS[1], 5301)
    label = flowlabel.encode_label(3, 14, entropy=9)
    listener = None
    if protocol == "tcp":
        def listen() -> socket.socket:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.bind((VETH_ADDRS[1], 5301))
            s.listen()
            return s
        listener = in_netns(receiver, listen)
    cap = open_capture(sender, VETH[0])
    try:
        def send() -> None:
            with labelled_socket(key, label, ExtHdrMarking(strategy, 3, 14)) as s:
                s.send(b"x" * 100)
        in_netns(sender, send)
        packets = capture(cap, lambda p: p.key == key, 2 if protocol == "tcp" else 1, timeout=5)
    finally:
        cap.close()
        if listener is not None:
            listener.close()
    assert packets, "nothing of the flow left the veth"
    want = EXPECTED[strategy](TCP if protocol == "tcp" else UDP, 3, 14)
    for pkt in packets:  # TCP: the SYN and the data segment alike
        assert pkt.ext_headers == want and pkt.label == label


@pytest.mark.netns
def test_marker_send_exthdr_puts_both_headers_on_every_packet(veth):
    sender, receiver = veth
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    key = make_key("udp", VETH_ADDRS[0], 42100, VETH_ADDRS[1], 5302)

    def sink() -> socket.socket:  # a bound port: no ICMP unreachable to refuse the next send
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((VETH_ADDRS[1], 5302))
        return s
    rx = in_netns(receiver, sink)
    cap = open_capture(sender, VETH[0])
    try:
        out = run_in(sender, MARKER, "send", "udp", str(key.src), "42100", str(key.dst), "5302", "cms", "Cache",
                     "--seconds", "0.3", "--rate", "1M", "--exthdr", "hopbyhopdestination", "--json", env=env)
        reply = json.loads(out.stdout)
        packets = capture(cap, lambda p: p.key == key, 10_000, timeout=1.0)
    finally:
        cap.close()
        rx.close()
    sent = reply["sent_bytes"] // 1200
    assert reply["exthdr"] == "hopbyhopdestination" and sent > 0 and len(packets) == sent
    label = int(reply["flow"]["flow_label"], 16)
    assert {(p.ext_headers, p.label) for p in packets} == {((option_header(DST, 3, 3), option_header(UDP, 3, 3)),
                                                            label)}
    bad = run_in(sender, MARKER, "send", "udp", "127.0.0.1", "1", "127.0.0.1", "2", "cms", "Cache",
                 "--exthdr", "hopbyhop", env=env, check=False)
    assert bad.returncode == 2 and "extension headers are IPv6 only" in bad.stderr
