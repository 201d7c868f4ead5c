"""From the controller's view of flows and counters to IPFIX records (RFC 5470 metering
semantics on top of the switch counters the controller reads).

FlowReports: per (switch, firefly flow) what was counted and what was reported already,
from the counter polls' deltas. A flow whose last record is `active_timeout_s` old and that
has unreported traffic gets an interim record (flowEndReason 2, active timeout: at the poll
that finds it due, or at the sweep once per active timeout); when the flow ends (firefly
`end`, idle timeout on a switch, eviction) it gets its end record at every switch that
counted it (reasons 3, 1, 4). Deltas = new since this flow's previous record at this
switch; totals = since the flow started there. flowEndMilliseconds = the reading in which
the flow's counts last grew (the last packet, to the poll's resolution).

AggregateReports: the tag counters' deltas per (switch, source, experiment, activity),
summed over `interval_s` and exported as one record per key and interval. Only the sources in
encoding.METERING_SOURCES (the tag counters: flow label and extension header) are exported:
firefly traffic already goes out per flow, and the unmarked/unregistered buckets carry no tag.

Both only build records and hand them to `submit` (IpfixExporter.submit_many: never blocks).
"""
from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from controller.ipfix.encoding import (
    END_ACTIVE, END_FORCED, END_IDLE, END_OF_FLOW, METERING_SOURCES, AggregateRecord, FlowRecord)

DEFAULT_ACTIVE_TIMEOUT_S = 60.0
DEFAULT_AGGREGATE_INTERVAL_S = 60.0

SubmitMany = Callable[[list], int]  # IpfixExporter.submit_many


def default_domain_id(switch: str, device_id: int | None) -> int:
    """Stable observation domain id: the switch's device id when it fits 1..2^32-1, else a
    CRC-32 of its name (never 0: RFC 7011 keeps 0 for no particular domain)."""
    if device_id is not None and 0 < device_id <= 0xFFFFFFFF:
        return device_id
    return zlib.crc32(switch.encode()) or 1


class DomainIds:
    """Switch name -> observation domain id (configured ids win over the derived ones)."""

    def __init__(self, device_ids: Mapping[str, int | None] | None = None,
                 configured: Mapping[str, int] | None = None) -> None:
        self._ids = {name: default_domain_id(name, dev) for name, dev in (device_ids or {}).items()}
        for name, dom in (configured or {}).items():
            if not 0 < int(dom) <= 0xFFFFFFFF:
                raise ValueError(f"IPFIX observation domain for {name}: {dom} not in 1..4294967295")
            self._ids[name] = int(dom)
        seen: dict[int, str] = {}
        for name, dom in self._ids.items():
            if dom in seen:
                raise ValueError(f"IPFIX observation domain {dom} given to both {seen[dom]} and {name}")
            seen[dom] = name

    def __call__(self, switch: str) -> int:
        dom = self._ids.get(switch)
        if dom is None:
            dom = self._ids[switch] = default_domain_id(switch, None)
        return dom

    def as_dict(self) -> dict[str, int]:
        return dict(self._ids)


END_REASONS = {"end": END_OF_FLOW, "idle": END_IDLE, "idle-timeout": END_IDLE,
               "evicted": END_FORCED, "eviction": END_FORCED}


def end_reason_code(reason: str) -> int:
    """The controller's end reasons (flow history: 'end', 'idle:<switch>', 'evicted'; flow
    events: 'end', 'idle-timeout', 'eviction') as flowEndReason; anything else is forced."""
    return END_REASONS.get(reason.split(":", 1)[0], END_FORCED)


@dataclass(frozen=True)
class FlowInfo:
    """What the records say about a flow besides its counts."""

    key: object  # controller.drivers.base.FlowKey (src, dst, protocol, src_port, dst_port)
    experiment: int
    activity: int
    started: float  # wall clock, seconds
    flow_label: int = 0


class _Seen:
    __slots__ = ("info", "packets", "octets", "reported_packets", "reported_octets",
                 "last_report", "last_growth")

    def __init__(self, info: FlowInfo, now: float) -> None:
        self.info = info
        self.packets = self.octets = self.reported_packets = self.reported_octets = 0
        self.last_report = now
        self.last_growth = info.started


class FlowReports:
    """Owns, under one lock, the live flows' identity (FlowInfo, from the flow events) and
    per (switch, flow) what was counted and reported. A poll delta of a flow it does not
    know (ended, or never announced) is ignored; at the sweep, the state of a flow that is
    gone without an end having been reported is closed with a forced end (memory stays
    bounded by the live flows).

    State is per switch, keyed by flow key: one key lookup per moving flow and poll (the
    keys' hash is the costly part at 65,536 flows)."""

    def __init__(self, submit: SubmitMany, domains: DomainIds,
                 active_timeout_s: float = DEFAULT_ACTIVE_TIMEOUT_S,
                 clock: Callable[[], float] = time.time) -> None:
        if active_timeout_s <= 0:
            raise ValueError("IPFIX active timeout must be positive")
        self.submit = submit
        self.domains = domains
        self.active_timeout_s = active_timeout_s
        self.clock = clock
        self._lock = threading.Lock()  # readings (poller) and flow events (worker) race
        self._live: dict[object, FlowInfo] = {}  # flow key -> what its records say
        self._seen: dict[str, dict[object, _Seen]] = {}  # switch -> flow key -> state
        self._last_sweep: float | None = None  # time of the first reading, then of each sweep
        self.records = {"active": 0, "end": 0, "lost": 0}

    def __len__(self) -> int:
        return sum(map(len, self._seen.values()))

    def started(self, info: FlowInfo) -> None:
        """A flow was installed, or its tag changed (its next records say so; its start stays)."""
        with self._lock:
            old = self._live.get(info.key)
            if old is not None:
                if (old.experiment, old.activity, old.flow_label) == (info.experiment, info.activity,
                                                                      info.flow_label):
                    return
                info = FlowInfo(info.key, info.experiment, info.activity, old.started, info.flow_label)
            self._live[info.key] = info
            for seen in self._seen.values():
                st = seen.get(info.key)
                if st is not None:
                    st.info = info

    def reading(self, switch: str, deltas: Iterable[tuple[object, object]],
                now: float | None = None) -> int:
        """One counter poll of a switch: (flow key, Counts) per flow whose counters moved
        (PollDeltas.flows.items(): no per-flow objects are made here, which at 65,536 flows
        would cost more in garbage collection than the rest). Unknown flows are skipped.
        Returns the number of records made (interim, and the sweep's when it is due)."""
        now = self.clock() if now is None else now
        due_before = now - self.active_timeout_s
        out: list[FlowRecord] = []
        with self._lock:
            seen = self._seen.setdefault(switch, {})
            for key, counts in deltas:
                packets, octets = counts.packets, counts.bytes
                st = seen.get(key)
                if st is None:
                    info = self._live.get(key)
                    if info is None:
                        continue  # ended (its final counts went out with the end) or unknown
                    st = seen[key] = _Seen(info, now)
                if packets or octets:
                    st.packets += packets
                    st.octets += octets
                    st.last_growth = now
                if st.last_report <= due_before and (st.octets != st.reported_octets
                                                    or st.packets != st.reported_packets):
                    out.append(self._record(switch, st, END_ACTIVE))
                    st.last_report = now
            self.records["active"] += len(out)
            if self._last_sweep is None:
                self._last_sweep = now
            elif now - self._last_sweep >= self.active_timeout_s:
                self._sweep(now, out)
        self.submit(out)  # outside the lock: the other thread's end records need not wait
        return len(out)

    def ended(self, key: object, final: Mapping[str, tuple[int, int]], reason: str,
              now: float | None = None, info: FlowInfo | None = None) -> None:
        """A flow ended (or was evicted): its final (packets, bytes) per switch since it
        started there (what the switch counted, the polls' deltas included). info: for a
        flow never announced by started()."""
        now = self.clock() if now is None else now
        code = end_reason_code(reason)
        out: list[FlowRecord] = []
        with self._lock:
            info = self._live.pop(key, None) or info
            for switch, (packets, octets) in final.items():
                st = self._seen.get(switch, {}).pop(key, None)
                if st is None:
                    if info is None:
                        continue
                    st = _Seen(info, now)
                if packets != st.packets or octets != st.octets:
                    st.packets, st.octets, st.last_growth = packets, octets, now
                out.append(self._record(switch, st, code))
            self.records["end"] += len(out)
        self.submit(out)

    def sweep(self, now: float | None = None) -> None:
        """Interim records for flows that stopped moving with unreported counts, and the
        forced end of lost flows; done by reading() once per active timeout."""
        out: list[FlowRecord] = []
        with self._lock:
            self._sweep(self.clock() if now is None else now, out)
        self.submit(out)

    def _sweep(self, now: float, out: list) -> None:
        self._last_sweep = now
        due_before = now - self.active_timeout_s
        for switch, seen in self._seen.items():
            for key, st in list(seen.items()):
                # only a flow that stopped moving can be gone (the key lookup is the cost)
                if st.last_growth <= due_before and key not in self._live:
                    out.append(self._record(switch, seen.pop(key), END_FORCED))
                    self.records["lost"] += 1
                elif st.last_report <= due_before and (st.octets != st.reported_octets
                                                       or st.packets != st.reported_packets):
                    out.append(self._record(switch, st, END_ACTIVE))
                    st.last_report = now
                    self.records["active"] += 1

    def _record(self, switch: str, st: _Seen, reason: int) -> FlowRecord:
        info, key = st.info, st.info.key
        rec = FlowRecord(
            self.domains(switch), switch, key.src, key.dst, key.protocol, key.src_port,
            key.dst_port, int(info.started * 1000), int(max(st.last_growth, info.started) * 1000),
            st.packets - st.reported_packets, st.octets - st.reported_octets, st.packets,
            st.octets, reason, info.experiment, info.activity, info.flow_label)
        st.reported_packets, st.reported_octets = st.packets, st.octets
        return rec


class AggregateReports:
    def __init__(self, submit: SubmitMany, domains: DomainIds,
                 interval_s: float = DEFAULT_AGGREGATE_INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if interval_s <= 0:
            raise ValueError("IPFIX aggregate interval must be positive")
        self.submit = submit
        self.domains = domains
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._sums: dict[tuple[str, str, int, int], list[int]] = {}
        self.records = 0

    def add(self, switch: str, source: str, experiment: int, activity: int | None,
            packets: int, octets: int, now: float | None = None) -> None:
        """New traffic of one key since the previous reading. Sources other than those in
        METERING_SOURCES (the unmarked/unregistered buckets) are not exported."""
        if source not in METERING_SOURCES or not (packets or octets):
            return
        now = self.clock() if now is None else now
        with self._lock:
            if now - self._start >= self.interval_s:
                self._flush(now)
            s = self._sums.setdefault((switch, source, experiment, activity or 0), [0, 0])
            s[0] += packets
            s[1] += octets

    def tick(self, now: float | None = None) -> int:
        """Close the interval if it is over (call after each poll); records made."""
        now = self.clock() if now is None else now
        with self._lock:
            return self._flush(now) if now - self._start >= self.interval_s else 0

    def flush(self, now: float | None = None) -> int:
        """Close the interval now (shutdown)."""
        with self._lock:
            return self._flush(self.clock() if now is None else now)

    def _flush(self, now: float) -> int:
        start_ms, end_ms = int(self._start * 1000), int(now * 1000)
        sums, self._sums, self._start = self._sums, {}, now
        self.submit([AggregateRecord(self.domains(switch), switch, source, exp, act,
                                     start_ms, end_ms, packets, octets)
                     for (switch, source, exp, act), (packets, octets) in sums.items()])
        self.records += len(sums)
        return len(sums)
