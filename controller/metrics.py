"""/metrics: the controller's state in the Prometheus text format, read at scrape time (no
duplicated bookkeeping).

The traffic families (one series per switch, experiment, activity and source, and per
bucket: 4096 tags on 4 switches are ~100,000 samples) are written directly as text from the
accounting's totals (`TrafficText`): prometheus_client's generic writer takes over a
second for that many. Everything else is a prometheus_client collector
(`ControllerCollector`) like the extensions' ones. Names follow the Prometheus conventions
(units in names, `_total` counters; `promtool check metrics` passes, tests/prometheus), and
no series has per-flow labels.
"""
from __future__ import annotations

import math

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.utils import floatToGoString

from controller import queries
from p4schema.constants import TAG_COUNTER_SIZE

TRAFFIC_LABELS = ("activity", "experiment", "source", "switch")  # sorted, as prometheus_client writes them

# (name, type, help) of the traffic families, in the order written
TRAFFIC_FAMILIES = (
    ("scitags_bytes_total", "counter", "Bytes counted per experiment and activity (source: flowlabel = "
     "IPv6 flow-label tag, exthdr = IPv6 extension-header option, firefly = firefly-declared flow, "
     "untrusted-label = a label from outside the trust scope, as it would have been counted)."),
    ("scitags_packets_total", "counter", "Packets counted per experiment and activity."),
    ("scitags_rate_bytes_per_second", "gauge", "Rate over the last counter poll."),
    ("scitags_bucket_bytes_total", "counter", "Bytes without a registered tag of their own "
     "(unmarked, unregistered, consistent, mismatch, firefly_only, parser_error, ...)."),
    ("scitags_bucket_packets_total", "counter", "Packets per bucket."),
    ("scitags_label_confirmed_bytes_total", "counter", "Flow-label bytes of firefly flows that "
     "declared the same experiment/activity (the rest of scitags_bytes{source=flowlabel} is claimed)."),
    ("scitags_label_background_bytes", "gauge", "Estimated bytes of random (kernel) flow labels in "
     "scitags_bytes{source=flowlabel}, from the unregistered bucket (controller/README.md)."),
    ("scitags_label_background_packets", "gauge", "Estimated packets of random flow labels in "
     "scitags_packets{source=flowlabel}."),
)


def _label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def _num(v: float) -> str:
    """A sample value: counts as integral floats ("12.0"), others as Python writes them (any
    float literal is valid in the text format; inf/nan as Prometheus spells them)."""
    if type(v) is int:
        return f"{v}.0"
    return repr(v) if math.isfinite(v) else floatToGoString(v)


class TrafficText:
    """Writes the traffic families from the totals; keeps each series' label text between
    scrapes (the series change only with the registry and new traffic)."""

    def __init__(self) -> None:
        self._label_text: dict[tuple, str] = {}

    def _labels(self, key: tuple, names: tuple[str, ...]) -> str:
        text = self._label_text.get(key)
        if text is None:
            text = ",".join(f'{n}="{_label(v)}"' for n, v in zip(names, key[1:]))
            self._label_text[key] = text
        return text

    def render(self, accounting, labels: queries.LabelView) -> str:
        """Several registry versions may give a series the same names: summed per label set."""
        items, rates = accounting.totals_and_rates()
        estimates = queries.background_estimates(items, labels)
        confirmed: dict[tuple, int] = {}
        series: dict[tuple, list] = {}  # ("t", activity, experiment, source, switch) -> bytes, packets, rate
        label_rows: dict[tuple, list] = {}  # ("l", activity, experiment, switch) -> confirmed, bg bytes, bg packets
        buckets: dict[tuple, list] = {}  # ("b", bucket, switch) -> bytes, packets
        for k, c in items:
            if k.source == "bucket":
                acc = buckets.setdefault(("b", k.experiment_name, k.switch), [0, 0])
                acc[0] += c.bytes
                acc[1] += c.packets
                continue
            if k.source == "confirmed":
                key = ("l", k.activity_name, k.experiment_name, k.switch)
                confirmed[key] = confirmed.get(key, 0) + c.bytes
                continue
            acc = series.setdefault(("t", k.activity_name, k.experiment_name, k.source, k.switch), [0, 0, 0.0])
            acc[0] += c.bytes
            acc[1] += c.packets
            acc[2] += rates.get(k, (0.0, 0.0))[0]
            if k.source == "flowlabel":
                lab = label_rows.setdefault(("l", k.activity_name, k.experiment_name, k.switch), [0, 0.0, 0.0])
                if k.registry == labels.registry:  # an older registry's entries are gone: no estimate
                    est = estimates.get((k.switch, k.experiment_id, None if k.activity_id < 0 else k.activity_id))
                    if est is not None:
                        lab[1] += est.bytes
                        lab[2] += est.packets
        for key, n in confirmed.items():
            if key in label_rows:
                label_rows[key][0] += n
        if len(self._label_text) > 2 * (len(series) + len(label_rows) + len(buckets)) + 1000:
            self._label_text.clear()  # series of old registries gone: start afresh
        out = [[] for _ in TRAFFIC_FAMILIES]
        for key, (nbytes, npackets, rate) in series.items():
            ls = self._labels(key, TRAFFIC_LABELS)
            out[0].append(f"scitags_bytes_total{{{ls}}} {_num(nbytes)}")
            out[1].append(f"scitags_packets_total{{{ls}}} {_num(npackets)}")
            out[2].append(f"scitags_rate_bytes_per_second{{{ls}}} {_num(rate)}")
        for key, (nbytes, npackets) in buckets.items():
            ls = self._labels(key, ("bucket", "switch"))
            out[3].append(f"scitags_bucket_bytes_total{{{ls}}} {_num(nbytes)}")
            out[4].append(f"scitags_bucket_packets_total{{{ls}}} {_num(npackets)}")
        for key, (conf, bg_bytes, bg_packets) in label_rows.items():
            ls = self._labels(key, ("activity", "experiment", "switch"))
            out[5].append(f"scitags_label_confirmed_bytes_total{{{ls}}} {_num(conf)}")
            out[6].append(f"scitags_label_background_bytes{{{ls}}} {_num(bg_bytes)}")
            out[7].append(f"scitags_label_background_packets{{{ls}}} {_num(bg_packets)}")
        lines: list[str] = []
        for (name, kind, text), samples in zip(TRAFFIC_FAMILIES, out):
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        lines.append("")
        return "\n".join(lines)


class ControllerCollector:
    """The controller's other metrics (switches, fireflies, reconcile, limits)."""

    def __init__(self, controller) -> None:
        self.c = controller

    def collect(self):
        trust = self.c.label_trust_status()
        scope = GaugeMetricFamily(
            "scitags_label_trust_scope_configured", "1 when the switch counts flow labels as tags "
            "only from a trust scope (verified); 0: every label counts, label counts unverified.",
            labels=["switch"])
        for name, t in trust["switches"].items():
            scope.add_metric([name], 1 if t["label_counts"] == "verified" else 0)
        yield scope

        ff = self.c.firefly_status()
        acc_m = CounterMetricFamily("scitags_fireflies_accepted", "Fireflies accepted by the protection policy.")
        acc_m.add_metric([], ff["accepted"])
        yield acc_m
        ref = CounterMetricFamily("scitags_fireflies_refused", "Fireflies refused, by reason.", labels=["reason"])
        for reason, n in ff["refused"].items():
            ref.add_metric([reason], n)
        yield ref
        flows = GaugeMetricFamily("scitags_firefly_flows", "Firefly flows installed now.")
        flows.add_metric([], len(self.c.flow_service))
        yield flows
        limit = GaugeMetricFamily("scitags_firefly_flows_limit", "Firefly flows that may be "
                                  "installed (--max-flows; then --when-full applies).")
        limit.add_metric([], ff["policy"]["max_flows"])
        yield limit
        rules = GaugeMetricFamily("scitags_tag_rules", "Tag rules (counter cells) in use.")
        rules.add_metric([], len(self.c.tags))
        yield rules
        rules_limit = GaugeMetricFamily("scitags_tag_rules_limit", "Tag counter cells available.")
        rules_limit.add_metric([], TAG_COUNTER_SIZE - 1)  # cell 0 is reserved
        yield rules_limit
        started = GaugeMetricFamily("scitags_controller_start_time_seconds",
                                    "When this controller started (Unix time).")
        started.add_metric([], self.c.started_at)
        yield started
        st = self.c.status()
        up = GaugeMetricFamily("scitags_switch_up", "1 when the switch is connected and in sync.",
                               labels=["switch"])
        primary = GaugeMetricFamily("scitags_switch_primary", "1 when this controller is primary for the switch.",
                                    labels=["switch"])
        for name, s in st["switches"].items():
            up.add_metric([name], 1 if s["ready"] else 0)
            primary.add_metric([name], 1 if s["primary"] else 0)
        yield up
        yield primary
        repairs = CounterMetricFamily(
            "scitags_reconcile_repairs", "Entries the periodic reconcile rewrote because they "
            "drifted (kind: l2, tag, flow, multicast_group, clone_session; change: missing = "
            "re-inserted, modified = rewritten, extra = deleted).",
            labels=["switch", "kind", "change"])
        passes = CounterMetricFamily("scitags_reconcile_passes", "Reconcile passes (read back "
                                     "and repair) per switch.", labels=["switch"])
        for name, session in self.c.switches.items():
            passes.add_metric([name], session.reconciles)
            for (kind, change), n in sorted(session.repairs.items()):
                repairs.add_metric([name, kind, change], n)
        yield repairs
        yield passes
        ops = CounterMetricFamily("scitags_controller_events", "Controller events by kind.", labels=["event"])
        for k, v in st["stats"].items():
            ops.add_metric([k], v)
        yield ops
