"""Fireflies sent by the marker to real UDP sockets, parsed back with the core parser."""
from __future__ import annotations

import socket

import pytest

from marker.fireflies import Collector, FireflySender, utcnow
from marker.flows import make_key, resolve_tag
from scitags_core.firefly_parse import parse_firefly


def _udp(family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)
    return sock


@pytest.mark.parametrize("family, host", [(socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")])
def test_start_ongoing_end_reach_destination_and_collector(registry, family, host):
    dest = _udp(family, host)
    col = _udp(socket.AF_INET6, "::1")
    port = dest.getsockname()[1]
    sender = FireflySender([Collector("::1", col.getsockname()[1])], destination_port=port)
    key = make_key("tcp", host, 40000, host, 5201)
    tag = resolve_tag(registry, "cms", "Cache")
    start = utcnow()
    try:
        for state in ("start", "ongoing", "end"):
            assert sender.send(state, key, tag, start_time=start,
                               end_time=utcnow() if state == "end" else None) == 2
            for sock in (dest, col):
                rec = parse_firefly(sock.recv(9000), strict=True)
                assert rec.state.value == state
                assert (rec.experiment_id, rec.activity_id) == (3, 3)
                assert rec.flow_key[1:] == (key.src, 40000, key.dst, 5201)
                assert rec.afi.value == ("ipv6" if family == socket.AF_INET6 else "ipv4")
                assert rec.start_time == start
                assert rec.deviations == ()
    finally:
        sender.close()
        dest.close()
        col.close()
    assert sender.stats.by_state == {"start": 2, "ongoing": 2, "end": 2}


def test_send_errors_are_counted_not_raised(registry):
    col = _udp(socket.AF_INET6, "::1")
    sender = FireflySender([Collector("::1", col.getsockname()[1])], destination_port=9)
    # broadcast without SO_BROADCAST: the kernel refuses (EACCES) every time
    key = make_key("udp", "127.0.0.1", 1, "255.255.255.255", 2)
    assert sender.send("start", key, resolve_tag(registry, 3, 3), start_time=utcnow()) == 1
    assert sender.stats.errors == 1 and "255.255.255.255" in sender.stats.last_error
    assert parse_firefly(col.recv(9000)).state.value == "start"  # the collector still got it
    sender.close()
    col.close()


@pytest.mark.parametrize("text, expect", [
    ("collector.example", Collector("collector.example", 10514)),
    ("10.0.0.9:9999", Collector("10.0.0.9", 9999)),
    ("[2001:db8::9]:5000", Collector("2001:db8::9", 5000)),
    ("2001:db8::9", Collector("2001:db8::9", 10514)),
])
def test_collector_parsing(text, expect):
    assert Collector.parse(text) == expect


@pytest.mark.parametrize("text", ["host:0", "host:x", "[::1]:70000", ":5"])
def test_bad_collectors_refused(text):
    with pytest.raises(ValueError, match="collector"):
        Collector.parse(text)
