"""Firefly parsing and building: real-sender variants, named rejections, round trips."""
from __future__ import annotations

import datetime as dt
import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scitags_core.firefly import (
    MAX_FIREFLY_BYTES, AddressFamily, Deviation, FireflyRecord, FireflyRejected, FlowState,
    Protocol, RejectReason,
)
from scitags_core.firefly_build import build_firefly, encode_record
from scitags_core.firefly_parse import check_document, parse_firefly, parse_rfc3339
from scitags_core.schemas import date_time_format_checked, firefly_validator

R = RejectReason
UTC = dt.timezone.utc
HEADER = "<134>1 2026-11-25T10:00:00.000000+00:00 host.example.org flowd - firefly-json - "


def doc(**changes) -> dict:
    """A schema-valid firefly document; changes are 'section.key' -> value (None deletes)."""
    base = {
        "version": 1,
        "flow-lifecycle": {"state": "start", "start-time": "2026-11-25T10:00:00.000000+00:00",
                           "current-time": "2026-11-25T10:00:00.500000+00:00"},
        "flow-id": {"afi": "ipv6", "src-ip": "2001:db8::1", "dst-ip": "2001:db8::2",
                    "protocol": "tcp", "src-port": 40000, "dst-port": 1094},
        "context": {"experiment-id": 3, "activity-id": 14, "application": "xrootd 5.6"},
    }
    for path, value in changes.items():
        target = base
        *parents, key = path.split(".")
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return base


def datagram(document: object, header: str = HEADER) -> bytes:
    return (header + (document if isinstance(document, str) else json.dumps(document))).encode()


def reject_reason(data: bytes, strict: bool = False) -> RejectReason:
    with pytest.raises(FireflyRejected) as info:
        parse_firefly(data, strict=strict)
    assert info.value.detail and str(info.value).startswith(info.value.reason.value)
    return info.value.reason


# -- accepted ---------------------------------------------------------------------------

def test_spec_example_parses_into_typed_record() -> None:
    record = parse_firefly(datagram(doc()))
    assert record.state is FlowState.START and record.afi is AddressFamily.IPV6
    assert record.src_ip == ipaddress.IPv6Address("2001:db8::1")
    assert record.dst_ip == ipaddress.IPv6Address("2001:db8::2")
    assert record.protocol is Protocol.TCP and (record.src_port, record.dst_port) == (40000, 1094)
    assert (record.experiment_id, record.activity_id) == (3, 14)
    assert record.application == "xrootd 5.6"
    assert record.start_time == dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert record.current_time == dt.datetime(2026, 11, 25, 10, 0, 0, 500000, tzinfo=UTC)
    assert record.end_time is None
    assert record.syslog_timestamp == dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert (record.syslog_hostname, record.syslog_app, record.syslog_procid) == (
        "host.example.org", "flowd", None)
    assert record.syslog_priority == 134
    assert record.deviations == () and record.extra == {} and record.markable
    assert record.scitag == 206
    assert record.flow_key == (Protocol.TCP, record.src_ip, 40000, record.dst_ip, 1094)
    hash(record)  # frozen and hashable even with dict members
    with pytest.raises(AttributeError):
        record.state = FlowState.END  # type: ignore[misc]


def test_ipv4_end_with_usage_and_netlink() -> None:
    document = doc(**{"flow-lifecycle.state": "end", "flow-lifecycle.end-time": "2026-11-25T10:05:00Z",
                      "flow-id.afi": "ipv4", "flow-id.src-ip": "192.0.2.1",
                      "flow-id.dst-ip": "198.51.100.7", "flow-id.protocol": "udp"},
                   usage={"received": 10, "sent": 2 ** 40}, netlink={"rtt": 1.5, "cwnd": [1, 2]})
    record = parse_firefly(datagram(document))
    assert record.state is FlowState.END and record.afi is AddressFamily.IPV4
    assert record.src_ip == ipaddress.IPv4Address("192.0.2.1") and record.protocol is Protocol.UDP
    assert record.end_time == dt.datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
    assert (record.usage_received, record.usage_sent) == (10, 2 ** 40)
    assert record.netlink == {"rtt": 1.5, "cwnd": [1, 2]}
    assert record.deviations == ()


def test_flowd_go_style_message() -> None:
    # flowd-go (types/firefly.go): compact JSON, end-time may ride on a start message,
    # application "flowd v1.0.2", time format with microseconds and offset.
    text = ('<134>1 2024-03-28T08:58:48.899646+00:00 node.example.org flowd - firefly-json - '
            '{"version":1,"flow-lifecycle":{"state":"start","current-time":"2024-03-28T08:58:48.89966+00:00",'
            '"start-time":"2024-03-28T08:58:44.89966+00:00","end-time":"2024-01-31T08:58:48.899087+00:00"},'
            '"flow-id":{"afi":"ipv6","src-ip":"2001:db8:6:1101::34de","dst-ip":"2001:db8:0:8421::154",'
            '"protocol":"tcp","src-port":1234,"dst-port":5678},'
            '"context":{"experiment-id":1,"activity-id":1,"application":"flowd v1.0.2"}}')
    record = parse_firefly(text.encode())
    assert record.start_time == dt.datetime(2024, 3, 28, 8, 58, 44, 899660, tzinfo=UTC)
    assert record.end_time is not None and record.deviations == ()


@pytest.mark.parametrize("state", ["start", "ongoing", "end"])
def test_reference_sender_output(reference_sender, state: str) -> None:
    """Fireflies built by scitags 1.1.7's own udp_firefly code, its header format included."""
    import scitags
    start = "2026-11-25T10:00:00.123456+00:00"
    flow = scitags.FlowID(state, "tcp", "2001:db8::10", 50000, "2001:db8::20", 1094, 2, 17,
                          start, "2026-11-25T10:10:00+00:00" if state == "end" else None)
    document = reference_sender.firefly_json(flow, {"experiments": {}, "activities": {}}, None, {})
    header = "<{}>{} {} {} {} {} {} {} ".format(
        reference_sender.SYSLOG_PRIORITY, reference_sender.SYSLOG_VERSION,
        dt.datetime.utcnow().isoformat() + "+00:00", "sender.example.org",
        reference_sender.SYSLOG_APP_NAME, reference_sender.SYSLOG_PROCID,
        reference_sender.SYSLOG_MSGID, reference_sender.SYSLOG_STRUCT_DATA)
    record = parse_firefly((header + json.dumps(document)).encode())
    assert (record.experiment_id, record.activity_id) == (2, 17)
    assert str(record.src_ip) == "2001:db8::10" and record.dst_port == 1094
    assert record.syslog_app == "flowd" and record.application == "flowd v1.1.7"
    if state == "ongoing":  # the reference omits start-time in ongoing messages
        assert record.deviations == (Deviation.ONGOING_WITHOUT_START_TIME,)
        assert record.start_time is None
        assert reject_reason((header + json.dumps(document)).encode(), strict=True) is R.MISSING_MEMBER
    else:
        assert record.deviations == ()
        assert record.start_time == parse_rfc3339(start)


@pytest.mark.parametrize("header, deviation, hostname", [
    ("<134>1 - xrootd.example.org xrootd - firefly-json - ", Deviation.SYSLOG_TIMESTAMP_NIL,
     "xrootd.example.org"),
    ("<134>1  gosender.example.org flowd-go - firefly-json - ", Deviation.SYSLOG_TIMESTAMP_EMPTY,
     "gosender.example.org"),
    ("<134>1 yesterday host - - firefly-json - ", Deviation.SYSLOG_TIMESTAMP_INVALID, "host"),
])
def test_header_timestamp_variants(header: str, deviation: Deviation, hostname: str) -> None:
    record = parse_firefly(datagram(doc(), header))
    assert record.deviations == (deviation,)
    assert record.syslog_timestamp is None and record.syslog_hostname == hostname


def test_ongoing_without_start_time_empty_or_missing() -> None:
    for value in (None, ""):
        record = parse_firefly(datagram(doc(**{"flow-lifecycle.state": "ongoing",
                                               "flow-lifecycle.start-time": value})))
        assert record.deviations == (Deviation.ONGOING_WITHOUT_START_TIME,)
        assert record.start_time is None


def test_extra_members_kept_and_flagged() -> None:
    record = parse_firefly(datagram(doc(storage={"read": 5}, note="x")))
    assert record.extra == {"storage": {"read": 5}, "note": "x"}
    assert record.deviations == (Deviation.EXTRA_MEMBERS,)
    check_document(doc(storage={}), strict=True)  # the schema allows them


def test_experiment_ids_outside_label_are_a_deviation() -> None:
    record = parse_firefly(datagram(doc(**{"context.experiment-id": 600, "context.activity-id": 64})))
    assert record.deviations == (Deviation.EXPERIMENT_NOT_MARKABLE, Deviation.ACTIVITY_NOT_MARKABLE)
    assert not record.markable and record.scitag is None
    assert parse_firefly(datagram(doc(**{"context.experiment-id": 0}))).deviations == (
        Deviation.EXPERIMENT_NOT_MARKABLE,)


def test_all_deviations_together_in_order() -> None:
    header = "<134>1 - h a - firefly-json - "
    record = parse_firefly(datagram(doc(**{"flow-lifecycle.state": "ongoing",
                                           "flow-lifecycle.start-time": None,
                                           "context.experiment-id": 1000}, extra=1), header))
    assert record.deviations == (Deviation.SYSLOG_TIMESTAMP_NIL, Deviation.ONGOING_WITHOUT_START_TIME,
                                 Deviation.EXPERIMENT_NOT_MARKABLE, Deviation.EXTRA_MEMBERS)


def test_structured_data_bom_and_newline() -> None:
    header = '<134>1 2026-11-25T10:00:00Z h a 99 firefly-json [meta x="a\\]b" y="2"][two] '
    record = parse_firefly(datagram(doc(), header))
    assert record.syslog_procid == "99"
    assert parse_firefly((HEADER + "\ufeff" + json.dumps(doc()) + "\n").encode()).deviations == ()


def test_integral_floats_are_integers_like_jsonschema() -> None:
    record = parse_firefly(datagram(doc(**{"flow-id.src-port": 443.0, "context.experiment-id": 3.0})))
    assert record.src_port == 443 and type(record.src_port) is int and record.experiment_id == 3


def test_big_integers_stay_exact() -> None:
    big = 2 ** 70 + 1
    record = parse_firefly(datagram(doc(**{"context.experiment-id": big}, usage={"sent": big},
                                        netlink={"x": [big]})))
    assert record.experiment_id == big and record.usage_sent == big
    assert record.netlink == {"x": [big]}


# -- rejected, with a named reason ------------------------------------------------------

@pytest.mark.parametrize("data, reason", [
    (datagram(doc(pad="x" * MAX_FIREFLY_BYTES)), R.TOO_LARGE),
    (HEADER.encode() + b'{"version": 1, "x": "\xff"}', R.NOT_UTF8),
    (b"\xc3\x28" + HEADER.encode(), R.NOT_UTF8),
    (b"", R.NO_SYSLOG_HEADER),
    (b"hello world", R.NO_SYSLOG_HEADER),
    (datagram(doc(), "<999>1 - h a - firefly-json - "), R.BAD_SYSLOG_HEADER),
    (datagram(doc(), "<134>0 - h a - firefly-json - "), R.BAD_SYSLOG_HEADER),
    (datagram(doc(), "<134 - h a - firefly-json - "), R.BAD_SYSLOG_HEADER),
    (b"<134>1 - host app", R.BAD_SYSLOG_HEADER),
    (datagram(doc(), "<134>1 - h a - firefly-json [unclosed "), R.BAD_SYSLOG_HEADER),
    (datagram(doc(), "<134>1 - h a - firefly-json x "), R.BAD_SYSLOG_HEADER),
    (datagram(doc(), "<134>1 - h a - other-msgid - "), R.NOT_FIREFLY),
    (datagram(doc(), "<134>1 - h a - - - "), R.NOT_FIREFLY),
    (datagram("{\"version\": 1,"), R.JSON_SYNTAX),
    (datagram(""), R.JSON_SYNTAX),
    (b"<134>1 - h a - firefly-json -", R.JSON_SYNTAX),
    (datagram('{"version": NaN}'), R.JSON_SYNTAX),
    (datagram('{"version": Infinity}'), R.JSON_SYNTAX),
    (datagram(json.dumps(doc()) + " trailing"), R.JSON_SYNTAX),
    (datagram("[" * 4000 + "]" * 4000), R.TOO_DEEP),
    (datagram(doc(netlink={"a": json.loads("[" * 20 + "]" * 20)})), R.TOO_DEEP),
    (datagram("[1, 2]"), R.WRONG_TYPE),
    (datagram(doc(version="1")), R.WRONG_TYPE),
    (datagram(doc(version=True)), R.WRONG_TYPE),
    (datagram(doc(version=2)), R.BAD_VERSION),
    (datagram(doc(version=None)), R.MISSING_MEMBER),
    (datagram(doc(context=None)), R.MISSING_MEMBER),
    (datagram(doc(**{"flow-lifecycle": []})), R.WRONG_TYPE),
    (datagram(doc(**{"flow-lifecycle.state": "begin"})), R.BAD_STATE),
    (datagram(doc(**{"flow-lifecycle.state": 1})), R.WRONG_TYPE),
    (datagram(doc(**{"flow-lifecycle.state": None})), R.MISSING_MEMBER),
    (datagram(doc(**{"flow-lifecycle.start-time": None})), R.MISSING_MEMBER),
    (datagram(doc(**{"flow-lifecycle.start-time": "2026-11-25 10:00:00"})), R.BAD_TIME),
    (datagram(doc(**{"flow-lifecycle.start-time": "2026-02-30T10:00:00Z"})), R.BAD_TIME),
    (datagram(doc(**{"flow-lifecycle.current-time": "2026-11-25T10:00:00"})), R.BAD_TIME),
    (datagram(doc(**{"flow-lifecycle.state": "end"})), R.MISSING_MEMBER),
    (datagram(doc(**{"flow-lifecycle.duration": 5})), R.UNKNOWN_MEMBER),
    (datagram(doc(**{"flow-id.afi": "ipv5"})), R.BAD_AFI),
    (datagram(doc(**{"flow-id.afi": "ipv4"})), R.BAD_IP),  # IPv6 addresses with afi ipv4
    (datagram(doc(**{"flow-id.src-ip": "192.0.2.1"})), R.BAD_IP),  # IPv4 address, afi ipv6
    (datagram(doc(**{"flow-id.dst-ip": "fe80::1%eth0"})), R.BAD_IP),
    (datagram(doc(**{"flow-id.dst-ip": "not-an-ip"})), R.BAD_IP),
    (datagram(doc(**{"flow-id.src-ip": 1})), R.WRONG_TYPE),
    (datagram(doc(**{"flow-id.protocol": "sctp"})), R.BAD_PROTOCOL),
    (datagram(doc(**{"flow-id.dst-port": 0})), R.BAD_PORT),
    (datagram(doc(**{"flow-id.src-port": 65536})), R.BAD_PORT),
    (datagram(doc(**{"flow-id.src-port": -1})), R.BAD_PORT),
    (datagram(doc(**{"flow-id.src-port": "443"})), R.WRONG_TYPE),
    (datagram(doc(**{"flow-id.src-port": 443.5})), R.WRONG_TYPE),
    (datagram(doc(**{"flow-id.dst-port": None})), R.MISSING_MEMBER),
    (datagram(doc(**{"flow-id.vlan": 5})), R.UNKNOWN_MEMBER),
    (datagram(doc(**{"context.experiment-id": "cms"})), R.WRONG_TYPE),
    (datagram(doc(**{"context.activity-id": None})), R.MISSING_MEMBER),
    (datagram(doc(**{"context.application": 5})), R.WRONG_TYPE),
    (datagram(doc(**{"context.site": "x"})), R.UNKNOWN_MEMBER),
    (datagram(doc(usage={"received": "1"})), R.WRONG_TYPE),
    (datagram(doc(usage={"lost": 1})), R.UNKNOWN_MEMBER),
    (datagram(doc(netlink=[1])), R.WRONG_TYPE),
])
def test_rejections_are_named(data: bytes, reason: RejectReason) -> None:
    assert reject_reason(data) is reason


def test_reject_detail_names_the_problem() -> None:
    with pytest.raises(FireflyRejected) as info:
        parse_firefly(datagram(doc(**{"flow-id.dst-port": 0})))
    assert info.value.detail == "dst-port 0 out of range 1..65535"


def test_arbitrary_bytes_never_raise_anything_else() -> None:
    @settings(deadline=None)
    @given(st.binary(max_size=600) | st.text(max_size=300).map(lambda t: (HEADER + t).encode()))
    def check(data: bytes) -> None:
        try:
            record = parse_firefly(data)
        except FireflyRejected as exc:
            assert exc.reason is not R.INTERNAL, exc
        else:
            assert isinstance(record, FireflyRecord)
    check()


# -- building ---------------------------------------------------------------------------

times = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                                dt.timezone(-dt.timedelta(hours=8))]))
addresses = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4)),
    st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)))
json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=10) | \
    st.floats(allow_nan=False, allow_infinity=False)
netlinks = st.none() | st.dictionaries(st.text(max_size=8), st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                max_size=3),
    max_leaves=8), max_size=5)


@st.composite
def build_kwargs(draw) -> dict:
    state = draw(st.sampled_from(list(FlowState)))
    src, dst = draw(addresses)
    kwargs = dict(
        state=state, src_ip=src, dst_ip=dst, protocol=draw(st.sampled_from(list(Protocol))),
        src_port=draw(st.integers(1, 65535)), dst_port=draw(st.integers(1, 65535)),
        experiment_id=draw(st.integers(1, 511)), activity_id=draw(st.integers(0, 63)),
        application=draw(st.none() | st.text(max_size=30)),
        start_time=draw(times), current_time=draw(times),
        end_time=draw(times) if state is FlowState.END else draw(st.none() | times),
        usage_received=draw(st.none() | st.integers(0, 2**64)),
        usage_sent=draw(st.none() | st.integers(0, 2**64)),
        netlink=draw(netlinks),
        hostname=draw(st.sampled_from(["node1.example.org", None, "h"])),
        app_name=draw(st.sampled_from(["scitags-p4", "flowd", None])),
    )
    return kwargs


@settings(deadline=None)
@given(build_kwargs())
def test_built_fireflies_validate_and_parse_back(kwargs: dict) -> None:
    data = build_firefly(**kwargs)
    header, _, body = data.decode().partition(" - firefly-json - ")
    assert header.startswith("<134>1 ")
    assert firefly_validator().is_valid(json.loads(body))
    record = parse_firefly(data, strict=True)
    assert record.deviations == ()
    for key in ("state", "protocol", "src_port", "dst_port", "experiment_id", "activity_id",
                "application", "start_time", "end_time", "current_time", "usage_received",
                "usage_sent", "netlink"):
        assert getattr(record, key) == kwargs[key], key
    assert record.src_ip == kwargs["src_ip"] and record.dst_ip == kwargs["dst_ip"]
    assert record.syslog_timestamp == kwargs["current_time"]
    assert record.syslog_app == kwargs["app_name"]
    if kwargs["hostname"] is not None:
        assert record.syslog_hostname == kwargs["hostname"]
    # ... and a record re-encodes to an identical record.
    assert parse_firefly(encode_record(record)) == record


def test_build_defaults() -> None:
    record = parse_firefly(build_firefly(state="start", src_ip="192.0.2.1", dst_ip="192.0.2.2",
                                         src_port=1, dst_port=2, experiment_id=3, activity_id=14))
    assert record.start_time == record.current_time == record.syslog_timestamp
    assert record.current_time.tzinfo is not None and record.syslog_hostname
    assert record.application == "scitags-p4" and record.protocol is Protocol.TCP


@pytest.mark.parametrize("changes, error", [
    ({"state": "ongoing"}, "needs start_time"),
    ({"state": "end", "start_time": dt.datetime(2026, 1, 1, tzinfo=UTC)}, "needs end_time"),
    ({"dst_ip": "2001:db8::1"}, "different address families"),
    ({"dst_port": 0}, "out of range 1..65535"),
    ({"src_port": 70000}, "out of range 1..65535"),
    ({"start_time": dt.datetime(2026, 1, 1)}, "timezone-aware"),
    ({"state": "paused"}, "not a valid FlowState"),
    ({"protocol": "sctp"}, "not a valid Protocol"),
    ({"src_ip": "nope"}, "does not appear to be an IPv4 or IPv6 address"),
    ({"hostname": "has space"}, "without spaces"),
    ({"netlink": {"blob": "x" * 9000}}, "more than one frame"),
])
def test_build_refuses_bad_input(changes: dict, error: str) -> None:
    kwargs = dict(state="start", src_ip="192.0.2.1", dst_ip="192.0.2.2", src_port=1, dst_port=2,
                  experiment_id=3, activity_id=14)
    kwargs.update(changes)
    with pytest.raises(ValueError, match=error):
        build_firefly(**kwargs)


def test_build_refuses_non_int_ids() -> None:
    with pytest.raises(TypeError):
        build_firefly(state="start", src_ip="192.0.2.1", dst_ip="192.0.2.2", src_port=1,
                      dst_port=2, experiment_id="3", activity_id=14)  # type: ignore[arg-type]


def test_to_dict_is_json_ready() -> None:
    record = parse_firefly(datagram(doc(extra=[1])))
    data = json.loads(json.dumps(record.to_dict()))
    assert data["src_ip"] == "2001:db8::1" and data["state"] == "start"
    assert data["deviations"] == ["extra-top-level-members"] and data["extra"] == {"extra": [1]}


def test_jsonschema_checks_date_time() -> None:
    # The agreement tests are only meaningful if jsonschema really checks date-time.
    assert date_time_format_checked(), "install rfc3339-validator (jsonschema date-time format)"
