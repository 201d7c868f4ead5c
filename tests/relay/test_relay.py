"""FireflyRelay with real receivers: the reference scitags 1.1.7 listener plugin and a raw
UDP collector; every relayed message validated with jsonschema against firefly.schema.json."""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from controller.relay import FireflyRelay, FlowEnded, parse_target
from labnet.waiting import poll
from scitags_core.firefly import Deviation, FlowState
from scitags_core.firefly_parse import parse_firefly
from scitags_core.schemas import firefly_validator
from tests.core.real_senders import FLOWD_GO_APP, XROOTD_APP, dcache, flowd_go, xrootd_pair

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=UTC)
T1 = dt.datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
PEER = ("192.0.2.1", 50000)


def valid(doc: dict) -> bool:
    errors = list(firefly_validator().iter_errors(doc))
    assert not errors, (doc, errors[0].message)
    return True


def ended(src="192.0.2.1", sport=40000, dst="192.0.2.2", dport=1094, reason="end", **kw) -> FlowEnded:
    values = dict(protocol="tcp", src_ip=src, src_port=sport, dst_ip=dst, dst_port=dport,
                  experiment_id=3, activity_id=14, reason=reason, started=T0.timestamp(),
                  ended=T1.timestamp(), sent_bytes=1_000_000, sent_packets=700,
                  received_bytes=999_000, received_packets=699)
    values.update(kw)
    return FlowEnded(**values)


def relay_to(*ports: int, **kw) -> FireflyRelay:
    return FireflyRelay([("127.0.0.1", p) for p in ports], hostname="gw.example.org", **kw).start()


def test_reference_listener_accepts_everything_we_relay(reference_listener, collector, reference_config) -> None:
    import scitags
    from scitags.backends import udp_firefly
    np_end = udp_firefly.firefly_json(
        scitags.FlowID("end", "tcp", "192.0.2.5", 41000, "192.0.2.6", 443, 2, 3, None,
                       "2026-11-25T10:05:00+00:00"), {"experiments": {}, "activities": {}}, None, {})
    inputs = [
        flowd_go("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0),  # bare JSON
        flowd_go("ongoing", "2001:db8::1", 40001, "2001:db8::2", 1094, 3, 14, start=T0, now=T1,
                 prepend_syslog=True, skops={"tcpInfo": {"rtt": 5}}),
        flowd_go("end", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, end=T1),  # "start-time": ""
        ("<134>1 2026-11-25T10:05:00+00:00 dtn flowd - firefly-json - " + json.dumps(np_end)).encode(),
        *xrootd_pair("start", "192.0.2.3", 40002, "192.0.2.4", 1094, 2, 3, start=T0, now=T0),
        dcache("start", "192.0.2.7", 40003, "192.0.2.8", 1094, 3, 14, start=T0, now=T0,
               sender_ip="192.0.2.7"),
    ]
    records = [parse_firefly(d) for d in inputs]
    assert all(r.deviations for r in records)
    relay = relay_to(reference_listener.port, collector.port, end_wait_s=0.3)
    try:
        for record in records:
            assert relay.on_firefly(record, PEER)
        assert relay.on_flow_ended(ended())  # the flowd-go flow was removed on its end
        assert relay.on_flow_ended(ended("192.0.2.9", 1, "192.0.2.10", 2, reason="idle:s1"))
        got = reference_listener.take(len(records) + 1)
    finally:
        relay.stop()
    assert len(got) == len(records) + 1, got
    by_key = {(f.state, f.src, f.src_port, f.dst, f.dst_port): f for f in got}
    assert len(by_key) == len(got)
    for record in records:
        flow = by_key[(record.state.value, str(record.src_ip), record.src_port, str(record.dst_ip),
                       record.dst_port)]
        assert (flow.exp, flow.act, flow.prot) == (record.experiment_id, record.activity_id, "tcp")
        if record.state is FlowState.END:
            assert flow.start_time and flow.end_time  # repaired: the reference reads both
    flowd_go_end = by_key[("end", "192.0.2.1", 40000, "192.0.2.2", 1094)]
    assert flowd_go_end.start_time == T0.isoformat(timespec="microseconds")  # the flow's start
    idle = by_key[("end", "192.0.2.9", 1, "192.0.2.10", 2)]
    assert idle.end_time == T1.isoformat(timespec="microseconds")
    # The same datagrams, as the collector got them: all schema-valid v1 with the header.
    assert poll(lambda: len(collector.datagrams) == len(got), timeout=5)
    for data in collector.datagrams:
        assert data.startswith(b"<134>1 2") and b" firefly-json - {" in data
    docs = collector.documents()
    assert all(valid(doc) for doc in docs)
    apps = [doc["context"].get("application") for doc in docs]
    assert apps.count(FLOWD_GO_APP) == 3 and apps.count(XROOTD_APP) == 2 and "scitags-p4" in apps
    status = relay.status()
    assert status["relayed"] == len(got) and status["dropped_total"] == 0
    assert status["sent"] == {f"127.0.0.1:{reference_listener.port}": len(got),
                              f"127.0.0.1:{collector.port}": len(got)}
    assert status["repaired"] == len(records) and status["synthesized_ends"] == {"idle-timeout": 1}


def _by_state(collector, state: str) -> list[dict]:
    return [d for d in collector.documents() if d["flow-lifecycle"]["state"] == state]


@pytest.mark.parametrize("counters_first", [False, True])
def test_end_carries_the_network_usage(collector, counters_first: bool) -> None:
    end = parse_firefly(flowd_go("end", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, end=T1))
    relay = relay_to(collector.port, end_wait_s=5)
    try:
        if counters_first:  # the controller removed the flow before the hook ran
            relay.on_flow_ended(ended())
            relay.on_firefly(end, PEER)
        else:
            relay.on_firefly(end, PEER)
            time.sleep(0.2)
            assert collector.datagrams == []  # held for the counters
            relay.on_flow_ended(ended())
        assert poll(lambda: len(collector.datagrams) == 1, timeout=5)
    finally:
        relay.stop()
    (doc,) = collector.documents()
    assert valid(doc)
    assert doc["usage"] == {"received": 999_000, "sent": 1_000_000}
    assert doc["scitags-p4"]["network"] == {"sent-bytes": 1_000_000, "sent-packets": 700,
                                            "received-bytes": 999_000, "received-packets": 699}
    assert doc["scitags-p4"]["repaired"] == ["no-syslog-header", "end-without-start-time"]
    assert doc["flow-lifecycle"]["start-time"] == T0.isoformat(timespec="microseconds")
    assert doc["flow-lifecycle"]["end-time"] == T1.isoformat(timespec="microseconds")
    assert doc["context"]["application"] == FLOWD_GO_APP
    header = collector.datagrams[0].decode().split(" ")
    assert header[2] == PEER[0]  # bare JSON had no HOSTNAME: the sender's address
    assert relay.status()["with_usage"] == 1


def test_end_of_an_unknown_flow_goes_out_as_it_is(collector) -> None:
    end = parse_firefly(xrootd_pair("end", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14,
                                    start=T0, now=T1)[0])
    relay = relay_to(collector.port, end_wait_s=0.2)
    try:
        relay.on_firefly(end, PEER)
        assert poll(lambda: len(collector.datagrams) == 1, timeout=5)
    finally:
        relay.stop()
    (doc,) = collector.documents()
    assert valid(doc) and "usage" not in doc and "network" not in doc["scitags-p4"]
    assert list(doc)[:4] == ["version", "flow-lifecycle", "flow-id", "context"]  # order repaired
    assert collector.datagrams[0].split(b" ")[1] == b"2026-11-25T10:05:00.000000+00:00"  # nil TS repaired
    assert collector.datagrams[0].split(b" ")[2] == b"xrd1.example.org"


@pytest.mark.parametrize("reason, word", [("idle:s2", "idle-timeout"), ("evicted", "evicted")])
def test_synthesized_end_names_the_reason(collector, reason: str, word: str) -> None:
    relay = relay_to(collector.port)
    try:
        relay.on_flow_ended(ended("2001:db8::1", 5000, "2001:db8::2", 6000, reason=reason,
                                  application="flowd v1.1.7"))
        assert poll(lambda: len(collector.datagrams) == 1, timeout=5)
    finally:
        relay.stop()
    (doc,) = collector.documents()
    assert valid(doc)
    assert doc["flow-lifecycle"]["state"] == "end" and doc["flow-id"]["afi"] == "ipv6"
    assert doc["scitags-p4"]["end-reason"] == word and doc["scitags-p4"]["removed"] == reason
    assert doc["scitags-p4"]["synthesized"] is True
    assert doc["context"] == {"experiment-id": 3, "activity-id": 14, "application": "flowd v1.1.7"}
    assert doc["usage"] == {"received": 999_000, "sent": 1_000_000}
    record = parse_firefly(collector.datagrams[0], strict=True)
    assert record.deviations == (Deviation.EXTRA_MEMBERS,) and record.syslog_hostname == "gw.example.org"
    assert relay.status()["synthesized_ends"] == {word: 1}


def test_each_message_once_but_both_xrootd_directions(collector) -> None:
    pair = [parse_firefly(d) for d in xrootd_pair("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14,
                                                  start=T0, now=T0)]
    relay = relay_to(collector.port)
    try:
        for record in pair + pair + [pair[0]]:  # the in-band copies of the same two messages
            relay.on_firefly(record, PEER)
        assert poll(lambda: relay.status()["offered"] == 5 and relay.status()["queue_depth"] == 0)
        time.sleep(0.2)
    finally:
        relay.stop()
    assert len(collector.datagrams) == 2
    assert relay.status()["duplicates"] == 3
    src = sorted(doc["flow-id"]["src-ip"] for doc in collector.documents())
    assert src == ["192.0.2.1", "192.0.2.2"]


def test_slow_collector_never_blocks_and_memory_is_bounded(collector) -> None:
    records = [parse_firefly(flowd_go("start", "192.0.2.1", port, "192.0.2.2", 1094, 3, 14, start=T0))
               for port in range(1, 2001)]
    relay = relay_to(collector.port, rate_per_s=20, burst=1, max_queue=50)
    try:
        started = time.monotonic()
        accepted = sum(relay.on_firefly(r, PEER) for r in records)
        offering = time.monotonic() - started
        status = relay.status()
        assert status["queue_depth"] <= 50
        assert status["dropped"]["queue-full"] == 2000 - accepted >= 2000 - 50 - 5
        assert offering < 10, offering  # waiting on the 20/s budget would take 100 s
    finally:
        relay.stop(timeout=1)
    status = relay.status()
    sent = status["sent"][f"127.0.0.1:{collector.port}"]
    assert sent + status["dropped"]["stopped"] + status["dropped"]["queue-full"] + status["duplicates"] \
        + status["queue_depth"] == 2000
    assert sent <= 5 + 20 * 2  # the rate limit held


def test_parse_target() -> None:
    assert parse_target("collector.example.org:10515") == ("collector.example.org", 10515)
    assert parse_target("[2001:db8::1]:9000") == ("2001:db8::1", 9000)
    assert parse_target("2001:db8::1") == ("2001:db8::1", 10514)
    assert parse_target("127.0.0.1") == ("127.0.0.1", 10514)
    for bad in ("", "host:0", "host:x", "[::1", "[::1]x", ":5"):
        with pytest.raises(ValueError):
            parse_target(bad)
    with pytest.raises(ValueError, match="relay target"):
        FireflyRelay([("no-such-host.invalid", 1)])
    with pytest.raises(ValueError):
        FireflyRelay([])


def test_extension_settings_and_errors() -> None:
    import argparse
    from controller.relay import RelayExtension
    ext = RelayExtension()
    parser = argparse.ArgumentParser()
    ext.add_arguments(parser)
    args = parser.parse_args(["--relay", "127.0.0.1:10600", "--relay", "[::1]:10601", "--relay-rate", "50"])
    assert ext.options(args) == {"targets": ["127.0.0.1:10600", "[::1]:10601"], "rate_per_s": 50.0}
    assert ext.options(parser.parse_args([])) == {}
    ext.configure({"targets": ["127.0.0.1:10600", "[::1]:10601"], "rate_per_s": 50, "max_queue": 10})
    assert ext.relay is not None and ext.relay.targets == [("127.0.0.1", 10600), ("::1", 10601)]
    assert (ext.relay.rate_per_s, ext.relay.max_queue) == (50.0, 10)
    off = RelayExtension()
    off.configure({})
    assert off.relay is None
    for section, error in [({"target": ["x:1"]}, "relay.target: unknown key"),
                           ({"targets": ["x:0"]}, "1..65535"), ({"targets": 5}, "list"),
                           ({"targets": ["127.0.0.1:1"], "rate_per_s": "fast"}, "not a number"),
                           ({"targets": ["127.0.0.1:1"], "burst": 0}, "positive")]:
        with pytest.raises(ValueError, match=error):
            RelayExtension().configure(section)


def test_flow_event_becomes_a_flow_end() -> None:
    from controller.drivers.base import Counts, FlowKey
    from controller.events import FlowEvent
    from controller.relay import flow_ended_from
    key = FlowKey.of("192.0.2.1", "192.0.2.2", "tcp", 40000, 1094)
    event = FlowEvent("ended", "idle-timeout", key, 3, 14,
                      {"s1": Counts(10, 5000), "s2": Counts(9, 4500)},
                      {"path": ["s1", "s2"], "started": T0.timestamp()}, T1.timestamp())
    end = flow_ended_from(event)
    assert (end.protocol, end.src_ip, end.src_port, end.dst_ip, end.dst_port) == (
        "tcp", "192.0.2.1", 40000, "192.0.2.2", 1094)
    assert (end.sent_packets, end.sent_bytes, end.received_packets, end.received_bytes) == (10, 5000, 9, 4500)
    assert (end.reason, end.started, end.ended) == ("idle-timeout", T0.timestamp(), T1.timestamp())
    start = parse_firefly(flowd_go("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0))
    from controller.relay import _flow_id
    assert end.flow_id == _flow_id(start)  # matched against the flow's fireflies


def test_yaml_section_configures_the_relay(tmp_path) -> None:
    from controller.config import load_config
    from controller.relay import RelayExtension
    path = tmp_path / "controller.yaml"
    path.write_text("relay:\n  targets: ['127.0.0.1:10600', '[::1]:10601']\n  rate_per_s: 200\n")
    cfg = load_config(str(path), {}, ["relay"])
    ext = RelayExtension()
    ext.configure(cfg.extensions["relay"])
    assert ext.relay.targets == [("127.0.0.1", 10600), ("::1", 10601)] and ext.relay.rate_per_s == 200.0


def test_held_ends_are_bounded(collector, monkeypatch) -> None:
    import controller.relay as relay_module
    monkeypatch.setattr(relay_module, "MAX_HELD", 3)
    ends = [parse_firefly(flowd_go("end", "192.0.2.1", port, "192.0.2.2", 1094, 3, 14, end=T1))
            for port in range(1, 11)]
    relay = relay_to(collector.port, end_wait_s=60)  # they would wait a minute for counters
    try:
        for record in ends:
            relay.on_firefly(record, PEER)
        # beyond 3 held, the oldest go out at once, as they are (no usage)
        assert poll(lambda: len(collector.datagrams) == 7, timeout=5), len(collector.datagrams)
        assert relay.status()["held_ends"] == 3
        assert sorted(d["flow-id"]["src-port"] for d in collector.documents()) == list(range(1, 8))
        assert all("usage" not in d and valid(d) for d in collector.documents())
    finally:
        relay.stop()
    assert poll(lambda: len(collector.datagrams) == 10, timeout=5)  # stop() flushes the held ones
