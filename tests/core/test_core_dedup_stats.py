"""FireflyDeduplicator (apply once) and FireflyStats (per deviation, per application)."""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from scitags_core.firefly import Deviation
from scitags_core.firefly_dedup import FireflyDeduplicator, message_key
from scitags_core.firefly_parse import parse_firefly
from scitags_core.firefly_receiver import FireflyReceiver
from scitags_core.firefly_stats import OTHER_APPLICATIONS, FireflyStats, application_of
from tests.core.real_senders import FLOWD_GO_APP, XROOTD_APP, flowd_go, xrootd_pair

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def xrootd_records(state: str = "start"):
    return [parse_firefly(d) for d in xrootd_pair(state, "192.0.2.1", 40000, "192.0.2.2", 1094,
                                                  3, 14, start=T0, now=T0)]


def test_xrootd_two_directions_are_not_duplicates_but_a_repeat_is() -> None:
    clock = Clock()
    dedup = FireflyDeduplicator(window_s=2.0, clock=clock)
    forward, backward = xrootd_records()
    assert message_key(forward) != message_key(backward)
    assert not dedup.is_duplicate(forward)
    assert not dedup.is_duplicate(backward)  # the other direction: applied, counted
    clock.now += 1.0
    assert dedup.is_duplicate(forward) and dedup.is_duplicate(backward)  # the same messages again
    assert dedup.duplicates == 2 and len(dedup) == 2


def test_window_expires_from_the_first_copy() -> None:
    clock = Clock()
    dedup = FireflyDeduplicator(window_s=2.0, clock=clock)
    record = xrootd_records()[0]
    assert not dedup.is_duplicate(record)
    clock.now += 1.9
    assert dedup.is_duplicate(record)
    clock.now += 0.2  # 2.1 s after the first copy: a new message (e.g. a re-announce)
    assert not dedup.is_duplicate(record)
    assert dedup.duplicates == 1


def test_state_and_content_make_the_key() -> None:
    dedup = FireflyDeduplicator(clock=Clock())
    start, end = xrootd_records("start")[0], xrootd_records("end")[0]
    assert not dedup.is_duplicate(start) and not dedup.is_duplicate(end)
    # the same bytes through another path (in-band copy of a UDP firefly) are the same message
    header_differs = parse_firefly(xrootd_pair("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14,
                                               start=T0, now=T0, host="other")[0])
    assert dedup.is_duplicate(header_differs)
    other_activity = parse_firefly(xrootd_pair("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 15,
                                               start=T0, now=T0)[0])
    assert not dedup.is_duplicate(other_activity)


def test_memory_is_bounded() -> None:
    clock = Clock()
    dedup = FireflyDeduplicator(window_s=60, max_entries=100, clock=clock)
    records = [parse_firefly(flowd_go("start", "192.0.2.1", port, "192.0.2.2", 1094, 3, 14, start=T0))
               for port in range(1, 301)]
    for record in records:
        assert not dedup.is_duplicate(record)
    assert len(dedup) == 100 and dedup.forgotten_early == 200
    assert dedup.is_duplicate(records[-1]) and not dedup.is_duplicate(records[0])
    snap = dedup.snapshot()
    assert snap["tracked"] == 100 and snap["duplicates"] == 1 and snap["max_entries"] == 100
    with pytest.raises(ValueError):
        FireflyDeduplicator(window_s=0)


def test_stats_per_application_and_deviation() -> None:
    stats = FireflyStats()
    go = parse_firefly(flowd_go("end", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, end=T0))
    for record in xrootd_records():
        stats.count_accepted(record)
    stats.count_accepted(go)
    stats.count_duplicate(go)
    snap = stats.snapshot()
    assert snap["deviations"] == {"context-before-flow-id": 2, "end-without-start-time": 1,
                                  "no-syslog-header": 1, "syslog-timestamp-nil": 2}
    assert snap["applications"][XROOTD_APP] == {
        "accepted": 2, "duplicates": 0,
        "deviations": {"context-before-flow-id": 2, "syslog-timestamp-nil": 2}}
    assert snap["applications"][FLOWD_GO_APP] == {
        "accepted": 1, "duplicates": 1,
        "deviations": {"end-without-start-time": 1, "no-syslog-header": 1}}
    assert snap["duplicates"] == 1
    samples = set((name, tuple(sorted(labels.items())), value) for name, labels, value in stats.samples())
    assert ("deviations", (("application", FLOWD_GO_APP), ("deviation", "no-syslog-header")), 1) in samples
    assert ("accepted", (("application", XROOTD_APP),), 2) in samples


def test_stats_prometheus_exposition() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    stats = FireflyStats()
    stats.count_accepted(parse_firefly(flowd_go("end", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, end=T0)))
    registry = CollectorRegistry()
    registry.register(stats)
    text = generate_latest(registry).decode()
    assert ('scitags_fireflies_deviations_total{application="flowd-go-v2.4.2",'
            'deviation="end-without-start-time"} 1.0') in text
    assert 'scitags_fireflies_by_application_total{application="flowd-go-v2.4.2"} 1.0' in text
    assert 'scitags_fireflies_duplicates_total{application="flowd-go-v2.4.2"} 0.0' in text


def test_application_labels_are_bounded_and_clean() -> None:
    stats = FireflyStats(max_applications=3)
    for n in range(10):
        stats.count_accepted(parse_firefly(flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14,
                                                    start=T0, application=f"app{n}")))
    apps = stats.snapshot()["applications"]
    assert len(apps) == 4 and apps[OTHER_APPLICATIONS]["accepted"] == 7
    weird = parse_firefly(flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0,
                                   application="x\n" + "y" * 100))
    assert application_of(weird) == "x?" + "y" * 62
    no_app = parse_firefly(b"<134>1 - h flowd - firefly-json - " + flowd_go(
        "start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0).replace(
        b',"application":"flowd-go-v2.4.2"', b""))
    assert no_app.application is None and application_of(no_app) == "flowd"


def test_stats_are_thread_safe() -> None:
    stats = FireflyStats()
    record = xrootd_records()[0]

    def hammer() -> None:
        for _ in range(5000):
            stats.count_accepted(record)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.snapshot()["applications"][XROOTD_APP]["accepted"] == 20000


def test_receivers_share_one_stats_and_report_it() -> None:
    shared = FireflyStats()
    udp, inband = FireflyReceiver(port=0, stats=shared), FireflyReceiver(port=0, stats=shared)
    pair = xrootd_pair("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0, now=T0)
    assert udp.handle_datagram(pair[0], ("192.0.2.1", 1)) is not None
    assert inband.handle_datagram(pair[1], ("192.0.2.2", 1)) is not None
    assert udp.handle_datagram(b"{truncated", ("192.0.2.1", 1)) is None
    assert shared.snapshot()["applications"][XROOTD_APP]["accepted"] == 2
    counters = udp.counters()
    assert counters.deviations == {Deviation.SYSLOG_TIMESTAMP_NIL: 1, Deviation.CONTEXT_BEFORE_FLOW_ID: 1}
    assert counters.as_dict()["applications"][XROOTD_APP]["accepted"] == 2
    assert counters.as_dict()["rejected"] == {"json-syntax": 1}
