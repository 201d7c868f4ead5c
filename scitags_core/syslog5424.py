"""The RFC 5424 syslog header that carries a firefly, split and formatted.

    <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]

Real senders put `-` (XRootD) or nothing (one Go sender: two spaces) in TIMESTAMP; the
split keeps the field positions in both cases so the caller can report the deviation.
"""
from __future__ import annotations

import re
from typing import NamedTuple

NIL = "-"
FIREFLY_MSGID = "firefly-json"
PRI_LOCAL0_INFO = (16 << 3) | 6  # 134: facility local0, severity informational
_BOM = "\ufeff"


class SyslogError(ValueError):
    """Not an RFC 5424 message; `missing_header` tells "no header at all" from "broken"."""

    def __init__(self, message: str, *, missing_header: bool = False) -> None:
        super().__init__(message)
        self.missing_header = missing_header


class SyslogHeader(NamedTuple):
    priority: int
    version: int
    timestamp: str  # raw: "" or "-" are possible, parsed by the caller
    hostname: str | None  # None for the nil value
    app_name: str | None
    procid: str | None
    msgid: str | None


def _nil(value: str) -> str | None:
    return None if value == NIL else value


def _skip_structured_data(rest: str) -> str | None:
    """MSG after one or more SD-ELEMENTs `[id k="v" ...]`; None when malformed."""
    i, n = 0, len(rest)
    while i < n and rest[i] == "[":
        i += 1
        while i < n and rest[i] != "]":
            i += 2 if rest[i] == "\\" else 1  # escaped ] " \ inside PARAM-VALUE
        if i >= n:
            return None
        i += 1
    if i == 0:
        return None
    if i == n:
        return ""
    return rest[i + 1:] if rest[i] == " " else None


# Fast path for the usual shape (nil structured data); anything else takes the slow path,
# which also names what is wrong.
_COMMON = re.compile(r"<(\d{1,3})>([1-9]\d{0,2}) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) - ", re.ASCII)


def split_message(text: str) -> tuple[SyslogHeader, str]:
    """(header, MSG) of an RFC 5424 message; raises SyslogError naming the problem."""
    match = _COMMON.match(text)
    if match is not None and int(match[1]) <= 191:
        pri, version, timestamp, hostname, app_name, procid, msgid = match.groups()
        msg = text[match.end():]
        if msg.startswith(_BOM):
            msg = msg[1:]
        return SyslogHeader(int(pri), int(version), timestamp, None if hostname == NIL else hostname,
                            None if app_name == NIL else app_name, None if procid == NIL else procid,
                            None if msgid == NIL else msgid), msg
    return _split_slowly(text)


def _split_slowly(text: str) -> tuple[SyslogHeader, str]:
    parts = text.split(" ", 7)
    first = parts[0]
    if not first.startswith("<"):
        raise SyslogError("no RFC 5424 header (message does not start with <PRI>)", missing_header=True)
    close = first.find(">")
    pri, version = first[1:close], first[close + 1:]
    if close < 2 or close > 4 or not pri.isascii() or not pri.isdigit() or int(pri) > 191:
        raise SyslogError(f"bad PRI {first[:8]!r}")
    if not version.isascii() or not version.isdigit() or len(version) > 3 or version[0] == "0":
        raise SyslogError(f"bad syslog VERSION {version[:8]!r}")
    if len(parts) < 7:
        raise SyslogError(f"header has {len(parts)} of 7 fields")
    sd = parts[6]
    if sd == NIL:
        msg = parts[7] if len(parts) == 8 else ""
    else:
        msg_or_none = _skip_structured_data(" ".join(parts[6:]))
        if msg_or_none is None:
            raise SyslogError(f"bad STRUCTURED-DATA {sd[:32]!r}")
        msg = msg_or_none
    if msg.startswith(_BOM):  # RFC 5424 MSG-UTF8 may start with a BOM
        msg = msg[1:]
    header = SyslogHeader(int(pri), int(version), parts[1], _nil(parts[2]), _nil(parts[3]),
                          _nil(parts[4]), _nil(parts[5]))
    return header, msg


def _field(value: str | None, name: str, limit: int) -> str:
    if value is None or value == "":
        return NIL
    if len(value) > limit or not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(f"syslog {name} {value!r} must be 1..{limit} printable ASCII characters "
                         "without spaces")
    return value


def format_header(timestamp: str, hostname: str | None, app_name: str | None,
                  msgid: str = FIREFLY_MSGID, priority: int = PRI_LOCAL0_INFO,
                  procid: str | None = None) -> str:
    """`<PRI>1 TIMESTAMP HOSTNAME APP PROCID MSGID - ` (nil structured data), ready for MSG."""
    if not 0 <= priority <= 191:
        raise ValueError(f"syslog priority {priority} out of range 0..191")
    return (f"<{priority}>1 {_field(timestamp, 'timestamp', 64)} {_field(hostname, 'hostname', 255)} "
            f"{_field(app_name, 'app-name', 48)} {_field(procid, 'procid', 128)} "
            f"{_field(msgid, 'msgid', 32)} - ")
