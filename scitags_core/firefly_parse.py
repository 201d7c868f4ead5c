"""Parse one firefly datagram (RFC 5424 header + JSON) into a FireflyRecord.

The hot path does not run jsonschema: `check_document` is a hand-written equivalent of
firefly.schema.json (formats date-time/ipv4/ipv6 asserted exactly as jsonschema's
format checker does), proven to agree with jsonschema by tests/core (hypothesis).

Lenient mode (the default) accepts what real senders send (SPEC.md) and records a
Deviation; strict=True is exactly the schema. Either way nothing but FireflyRejected
leaves parse_firefly.
"""
from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import re
from typing import Any

from scitags_core import flowlabel
from scitags_core.firefly import (
    MAX_FIREFLY_BYTES, MAX_JSON_DEPTH, AddressFamily, Deviation, FireflyRecord, FireflyRejected,
    FlowState, IPAddress, Protocol, RejectReason,
)
from scitags_core.syslog5424 import FIREFLY_MSGID, NIL, SyslogError, split_message

R = RejectReason
_MISSING = object()
_TOP_LEVEL = frozenset({"version", "flow-lifecycle", "flow-id", "usage", "netlink", "context"})
_REQUIRED_TOP = ("version", "flow-lifecycle", "flow-id", "context")
_LIFECYCLE_KEYS = frozenset({"state", "start-time", "end-time", "current-time"})
_FLOW_ID_KEYS = ("afi", "src-ip", "dst-ip", "protocol", "src-port", "dst-port")
_FLOW_ID_SET = frozenset(_FLOW_ID_KEYS)
_CONTEXT_KEYS = frozenset({"experiment-id", "activity-id", "application"})
_USAGE_KEYS = frozenset({"received", "sent"})
_STATES = {s.value: s for s in FlowState}
_AFIS = {a.value: a for a in AddressFamily}
_PROTOCOLS = {p.value: p for p in Protocol}
_MAX_IP_TEXT = 64  # longer strings cannot be an unscoped IPv4/IPv6 address

# RFC 3339 date-time exactly as jsonschema checks it (rfc3339-validator on value.upper();
# `$` also matches before a final newline). fromisoformat then rejects impossible days
# and year 0, which that validator rejects too.
_RFC3339 = re.compile(
    r"^\d{4}-(?:0[1-9]|1[0-2])-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$", re.ASCII)


def parse_rfc3339(value: str) -> dt.datetime | None:
    """Timezone-aware datetime for an RFC 3339 date-time, None if it is not one."""
    upper = value.upper()
    match = _RFC3339.match(upper)
    if match is None:
        return None
    try:
        return dt.datetime.fromisoformat(upper[:match.end()])
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)
def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)
def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return None if address.scope_id else address  # jsonschema refuses scoped addresses


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _integer(value: Any) -> int | None:
    """JSON Schema `integer` (bool excluded, integral floats included), else None."""
    kind = type(value)
    if kind is int:
        return value
    if kind is float and value.is_integer():
        return int(value)
    return None


def _depth_exceeds(doc: Any, limit: int) -> bool:
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if type(node) is dict:
            stack.extend((v, depth + 1) for v in node.values() if type(v) in (dict, list))
        elif type(node) is list:
            stack.extend((v, depth + 1) for v in node if type(v) in (dict, list))
    return False


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise FireflyRejected(R.WRONG_TYPE, f"{where} must be an object, got {type(value).__name__}")
    return value


def _only(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise FireflyRejected(R.UNKNOWN_MEMBER, f"{where} has unknown member {key!r}")


def _string(value: Any, where: str) -> str:
    if type(value) is not str:
        raise FireflyRejected(R.WRONG_TYPE, f"{where} must be a string, got {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    result = _integer(value)
    if result is None:
        raise FireflyRejected(R.WRONG_TYPE, f"{where} must be an integer, got {value!r:.40}")
    return result


def _time(value: Any, where: str) -> dt.datetime:
    parsed = parse_rfc3339(_string(value, where))
    if parsed is None:
        raise FireflyRejected(R.BAD_TIME, f"{where} {value!r:.60} is not an RFC 3339 date-time")
    return parsed


def _ip(value: Any, afi: AddressFamily, where: str) -> IPAddress:
    text = _string(value, where)
    address = None
    if len(text) <= _MAX_IP_TEXT:
        address = _ipv4(text) if afi is AddressFamily.IPV4 else _ipv6(text)
    if address is None:
        raise FireflyRejected(R.BAD_IP, f"{where} {text!r:.60} is not an {afi.value} address")
    return address


def _port(value: Any, where: str) -> int:
    port = _int(value, where)
    if not 1 <= port <= 65535:
        raise FireflyRejected(R.BAD_PORT, f"{where} {port} out of range 1..65535")
    return port


def check_document(doc: Any, *, strict: bool = False) -> dict[str, Any]:
    """Field values of a firefly JSON document, or FireflyRejected.

    strict=True accepts exactly what firefly.schema.json accepts. The result holds the
    record fields from the JSON part, with `deviations` as a list.
    """
    doc = _object(doc, "firefly")
    for key in _REQUIRED_TOP:
        if key not in doc:
            raise FireflyRejected(R.MISSING_MEMBER, f"missing top-level member {key!r}")
    version = _int(doc["version"], "version")
    if version != 1:
        raise FireflyRejected(R.BAD_VERSION, f"version {version} is not 1")
    deviations: list[Deviation] = []

    lifecycle = _object(doc["flow-lifecycle"], "flow-lifecycle")
    _only(lifecycle, _LIFECYCLE_KEYS, "flow-lifecycle")
    if "state" not in lifecycle:
        raise FireflyRejected(R.MISSING_MEMBER, "flow-lifecycle has no 'state'")
    state_text = _string(lifecycle["state"], "state")
    state = _STATES.get(state_text)
    if state is None:
        raise FireflyRejected(R.BAD_STATE, f"state {state_text!r:.40} is not start, ongoing or end")
    raw_start = lifecycle.get("start-time", _MISSING)
    start_time = None
    if not strict and state is FlowState.ONGOING and (raw_start is _MISSING or raw_start == ""):
        deviations.append(Deviation.ONGOING_WITHOUT_START_TIME)
    elif raw_start is _MISSING:
        raise FireflyRejected(R.MISSING_MEMBER, f"flow-lifecycle has no 'start-time' ({state.value})")
    else:
        start_time = _time(raw_start, "start-time")
    raw_end = lifecycle.get("end-time", _MISSING)
    end_time = None
    if raw_end is not _MISSING:
        end_time = _time(raw_end, "end-time")
    elif state is FlowState.END:
        raise FireflyRejected(R.MISSING_MEMBER, "flow-lifecycle has no 'end-time' (end)")
    raw_current = lifecycle.get("current-time", _MISSING)
    current_time = None if raw_current is _MISSING else _time(raw_current, "current-time")

    flow_id = _object(doc["flow-id"], "flow-id")
    _only(flow_id, _FLOW_ID_SET, "flow-id")
    for key in _FLOW_ID_KEYS:
        if key not in flow_id:
            raise FireflyRejected(R.MISSING_MEMBER, f"flow-id has no {key!r}")
    afi_text = _string(flow_id["afi"], "afi")
    afi = _AFIS.get(afi_text)
    if afi is None:
        raise FireflyRejected(R.BAD_AFI, f"afi {afi_text!r:.40} is not ipv4 or ipv6")
    src_ip = _ip(flow_id["src-ip"], afi, "src-ip")
    dst_ip = _ip(flow_id["dst-ip"], afi, "dst-ip")
    protocol_text = _string(flow_id["protocol"], "protocol")
    protocol = _PROTOCOLS.get(protocol_text)
    if protocol is None:
        raise FireflyRejected(R.BAD_PROTOCOL, f"protocol {protocol_text!r:.40} is not tcp or udp")
    src_port = _port(flow_id["src-port"], "src-port")
    dst_port = _port(flow_id["dst-port"], "dst-port")

    context = _object(doc["context"], "context")
    _only(context, _CONTEXT_KEYS, "context")
    if "experiment-id" not in context or "activity-id" not in context:
        raise FireflyRejected(R.MISSING_MEMBER, "context needs 'experiment-id' and 'activity-id'")
    experiment_id = _int(context["experiment-id"], "experiment-id")
    activity_id = _int(context["activity-id"], "activity-id")
    application = _string(context["application"], "application") if "application" in context else None
    if not 1 <= experiment_id <= flowlabel.EXPERIMENT_MAX:
        deviations.append(Deviation.EXPERIMENT_NOT_MARKABLE)
    if not 0 <= activity_id <= flowlabel.ACTIVITY_MAX:
        deviations.append(Deviation.ACTIVITY_NOT_MARKABLE)

    usage_received = usage_sent = None
    if "usage" in doc:
        usage = _object(doc["usage"], "usage")
        _only(usage, _USAGE_KEYS, "usage")
        if "received" in usage:
            usage_received = _int(usage["received"], "usage.received")
        if "sent" in usage:
            usage_sent = _int(usage["sent"], "usage.sent")
    netlink = _object(doc["netlink"], "netlink") if "netlink" in doc else None

    extra: dict[str, Any] = {}
    if len(doc) > 4:  # the four required members; anything else is optional or extra
        extra = {k: v for k, v in doc.items() if k not in _TOP_LEVEL}
        if extra:
            deviations.append(Deviation.EXTRA_MEMBERS)

    return {
        "state": state, "afi": afi, "src_ip": src_ip, "dst_ip": dst_ip, "protocol": protocol,
        "src_port": src_port, "dst_port": dst_port, "experiment_id": experiment_id,
        "activity_id": activity_id, "application": application, "start_time": start_time,
        "end_time": end_time, "current_time": current_time, "usage_received": usage_received,
        "usage_sent": usage_sent, "netlink": netlink, "extra": extra, "deviations": deviations,
    }


def decode_json(msg: str) -> Any:
    """The JSON document of a firefly MSG, or FireflyRejected (syntax, depth)."""
    try:
        doc = _DECODER.decode(msg)
    except json.JSONDecodeError as exc:
        raise FireflyRejected(R.JSON_SYNTAX, f"{exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise FireflyRejected(R.TOO_DEEP, "JSON nested deeper than the parser allows") from None
    except ValueError as exc:  # NaN/Infinity, integers over the digit limit
        raise FireflyRejected(R.JSON_SYNTAX, str(exc)) from None
    # Cheap test first: depth cannot exceed the number of opening brackets.
    if msg.count("{") + msg.count("[") > MAX_JSON_DEPTH and _depth_exceeds(doc, MAX_JSON_DEPTH):
        raise FireflyRejected(R.TOO_DEEP, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


def _parse(data: bytes, strict: bool) -> FireflyRecord:
    if len(data) > MAX_FIREFLY_BYTES:
        raise FireflyRejected(R.TOO_LARGE, f"{len(data)} bytes, more than {MAX_FIREFLY_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FireflyRejected(R.NOT_UTF8, f"{exc.reason} at byte {exc.start}") from None
    try:
        header, msg = split_message(text)
    except SyslogError as exc:
        raise FireflyRejected(R.NO_SYSLOG_HEADER if exc.missing_header else R.BAD_SYSLOG_HEADER,
                              str(exc)) from None
    if header.msgid != FIREFLY_MSGID:
        raise FireflyRejected(R.NOT_FIREFLY, f"MSGID is {header.msgid or NIL!r:.40}, not {FIREFLY_MSGID!r}")
    fields = check_document(decode_json(msg), strict=strict)

    deviations = fields["deviations"]
    raw_ts = header.timestamp
    syslog_timestamp = None
    if raw_ts == NIL:
        deviations.insert(0, Deviation.SYSLOG_TIMESTAMP_NIL)
    elif raw_ts == "":
        deviations.insert(0, Deviation.SYSLOG_TIMESTAMP_EMPTY)
    else:
        syslog_timestamp = parse_rfc3339(raw_ts)
        if syslog_timestamp is None:
            deviations.insert(0, Deviation.SYSLOG_TIMESTAMP_INVALID)
    fields["deviations"] = tuple(deviations)
    return FireflyRecord(syslog_priority=header.priority, syslog_timestamp=syslog_timestamp,
                         syslog_hostname=header.hostname, syslog_app=header.app_name,
                         syslog_procid=header.procid, **fields)


def parse_firefly(data: bytes, *, strict: bool = False) -> FireflyRecord:
    """One datagram -> FireflyRecord; FireflyRejected(reason, detail) is the only exception."""
    try:
        return _parse(data, strict)
    except FireflyRejected:
        raise
    except Exception as exc:  # a parser bug: still a named, counted rejection
        raise FireflyRejected(R.INTERNAL, f"{type(exc).__name__}: {exc}") from exc
