#!/usr/bin/env python3
"""Dashboard figures in a real browser (Debian's headless Chromium via Selenium), against a
real controller and the built-in target:

- time until the page shows data (navigation start -> the page's `scitags:data-shown`
  performance mark, set once the chart, tables and flows are drawn), over --loads fresh page
  loads, with --tags tag rules that all counted traffic (one labelled frame each through the
  switch's veth ports) and --flows live firefly flows (start fireflies over UDP, installed on
  the switch); target < 1 s;
- what the page fetched for it (duration and size of each API answer), and how long one of
  its periodic refreshes takes (fetch + draw).

Skipped with the reason (JSON `skipped`) without Chromium/chromedriver/selenium or root
(veth ports). Prints figures, writes JSON to --out (default bench-results/dashboard.json).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_controller import firefly  # noqa: E402 - the same fireflies the controller bench sends
from scitags_core import flowlabel  # noqa: E402
from tests.dashboard import browser  # noqa: E402

TARGET_S = 1.0


def registry(n_tags: int) -> dict:
    """Experiments 2.. with activities 1..63 each: a wildcard rule + 63 exact ones per experiment."""
    experiments, rules, exp = [], 0, 2
    while rules < n_tags:
        acts = min(63, n_tags - rules - 1)
        experiments.append({"expName": f"exp{exp}", "expId": exp,
                            "activities": [{"activityName": f"act{a}", "activityId": a}
                                           for a in range(1, acts + 1)]})
        rules += 1 + acts
        exp += 1
    return {"experiments": experiments, "version": 1, "modified": "2026-01-01T00:00:00Z"}


def fill_flows(rt, n: int) -> float:
    """n start fireflies (distinct flows) over UDP, resent where the socket dropped some."""
    addr = rt.controller.udp_receiver.address
    items = [firefly(i) for i in range(n)]
    t0 = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for attempt in range(5):
            todo = [(k, d) for k, d in items if k not in rt.controller.flows]
            if not todo:
                break
            if attempt:
                time.sleep(2.5)  # past the dedup window: a resent start is new again
            for i, (_, data) in enumerate(todo):
                sock.sendto(data, addr)
                if i % 200 == 199:
                    time.sleep(0.002)  # keep the socket buffer from overflowing
            last, stalled = -1, time.monotonic()
            while len(rt.controller.flows) < n and time.monotonic() - stalled < 5:
                if len(rt.controller.flows) != last:
                    last, stalled = len(rt.controller.flows), time.monotonic()
                time.sleep(0.05)
    if len(rt.controller.flows) < n:
        raise RuntimeError(f"only {len(rt.controller.flows)} of {n} flows live")
    return time.perf_counter() - t0


MARK = """
const m = performance.getEntriesByName('scitags:data-shown');
if (!m.length) return null;
const api = performance.getEntriesByType('resource').filter(r => r.name.includes('/api/'))
  .map(r => ({url: r.name.replace(location.origin, ''), ms: Math.round(r.duration * 10) / 10,
              bytes: r.transferSize, start_ms: Math.round(r.startTime)}));
return {shown_ms: m[0].startTime, api,
        rows: document.querySelectorAll('#experiments tbody tr').length,
        series: document.querySelectorAll('#chart g.series').length,
        flows_shown: document.querySelectorAll('#flows-live tr[data-flow]').length,
        flows_note: document.getElementById('flows-count').textContent};
"""


def measure(url: str, loads: int) -> dict:
    driver = browser.chromium()
    try:
        runs = []
        for _ in range(loads + 1):  # the first load warms Chromium's caches: not counted
            driver.get("about:blank")
            driver.get(url)
            deadline = time.monotonic() + 60
            got = None
            while got is None and time.monotonic() < deadline:
                got = driver.execute_script(MARK)
                if got is None:
                    time.sleep(0.02)
            if got is None:
                raise RuntimeError("the page never showed data")
            runs.append(got)
        refresh_t0 = time.perf_counter()
        before = int(driver.execute_script("return Number(document.body.dataset.renders)"))
        while int(driver.execute_script("return Number(document.body.dataset.renders)")) == before:
            time.sleep(0.02)
            if time.perf_counter() - refresh_t0 > 30:
                raise RuntimeError("no refresh within 30 s")
        refresh_ms = float(driver.execute_script("return Number(document.body.dataset.refreshMs)"))
        errors = browser.console_errors(driver)
    finally:
        driver.quit()
    counted = runs[1:]
    shown = [r["shown_ms"] for r in counted]
    return {"loads": len(counted), "data_shown_ms": {"median": round(statistics.median(shown), 1),
                                                      "max": round(max(shown), 1),
                                                      "runs": [round(s, 1) for s in shown]},
            "api_fetches_last_load": counted[-1]["api"], "table_rows": counted[-1]["rows"],
            "chart_series": counted[-1]["series"], "flows_shown": counted[-1]["flows_shown"],
            "flows_note": counted[-1]["flows_note"], "refresh_ms": round(refresh_ms, 1),
            "console_errors": len(errors)}


def run(args, tmp: Path) -> dict:
    from tests.controller.harness import H1, H2, MON, SwitchProc, send_all, start_controller, topology_yaml, v6

    reg = registry(args.tags)
    (tmp / "registry.json").write_text(json.dumps(reg))
    sw = SwitchProc("soft", 1, [1, 2, 3], tmp).start()
    rt = None
    try:
        topo = topology_yaml({"s1": sw}, {"h1": H1, "h2": H2, "mon1": MON},
                             [{"node1": "h1", "node2": "s1", "port2": 1},
                              {"node1": "h2", "node2": "s1", "port2": 2},
                              {"node1": "mon1", "node2": "s1", "port2": 3}])
        rt = start_controller(tmp, topo, registry=str(tmp / "registry.json"), poll_interval_s=3600,
                              reconcile_interval_s=0,
                              **{"firefly.rate_per_source": 1e9, "firefly.burst": 1e9,
                                 "firefly.max_flows": args.flows, "firefly.idle_timeout_s": 3600})
        if not rt.controller.wait_ready(120):
            raise RuntimeError(f"controller not ready: {rt.controller.status()}")
        tags = len(rt.controller.tags)
        t0 = time.perf_counter()
        frames = []
        for e in reg["experiments"]:
            for act in [0, *(a["activityId"] for a in e["activities"])]:  # 0: the wildcard rule
                frames.append(v6(flowlabel.encode_label(e["expId"], act), sport=1000 + len(frames) % 60000))
        send_all(sw, 1, frames, window=50)
        traffic_s = time.perf_counter() - t0
        flows_s = fill_flows(rt, args.flows)
        t0 = time.perf_counter()
        rt.controller.poll_all()
        poll_s = time.perf_counter() - t0
        rows = [r for r in rt.controller.counter_rows() if r["source"] == "flowlabel" and r["packets"]]
        print(f"state: {tags} tags ({len(rows)} with traffic; {len(frames)} frames in {traffic_s:.1f} s), "
              f"{len(rt.controller.flows)} live flows ({flows_s:.1f} s to install), poll {poll_s:.1f} s",
              flush=True)
        result = measure(rt.api.url + "/", args.loads)
        result.update({"tags": tags, "tags_with_traffic": len(rows), "live_flows": len(rt.controller.flows),
                       "target_s": TARGET_S,
                       "meets_target": result["data_shown_ms"]["median"] / 1000 < TARGET_S})
        return result
    finally:
        if rt is not None:
            rt.stop()
        sw.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/dashboard.json")
    ap.add_argument("--tags", type=int, default=4095, help="tag rules (the 4096-cell table's cells 1..4095)")
    ap.add_argument("--flows", type=int, default=65536)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.tags, args.flows, args.loads = 200, 2000, 2
    logging.basicConfig(level=logging.WARNING)
    why = browser.missing() or (None if os.geteuid() == 0 else "needs root for the switch's veth ports")
    if why:
        results = {"skipped": why}
        print(f"dashboard: skipped ({why})")
    else:
        with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmpdir:
            try:
                results = run(args, Path(tmpdir))
            except Exception as exc:  # noqa: BLE001 - report it in the JSON as the others do
                results = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"dashboard: failed: {results['error']}", flush=True)
        if "error" not in results:
            d = results["data_shown_ms"]
            print(f"dashboard: data shown after {d['median']} ms (median of {results['loads']} loads, "
                  f"max {d['max']} ms; target < {TARGET_S * 1000:.0f} ms) with {results['tags']} tags and "
                  f"{results['live_flows']} live flows; {results['table_rows']} table rows, "
                  f"{results['chart_series']} chart series, {results['flows_shown']} flows shown "
                  f"({results['flows_note']}); a refresh: {results['refresh_ms']} ms; console errors: "
                  f"{results['console_errors']}")
            for f in results["api_fetches_last_load"]:
                print(f"  {f['url']}: {f['ms']} ms, {f['bytes']} bytes")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.out}")
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
