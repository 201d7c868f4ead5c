"""What operators ask (HTTP API, `controller counters/flows/status`, /metrics): read-only
views over the accounting, the flow service and the switch sessions."""
from __future__ import annotations

from dataclasses import dataclass, field

from controller import label_background
from controller.accounting import Accounting
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


def background_summary(accounting: Accounting, labels: LabelView) -> dict:
    """Per switch: the estimated random-label packets/bytes counted under every installed tag
    entry (rows with no count included), in total and per experiment id, with what it is
    estimated from (the unregistered bucket, the label space the entries cover)."""
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
    view = labels or LabelView()
    estimates = background_estimates(items, view)
    confirmed = {(k.switch, k.experiment_id, k.activity_id, k.experiment_name, k.activity_name,
                  k.registry): c for k, c in items if k.source == "confirmed"}
    rows = []
    for k, c in items:
        if k.source == "confirmed":
            continue  # a part of its flowlabel row (below)
        if switch and k.switch != switch:
            continue
        if experiment and experiment.casefold() not in (k.experiment_name.casefold(), str(k.experiment_id)):
            continue
        if activity and activity.casefold() not in (k.activity_name.casefold(), str(k.activity_id)):
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
