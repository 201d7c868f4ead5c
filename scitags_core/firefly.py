"""Firefly records: the typed result of parsing one firefly, and why one was rejected.

Parsing lives in firefly_parse.py, building in firefly_build.py, receiving in
firefly_receiver.py.

Decisions on real-world input (SPEC.md lists what senders do):
- accepted and recorded as a Deviation (what the deployed senders emit): the bare JSON
  document without any RFC 5424 header (flowd-go's default); a nil (`-`), empty or
  unparseable syslog timestamp; a HOSTNAME that is an IP address (dCache); `ongoing`
  without start-time (missing, null, "" or `-`: the Python reference); `end` without a
  start-time (null from flowd 1.1.7's np_api, "" from flowd-go); an empty/null/`-`
  current-time, or end-time on a state that does not need one (flowd-go); `usage: {}`
  (dCache); `context` before `flow-id` (XRootD); extra top-level members (`skOps`,
  `storage-stats`, ...: kept in `extra`; the schema allows them); experiment ids outside
  1..511 and activity ids outside 0..63 (the schema only says "integer": such a flow
  cannot be marked in a label, but its firefly is still valid and counted). `Z` times
  are plain RFC 3339 and no deviation.
- rejected: port 0 (the schema's minimum is 1, and the issue asks for it), an `end`
  without a usable end-time, a `start` without a start-time, truncated JSON, bad
  addresses, everything else the schema forbids, and datagrams over one jumbo frame or
  nested deeper than MAX_JSON_DEPTH. A record is built only once everything is checked:
  nothing is ever half-applied.
"""
from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from scitags_core import flowlabel

FIREFLY_PORT = 10514
MAX_FIREFLY_BYTES = 9000  # one jumbo frame: a firefly must not be fragmented
MAX_JSON_DEPTH = 16  # real fireflies nest 2-4 levels (netlink a few more)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FlowState(enum.StrEnum):
    START = "start"
    ONGOING = "ongoing"
    END = "end"


class AddressFamily(enum.StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class Protocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"


class RejectReason(enum.StrEnum):
    """Why a datagram is not an accepted firefly (one counter each in the receiver)."""

    TOO_LARGE = "too-large"  # more than MAX_FIREFLY_BYTES
    NOT_UTF8 = "not-utf8"
    NO_SYSLOG_HEADER = "no-syslog-header"  # does not start with <PRI>
    BAD_SYSLOG_HEADER = "bad-syslog-header"  # PRI/VERSION/fields/structured data broken
    NOT_FIREFLY = "not-firefly-json"  # MSGID is not firefly-json
    JSON_SYNTAX = "json-syntax"
    TOO_DEEP = "too-deep"  # nesting depth bomb
    WRONG_TYPE = "wrong-type"  # a member of the wrong JSON type
    MISSING_MEMBER = "missing-member"
    UNKNOWN_MEMBER = "unknown-member"  # where the schema forbids additional members
    BAD_VERSION = "bad-version"
    BAD_STATE = "bad-state"
    BAD_TIME = "bad-time"  # not an RFC 3339 date-time, or end without end-time
    BAD_AFI = "bad-afi"
    BAD_IP = "bad-ip"  # not an address of the stated afi
    BAD_PROTOCOL = "bad-protocol"
    BAD_PORT = "bad-port"  # outside 1..65535 (port 0 included)
    INTERNAL = "internal-error"  # a bug in the parser; counted, never raised further


class Deviation(enum.StrEnum):
    """Accepted departures from the schema or from RFC 5424 seen in real senders."""

    NO_SYSLOG_HEADER = "no-syslog-header"  # flowd-go default: the datagram is the bare JSON
    SYSLOG_TIMESTAMP_NIL = "syslog-timestamp-nil"  # XRootD sends `-`
    SYSLOG_TIMESTAMP_EMPTY = "syslog-timestamp-empty"  # a Go sender sends two spaces
    SYSLOG_TIMESTAMP_INVALID = "syslog-timestamp-invalid"  # present but not RFC 3339
    SYSLOG_HOSTNAME_ADDRESS = "syslog-hostname-address"  # dCache: HOSTNAME is an IP address
    ONGOING_WITHOUT_START_TIME = "ongoing-without-start-time"  # Python reference sender
    END_WITHOUT_START_TIME = "end-without-start-time"  # flowd 1.1.7 np_api null, flowd-go ""
    CURRENT_TIME_EMPTY = "current-time-empty"  # "", null or `-`
    END_TIME_EMPTY = "end-time-empty"  # "", null or `-` on start/ongoing
    USAGE_EMPTY = "usage-empty"  # dCache start: "usage": {}
    CONTEXT_BEFORE_FLOW_ID = "context-before-flow-id"  # XRootD member order
    EXTRA_MEMBERS = "extra-top-level-members"  # allowed by the schema, named in `extra`
    EXPERIMENT_NOT_MARKABLE = "experiment-not-markable"  # id outside 1..511
    ACTIVITY_NOT_MARKABLE = "activity-not-markable"  # id outside 0..63


class FireflyRejected(Exception):
    """A datagram that is not an acceptable firefly: `reason` to count, `detail` to show."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class FireflyRecord:
    state: FlowState
    afi: AddressFamily
    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: Protocol
    src_port: int
    dst_port: int
    experiment_id: int
    activity_id: int
    application: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    current_time: dt.datetime | None = None
    syslog_priority: int | None = 134  # None: no syslog header (bare JSON)
    syslog_timestamp: dt.datetime | None = None
    syslog_hostname: str | None = None
    syslog_app: str | None = None
    syslog_procid: str | None = None
    usage_received: int | None = None
    usage_sent: int | None = None
    netlink: dict[str, Any] | None = field(default=None, hash=False)
    extra: dict[str, Any] = field(default_factory=dict, hash=False)  # unknown top-level members
    deviations: tuple[Deviation, ...] = ()

    @property
    def flow_key(self) -> tuple[Protocol, IPAddress, int, IPAddress, int]:
        """(protocol, src ip, src port, dst ip, dst port) of the described flow."""
        return self.protocol, self.src_ip, self.src_port, self.dst_ip, self.dst_port

    @property
    def markable(self) -> bool:
        """True when the ids fit a flow label (experiment 1..511, activity 0..63)."""
        return (1 <= self.experiment_id <= flowlabel.EXPERIMENT_MAX
                and 0 <= self.activity_id <= flowlabel.ACTIVITY_MAX)

    @property
    def scitag(self) -> int | None:
        """Protocol scitag value `experiment << 6 | activity`, None if not markable."""
        return flowlabel.scitag_value(self.experiment_id, self.activity_id) if self.markable else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (addresses and times as strings)."""
        return {
            "state": self.state.value, "afi": self.afi.value,
            "src_ip": str(self.src_ip), "dst_ip": str(self.dst_ip),
            "protocol": self.protocol.value, "src_port": self.src_port, "dst_port": self.dst_port,
            "experiment_id": self.experiment_id, "activity_id": self.activity_id,
            "application": self.application,
            "start_time": _iso(self.start_time), "end_time": _iso(self.end_time),
            "current_time": _iso(self.current_time),
            "syslog_priority": self.syslog_priority, "syslog_timestamp": _iso(self.syslog_timestamp),
            "syslog_hostname": self.syslog_hostname, "syslog_app": self.syslog_app,
            "syslog_procid": self.syslog_procid,
            "usage_received": self.usage_received, "usage_sent": self.usage_sent,
            "netlink": self.netlink, "extra": self.extra,
            "deviations": [d.value for d in self.deviations],
        }
