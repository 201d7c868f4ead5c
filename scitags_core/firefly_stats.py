"""Accepted fireflies per sender application: how many, which deviations, how many duplicates.

The application is the firefly's `context.application` ("flowd v1.1.7", "xrootd 5.6"),
else its syslog APP-NAME, else "unknown". Fireflies are unauthenticated, so the set of
application names (Prometheus label values) is bounded: after MAX_APPLICATIONS distinct
names, new ones are counted under "other".
"""
from __future__ import annotations

import collections
import threading
from typing import Iterator

from scitags_core.firefly import Deviation, FireflyRecord

MAX_APPLICATIONS = 64
MAX_APPLICATION_CHARS = 64
UNKNOWN_APPLICATION = "unknown"
OTHER_APPLICATIONS = "other"


def application_of(record: FireflyRecord) -> str:
    """The sender application a record is counted under (printable, at most 64 characters)."""
    name = record.application or record.syslog_app or UNKNOWN_APPLICATION
    if len(name) > MAX_APPLICATION_CHARS or not name.isprintable():  # rare: two cheap checks otherwise
        name = "".join(c if c.isprintable() else "?" for c in name[:MAX_APPLICATION_CHARS])
    return name.strip() or UNKNOWN_APPLICATION


class _PerApplication:
    __slots__ = ("accepted", "duplicates", "deviations")

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.deviations: collections.Counter[Deviation] = collections.Counter()


class FireflyStats:
    """Thread-safe counters; shared by the UDP and in-band receivers of one controller."""

    def __init__(self, max_applications: int = MAX_APPLICATIONS) -> None:
        self.max_applications = max_applications
        self._apps: dict[str, _PerApplication] = {}
        # the name as sent -> its entry: one dict lookup per firefly (bounded like _apps)
        self._by_sent_name: dict[str | None, _PerApplication] = {}
        self._lock = threading.Lock()

    def _entry(self, record: FireflyRecord) -> _PerApplication:
        sent = record.application or record.syslog_app
        entry = self._by_sent_name.get(sent)
        if entry is not None:
            return entry
        name = application_of(record)
        entry = self._apps.get(name)
        if entry is None:
            if len(self._apps) >= self.max_applications:
                name = OTHER_APPLICATIONS
                entry = self._apps.get(name)
            if entry is None:
                entry = self._apps[name] = _PerApplication()
        if len(self._by_sent_name) < 4 * self.max_applications:
            self._by_sent_name[sent] = entry
        return entry

    def count_accepted(self, record: FireflyRecord) -> None:
        with self._lock:
            entry = self._entry(record)
            entry.accepted += 1
            if record.deviations:
                counts = entry.deviations
                for deviation in record.deviations:
                    counts[deviation] += 1

    def count_duplicate(self, record: FireflyRecord) -> None:
        with self._lock:
            self._entry(record).duplicates += 1

    def snapshot(self) -> dict[str, object]:
        """{"deviations": {deviation: n}, "applications": {app: {accepted, duplicates, deviations}}}."""
        with self._lock:
            apps = {name: {"accepted": e.accepted, "duplicates": e.duplicates,
                           "deviations": {d.value: n for d, n in sorted(e.deviations.items())}}
                    for name, e in sorted(self._apps.items())}
        total: collections.Counter[str] = collections.Counter()
        for app in apps.values():
            total.update(app["deviations"])
        return {"deviations": dict(sorted(total.items())), "applications": apps,
                "duplicates": sum(a["duplicates"] for a in apps.values())}

    def samples(self) -> Iterator[tuple[str, dict[str, str], int]]:
        """(metric suffix, labels, value): `deviations`, `accepted`, `duplicates` per application."""
        snap = self.snapshot()["applications"]
        for app, entry in snap.items():
            yield "accepted", {"application": app}, entry["accepted"]
            yield "duplicates", {"application": app}, entry["duplicates"]
            for deviation, n in entry["deviations"].items():
                yield "deviations", {"deviation": deviation, "application": app}, n

    def collect(self):
        """prometheus_client collector protocol: register the instance in a CollectorRegistry.

        scitags_fireflies_deviations_total{deviation,application},
        scitags_fireflies_by_application_total{application},
        scitags_fireflies_duplicates_total{application}.
        """
        from prometheus_client.core import CounterMetricFamily
        families = {
            "deviations": CounterMetricFamily(
                "scitags_fireflies_deviations", "Accepted fireflies by deviation from the schema and "
                "sender application", labels=["deviation", "application"]),
            "accepted": CounterMetricFamily(
                "scitags_fireflies_by_application", "Accepted fireflies by sender application",
                labels=["application"]),
            "duplicates": CounterMetricFamily(
                "scitags_fireflies_duplicates", "Fireflies applied once because an identical one "
                "was seen within the dedup window", labels=["application"]),
        }
        for suffix, labels, value in self.samples():
            family = families[suffix]
            family.add_metric([labels[k] for k in (["deviation", "application"] if suffix == "deviations"
                                                     else ["application"])], value)
        yield from families.values()
