"""Parse one firefly datagram (RFC 5424 header + JSON, or the bare JSON) into a FireflyRecord.

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
import socket
from typing import Any

from scitags_core import flowlabel
from scitags_core.firefly import (
    MAX_FIREFLY_BYTES, MAX_JSON_DEPTH, AddressFamily, Deviation, FireflyRecord, FireflyRejected,
    FlowState, IPAddress, Protocol, RejectReason,
)
from scitags_core.syslog5424 import FIREFLY_MSGID, NIL, SyslogError, SyslogHeader, split_message

try:
    import orjson as _orjson  # optional: ~3x faster decoding on the receive path
except ImportError:  # pragma: no cover - the stdlib decoder gives the same documents
    _orjson = None

R = RejectReason
_MISSING = object()
_EXPERIMENT_MAX, _ACTIVITY_MAX = flowlabel.EXPERIMENT_MAX, flowlabel.ACTIVITY_MAX
_TOP_LEVEL = frozenset({"version", "flow-lifecycle", "flow-id", "usage", "netlink", "context"})
_REQUIRED_TOP = ("version", "flow-lifecycle", "flow-id", "context")
_REQUIRED_SET = frozenset(_REQUIRED_TOP)
_INT64_LIMIT = float(2**63)
_LIFECYCLE_KEYS = frozenset({"state", "start-time", "end-time", "current-time"})
_FLOW_ID_KEYS = ("afi", "src-ip", "dst-ip", "protocol", "src-port", "dst-port")
_FLOW_ID_SET = frozenset(_FLOW_ID_KEYS)
_CONTEXT_KEYS = frozenset({"experiment-id", "activity-id", "application"})
_USAGE_KEYS = frozenset({"received", "sent"})
_STATES = {s.value: s for s in FlowState}
_AFIS = {a.value: a for a in AddressFamily}
_PROTOCOLS = {p.value: p for p in Protocol}
_inet_pton, _AF_INET, _AF_INET6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6
_MAX_IP_TEXT = 64  # longer strings cannot be an unscoped IPv4/IPv6 address
_ADDRESS_START = frozenset("0123456789abcdefABCDEF:")  # cheap pre-test before inet_pton
_LEADING_SPACE = " \t\r\n\ufeff"


def _bare_json(text: str) -> bool:
    """True for a datagram that is the JSON document itself (flowd-go without prependSyslog)."""
    if text[:1] == "{":
        return True
    return text[:1] in _LEADING_SPACE and text.lstrip(_LEADING_SPACE)[:1] == "{"

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


# inet_pton accepts exactly the strings ipaddress does (tests/core prove it on fuzzed
# address-like text) and is several times faster; a scope (%eth0) is refused by both.
@functools.lru_cache(maxsize=8192)
def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(_inet_pton(_AF_INET, text))
    except (OSError, ValueError):  # ValueError: embedded NUL, unencodable text
        return None


@functools.lru_cache(maxsize=8192)
def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    try:
        return ipaddress.IPv6Address(_inet_pton(_AF_INET6, text))
    except (OSError, ValueError):
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


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
    if not obj.keys() <= allowed:
        unknown = sorted(obj.keys() - allowed)
        raise FireflyRejected(R.UNKNOWN_MEMBER, f"{where} has unknown member {unknown[0]!r:.40}")


def _string(value: Any, where: str) -> str:
    if type(value) is not str:
        raise FireflyRejected(R.WRONG_TYPE, f"{where} must be a string, got {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise FireflyRejected(R.WRONG_TYPE, f"{where} must be an integer, got {value!r:.40}")


def _time(value: Any, where: str) -> dt.datetime:
    parsed = parse_rfc3339(_string(value, where))
    if parsed is None:
        raise FireflyRejected(R.BAD_TIME, f"{where} {value!r:.60} is not an RFC 3339 date-time")
    return parsed


def _ip(value: Any, ipv4: bool, where: str) -> IPAddress:
    text = _string(value, where)
    address = None
    if len(text) <= _MAX_IP_TEXT:
        address = _ipv4(text) if ipv4 else _ipv6(text)
    if address is None:
        family = "ipv4" if ipv4 else "ipv6"
        raise FireflyRejected(R.BAD_IP, f"{where} {text!r:.60} is not an {family} address")
    return address


def _port(value: Any, where: str) -> int:
    port = _int(value, where)
    if not 1 <= port <= 65535:
        raise FireflyRejected(R.BAD_PORT, f"{where} {port} out of range 1..65535")
    return port


_BLANK_TIMES = (None, "", "-")  # a time member that says "no time": null, "" or the syslog nil


def _document_fields(doc: Any, strict: bool) -> tuple:
    """The JSON part of a FireflyRecord, in field order; FireflyRejected when invalid."""
    if type(doc) is not dict:
        _object(doc, "firefly")
    for key in _REQUIRED_TOP:
        if key not in doc:
            raise FireflyRejected(R.MISSING_MEMBER, f"missing top-level member {key!r}")
    version = _int(doc["version"], "version")
    if version != 1:
        raise FireflyRejected(R.BAD_VERSION, f"version {version} is not 1")
    deviations: list[Deviation] = []

    lifecycle = doc["flow-lifecycle"]
    if type(lifecycle) is not dict or not lifecycle.keys() <= _LIFECYCLE_KEYS:
        _only(_object(lifecycle, "flow-lifecycle"), _LIFECYCLE_KEYS, "flow-lifecycle")
    if "state" not in lifecycle:
        raise FireflyRejected(R.MISSING_MEMBER, "flow-lifecycle has no 'state'")
    state_text = lifecycle["state"]
    state = _STATES.get(state_text) if type(state_text) is str else _string(state_text, "state")
    if state is None:
        raise FireflyRejected(R.BAD_STATE, f"state {state_text!r:.40} is not start, ongoing or end")
    raw_start = lifecycle.get("start-time", _MISSING)
    start_time = None
    if (not strict and state is not FlowState.START
            and (raw_start is _MISSING or raw_start in _BLANK_TIMES)):
        deviations.append(Deviation.ONGOING_WITHOUT_START_TIME if state is FlowState.ONGOING
                          else Deviation.END_WITHOUT_START_TIME)
    elif raw_start is _MISSING:
        raise FireflyRejected(R.MISSING_MEMBER, f"flow-lifecycle has no 'start-time' ({state.value})")
    else:
        start_time = _time(raw_start, "start-time")
    raw_end = lifecycle.get("end-time", _MISSING)
    end_time = None
    if raw_end is _MISSING:
        if state is FlowState.END:
            raise FireflyRejected(R.MISSING_MEMBER, "flow-lifecycle has no 'end-time' (end)")
    elif not strict and raw_end in _BLANK_TIMES:
        if state is FlowState.END:  # the one time an end cannot do without
            raise FireflyRejected(R.BAD_TIME, f"an end needs a usable end-time, got {raw_end!r}")
        deviations.append(Deviation.END_TIME_EMPTY)
    else:
        end_time = _time(raw_end, "end-time")
    raw_current = lifecycle.get("current-time", _MISSING)
    current_time = None
    if raw_current is not _MISSING:
        if not strict and raw_current in _BLANK_TIMES:
            deviations.append(Deviation.CURRENT_TIME_EMPTY)
        else:
            current_time = _time(raw_current, "current-time")

    flow_id = doc["flow-id"]
    if type(flow_id) is not dict or not flow_id.keys() <= _FLOW_ID_SET:
        _only(_object(flow_id, "flow-id"), _FLOW_ID_SET, "flow-id")
    if len(flow_id) != 6:  # only the six known members are left: some are missing
        missing = [k for k in _FLOW_ID_KEYS if k not in flow_id]
        raise FireflyRejected(R.MISSING_MEMBER, f"flow-id has no {missing[0]!r}")
    afi_text = flow_id["afi"]
    afi = _AFIS.get(afi_text) if type(afi_text) is str else _string(afi_text, "afi")
    if afi is None:
        raise FireflyRejected(R.BAD_AFI, f"afi {afi_text!r:.40} is not ipv4 or ipv6")
    ipv4 = afi is AddressFamily.IPV4
    src_ip = _ip(flow_id["src-ip"], ipv4, "src-ip")
    dst_ip = _ip(flow_id["dst-ip"], ipv4, "dst-ip")
    protocol_text = flow_id["protocol"]
    protocol = (_PROTOCOLS.get(protocol_text) if type(protocol_text) is str
                else _string(protocol_text, "protocol"))
    if protocol is None:
        raise FireflyRejected(R.BAD_PROTOCOL, f"protocol {protocol_text!r:.40} is not tcp or udp")
    src_port, dst_port = flow_id["src-port"], flow_id["dst-port"]
    if type(src_port) is not int or not 0 < src_port < 65536:
        src_port = _port(src_port, "src-port")
    if type(dst_port) is not int or not 0 < dst_port < 65536:
        dst_port = _port(dst_port, "dst-port")

    context = doc["context"]
    if type(context) is not dict or not context.keys() <= _CONTEXT_KEYS:
        _only(_object(context, "context"), _CONTEXT_KEYS, "context")
    if "experiment-id" not in context or "activity-id" not in context:
        raise FireflyRejected(R.MISSING_MEMBER, "context needs 'experiment-id' and 'activity-id'")
    experiment_id, activity_id = context["experiment-id"], context["activity-id"]
    if type(experiment_id) is not int:
        experiment_id = _int(experiment_id, "experiment-id")
    if type(activity_id) is not int:
        activity_id = _int(activity_id, "activity-id")
    application = _string(context["application"], "application") if "application" in context else None
    for member in doc:  # JSON objects are unordered, but the order tells senders apart
        if member == "flow-id":
            break
        if member == "context":
            deviations.append(Deviation.CONTEXT_BEFORE_FLOW_ID)
            break
    if not 1 <= experiment_id <= _EXPERIMENT_MAX:
        deviations.append(Deviation.EXPERIMENT_NOT_MARKABLE)
    if not 0 <= activity_id <= _ACTIVITY_MAX:
        deviations.append(Deviation.ACTIVITY_NOT_MARKABLE)

    usage_received = usage_sent = netlink = None
    extra: dict[str, Any] = {}
    if len(doc) > 4:  # beyond the four required members: optional or extra ones
        if "usage" in doc:
            usage = _object(doc["usage"], "usage")
            _only(usage, _USAGE_KEYS, "usage")
            if not usage:
                deviations.append(Deviation.USAGE_EMPTY)
            if "received" in usage:
                usage_received = _int(usage["received"], "usage.received")
            if "sent" in usage:
                usage_sent = _int(usage["sent"], "usage.sent")
        if "netlink" in doc:
            netlink = _object(doc["netlink"], "netlink")
        if not doc.keys() <= _TOP_LEVEL:
            extra = {k: v for k, v in doc.items() if k not in _TOP_LEVEL}
            deviations.append(Deviation.EXTRA_MEMBERS)

    return (state, afi, src_ip, dst_ip, protocol, src_port, dst_port, experiment_id, activity_id,
            application, start_time, end_time, current_time, usage_received, usage_sent, netlink,
            extra, deviations)


def check_document(doc: Any, *, strict: bool = False) -> list[Deviation]:
    """Deviations of a firefly JSON document, or FireflyRejected naming the problem.

    strict=True accepts exactly what firefly.schema.json accepts (formats asserted);
    strict=False also takes the listed real-world deviations.
    """
    return _document_fields(doc, strict)[-1]


def _decode_stdlib(msg: str) -> Any:
    try:
        return _DECODER.decode(msg)
    except json.JSONDecodeError as exc:
        # A datagram cut short (a sender's fixed buffer, a truncating relay) is named as such.
        truncated = exc.pos >= len(msg.rstrip()) or exc.msg.startswith("Unterminated")
        where = "at" if exc.msg.endswith(" at") else "at character"
        raise FireflyRejected(R.JSON_SYNTAX, f"{'truncated JSON: ' if truncated else ''}{exc.msg} "
                                             f"{where} {exc.pos} of {len(msg)}") from None
    except RecursionError:
        raise FireflyRejected(R.TOO_DEEP, "JSON nested deeper than the parser allows") from None
    except ValueError as exc:  # NaN/Infinity, integers over the digit limit
        raise FireflyRejected(R.JSON_SYNTAX, str(exc)) from None


def decode_json(msg: str, *, exact: bool = False) -> tuple[Any, bool]:
    """(document, exact) of a firefly MSG, or FireflyRejected (syntax, depth).

    orjson (when installed) is tried first; it turns integers beyond 64 bits into floats,
    so it reports exact=False and the caller re-decodes with exact=True when a float
    shows up where that matters. Errors are always named by the stdlib decoder.
    """
    doc: Any = None
    if _orjson is not None and not exact:
        try:
            doc = _orjson.loads(msg)
        except _orjson.JSONDecodeError:
            exact = True
    else:
        exact = True
    if exact:
        doc = _decode_stdlib(msg)
    # Cheap test first: depth cannot exceed the number of opening brackets.
    if msg.count("{") + msg.count("[") > MAX_JSON_DEPTH and _depth_exceeds(doc, MAX_JSON_DEPTH):
        raise FireflyRejected(R.TOO_DEEP, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return doc, exact


def _maybe_inexact(doc: dict[str, Any]) -> bool:
    """True if orjson may have turned an out-of-64-bit integer into a float that we keep."""
    context = doc["context"]
    if type(context["experiment-id"]) is float or type(context["activity-id"]) is float:
        return True
    if len(doc) > 4:  # usage, netlink and extra members are kept as decoded
        stack = [v for k, v in doc.items() if k not in _REQUIRED_SET]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is float and abs(node) >= _INT64_LIMIT:
                return True
            if kind is dict:
                stack.extend(node.values())
            elif kind is list:
                stack.extend(node)
    return False


def _parse(data: bytes, strict: bool) -> FireflyRecord:
    if len(data) > MAX_FIREFLY_BYTES:
        raise FireflyRejected(R.TOO_LARGE, f"{len(data)} bytes, more than {MAX_FIREFLY_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FireflyRejected(R.NOT_UTF8, f"{exc.reason} at byte {exc.start}") from None
    header: SyslogHeader | None
    if not strict and text[:1] != "<" and _bare_json(text):  # "<": the usual header, at once
        header, msg = None, text
    else:
        try:
            header, msg = split_message(text)
        except SyslogError as exc:
            raise FireflyRejected(R.NO_SYSLOG_HEADER if exc.missing_header else R.BAD_SYSLOG_HEADER,
                                  str(exc)) from None
        if header.msgid != FIREFLY_MSGID:
            raise FireflyRejected(R.NOT_FIREFLY, f"MSGID is {header.msgid or NIL!r:.40}, not {FIREFLY_MSGID!r}")
    doc, exact = decode_json(msg)
    fields = _document_fields(doc, strict)
    if not exact and _maybe_inexact(doc):
        fields = _document_fields(decode_json(msg, exact=True)[0], strict)
    (state, afi, src_ip, dst_ip, protocol, src_port, dst_port, experiment_id, activity_id,
     application, start_time, end_time, current_time, usage_received, usage_sent, netlink, extra,
     deviations) = fields

    if header is None:
        deviations.insert(0, Deviation.NO_SYSLOG_HEADER)
        return FireflyRecord(state, afi, src_ip, dst_ip, protocol, src_port, dst_port,
                             experiment_id, activity_id, application, start_time, end_time,
                             current_time, None, None, None, None, None, usage_received,
                             usage_sent, netlink, extra, tuple(deviations))
    raw_ts = header.timestamp
    syslog_timestamp = None
    header_deviations: list[Deviation] = []
    if raw_ts == NIL:
        header_deviations.append(Deviation.SYSLOG_TIMESTAMP_NIL)
    elif raw_ts == "":
        header_deviations.append(Deviation.SYSLOG_TIMESTAMP_EMPTY)
    else:
        syslog_timestamp = parse_rfc3339(raw_ts)
        if syslog_timestamp is None:
            header_deviations.append(Deviation.SYSLOG_TIMESTAMP_INVALID)
    hostname = header.hostname
    if hostname is not None and hostname[:1] in _ADDRESS_START and len(hostname) <= _MAX_IP_TEXT \
            and (_ipv4(hostname) is not None or _ipv6(hostname) is not None):
        header_deviations.append(Deviation.SYSLOG_HOSTNAME_ADDRESS)
    if header_deviations:
        deviations[:0] = header_deviations
    return FireflyRecord(state, afi, src_ip, dst_ip, protocol, src_port, dst_port, experiment_id,
                         activity_id, application, start_time, end_time, current_time,
                         header.priority, syslog_timestamp, hostname, header.app_name,
                         header.procid, usage_received, usage_sent, netlink, extra,
                         tuple(deviations))


def parse_firefly(data: bytes, *, strict: bool = False) -> FireflyRecord:
    """One datagram -> FireflyRecord; FireflyRejected(reason, detail) is the only exception."""
    try:
        return _parse(data, strict)
    except FireflyRejected:
        raise
    except Exception as exc:  # a parser bug: still a named, counted rejection
        raise FireflyRejected(R.INTERNAL, f"{type(exc).__name__}: {exc}") from exc
