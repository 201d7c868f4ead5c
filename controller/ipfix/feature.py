"""IPFIX export as a controller feature: builds the exporter and the reports from the
settings, and follows the controller through its hooks (controller/hooks.py):
flow-lifecycle events (installed/updated/ended), counter-poll deltas, a status section
(`ipfix` in /api/v1/status) and Prometheus metrics (scitags_ipfix_*).

Listeners only do dictionary work and hand records to the exporter's bounded queue: the
poller and the firefly worker never wait for a collector.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from controller.extensions import Extension
from controller.ipfix.exporter import (
    DEFAULT_MAX_MESSAGE, DEFAULT_QUEUE, DEFAULT_TEMPLATE_REFRESH_S, IpfixExporter, parse_collector)
from controller.ipfix.reports import (
    DEFAULT_ACTIVE_TIMEOUT_S, DEFAULT_AGGREGATE_INTERVAL_S, AggregateReports, DomainIds, FlowInfo,
    FlowReports)

TagLookup = Callable[[int], "tuple[int, int | None] | None"]  # tag id -> (experiment, activity)


@dataclass
class IpfixSettings:
    """`ipfix:` in the YAML config; collectors also from `--ipfix HOST:PORT` (repeatable)."""

    collectors: list[str] = field(default_factory=list)
    active_timeout_s: float = DEFAULT_ACTIVE_TIMEOUT_S
    aggregate_interval_s: float = DEFAULT_AGGREGATE_INTERVAL_S
    template_refresh_s: float = DEFAULT_TEMPLATE_REFRESH_S
    queue_records: int = DEFAULT_QUEUE
    max_message_bytes: int = DEFAULT_MAX_MESSAGE
    observation_domains: dict[str, int] = field(default_factory=dict)  # switch -> id

    @classmethod
    def from_dict(cls, data: Mapping | None, collectors: Iterable[str] = ()) -> "IpfixSettings":
        """The YAML mapping (or a list of collectors) plus command-line collectors; ValueError
        naming the bad key."""
        if data is None:
            data = {}
        if isinstance(data, list):
            data = {"collectors": data}
        if not isinstance(data, Mapping):
            raise ValueError("expected a mapping (or a list of HOST:PORT collectors)")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        out = cls()
        for key in ("active_timeout_s", "aggregate_interval_s", "template_refresh_s"):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise ValueError(f"ipfix.{key}: expected a positive number of seconds, got {value!r}")
                setattr(out, key, float(value))
        for key, low in (("queue_records", 1), ("max_message_bytes", 256)):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ValueError(f"ipfix.{key}: expected an integer >= {low}, got {value!r}")
                setattr(out, key, value)
        domains = data.get("observation_domains") or {}
        if not isinstance(domains, Mapping):
            raise ValueError("ipfix.observation_domains: expected a mapping switch -> id")
        for name, dom in domains.items():
            if isinstance(dom, bool) or not isinstance(dom, int) or not 0 < dom <= 0xFFFFFFFF:
                raise ValueError(f"ipfix.observation_domains.{name}: expected 1..4294967295, got {dom!r}")
        out.observation_domains = {str(k): v for k, v in domains.items()}
        listed = data.get("collectors") or []
        if not isinstance(listed, list):
            raise ValueError("ipfix.collectors: expected a list of HOST:PORT")
        out.collectors = [str(c) for c in [*listed, *collectors]]
        for c in out.collectors:
            parse_collector(c)  # ValueError naming the collector
        return out


class IpfixExport:
    def __init__(self, settings: IpfixSettings, device_ids: Mapping[str, int | None],
                 tag_lookup: TagLookup, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.domains = DomainIds(device_ids, settings.observation_domains)
        self.exporter = IpfixExporter([parse_collector(c) for c in settings.collectors],
                                      queue_size=settings.queue_records,
                                      max_message=settings.max_message_bytes,
                                      template_refresh_s=settings.template_refresh_s, clock=clock)
        self.flows = FlowReports(self.exporter.submit_many, self.domains,
                                 settings.active_timeout_s, clock)
        self.aggregates = AggregateReports(self.exporter.submit_many, self.domains,
                                           settings.aggregate_interval_s, clock)
        self.tag_lookup = tag_lookup

    # ---------- lifecycle ----------
    def start(self) -> "IpfixExport":
        self.exporter.start()
        return self

    def stop(self) -> None:
        """Close the open aggregate interval and send what is queued."""
        self.aggregates.flush()
        self.exporter.stop()

    def attach(self, hooks) -> None:
        """Register on controller.hooks.Hooks."""
        hooks.on_flow(self.on_flow)
        hooks.on_poll(self.on_poll)
        hooks.add_status("ipfix", self.status)
        hooks.add_collector(self)

    # ---------- listeners ----------
    def _info(self, ev) -> FlowInfo:
        started = ev.flow.get("started") or ev.at
        return FlowInfo(ev.key, ev.experiment, ev.activity, float(started),
                        int(ev.flow.get("flow_label") or 0))

    def on_flow(self, ev) -> None:
        """controller.events.FlowEvent: installed | updated | ended."""
        if ev.kind == "ended":
            self.flows.ended(ev.key, {sw: (c.packets, c.bytes) for sw, c in ev.counts.items()},
                             ev.reason, now=ev.at, info=self._info(ev))
        else:
            self.flows.started(self._info(ev))

    def on_poll(self, ev) -> None:
        """controller.events.PollDeltas of one switch."""
        now = ev.taken_at
        self.flows.reading(ev.switch, ev.flows.items(), now=now)
        for tag_id, c in ev.tags.items():
            tag = self.tag_lookup(tag_id)
            if tag is not None:
                self.aggregates.add(ev.switch, "flowlabel", tag[0], tag[1], c.packets, c.bytes, now=now)
        self.aggregates.tick(now)

    # ---------- status and metrics ----------
    def status(self) -> dict:
        out = self.exporter.status()
        out.update(flows_tracked=len(self.flows), flow_records=dict(self.flows.records),
                   aggregate_records=self.aggregates.records,
                   observation_domains=self.domains.as_dict(),
                   active_timeout_s=self.settings.active_timeout_s,
                   aggregate_interval_s=self.settings.aggregate_interval_s)
        return out

    def collect(self):
        """prometheus_client collector protocol (registered through hooks.add_collector)."""
        yield from self.exporter.metric_families()


def _tag_lookup(tagbook) -> TagLookup:
    """tag id -> (experiment, activity) from controller.tags.TagBook, as it is at each call
    (a registry refresh replaces its tags)."""
    def lookup(tag_id: int):
        meta = tagbook.tags.get(tag_id)
        return None if meta is None else (meta.rule.experiment, meta.rule.activity)
    return lookup


class IpfixExtension(Extension):
    """`controller start --ipfix HOST:PORT` (repeatable), YAML section `ipfix:`."""

    name = "ipfix"

    def __init__(self) -> None:
        self.settings: IpfixSettings | None = None
        self.export: IpfixExport | None = None

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ipfix", dest="ipfix_collectors", action="append", metavar="HOST:PORT",
                            help="export firefly flows and tag aggregates as IPFIX (RFC 7011, UDP) "
                                 "to this collector, e.g. nfacctd or nfcapd; repeatable "
                                 "(YAML ipfix: {collectors: [...]}; see controller/ipfix/README.md)")
        parser.add_argument("--ipfix-active-timeout", dest="ipfix_active_timeout_s", type=float,
                            metavar="S", help=f"interim record of a long flow every S seconds "
                                              f"(default {DEFAULT_ACTIVE_TIMEOUT_S:g})")

    def options(self, args) -> dict:
        out: dict = {}
        if getattr(args, "ipfix_collectors", None):
            out["collectors"] = list(args.ipfix_collectors)
        if getattr(args, "ipfix_active_timeout_s", None) is not None:
            out["active_timeout_s"] = args.ipfix_active_timeout_s
        return out

    def configure(self, section: dict) -> None:
        self.settings = IpfixSettings.from_dict(section)

    def attach(self, controller) -> None:
        if self.settings is None or not self.settings.collectors:
            return
        device_ids = {name: spec.device_id for name, spec in controller.topology.switches.items()}
        self.export = IpfixExport(self.settings, device_ids, _tag_lookup(controller.tagbook))
        self.export.attach(controller.hooks)

    def start(self) -> None:
        if self.export is not None:
            self.export.start()

    def stop(self) -> None:
        if self.export is not None:
            self.export.stop()
