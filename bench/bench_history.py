#!/usr/bin/env python3
"""History benchmark (controller/history.py, issue 13):

- store size per day: one switch, 200 active tags, a count in every 1-minute step, written
  the way the controller writes it (Accounting deltas, one save per step: fine and coarse
  rows); bytes per table from SQLite's dbstat, per day and at steady state (2 days of fine
  steps + 400 days of coarse ones, the defaults);
- answer times through the real HTTP API (ApiServer over loopback, timed by curl): a
  `counters --since 7d` window and a 30-day `history` at 1-hour steps, on a store holding 30
  days of coarse and 2 days of fine steps for those 200 tags (target < 200 ms each);
- /metrics scrape time with 4096 tags on 4 switches (every tag counting: 16,380 flowlabel
  series + buckets), target < 100 ms.

The controller is built as `controller start` builds it, with drivers for four switches that
are never connected (only its answers are measured). Prints the figures and writes JSON to
--out (default bench-results/history.json).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import write_figures  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from controller.api import ApiServer  # noqa: E402
from controller.app import Controller  # noqa: E402
from controller.drivers.base import BUCKETS, Counts  # noqa: E402
from controller.drivers.p4runtime import P4RuntimeDriver  # noqa: E402
from controller.history import COARSE, FINE, HistorySettings  # noqa: E402
from controller.store import HistoryBatch, Store, TotalKey  # noqa: E402
from controller.topology import Topology  # noqa: E402
from scitags_core.registry import Registry  # noqa: E402

REGISTRY = ROOT / "scitags_core" / "data" / "registry-2025-09-04.json"
P4INFO = ROOT / "p4src" / "build" / "v1model" / "scitags.p4info.txtpb"
DEVICE_JSON = ROOT / "p4src" / "build" / "v1model" / "scitags.json"
TAGS_ACTIVE = 200
MIN_RUNS = 15
CURL = shutil.which("curl")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def tag_keys(switch: str, n: int) -> list[TotalKey]:
    return [TotalKey(switch, "flowlabel", 1 + i // 64, i % 64, f"exp{1 + i // 64}", f"act{i % 64}",
                     "bench-registry") for i in range(n)]


def build(state: Path, switches: list[str], clock) -> tuple[Controller, ApiServer]:
    topo = Topology.from_dict({"name": "bench", "switches": {
        s: {"device_id": i + 1, "grpc_port": 50000 + i, "cpu_port": 255} for i, s in enumerate(switches)},
        "hosts": {}, "links": [{"node1": a, "node2": b, "port1": 10, "port2": 11}
                               for a, b in zip(switches, switches[1:])]}, "<bench>")
    drivers = {s: P4RuntimeDriver(s, i + 1, f"127.0.0.1:{50000 + i}", P4INFO, DEVICE_JSON)
               for i, s in enumerate(switches)}
    store = Store(state / "controller.sqlite")
    registry = Registry.from_file(REGISTRY)
    ctl = Controller(topo, drivers, store, lambda: registry)
    ctl.history.configure(HistorySettings(), clock)
    ctl.accounting.load()  # what Controller.start does before its threads (not started here)
    ctl.history.open()
    ctl.apply_registry(registry, initial=True)
    api = ApiServer(ctl, "127.0.0.1", 0).start()
    return ctl, api


def timed_get(api: ApiServer, path: str, runs: int = MIN_RUNS) -> tuple[float, float, dict | str]:
    """Median and p90 time of a GET, measured by curl in its own process (a scraper's view:
    the answer computed, written and received; not this process's decoding of it)."""
    host, port = api.address
    url = f"http://{host}:{port}{path}"
    times = []
    for _ in range(runs):
        if CURL:
            out = subprocess.run([CURL, "-sS", "-o", "/dev/null", "-w", "%{time_total}", url],
                                 capture_output=True, text=True, check=True, timeout=60)
            times.append(float(out.stdout) * 1000)
        else:
            t = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
            times.append((time.perf_counter() - t) * 1000)
    with urllib.request.urlopen(url, timeout=30) as r:
        raw = r.read()
    body = raw.decode() if path == "/metrics" else json.loads(raw)
    times.sort()
    return statistics.median(times), times[max(0, math.ceil(0.9 * len(times)) - 1)], body


def table_bytes(store: Store) -> dict[str, int]:
    with store._lock:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = store._db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    return dict(rows)


def bench_store_size(tmp: Path) -> dict:
    """One day of 1-minute steps for 200 tags, through Accounting + History + Store.save."""
    start = math.floor(time.time() / 86400) * 86400 - 86400
    clock = Clock(start)
    store = Store(tmp / "size" / "controller.sqlite")
    from controller.accounting import Accounting
    acc = Accounting(store)
    acc.history.configure(HistorySettings(), clock)
    acc.history.open()
    keys = tag_keys("s1", TAGS_ACTIVE)
    t = time.perf_counter()
    for minute in range(1440):
        clock.t = start + minute * 60 + 30
        with acc.lock:
            for i, k in enumerate(keys):
                acc._add_total(k, Counts(1000 + i, 1_200_000 + 1000 * minute + i))
        acc.save()
    write_s = time.perf_counter() - t
    sizes = table_bytes(store)
    rows = store.history_rows()
    fine = sizes.get("history_fine", 0) + sizes.get("sqlite_autoindex_history_fine_1", 0)
    coarse = sizes.get("history_coarse", 0) + sizes.get("sqlite_autoindex_history_coarse_1", 0)
    keys_b = sizes.get("history_keys", 0) + sizes.get("sqlite_autoindex_history_keys_1", 0)
    s = HistorySettings()
    steady = fine * s.fine_keep_s / 86400 + coarse * s.coarse_keep_s / 86400 + keys_b
    store.close()
    return {"tags": TAGS_ACTIVE, "fine_rows_per_day": rows["history_fine"],
            "coarse_rows_per_day": rows["history_coarse"],
            "fine_bytes_per_day": fine, "coarse_bytes_per_day": coarse,
            "bytes_per_day": fine + coarse, "key_table_bytes": keys_b,
            "steady_state_bytes_defaults": int(steady),
            "saves_per_s_200_tags": round(1440 / write_s, 1)}


def bench_answers(tmp: Path) -> dict:
    """30 days coarse + 2 days fine for 200 tags; window and series through the API."""
    now = time.time()
    clock = Clock(now)
    ctl, api = build(tmp / "answers", ["s1"], clock)
    keys = tag_keys("s1", TAGS_ACTIVE) + [TotalKey("s1", "bucket", -1, -1, b, "", "bench-registry")
                                          for b in BUCKETS]
    s = ctl.history.settings
    fine_from = math.floor((now - s.fine_keep_s) / s.coarse_step_s) * s.coarse_step_s
    coarse_from = math.floor((now - 30 * 86400) / 3600) * 3600
    fine = {(t, k): Counts(10, 12_000) for t in range(fine_from, int(now), 60) for k in keys}
    coarse = {(t, k): Counts(600, 720_000) for t in range(coarse_from, int(now), 3600) for k in keys}
    t = time.perf_counter()
    ctl.store.save({}, {}, (), HistoryBatch({FINE: fine, COARSE: coarse}))
    fill_s = time.perf_counter() - t
    ctl.history.maintain()
    since7_ms, since7_p90, body = timed_get(api, "/api/v1/counters?since=7d")
    rows7 = len(body["counters"])
    hist_ms, hist_p90, hist = timed_get(api, "/api/v1/history?since=30d&step=1h")
    points = sum(len(x["points"]) for x in hist["series"]) + sum(len(x["points"]) for x in hist["buckets"])
    one_ms, one_p90, one = timed_get(api, "/api/v1/history?since=30d&step=1h&experiment=exp1")
    api.stop()
    ctl.store.close()
    return {"history_30d_1h_one_experiment_ms": round(one_ms, 1),
            "history_30d_1h_one_experiment_p90_ms": round(one_p90, 1),
            "history_30d_1h_one_experiment_series": len(one["series"]),
            "fine_rows": len(fine), "coarse_rows": len(coarse), "fill_s": round(fill_s, 1),
            "counters_since_7d_ms": round(since7_ms, 1), "counters_since_7d_p90_ms": round(since7_p90, 1),
            "counters_since_7d_rows": rows7,
            "history_30d_1h_ms": round(hist_ms, 1), "history_30d_1h_p90_ms": round(hist_p90, 1),
            "history_30d_1h_points": points, "history_30d_1h_step_s": hist["step_s"]}


def bench_scrape(tmp: Path) -> dict:
    switches = [f"s{i}" for i in range(1, 5)]
    ctl, api = build(tmp / "scrape", switches, Clock(time.time()))
    with ctl.accounting.lock:
        for sw in switches:
            for i, k in enumerate(tag_keys(sw, 4095)):
                ctl.accounting.totals[k] = Counts(1000 + i, 1_500_000 + i)
                ctl.accounting.rates[k] = (1e6, 1e3)
            for b in BUCKETS:
                ctl.accounting.totals[TotalKey(sw, "bucket", -1, -1, b, "", "bench-registry")] = Counts(5, 500)
    ms, p90, text = timed_get(api, "/metrics")
    series = sum(1 for line in text.splitlines() if line.startswith("scitags_bytes_total{"))
    # side by side, in-process: the traffic families written as text (controller/metrics.py)
    # vs the same families through prometheus_client's generic writer (how they were written
    # before), alternating
    families = list(text_string_to_metric_families(ctl.traffic_metrics()))

    class Same:
        def collect(self):
            return families
    generic = CollectorRegistry()
    generic.register(Same())
    text_ms, generic_ms = [], []
    for _ in range(5):
        t = time.perf_counter()
        ctl.traffic_metrics()
        text_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        generate_latest(generic)
        generic_ms.append((time.perf_counter() - t) * 1000)
    api.stop()
    ctl.store.close()
    return {"switches": len(switches), "tags_per_switch": 4095, "scitags_bytes_series": series,
            "metrics_bytes": len(text), "scrape_ms": round(ms, 1), "scrape_p90_ms": round(p90, 1),
            "traffic_text_writer_ms": round(statistics.median(text_ms), 1),
            "prometheus_client_writer_same_families_ms": round(statistics.median(generic_ms), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-results/history.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        tmp = Path(tmp)
        results = {"store": bench_store_size(tmp)}
        st = results["store"]
        print(f"store: {st['bytes_per_day'] / 1e6:.2f} MB per day for {TAGS_ACTIVE} tags at 1-min steps "
              f"(fine {st['fine_bytes_per_day'] / 1e6:.2f} MB, {st['fine_rows_per_day']} rows; coarse "
              f"{st['coarse_bytes_per_day'] / 1e6:.3f} MB); steady state with the defaults "
              f"{st['steady_state_bytes_defaults'] / 1e6:.1f} MB", flush=True)
        results["answers"] = a = bench_answers(tmp)
        print(f"counters --since 7d: {a['counters_since_7d_ms']} ms median (p90 "
              f"{a['counters_since_7d_p90_ms']}; target < 200); history 30 d at 1 h: "
              f"{a['history_30d_1h_ms']} ms median (p90 {a['history_30d_1h_p90_ms']}; "
              f"{a['history_30d_1h_points']} points; target < 200); one experiment "
              f"({a['history_30d_1h_one_experiment_series']} series): {a['history_30d_1h_one_experiment_ms']} ms",
              flush=True)
        results["scrape"] = sc = bench_scrape(tmp)
        print(f"/metrics with 4096 tags on 4 switches: {sc['scrape_ms']} ms median (p90 "
              f"{sc['scrape_p90_ms']}; {sc['scitags_bytes_series']} scitags_bytes_total series, "
              f"{sc['metrics_bytes'] / 1e6:.1f} MB; target < 100); traffic families: text writer "
              f"{sc['traffic_text_writer_ms']} ms vs prometheus_client's writer "
              f"{sc['prometheus_client_writer_same_families_ms']} ms (same run)", flush=True)
    results["load_average_1m"] = os.getloadavg()[0]  # 2 cores shared with other work
    results["targets_met"] = {
        "counters_since_7d_under_200ms": a["counters_since_7d_ms"] < 200,
        "history_30d_under_200ms": a["history_30d_1h_ms"] < 200,
        "scrape_under_100ms": sc["scrape_ms"] < 100}
    write_figures(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
