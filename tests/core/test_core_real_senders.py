"""What the deployed senders put on the wire (SPEC.md), parsed: accepted with the named
deviations, or refused with the named reason; and repaired into schema-valid fireflies."""
from __future__ import annotations

import datetime as dt
import ipaddress
import json

import pytest

from scitags_core.firefly import Deviation, FireflyRejected, FlowState, RejectReason
from scitags_core.firefly_build import encode_record, repaired
from scitags_core.firefly_parse import parse_firefly
from scitags_core.schemas import firefly_validator
from tests.core.real_senders import (
    DCACHE_APP, FLOWD_GO_APP, XROOTD_APP, dcache, flowd_go, go_time, xrootd_pair,
)

D, R = Deviation, RejectReason
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=UTC)
T1 = dt.datetime(2026, 11, 25, 10, 5, 0, tzinfo=UTC)


def refused(data: bytes, strict: bool = False) -> FireflyRejected:
    with pytest.raises(FireflyRejected) as info:
        parse_firefly(data, strict=strict)
    return info.value


def json_of(data: bytes) -> dict:
    text = data.decode()
    return json.loads(text[text.index("{"):])


def test_go_time_format_matches_flowd_go() -> None:
    # "2006-01-02T15:04:05.999999-07:00": trailing zeros of the fraction dropped
    assert go_time(T0) == "2026-11-25T10:00:00.25+00:00"
    assert go_time(T1) == "2026-11-25T10:05:00+00:00"
    assert go_time(dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)) == "2026-01-02T03:04:05.123456+00:00"


def test_flowd_go_bare_json_start() -> None:
    data = flowd_go("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0)
    assert data.startswith(b'{"version":1,"flow-lifecycle":{"state":"start",'
                           b'"start-time":"2026-11-25T10:00:00.25+00:00"},')
    record = parse_firefly(data)
    assert record.deviations == (D.NO_SYSLOG_HEADER,)
    assert record.state is FlowState.START and record.start_time == T0
    assert record.src_ip == ipaddress.IPv4Address("192.0.2.1") and record.dst_port == 1094
    assert (record.experiment_id, record.activity_id, record.application) == (3, 14, FLOWD_GO_APP)
    assert (record.syslog_priority, record.syslog_hostname, record.syslog_app, record.syslog_timestamp) == (
        None, None, None, None)
    assert record.to_dict()["deviations"] == ["no-syslog-header"]
    assert refused(data, strict=True).reason is R.NO_SYSLOG_HEADER


def test_flowd_go_bare_json_end_with_empty_start_time() -> None:
    data = flowd_go("end", "2001:db8::1", 40000, "2001:db8::2", 1094, 3, 14, end=T1)
    assert b'"state":"end","start-time":"","end-time":"2026-11-25T10:05:00+00:00"' in data
    record = parse_firefly(data)
    assert record.deviations == (D.NO_SYSLOG_HEADER, D.END_WITHOUT_START_TIME)
    assert record.start_time is None and record.end_time == T1
    # with the header too (prependSyslog: true): the empty TIMESTAMP
    with_header = flowd_go("end", "2001:db8::1", 40000, "2001:db8::2", 1094, 3, 14, end=T1,
                           prepend_syslog=True)
    assert with_header.startswith(b"<134>1  dtn1.example.org flowd-go-v2.4.2 - firefly-json - {")
    record = parse_firefly(with_header)
    assert record.deviations == (D.SYSLOG_TIMESTAMP_EMPTY, D.END_WITHOUT_START_TIME)
    assert record.syslog_hostname == "dtn1.example.org" and record.syslog_app == FLOWD_GO_APP
    assert refused(with_header, strict=True).reason is R.BAD_TIME  # "" is not a date-time


def test_flowd_go_ongoing_with_skops_and_header() -> None:
    data = flowd_go("ongoing", "2001:db8::1", 40000, "2001:db8::2", 1094, 3, 14, start=T0, now=T1,
                    prepend_syslog=True, skops={"tcpInfo": {"rtt": 1200, "bytesAcked": 10}})
    assert data.startswith(b"<134>1 2026-11-25T10:05:00+00:00 dtn1.example.org ")
    record = parse_firefly(data)
    assert record.deviations == (D.EXTRA_MEMBERS,)
    assert record.extra == {"skOps": {"tcpInfo": {"bytesAcked": 10, "rtt": 1200}}}
    assert record.current_time == T1 and record.start_time == T0


def test_flowd_go_html_escaping_in_application() -> None:
    data = flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0, application="a<b>&c")
    assert b'"application":"a\\u003cb\\u003e\\u0026c"' in data
    assert parse_firefly(data).application == "a<b>&c"


def test_reference_np_api_end_has_null_start_time(reference_sender) -> None:
    """flowd 1.1.7's np_api builds FlowID(..., start_time=None, end_time=now) for an end."""
    import scitags
    flow = scitags.FlowID("end", "tcp", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, None,
                          "2026-11-25T10:05:00.000001+00:00")
    document = reference_sender.firefly_json(flow, {"experiments": {}, "activities": {}}, None, {})
    assert document["flow-lifecycle"]["start-time"] is None
    data = ("<134>1 2026-11-25T10:05:00.1+00:00 dtn flowd - firefly-json - " + json.dumps(document)).encode()
    record = parse_firefly(data)
    assert record.deviations == (D.END_WITHOUT_START_TIME,)
    assert record.end_time == dt.datetime(2026, 11, 25, 10, 5, 0, 1, tzinfo=UTC)
    assert refused(data, strict=True).reason is R.WRONG_TYPE


def test_xrootd_pair_is_two_directions_with_context_first() -> None:
    pair = xrootd_pair("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0, now=T0)
    assert pair[0].startswith(b"<134>1 - xrd1.example.org xrootd - firefly-json - {")
    assert pair[0].index(b'"context"') < pair[0].index(b'"flow-id"')
    first, second = (parse_firefly(d) for d in pair)
    for record in (first, second):
        assert record.deviations == (D.SYSLOG_TIMESTAMP_NIL, D.CONTEXT_BEFORE_FLOW_ID)
        assert record.application == XROOTD_APP and record.start_time == T0
    assert (str(first.src_ip), first.src_port, str(first.dst_ip), first.dst_port) == (
        "192.0.2.1", 40000, "192.0.2.2", 1094)
    assert (str(second.src_ip), second.src_port, str(second.dst_ip), second.dst_port) == (
        "192.0.2.2", 1094, "192.0.2.1", 40000)
    end = parse_firefly(xrootd_pair("end", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14,
                                    start=T0, now=T1)[0])
    assert end.state is FlowState.END and end.end_time == T1 and end.start_time == T0


def test_dcache_shape() -> None:
    data = dcache("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0, now=T0,
                  sender_ip="192.0.2.1")
    record = parse_firefly(data)
    assert record.deviations == (D.SYSLOG_HOSTNAME_ADDRESS, D.USAGE_EMPTY, D.EXTRA_MEMBERS)
    assert record.syslog_hostname == "192.0.2.1" and record.application == DCACHE_APP
    assert record.syslog_timestamp == T0 and record.start_time == T0  # Z times: plain RFC 3339
    assert record.extra == {"storage-stats": {"pool": "pool-a", "transferred": 0}}
    assert (record.usage_received, record.usage_sent) == (None, None)
    v6 = dcache("end", "2001:db8::1", 1, "2001:db8::2", 2, 3, 14, start=T0, now=T1, sender_ip="2001:db8::1")
    record = parse_firefly(v6)
    assert record.deviations == (D.SYSLOG_HOSTNAME_ADDRESS, D.EXTRA_MEMBERS)
    assert record.usage_sent == 1_234_567 and record.end_time == T1


@pytest.mark.parametrize("value", ["", None, "-"])
def test_blank_json_times(value) -> None:
    base = json_of(flowd_go("ongoing", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0, now=T1))
    doc = json.loads(json.dumps(base))
    doc["flow-lifecycle"]["current-time"] = value
    doc["flow-lifecycle"]["end-time"] = value
    record = parse_firefly(json.dumps(doc).encode())
    assert record.deviations == (D.NO_SYSLOG_HEADER, D.END_TIME_EMPTY, D.CURRENT_TIME_EMPTY)
    assert record.current_time is None and record.end_time is None
    doc["flow-lifecycle"]["state"] = "ongoing"
    doc["flow-lifecycle"]["start-time"] = value
    assert parse_firefly(json.dumps(doc).encode()).deviations[:2] == (
        D.NO_SYSLOG_HEADER, D.ONGOING_WITHOUT_START_TIME)


@pytest.mark.parametrize("data, reason, detail", [
    # truncated JSON (a datagram cut short), with or without the header
    (flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0)[:-9], R.JSON_SYNTAX, "truncated JSON"),
    (flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0, prepend_syslog=True)[:90],
     R.JSON_SYNTAX, "truncated JSON"),
    (flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0)[:-1], R.JSON_SYNTAX,
     "truncated JSON"),
    # an end needs a usable end-time
    (flowd_go("end", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, end=T1).replace(
        b'"end-time":"2026-11-25T10:05:00+00:00"', b'"end-time":""'), R.BAD_TIME, "usable end-time"),
    (flowd_go("end", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, end=T1).replace(
        b'"end-time":"2026-11-25T10:05:00+00:00"', b'"end-time":null'), R.BAD_TIME, "usable end-time"),
    (flowd_go("end", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14), R.MISSING_MEMBER, "end-time"),
    # a start without its start-time stays refused
    (flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14), R.BAD_TIME, "start-time"),
    # bad addresses, bare or not
    (flowd_go("start", "192.0.2.1", 1, "2001:db8::2", 2, 3, 14, start=T0), R.BAD_IP, "dst-ip"),
    (flowd_go("start", "192.0.2.300", 1, "192.0.2.2", 2, 3, 14, start=T0), R.BAD_IP, "src-ip"),
    (xrootd_pair("start", "192.0.2.1", 0, "192.0.2.2", 1094, 3, 14, start=T0, now=T0)[0],
     R.BAD_PORT, "src-port 0"),
    (b"  {not json", R.JSON_SYNTAX, ""),
    (b"[1, 2]", R.NO_SYSLOG_HEADER, ""),  # only an object is taken for a bare firefly
])
def test_refused_keep_their_named_reason(data: bytes, reason: RejectReason, detail: str) -> None:
    exc = refused(data)
    assert exc.reason is reason and detail in exc.detail, exc


def _shapes(reference_sender) -> list[bytes]:
    import scitags
    ref_end = reference_sender.firefly_json(
        scitags.FlowID("end", "tcp", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, None,
                       "2026-11-25T10:05:00+00:00"), {"experiments": {}, "activities": {}}, None, {})
    ref_ongoing = reference_sender.firefly_json(
        scitags.FlowID("ongoing", "tcp", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14),
        {"experiments": {}, "activities": {}}, None, {})
    return [
        ("<134>1 2026-11-25T10:05:00+00:00 dtn flowd - firefly-json - " + json.dumps(ref_end)).encode(),
        ("<134>1 2026-11-25T10:05:00+00:00 dtn flowd - firefly-json - " + json.dumps(ref_ongoing)).encode(),
        flowd_go("start", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, start=T0),
        flowd_go("end", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, end=T1),
        flowd_go("end", "192.0.2.1", 1, "192.0.2.2", 2, 3, 14, end=T1, prepend_syslog=True),
        flowd_go("ongoing", "2001:db8::1", 1, "2001:db8::2", 2, 3, 14, start=T0, now=T1,
                 prepend_syslog=True, skops={"tcpInfo": {"rtt": 5}}),
        *xrootd_pair("end", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0, now=T1),
        dcache("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=T0, now=T0, sender_ip="192.0.2.1"),
    ]


def test_every_shape_repairs_into_a_schema_valid_firefly(reference_sender) -> None:
    flow_start = dt.datetime(2026, 11, 25, 9, 59, tzinfo=UTC)
    now = dt.datetime(2026, 11, 25, 10, 6, tzinfo=UTC)
    for data in _shapes(reference_sender):
        record = parse_firefly(data)
        assert record.deviations, data  # each shape deviates somehow
        fixed = encode_record(repaired(record, start_time=flow_start, now=now))
        header, _, body = fixed.decode().partition(" - firefly-json - ")
        assert header.startswith("<134>1 ") and "  " not in header, header
        assert firefly_validator().is_valid(json.loads(body)), (data, fixed)
        again = parse_firefly(fixed, strict=True)
        assert again.deviations in ((), (D.SYSLOG_HOSTNAME_ADDRESS,), (D.USAGE_EMPTY,),
                                    (D.SYSLOG_HOSTNAME_ADDRESS, D.USAGE_EMPTY)), again.deviations
        assert again.application == record.application and again.flow_key == record.flow_key
        assert (again.state, again.experiment_id, again.activity_id) == (
            record.state, record.experiment_id, record.activity_id)
        assert again.start_time == (record.start_time or flow_start)
        assert again.current_time == (record.current_time or now)
        assert again.end_time == record.end_time


@pytest.mark.parametrize("stamp", ["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456789Z",
                                   "2026-11-25t10:00:00.5z"])
def test_z_times_are_plain_rfc3339(stamp: str) -> None:
    """dCache (Java Instant.toString) ends its times in Z, up to nanoseconds: no deviation."""
    doc = {"version": 1, "flow-lifecycle": {"state": "end", "start-time": stamp, "end-time": stamp,
                                            "current-time": stamp},
           "flow-id": {"afi": "ipv4", "src-ip": "192.0.2.1", "dst-ip": "192.0.2.2", "protocol": "tcp",
                       "src-port": 1, "dst-port": 2},
           "context": {"experiment-id": 3, "activity-id": 14}}
    record = parse_firefly(f"<134>1 {stamp} dcache.example.org dCache - firefly-json - {json.dumps(doc)}"
                           .encode(), strict=True)
    assert record.deviations == ()
    assert record.end_time.tzinfo is not None and record.end_time.utcoffset() == dt.timedelta(0)
    assert record.syslog_timestamp == record.end_time
