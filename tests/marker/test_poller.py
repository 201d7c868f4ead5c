"""The TCP connection poller: `ss` parsing, start/end tracking, and a real connection."""
from __future__ import annotations

import ipaddress
import socket

import pytest

from marker.poller import Connection, ConnectionTracker, SsParseError, list_connections, parse_ss

SS_OUTPUT = """\
LISTEN 0      128      0.0.0.0:22       0.0.0.0:*
ESTAB  0      0      10.0.1.1:40000  10.0.1.2:5201
ESTAB  0      36         [2001:db8:1::1]:40001     [2001:db8:1::2]:5201
TIME-WAIT 0   0      [::ffff:10.0.1.1]:40002 [::ffff:10.0.1.2]:443
ESTAB  0      0      [fe80::1%h1-eth0]:22 [fe80::2%h1-eth0]:50000
"""


def test_parse_ss_lines():
    conns = parse_ss(SS_OUTPUT)
    assert [c.state for c in conns] == ["ESTAB", "ESTAB", "TIME-WAIT", "ESTAB"]
    assert conns[1].local == ipaddress.ip_address("2001:db8:1::1") and conns[1].peer_port == 5201
    assert conns[2].local == ipaddress.ip_address("10.0.1.1")  # v4-mapped -> IPv4
    assert conns[3].local == ipaddress.ip_address("fe80::1")  # zone id dropped


@pytest.mark.parametrize("bad", ["ESTAB 0 0 10.0.0.1:1", "ESTAB 0 0 10.0.0.1 10.0.0.2:5", "ESTAB 0 0 nohost:1 1.2.3.4:5"])
def test_parse_ss_refuses_garbage(bad):
    with pytest.raises(SsParseError):
        parse_ss(bad)


def _c(state: str, lport: int, pport: int) -> Connection:
    return Connection(state, ipaddress.ip_address("::1"), lport, ipaddress.ip_address("::2"), pport)


def test_tracker_ignores_preexisting_and_matches_ports():
    t = ConnectionTracker(ports=[5201])
    assert t.update([_c("ESTAB", 40000, 5201)]) == ([], [])  # existed before: ignored
    started, ended = t.update([_c("ESTAB", 40000, 5201), _c("ESTAB", 40001, 5201), _c("ESTAB", 40002, 80)])
    assert [k.src_port for k in started] == [40001] and ended == []
    started, ended = t.update([_c("FIN-WAIT-1", 40001, 5201)])
    assert started == [] and [k.src_port for k in ended] == [40001]
    assert t.update([]) == ([], [])


def test_tracker_without_ports_matches_everything():
    t = ConnectionTracker()
    t.update([])
    started, _ = t.update([_c("ESTAB", 1, 2), _c("SYN-SENT", 3, 4)])
    assert [k.src_port for k in started] == [1]


def test_real_connection_is_listed():
    srv = socket.socket(socket.AF_INET6)
    srv.bind(("::1", 0))
    srv.listen()
    cli = socket.create_connection(("::1", srv.getsockname()[1]))
    acc, _ = srv.accept()
    try:
        mine = [c for c in list_connections() if c.local_port == cli.getsockname()[1]]
        assert mine and mine[0].state == "ESTAB" and mine[0].peer_port == srv.getsockname()[1]
    finally:
        for s in (cli, acc, srv):
            s.close()
