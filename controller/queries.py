"""What operators ask (HTTP API, `controller counters/flows/status`, /metrics): read-only
views over the accounting, the flow service and the switch sessions."""
from __future__ import annotations

from dataclasses import dataclass, field

from controller import label_background, windows
from controller.accounting import Accounting
from controller.history import History
from controller.windows import Window
from controller.store import Store, TotalKey

UNREGISTERED = "unregistered"  # the bucket of trusted labels matching no tag (p4schema BUCKETS)


@dataclass
class LabelView:
    """What the flow-label columns need: the current registry, the tag entries installed
    (experiment, activity | None for the experiment's wildcard) and, per switch, whether its
    label counts come from a trust scope ("verified")."""
    registry: str = ""
    rules: list[tuple[int, int | None]] = field(default_factory=list)
    verified: dict[str, bool] = field(default_factory=dict)


def background_estimates(items: list[tuple[TotalKey, object]], view: LabelView
                         ) -> dict[tuple[str, int, int | None], label_background.Estimate]:
    """(switch, experiment, activity | None) -> estimated random-label packets/bytes in that
    row, from the switch's unregistered bucket under the current registry
    (controller/label_background.py)."""
    unregistered = {k.switch: c for k, c in items if k.source == "bucket"
                    and k.experiment_name == UNREGISTERED and k.registry == view.registry}
    covers = label_background.covers(view.rules)
    out = {}
    for sw, c in unregistered.items():
        for (exp, act), est in label_background.background(c.packets, c.bytes, covers).items():
            out[sw, exp, act] = est
    return out


def background_summary(accounting: Accounting, labels: LabelView,
                       items: list[tuple[TotalKey, object]] | None = None) -> dict:
    """Per switch: the estimated random-label packets/bytes counted under every installed tag
    entry (rows with no count included), in total and per experiment id, with what it is
    estimated from (the unregistered bucket, the label space the entries cover).
    items: other counts than the totals (a window's)."""
    if items is None:
        items, _ = accounting.totals_and_rates()
    covers = label_background.covers(labels.rules)
    share = label_background.covered_share(covers)
    out = {}
    for (sw, exp, _act), est in sorted(background_estimates(items, labels).items(),
                                       key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] is None, kv[0][2] or 0)):
        s = out.setdefault(sw, {"packets": 0.0, "bytes": 0.0, "covered_share": share,
                                "by_experiment": {}})
        s["packets"] += est.packets
        s["bytes"] += est.bytes
        e = s["by_experiment"].setdefault(str(exp), {"packets": 0.0, "bytes": 0.0})
        e["packets"] += est.packets
        e["bytes"] += est.bytes
    return out


def counter_rows(accounting: Accounting, switch: str | None = None, experiment: str | None = None,
                 activity: str | None = None, labels: LabelView | None = None) -> list[dict]:
    """Rows per switch, source, experiment, activity (and buckets). flowlabel rows also carry
    confirmed/claimed bytes (confirmed: of firefly flows that declared the same tag), the
    background estimate (current registry only; None otherwise) and label_counts
    (verified: from a trust scope)."""
    items, rates = accounting.totals_and_rates()
    return rows_of(items, rates, switch, experiment, activity, labels)


def key_matches(k: TotalKey, switch: str | None = None, experiment: str | None = None,
                activity: str | None = None, source: str | None = None) -> bool:
    """The filters of counters and history: a switch name, an experiment or activity name
    (case-insensitive) or id, a source."""
    if switch and k.switch != switch:
        return False
    if source and k.source != source:
        return False
    if experiment and experiment.casefold() not in (k.experiment_name.casefold(), str(k.experiment_id)):
        return False
    if activity and activity.casefold() not in (k.activity_name.casefold(), str(k.activity_id)):
        return False
    return True


def rows_of(items: list[tuple[TotalKey, object]], rates: dict[TotalKey, tuple[float, float]],
            switch: str | None = None, experiment: str | None = None, activity: str | None = None,
            labels: LabelView | None = None) -> list[dict]:
    """The counter rows of `items` (totals, or a window's counts) with their rates."""
    view = labels or LabelView()
    estimates = background_estimates(items, view)
    confirmed = {(k.switch, k.experiment_id, k.activity_id, k.experiment_name, k.activity_name,
                  k.registry): c for k, c in items if k.source == "confirmed"}
    rows = []
    for k, c in items:
        if k.source == "confirmed":
            continue  # a part of its flowlabel row (below)
        if not key_matches(k, switch, experiment, activity):
            continue
        bps, pps = rates.get(k, (0.0, 0.0))
        rows.append({"switch": k.switch, "source": k.source,
                     "experiment_id": None if k.experiment_id < 0 else k.experiment_id,
                     "experiment": k.experiment_name if k.source != "bucket" else None,
                     "activity_id": None if k.activity_id < 0 else k.activity_id,
                     "activity": k.activity_name if k.source != "bucket" else None,
                     "bucket": k.experiment_name if k.source == "bucket" else None,
                     "registry": k.registry, "packets": c.packets, "bytes": c.bytes,
                     "rate_bps": round(bps * 8, 1), "rate_pps": round(pps, 2)})
        if k.source == "flowlabel":
            rows[-1].update(_label_columns(k, c, view, estimates, confirmed))
    rows.sort(key=lambda r: (r["switch"], r["source"] == "bucket", r["experiment"] or r["bucket"] or "",
                             r["activity"] or "", r["source"], r["registry"]))
    return rows


def _label_columns(k: TotalKey, c, view: LabelView, estimates: dict, confirmed: dict) -> dict:
    conf = confirmed.get((k.switch, k.experiment_id, k.activity_id, k.experiment_name,
                          k.activity_name, k.registry))
    cp, cb = (conf.packets, conf.bytes) if conf is not None else (0, 0)
    est = None
    if k.registry == view.registry:
        est = estimates.get((k.switch, k.experiment_id, None if k.activity_id < 0 else k.activity_id),
                            label_background.Estimate(0.0, 0.0))  # nothing unregistered yet
    return {"confirmed_packets": cp, "confirmed_bytes": cb,
            "claimed_packets": c.packets - cp, "claimed_bytes": c.bytes - cb,
            "background_packets": None if est is None else round(est.packets, 3),
            "background_bytes": None if est is None else round(est.bytes, 3),
            "label_counts": "verified" if view.verified.get(k.switch) else "unverified"}


def flow_rows(live: list[dict], store: Store, recent: int = 50) -> dict:
    return {"live": sorted(live, key=lambda f: -f["last_seen"]), "recent": store.recent_flows(recent)}


def top_flow_rows(top: list[dict], total: int, store: Store, recent: int = 50) -> dict:
    """flow_rows() with only the live flows with the most bytes (`top`, most first) and how
    many are live (`live_total`): the dashboard's table."""
    return {"live": top, "live_total": total, "recent": store.recent_flows(recent)}


# ---- windows (controller/history.py, controller/windows.py) ----

def window_counters(history: History, window: Window, switch: str | None = None,
                    experiment: str | None = None, activity: str | None = None,
                    labels: LabelView | None = None) -> dict:
    """The counter rows of a window (rate: its average), with the bounds it covers (whole
    steps), the controller host's time zone and the gaps no controller was running for."""
    answer = history.window_counts(window)
    items = [(k, c) for k, c in answer.counts.items() if c.packets or c.bytes]
    span = max(answer.until - answer.since, 1)
    rates = {k: (c.bytes / span, c.packets / span) for k, c in items}
    return {"since": windows.iso(answer.since), "until": windows.iso(answer.until),
            "since_epoch": answer.since, "until_epoch": answer.until,
            "timezone": windows.zone_name(), "gaps": answer.gaps,
            "counters": rows_of(items, rates, switch, experiment, activity, labels),
            "items": items}  # for the caller's background summary (not JSON)


def history_series(history: History, window: Window, step_s: int | None = None,
                   switch: str | None = None, experiment: str | None = None,
                   activity: str | None = None, source: str | None = None) -> dict:
    """GET /api/v1/history (the contract in controller/README.md): per (switch, source,
    experiment, activity) — names as they were at each step, registries merged — and per
    (switch, bucket) the points [step start, packets, bytes] of steps with traffic.
    `confirmed` (a part of flowlabel) only when asked for by source. Buckets follow the
    switch filter only, and are left out when another source is asked for."""
    def wanted(k: TotalKey) -> bool:
        if k.source == "bucket":
            return not (source and source != "bucket") and not (switch and k.switch != switch)
        return (k.source != "confirmed" or source == "confirmed") and \
            key_matches(k, switch, experiment, activity, source)

    filtered = any((switch, experiment, activity, source))
    answer = history.series(window, step_s, wanted if filtered else None)
    series: dict[tuple, list[list[list[int]]]] = {}  # series -> the point lists of its keys
    buckets: dict[tuple, list[list[list[int]]]] = {}
    for k, pts in answer.points.items():  # (filtered by `wanted` when filters are given)
        if k.source == "bucket":
            buckets.setdefault((k.switch, k.experiment_name), []).append(pts)
        elif k.source != "confirmed" or source == "confirmed":
            series.setdefault((k.switch, k.source, k.experiment_name, k.activity_name), []).append(pts)
    return {"since": windows.iso(answer.since), "until": windows.iso(answer.until),
            "step_s": answer.step_s, "timezone": windows.zone_name(),
            "series": [{"switch": sw, "source": src, "experiment": exp, "activity": act,
                        "points": _merged(lists)} for (sw, src, exp, act), lists in sorted(series.items())],
            "buckets": [{"switch": sw, "bucket": b, "points": _merged(lists)}
                        for (sw, b), lists in sorted(buckets.items())],
            "gaps": answer.gaps}


def _merged(lists: list[list[list[int]]]) -> list[list[int]]:
    """One series from the point lists of its keys (registries that gave the same names)."""
    if len(lists) == 1:
        return lists[0]
    at: dict[int, list[int]] = {}
    for pts in lists:
        for t, p, b in pts:
            q = at.setdefault(t, [t, 0, 0])
            q[1] += p
            q[2] += b
    return [at[t] for t in sorted(at)]
