"""What operators ask (HTTP API, `controller counters/flows/status`, /metrics): read-only
views over the accounting, the flow service and the switch sessions."""
from __future__ import annotations

from controller.accounting import Accounting
from controller.store import Store


def counter_rows(accounting: Accounting, switch: str | None = None, experiment: str | None = None,
                 activity: str | None = None) -> list[dict]:
    items, rates = accounting.totals_and_rates()
    rows = []
    for k, c in items:
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
    rows.sort(key=lambda r: (r["switch"], r["source"] == "bucket", r["experiment"] or r["bucket"] or "",
                             r["activity"] or "", r["source"], r["registry"]))
    return rows


def flow_rows(live: list[dict], store: Store, recent: int = 50) -> dict:
    return {"live": sorted(live, key=lambda f: -f["last_seen"]), "recent": store.recent_flows(recent)}
