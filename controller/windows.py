"""Time windows operators ask about: WHEN (`today`, `yesterday`, `now`, `90s`, `30m`, `1h`,
`7d`, `2w`, an ISO date or date-time, epoch seconds) and step lengths (`5m`, or seconds),
parsed in one place for the CLI and the HTTP API. `today`, `yesterday`, dates and
date-times without an offset are in the controller host's local time zone, which every
answer states (`zone_name()`).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WHEN_FORMS = ("today, yesterday, now, a duration ago (30m, 1h, 7d, 2w), an ISO date / date-time "
              "or epoch seconds")


class WindowError(ValueError):
    """A WHEN, step or window that cannot be used; the message says why (exit 2, HTTP 400)."""


@dataclass(frozen=True)
class Window:
    since: float  # epoch seconds, inclusive
    until: float  # epoch seconds, exclusive

    @property
    def seconds(self) -> float:
        return self.until - self.since


def zone_name(at: float | None = None) -> str:
    """e.g. "UTC", "CET (+01:00)": the name and, where it is not UTC, the offset."""
    stamp = (dt.datetime.now() if at is None else dt.datetime.fromtimestamp(at)).astimezone()
    name, offset = stamp.tzname() or "", stamp.strftime("%z")
    if offset in ("+0000", "-0000") and name in ("UTC", "GMT"):
        return name
    return f"{name} ({offset[:3]}:{offset[3:]})"


def iso(epoch: float) -> str:
    """An answer's time stamp: ISO 8601 in the controller host's zone, with its offset."""
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def parse_duration(text: str, what: str = "duration") -> float:
    """`90s`, `5m`, `1h`, `7d`, `2w` -> seconds (> 0)."""
    if str(text).strip().isdigit():  # bare seconds (scripts, the dashboard)
        seconds = float(str(text).strip())
        if seconds <= 0:
            raise WindowError(f"{what} {text!r} must be longer than 0")
        return seconds
    m = _DURATION.match(str(text))
    if not m:
        raise WindowError(f"{what} {text!r} is not a number with a unit s, m, h, d or w (e.g. 5m)")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0:
        raise WindowError(f"{what} {text!r} must be longer than 0")
    return seconds


def parse_when(text: str, now: float) -> float:
    """WHEN -> epoch seconds; `now` is the controller's clock."""
    word = str(text).strip()
    low = word.lower()
    if not low:
        raise WindowError(f"empty time: use {WHEN_FORMS}")
    if low == "now":
        return now
    if low in ("today", "yesterday"):
        midnight = dt.datetime.fromtimestamp(now).astimezone().replace(hour=0, minute=0, second=0,
                                                                        microsecond=0)
        if low == "yesterday":  # via the date: a day with a DST change is not 24 h long
            day = midnight.date() - dt.timedelta(days=1)
            midnight = dt.datetime(day.year, day.month, day.day).astimezone()
        return midnight.timestamp()
    if _DURATION.match(low):
        return now - parse_duration(low, "time")
    if low.isdigit() and len(low) >= 9:  # epoch seconds (scripts, the dashboard)
        return float(low)
    try:
        if len(low) == 10:  # a date: its local midnight
            day = dt.date.fromisoformat(word)
            return dt.datetime(day.year, day.month, day.day).astimezone().timestamp()
        stamp = dt.datetime.fromisoformat(word.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise WindowError(f"time {text!r} is not one of: {WHEN_FORMS}") from None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()  # local time of the controller host
    return stamp.timestamp()


def parse_window(since: str | None, until: str | None, now: float) -> Window:
    """[since, until) from two WHENs (until: default now). A missing since, an unparsable
    WHEN or a window that does not go forwards is a WindowError naming the cause."""
    if since is None or str(since).strip() == "":
        raise WindowError("a window needs since (e.g. since=today or --since 1h)")
    start = parse_when(since, now)
    end = now if until is None or str(until).strip() == "" else parse_when(until, now)
    if end <= start:
        raise WindowError(f"window goes backwards or is empty: since {since!r} ({iso(start)}) is "
                          f"not before until {until or 'now'!r} ({iso(end)})")
    return Window(start, end)
