"""Flow and aggregate report semantics: active timeout, deltas and totals, end reasons,
late poll deltas, lost flows, re-tagging, intervals, observation domain ids."""
from __future__ import annotations

import pytest

from controller.drivers.base import Counts, FlowKey
from controller.ipfix.encoding import END_ACTIVE, END_FORCED, END_IDLE, END_OF_FLOW
from controller.ipfix.reports import (
    AggregateReports, DomainIds, FlowInfo, FlowReports, default_domain_id, end_reason_code)

T0 = 1_796_000_000.0
KEY = FlowKey.of("2001:db8::1", "2001:db8::2", "tcp", 40000, 443)
INFO = FlowInfo(KEY, experiment=3, activity=14, started=T0, flow_label=0x30038)


def reporter(**kw):
    out: list = []
    rep = FlowReports(lambda recs: out.extend(recs) or len(recs), DomainIds({"s1": 1, "s2": 2}), **kw)
    rep.started(INFO)
    return rep, out


def test_active_timeout_deltas_and_end_totals():
    rep, out = reporter(active_timeout_s=60)
    assert rep.reading("s1", [(KEY, Counts(10, 10_000))], now=T0 + 2) == 0  # first sight: not due yet
    rep.reading("s1", [(KEY, Counts(40, 40_000))], now=T0 + 30)
    assert out == []
    assert rep.reading("s1", [(KEY, Counts(30, 30_000))], now=T0 + 62) == 1
    r = out[-1]
    assert (r.packet_delta, r.octet_delta, r.packet_total, r.octet_total) == (80, 80_000, 80, 80_000)
    assert r.end_reason == END_ACTIVE and r.domain_id == 1 and r.switch == "s1"
    assert (r.start_ms, r.end_ms) == (int(T0 * 1000), int((T0 + 62) * 1000))
    assert (r.experiment, r.activity, r.flow_label) == (3, 14, 0x30038)
    rep.reading("s1", [(KEY, Counts(10, 10_000))], now=T0 + 100)
    assert len(out) == 1  # 38 s after the last record: not due
    rep.sweep(now=T0 + 130)  # due; the flow stopped moving at T0+100 (not in the polls since)
    mid = out[-1]
    assert len(out) == 2 and (mid.octet_delta, mid.octet_total) == (10_000, 90_000)
    assert mid.end_ms == int((T0 + 100) * 1000)  # the reading in which the counts last grew
    rep.ended(KEY, {"s1": (95, 95_500)}, "end", now=T0 + 140)
    end = out[-1]
    assert len(out) == 3 and end.end_reason == END_OF_FLOW
    assert (end.packet_delta, end.octet_delta, end.packet_total, end.octet_total) == (5, 5_500, 95, 95_500)
    assert sum(r.octet_delta for r in out) == 95_500  # deltas add up to the total
    assert len(rep) == 0


def test_no_interim_record_without_new_traffic():
    rep, out = reporter(active_timeout_s=10)
    rep.reading("s1", [(KEY, Counts(5, 500))], now=T0 + 1)
    rep.reading("s1", [(KEY, Counts(0, 0))], now=T0 + 12)
    assert len(out) == 1  # the traffic before the first report counts
    rep.sweep(now=T0 + 40)
    assert len(out) == 1
    rep.ended(KEY, {"s1": (5, 500)}, "idle-timeout", now=T0 + 50)
    assert out[-1].end_reason == END_IDLE and out[-1].octet_delta == 0 and out[-1].octet_total == 500
    assert out[-1].end_ms == int((T0 + 1) * 1000)  # the reading in which the counts last grew


def test_each_switch_is_its_own_observation_domain():
    rep, out = reporter(active_timeout_s=10)
    rep.reading("s1", [(KEY, Counts(5, 500))], now=T0 + 1)
    rep.reading("s2", [(KEY, Counts(4, 400))], now=T0 + 1)
    rep.ended(KEY, {"s1": (6, 600), "s2": (4, 400)}, "eviction", now=T0 + 3)
    assert [(r.domain_id, r.octet_total, r.octet_delta, r.end_reason) for r in out] == [
        (1, 600, 600, END_FORCED), (2, 400, 400, END_FORCED)]


def test_poll_delta_after_the_end_is_not_counted_twice():
    """The controller may hand a poll's deltas to listeners after the flow's end event (whose
    final counts include them): they are ignored."""
    rep, out = reporter(active_timeout_s=10)
    rep.reading("s1", [(KEY, Counts(5, 500))], now=T0 + 1)
    rep.ended(KEY, {"s1": (7, 700)}, "end", now=T0 + 3)
    rep.reading("s1", [(KEY, Counts(2, 200))], now=T0 + 3)
    rep.sweep(now=T0 + 100)
    assert [(r.octet_delta, r.end_reason) for r in out] == [(700, END_OF_FLOW)] and len(rep) == 0


def test_flow_lost_without_end_is_closed_as_forced():
    rep, out = reporter(active_timeout_s=10)
    other = FlowInfo(FlowKey.of("10.0.0.1", "10.0.0.2", "udp", 1, 2), 2, 1, T0)
    rep.started(other)
    rep.reading("s1", [(KEY, Counts(5, 500)), (other.key, Counts(1, 10))], now=T0)
    rep._live.pop(KEY)  # the controller forgot it without an end event
    rep.reading("s1", [(other.key, Counts(1, 10))], now=T0 + 5)
    assert out == []
    rep.reading("s1", [(other.key, Counts(1, 10))], now=T0 + 11)  # the sweep, once per active timeout
    lost = [r for r in out if r.src == KEY.src]
    assert len(lost) == 1 and lost[0].end_reason == END_FORCED and lost[0].octet_delta == 500
    assert rep.records["lost"] == 1 and len(rep) == 1


def test_retagged_flow_reports_the_new_tag_and_keeps_its_start():
    rep, out = reporter(active_timeout_s=10)
    rep.reading("s1", [(KEY, Counts(5, 500))], now=T0 + 1)
    rep.started(FlowInfo(KEY, experiment=2, activity=4, started=T0 + 2))
    rep.ended(KEY, {"s1": (6, 600)}, "end", now=T0 + 5)
    assert (out[-1].experiment, out[-1].activity, out[-1].octet_delta) == (2, 4, 600)
    assert out[-1].start_ms == int(T0 * 1000)


def test_unknown_flow_is_ignored_until_announced():
    out: list = []
    rep = FlowReports(lambda recs: out.extend(recs) or len(recs), DomainIds({}), active_timeout_s=10)
    rep.reading("s1", [(KEY, Counts(5, 500))], now=T0)
    assert len(rep) == 0
    rep.ended(KEY, {"s1": (5, 500)}, "end", now=T0 + 1, info=INFO)  # the end event names the flow
    assert [(r.octet_total, r.end_reason) for r in out] == [(500, END_OF_FLOW)]


def test_end_reason_codes():
    assert [end_reason_code(r) for r in ("end", "idle:s3", "evicted", "whatever")] == [3, 1, 4, 4]
    assert [end_reason_code(r) for r in ("idle-timeout", "eviction")] == [1, 4]


def test_aggregates_per_interval():
    out: list = []
    agg = AggregateReports(lambda recs: out.extend(recs) or len(recs), DomainIds({"s1": 5}), interval_s=60)
    agg._start = T0
    agg.add("s1", "flowlabel", 3, 14, 10, 1000, now=T0 + 1)
    agg.add("s1", "flowlabel", 3, 14, 5, 500, now=T0 + 20)
    agg.add("s1", "flowlabel", 3, None, 1, 100, now=T0 + 20)  # whole-experiment rule
    agg.add("s1", "bucket", -1, -1, 7, 700, now=T0 + 20)  # no tag: not exported
    agg.add("s1", "firefly", 3, 14, 7, 700, now=T0 + 20)  # exported per flow instead
    assert agg.tick(now=T0 + 59) == 0
    assert agg.tick(now=T0 + 61) == 2
    got = sorted((r.experiment, r.activity, r.packet_delta, r.octet_delta, r.start_ms, r.end_ms) for r in out)
    assert got == [(3, 0, 1, 100, int(T0 * 1000), int((T0 + 61) * 1000)),
                   (3, 14, 15, 1500, int(T0 * 1000), int((T0 + 61) * 1000))]
    assert all(r.domain_id == 5 and r.source == "flowlabel" for r in out)
    agg.add("s1", "flowlabel", 3, 14, 1, 10, now=T0 + 70)
    assert agg.flush(now=T0 + 75) == 1 and out[-1].start_ms == int((T0 + 61) * 1000)


def test_domain_ids():
    assert default_domain_id("s1", 1) == 1
    assert default_domain_id("s1", 0) == default_domain_id("s1", None) == default_domain_id("s1", 2**40)
    assert default_domain_id("s1", None) != default_domain_id("s2", None)
    ids = DomainIds({"s1": 1, "s2": 2}, configured={"s2": 100})
    assert (ids("s1"), ids("s2"), ids("s9")) == (1, 100, default_domain_id("s9", None))
    with pytest.raises(ValueError, match="given to both"):
        DomainIds({"s1": 1, "s2": 2}, configured={"s2": 1})
    with pytest.raises(ValueError, match="not in 1..4294967295"):
        DomainIds({}, configured={"s1": 0})
