"""Build firefly datagrams (RFC 5424 header + schema-valid JSON), as the marker sends them,
and repair what real senders send (firefly.py's deviations) into such a datagram."""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import json
import socket
from typing import Any, Mapping

from scitags_core.firefly import (
    MAX_FIREFLY_BYTES, FireflyRecord, FlowState, IPAddress, Protocol,
)
from scitags_core.syslog5424 import PRI_LOCAL0_INFO, format_header

DEFAULT_APP_NAME = "scitags-p4"
DEFAULT_APPLICATION = "scitags-p4"
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # compact, as json.dumps(...)
_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)  # re-sent records: no re-parse
_STANDARD_MEMBERS = frozenset({"version", "flow-lifecycle", "flow-id", "context", "usage", "netlink"})


@functools.cache
def _hostname() -> str:
    return socket.gethostname() or "-"


def _timestamp(value: dt.datetime, name: str) -> str:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (RFC 3339 needs an offset)")
    return value.isoformat(timespec="microseconds")


def _port(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValueError(f"{name} {value!r} out of range 1..65535")
    return value


def _id(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def build_firefly(*, state: FlowState | str, src_ip: IPAddress | str, dst_ip: IPAddress | str,
                  src_port: int, dst_port: int, experiment_id: int, activity_id: int,
                  protocol: Protocol | str = Protocol.TCP,
                  application: str | None = DEFAULT_APPLICATION,
                  start_time: dt.datetime | None = None, end_time: dt.datetime | None = None,
                  current_time: dt.datetime | None = None,
                  usage_received: int | None = None, usage_sent: int | None = None,
                  netlink: Mapping[str, Any] | None = None,
                  hostname: str | None = None, app_name: str | None = DEFAULT_APP_NAME,
                  procid: str | None = None, syslog_timestamp: dt.datetime | None = None,
                  syslog_priority: int = PRI_LOCAL0_INFO,
                  extra: Mapping[str, Any] | None = None) -> bytes:
    """One firefly datagram valid against firefly.schema.json; ValueError/TypeError on bad input.

    current_time defaults to now (UTC), start_time to current_time for `start` (the schema
    requires start-time in every state, so `ongoing`/`end` must give it), the syslog
    timestamp to current_time and the hostname to this host's name. `extra` adds top-level
    members (the schema allows them) after the standard ones.
    """
    state = FlowState(state)
    protocol = Protocol(protocol)
    src = src_ip if isinstance(src_ip, _ADDRESS_TYPES) else ipaddress.ip_address(src_ip)
    dst = dst_ip if isinstance(dst_ip, _ADDRESS_TYPES) else ipaddress.ip_address(dst_ip)
    if src.version != dst.version:
        raise ValueError(f"src-ip {src} and dst-ip {dst} are of different address families")
    if current_time is None:
        current_time = dt.datetime.now(dt.timezone.utc)
    if start_time is None:
        if state is not FlowState.START:
            raise ValueError(f"a {state.value} firefly needs start_time (the schema requires it)")
        start_time = current_time
    if state is FlowState.END and end_time is None:
        raise ValueError("an end firefly needs end_time")
    lifecycle = {"state": state.value, "start-time": _timestamp(start_time, "start_time")}
    if end_time is not None:
        lifecycle["end-time"] = _timestamp(end_time, "end_time")
    lifecycle["current-time"] = _timestamp(current_time, "current_time")
    context: dict[str, Any] = {"experiment-id": _id(experiment_id, "experiment_id"),
                               "activity-id": _id(activity_id, "activity_id")}
    if application is not None:
        context["application"] = str(application)
    doc: dict[str, Any] = {
        "version": 1,
        "flow-lifecycle": lifecycle,
        "flow-id": {"afi": "ipv4" if src.version == 4 else "ipv6", "src-ip": str(src),
                    "dst-ip": str(dst), "protocol": protocol.value,
                    "src-port": _port(src_port, "src_port"), "dst-port": _port(dst_port, "dst_port")},
        "context": context,
    }
    if usage_received is not None or usage_sent is not None:
        doc["usage"] = {k: _id(v, f"usage_{k}") for k, v in
                        (("received", usage_received), ("sent", usage_sent)) if v is not None}
    if netlink is not None:
        doc["netlink"] = dict(netlink)
    for name, value in (extra or {}).items():
        if name in doc or name in _STANDARD_MEMBERS:
            raise ValueError(f"extra member {name!r} is a standard firefly member")
        doc[name] = value
    header = format_header(_timestamp(syslog_timestamp or current_time, "syslog_timestamp"),
                           _hostname() if hostname is None else hostname, app_name,
                           priority=syslog_priority, procid=procid)
    payload = (header + _ENCODER.encode(doc)).encode("utf-8")
    if len(payload) > MAX_FIREFLY_BYTES:
        raise ValueError(f"firefly is {len(payload)} bytes, more than one frame ({MAX_FIREFLY_BYTES})")
    return payload


def encode_record(record: FireflyRecord, extra: Mapping[str, Any] | None = None,
                  **changes: Any) -> bytes:
    """Datagram for a record (its extra top-level members are not re-sent; `extra` is).

    `changes` override build_firefly arguments taken from the record (e.g. hostname,
    usage_sent), without building a changed record first."""
    args = dict(
        state=record.state, src_ip=record.src_ip, dst_ip=record.dst_ip, src_port=record.src_port,
        dst_port=record.dst_port, experiment_id=record.experiment_id,
        activity_id=record.activity_id, protocol=record.protocol, application=record.application,
        start_time=record.start_time, end_time=record.end_time, current_time=record.current_time,
        usage_received=record.usage_received, usage_sent=record.usage_sent, netlink=record.netlink,
        hostname=record.syslog_hostname, app_name=record.syslog_app, procid=record.syslog_procid,
        syslog_timestamp=record.syslog_timestamp,
        syslog_priority=PRI_LOCAL0_INFO if record.syslog_priority is None else record.syslog_priority,
        extra=extra)
    args.update(changes)
    return build_firefly(**args)


def repairs(record: FireflyRecord, *, start_time: dt.datetime | None = None,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """What repairs the record's repairable deviations, as encode_record `changes`.

    A missing start-time becomes `start_time` (the flow's start as the receiver knew it),
    else the message's current-time or end-time; a missing current-time becomes `now`; a
    missing or unusable syslog timestamp becomes the current-time, a missing header gets
    PRI 134. The application, ids, 5-tuple, usage and netlink are kept as sent.
    """
    now = dt.datetime.now(dt.timezone.utc) if now is None else now
    current = record.current_time or now
    return {"start_time": record.start_time or start_time or record.end_time or current,
            "current_time": current, "syslog_timestamp": record.syslog_timestamp or current,
            "syslog_priority": PRI_LOCAL0_INFO if record.syslog_priority is None else record.syslog_priority}


def repaired(record: FireflyRecord, *, start_time: dt.datetime | None = None,
             now: dt.datetime | None = None) -> FireflyRecord:
    """The record with every repairable deviation repaired (see repairs), no deviations left."""
    return dataclasses.replace(record, deviations=(), **repairs(record, start_time=start_time, now=now))
