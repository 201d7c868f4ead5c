"""The exporting process on real UDP sockets: templates, message sizes, sequence numbers per
collector and observation domain, template refresh, and the bad conditions (full queue,
failing sends, records that cannot be encoded) -- counted, never blocking, never crashing."""
from __future__ import annotations

import socket
import time
from ipaddress import ip_address

import pytest

from controller.ipfix.encoding import SCITAGS_PEN, TEMPLATES, AggregateRecord, FlowRecord
from controller.ipfix.exporter import IpfixExporter, parse_collector
from tests.ipfix import wire
from tests.ipfix.wire import Sink

NOW_MS = 1_796_000_000_000


def flow(i: int, domain: int = 7, v6: bool = False, **kw) -> FlowRecord:
    src = ip_address(f"2001:db8::{i + 1:x}" if v6 else f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    dst = ip_address("2001:db8:1::1" if v6 else "192.0.2.1")
    base = dict(domain_id=domain, switch="s1", src=src, dst=dst, protocol=6, src_port=1024 + i % 60000,
                dst_port=443, start_ms=NOW_MS, end_ms=NOW_MS + 1000, packet_delta=i + 1,
                octet_delta=1000 * (i + 1), packet_total=i + 1, octet_total=1000 * (i + 1),
                end_reason=2, experiment=3, activity=14)
    base.update(kw)
    return FlowRecord(**base)


@pytest.fixture
def sinks():
    made = [Sink(), Sink()]
    yield made
    for s in made:
        s.close()


def test_templates_on_the_wire(sinks):
    exp = IpfixExporter([sinks[0].addr]).start()
    try:
        exp.submit(flow(0))
        assert exp.flush()
    finally:
        exp.stop()
    msgs = sinks[0].messages()
    assert len(msgs) == 1 and msgs[0].version == 10 and msgs[0].domain == 7
    t = msgs[0].templates
    assert sorted(t) == [256, 257, 258]
    assert t[256] == [(8, 4, 0), (12, 4, 0), (4, 1, 0), (7, 2, 0), (11, 2, 0), (152, 8, 0),
                      (153, 8, 0), (86, 8, 0), (85, 8, 0), (2, 8, 0), (1, 8, 0), (136, 1, 0),
                      (1200, 2, SCITAGS_PEN), (1201, 1, SCITAGS_PEN), (300, 32, 0)]
    assert t[257][:6] == [(27, 16, 0), (28, 16, 0), (4, 1, 0), (7, 2, 0), (11, 2, 0), (31, 4, 0)]
    assert t[257][6:] == t[256][5:]
    assert t[258] == [(60, 1, 0), (152, 8, 0), (153, 8, 0), (2, 8, 0), (1, 8, 0), (143, 4, 0),
                      (1200, 2, SCITAGS_PEN), (1201, 1, SCITAGS_PEN), (300, 32, 0)]
    assert wire.data_records(msgs[0], t) == 1
    assert msgs[0].sequence == 0


def test_sequence_numbers_per_collector_and_domain(sinks):
    exp = IpfixExporter([s.addr for s in sinks], max_message=512).start()
    try:
        for i in range(500):
            assert exp.submit(flow(i, domain=7, v6=bool(i % 3 == 0)))
        for i in range(300):
            exp.submit(AggregateRecord(9, "s2", "flowlabel", 3, i % 64, NOW_MS, NOW_MS + 60_000, i, i * 100))
        assert exp.flush()
    finally:
        exp.stop()
    for sink in sinks:
        msgs = sink.messages()
        templates = next(m.templates for m in msgs if m.templates)
        by_domain: dict[int, list[wire.Message]] = {}
        for m in msgs:
            assert m.length <= 512
            by_domain.setdefault(m.domain, []).append(m)
        assert sorted(by_domain) == [7, 9]
        for domain, want in ((7, 500), (9, 300)):
            seq = 0
            assert by_domain[domain][0].templates, "templates first for each domain"
            for m in by_domain[domain]:
                assert m.sequence == seq  # records sent before this message
                seq += wire.data_records(m, templates)
            assert seq == want
    st = exp.status()
    assert st["submitted"] == 800 and st["dropped"] == {"queue-full": 0, "bad-record": 0}
    assert [c["records"] for c in st["collectors"]] == [800, 800]


def test_templates_refreshed_without_data(sinks):
    exp = IpfixExporter([sinks[0].addr], template_refresh_s=0.3).start()
    try:
        exp.submit(flow(0))
        exp.flush()
        time.sleep(1.0)
    finally:
        exp.stop()
    msgs = sinks[0].messages()
    refreshes = [m for m in msgs[1:] if m.templates and not m.data_sets]
    assert len(refreshes) >= 2
    assert all(m.sequence == 1 for m in refreshes)  # template-only messages carry no records


def test_full_queue_drops_and_counts_without_blocking(sinks):
    exp = IpfixExporter([sinks[0].addr], queue_size=100)  # sender not started: nothing drains
    accepted = sum(exp.submit(flow(i)) for i in range(1000))
    assert accepted == 100
    st = exp.status()
    assert st["queue_depth"] == 100 and st["dropped"]["queue-full"] == 900
    fams = {f.name: f for f in exp.metric_families()}
    dropped = {tuple(s.labels.values()): s.value for s in fams["scitags_ipfix_records_dropped"].samples}
    assert dropped[("", "queue-full")] == 900
    exp.start()
    try:
        assert exp.flush()
    finally:
        exp.stop()
    msgs = sinks[0].messages()
    assert sum(wire.data_records(m, msgs[0].templates) for m in msgs) == 100
    assert exp.status()["collectors"][0]["records"] == 100


def test_failing_send_is_counted_and_the_caller_goes_on(sinks):
    # Broadcast without SO_BROADCAST: every sendto fails locally (EACCES); nothing leaves.
    exp = IpfixExporter([("255.255.255.255", 9), sinks[0].addr]).start()
    try:
        for i in range(50):
            assert exp.submit(flow(i))
        assert exp.flush()
    finally:
        exp.stop()
    bad, good = exp.status()["collectors"]
    assert bad["dropped"]["send-error"] == 50 and bad["records"] == 0 and bad["error"]
    assert good["records"] == 50 and good["dropped"]["send-error"] == 0


def test_unencodable_record_costs_only_itself(sinks):
    exp = IpfixExporter([sinks[0].addr]).start()
    try:
        exp.submit(flow(0))
        exp.submit(AggregateRecord(7, "s1", "no-such-source", 3, 1, NOW_MS, NOW_MS, 1, 1))
        exp.submit(flow(1))
        assert exp.flush()
    finally:
        exp.stop()
    st = exp.status()
    assert st["dropped"]["bad-record"] == 1 and st["collectors"][0]["records"] == 2


def test_parse_collector():
    assert parse_collector("127.0.0.1:4739") == ("127.0.0.1", 4739)
    assert parse_collector("[::1]:4739") == ("::1", 4739)
    assert parse_collector("collector.example.org:2055") == ("collector.example.org", 2055)
    for bad in ("127.0.0.1", "host:", "host:0", "host:70000", ":4739"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_collector(bad)


def test_out_of_range_values_saturate():
    from controller.ipfix.encoding import FLOW_V4, encode_record
    raw = encode_record(flow(0, octet_delta=-5, experiment=70_000, activity=300))
    assert len(raw) == FLOW_V4.fixed.size
    fields = FLOW_V4.fixed.unpack(raw)
    assert fields[10] == 0 and fields[12:14] == (0xFFFF, 0xFF)  # octetDeltaCount, 8057/1200, 8057/1201
    assert fields[14].rstrip(b"\0") == b"s1"


def test_collector_that_does_not_keep_up_costs_the_caller_nothing(sinks):
    """A collector that reads nothing while the export runs (its socket buffer overflows):
    submit and flush go on, the kernel drops at the collector, and the sequence numbers of
    what arrives show the collector the gap."""
    slow = sinks[0]
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    exp = IpfixExporter([slow.addr]).start()
    try:
        assert exp.submit_many([flow(i) for i in range(20_000)]) == 20_000
        assert exp.flush(30)
    finally:
        exp.stop()
    assert exp.status()["collectors"][0]["records"] == 20_000  # all handed to the network
    msgs = slow.messages()
    templates = {t.template_id: [(e.element_id, e.length, e.enterprise) for e in t.elements]
                 for t in TEMPLATES}  # the first message (with them) may be among the lost
    got = sum(wire.data_records(m, templates) for m in msgs)
    assert 0 < got < 20_000
    last = msgs[-1]
    assert last.sequence + wire.data_records(last, templates) > got  # the gap is visible
