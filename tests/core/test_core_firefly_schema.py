"""The hand-written hot-path checks agree with jsonschema + firefly.schema.json.

strict=True must accept exactly the documents jsonschema (formats asserted) accepts;
lenient mode may only add the documented deviations. Documents are generated near the
valid set and then mutated, so both sides of every rule are exercised.
"""
from __future__ import annotations

import datetime as dt
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scitags_core.firefly import Deviation, FireflyRejected
from scitags_core.firefly_parse import _ipv4, _ipv6, check_document, parse_firefly, parse_rfc3339
from scitags_core.schemas import firefly_validator

HEADER = "<134>1 2026-11-25T10:00:00Z host app - firefly-json - "
FORMATS = firefly_validator().format_checker
SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- values near the rules ----------------------------------------------------------------

def _fmt_time(value: dt.datetime, style: int) -> str:
    text = value.isoformat(timespec=["seconds", "milliseconds", "microseconds", "auto"][style % 4])
    if style % 3 == 0 and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    if style % 7 == 0:
        text = text.lower()
    return text


aware_times = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                           timezones=st.sampled_from([
                               dt.timezone.utc, dt.timezone(dt.timedelta(hours=23, minutes=59)),
                               dt.timezone(-dt.timedelta(hours=5, minutes=30))]))
odd_times = st.sampled_from([
    "2026-11-25T10:00:00", "2026-11-25 10:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T10:60:00Z",
    "2026-11-25T10:00:60Z", "2026-02-29T10:00:00Z", "2024-02-29T10:00:00Z", "0000-01-01T00:00:00Z",
    "2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z", "2026-11-25T10:00:00.Z", "2026-11-25T10:00:00+2400",
    "2026-11-25T10:00:00+24:00", "2026-11-25T10:00:00Z\n", "2026-11-25T10:00:00Z ", "2026-W48-3",
    "20261125T100000Z", "2026-11-25", "2026-11-25T10:00Z", "2026-11-25T10:00:00.123456789123Z",
    "٢٠٢٦-11-25T10:00:00Z", "2026-11-25t10:00:00z", "", "-",
])
time_strings = aware_times.flatmap(lambda t: st.integers(0, 83).map(lambda s: _fmt_time(t, s))) | \
    odd_times | st.text(alphabet="0123456789-:TZ.+ tz", max_size=30)

ip_strings = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded), st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.sampled_from(["01.2.3.4", "1.2.3", "256.1.1.1", "fe80::1%eth0", "::", "1::2::3", " ::1",
                     "::1 ", "1.2.3.4\n", "0.0.0.0", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.04", ""]),
    st.text(alphabet="0123456789abcdef:.%", max_size=20))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
ints_near = st.one_of(st.integers(-3, 70000), st.integers(-2**70, 2**70),
                      st.sampled_from([0, 1, 65535, 65536, 443.0, 1.5, True, False, "443", 2.0**64]))

NEAR = {
    "version": st.sampled_from([1, 1.0, 2, 0, True, "1", None, 1.5]),
    "flow-lifecycle.state": st.sampled_from(["start", "ongoing", "end", "END", "", 1, None]),
    "flow-lifecycle.start-time": time_strings,
    "flow-lifecycle.end-time": time_strings,
    "flow-lifecycle.current-time": time_strings,
    "flow-id.afi": st.sampled_from(["ipv4", "ipv6", "IPv4", "", 4]),
    "flow-id.src-ip": ip_strings,
    "flow-id.dst-ip": ip_strings,
    "flow-id.protocol": st.sampled_from(["tcp", "udp", "TCP", "icmp", 6]),
    "flow-id.src-port": ints_near,
    "flow-id.dst-port": ints_near,
    "context.experiment-id": ints_near,
    "context.activity-id": ints_near,
    "context.application": st.text(max_size=10) | st.integers() | st.none(),
    "usage": st.dictionaries(st.sampled_from(["received", "sent", "other"]), ints_near, max_size=2),
    "usage.received": ints_near,
    "netlink": st.dictionaries(st.text(max_size=5), json_values, max_size=3) | json_values,
    "flow-lifecycle": json_values,
    "flow-id": json_values,
    "context": json_values,
}
SECTIONS = ["", "flow-lifecycle", "flow-id", "context", "usage"]


@st.composite
def valid_docs(draw) -> dict:
    state = draw(st.sampled_from(["start", "ongoing", "end"]))
    v4 = draw(st.booleans())
    ips = st.ip_addresses(v=4 if v4 else 6).map(str)
    times = aware_times.map(lambda t: _fmt_time(t, 2))
    lifecycle = {"state": state, "start-time": draw(times)}
    if state == "end" or draw(st.booleans()):
        lifecycle["end-time"] = draw(times)
    if draw(st.booleans()):
        lifecycle["current-time"] = draw(times)
    doc = {
        "version": 1, "flow-lifecycle": lifecycle,
        "flow-id": {"afi": "ipv4" if v4 else "ipv6", "src-ip": draw(ips), "dst-ip": draw(ips),
                    "protocol": draw(st.sampled_from(["tcp", "udp"])),
                    "src-port": draw(st.integers(1, 65535)), "dst-port": draw(st.integers(1, 65535))},
        "context": {"experiment-id": draw(st.integers(-5, 1000)), "activity-id": draw(st.integers(-5, 100))},
    }
    if draw(st.booleans()):
        doc["context"]["application"] = draw(st.text(max_size=10))
    if draw(st.booleans()):
        doc["usage"] = {"received": draw(st.integers(0, 2**64)), "sent": draw(st.integers(0, 2**64))}
    if draw(st.booleans()):
        doc["netlink"] = {"rtt": draw(st.floats(0, 1e6)), "bytes": draw(st.integers(0, 2**64))}
    return doc


def _parent(doc: dict, path: str) -> tuple[object, str]:
    *parents, key = path.split(".")
    target: object = doc
    for parent in parents:
        target = target.get(parent) if isinstance(target, dict) else None
    return target, key


@st.composite
def mutated_docs(draw) -> dict:
    doc = draw(valid_docs())
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if action == "set":
            path = draw(st.sampled_from(sorted(NEAR)))
            target, key = _parent(doc, path)
            if isinstance(target, dict):
                target[key] = draw(NEAR[path])
        elif action == "delete":
            path = draw(st.sampled_from(sorted(NEAR)))
            target, key = _parent(doc, path)
            if isinstance(target, dict):
                target.pop(key, None)
        else:
            section = draw(st.sampled_from(SECTIONS))
            target = doc if not section else doc.get(section)
            if isinstance(target, dict):
                target[draw(st.sampled_from(["extra", "duration", "afi", "sent"]))] = draw(json_values)
    return doc


def _ours(doc: object, strict: bool) -> list[Deviation] | None:
    try:
        return check_document(doc, strict=strict)
    except FireflyRejected:
        return None


@SETTINGS
@given(mutated_docs())
def test_strict_checks_agree_with_jsonschema(doc: dict) -> None:
    schema_ok = firefly_validator().is_valid(doc)
    ours = _ours(doc, strict=True)
    assert (ours is not None) == schema_ok, (doc, list(firefly_validator().iter_errors(doc))[:1])
    # The whole receive path (header split, orjson/json decoding) gives the same verdict.
    data = (HEADER + json.dumps(doc)).encode()
    try:
        parse_firefly(data, strict=True)
        parsed_ok = True
    except FireflyRejected as exc:
        parsed_ok = False
        assert exc.reason.value != "internal-error", exc
    assert parsed_ok == schema_ok, doc


_REPAIRABLE = {Deviation.ONGOING_WITHOUT_START_TIME, Deviation.END_WITHOUT_START_TIME,
               Deviation.CURRENT_TIME_EMPTY, Deviation.END_TIME_EMPTY}


@SETTINGS
@given(mutated_docs())
def test_lenient_only_adds_documented_deviations(doc: dict) -> None:
    schema_ok = firefly_validator().is_valid(doc)
    lenient = _ours(doc, strict=False)
    if schema_ok:
        assert lenient is not None
        assert not _REPAIRABLE & set(lenient)
    elif lenient is not None:
        # Only missing/blank times may be let through (start-time on ongoing/end, current-time,
        # end-time where the state does not need one), and the document must be valid once
        # exactly those are repaired.
        assert _REPAIRABLE & set(lenient), doc
        fixed = json.loads(json.dumps(doc))
        life = fixed["flow-lifecycle"]
        if {Deviation.ONGOING_WITHOUT_START_TIME, Deviation.END_WITHOUT_START_TIME} & set(lenient):
            life["start-time"] = "2026-11-25T10:00:00Z"
        if Deviation.CURRENT_TIME_EMPTY in lenient:
            del life["current-time"]
        if Deviation.END_TIME_EMPTY in lenient:
            del life["end-time"]
        assert firefly_validator().is_valid(fixed), doc


@settings(max_examples=3000, deadline=None)
@given(time_strings)
def test_date_time_agrees_with_jsonschema_format(text: str) -> None:
    assert (parse_rfc3339(text) is not None) == FORMATS.conforms(text, "date-time"), text


@settings(max_examples=3000, deadline=None)
@given(ip_strings)
def test_ip_formats_agree_with_jsonschema(text: str) -> None:
    assert (_ipv4(text) is not None) == FORMATS.conforms(text, "ipv4"), text
    assert (_ipv6(text) is not None) == FORMATS.conforms(text, "ipv6"), text


def test_every_rule_is_exercised() -> None:
    """A few hand-picked documents on both sides of each rule (guards the generators)."""
    base = {"version": 1, "flow-lifecycle": {"state": "end", "start-time": "2026-11-25T10:00:00Z",
                                             "end-time": "2026-11-25T10:01:00Z"},
            "flow-id": {"afi": "ipv4", "src-ip": "192.0.2.1", "dst-ip": "192.0.2.2",
                        "protocol": "tcp", "src-port": 1, "dst-port": 65535},
            "context": {"experiment-id": 3, "activity-id": 14}}
    assert firefly_validator().is_valid(base) and _ours(base, True) is not None
    for path, bad in [("flow-lifecycle.end-time", None), ("flow-id.dst-port", 0),
                      ("flow-id.src-ip", "::1"), ("context.application", 1), ("version", 1.5)]:
        doc = json.loads(json.dumps(base))
        target, key = _parent(doc, path)
        if bad is None:
            target.pop(key)
        else:
            target[key] = bad
        assert not firefly_validator().is_valid(doc) and _ours(doc, True) is None, path
