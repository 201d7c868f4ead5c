#!/usr/bin/env python3
"""Controller figures against real switch processes (built-in `softswitch`, and BMv2 when
installed), over real gRPC:

- firefly-to-entry latency: a `start` firefly sent over UDP to the controller -> its
  5-tuple entry readable on the switch (a second, backup P4Runtime session polls for it);
  p50 / p99 over --latency-n fireflies, one at a time;
- sustained fireflies per second turned into entries: --sustained-n `start` fireflies for
  distinct flows sent back to back; time until the controller has installed all of them;
- time to read all counters (tag_counter, bucket_counter, both firefly tables' direct
  counters) with --tags tag rules and --flows firefly entries installed, by this driver and
  by the driver before the issue-12 restructure (--before REV, loaded from git), same run;
- cost of one reconcile pass (read back everything the controller owns, diff, write) with
  those tags and flows installed: in sync (nothing to repair), and after drift (--drift
  flow entries and tag entries deleted behind the controller's back).

Prints figures, writes JSON to --out (default bench-results/controller.json).
Runs the committed compiler outputs (p4src/build/v1model).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from p4.v1 import p4runtime_pb2  # noqa: E402

from controller import launcher  # noqa: E402
from controller.config import load_config  # noqa: E402
from controller.drivers.base import DesiredState, FlowKey, FlowRule, Forwarding, TagRule  # noqa: E402
from controller.drivers.p4runtime import P4RuntimeDriver  # noqa: E402
from controller.runtime import build  # noqa: E402
from controller.topology import SwitchSpec  # noqa: E402
from scitags_core.firefly_build import build_firefly  # noqa: E402

BUILD = ROOT / "p4src/build/v1model"


def program() -> tuple[Path, Path, str]:
    return BUILD / "scitags.p4info.txtpb", BUILD / "scitags.json", "compiled"


BEFORE_REV = "2a39893"  # the last commit before the issue-12 restructure


def start_switch(kind: str, device_id: int, log_dir: Path):
    spec = SwitchSpec(f"bench{device_id}", device_id, launcher.free_tcp_port(), 255, "p4")
    return spec, launcher.launch(kind, spec, log_dir)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def entry_present(obs: P4RuntimeDriver, key: FlowKey) -> bool:
    ent = obs.codec.encode(obs._flow_entry(key))
    try:
        return bool(obs.client.read([ent]))
    except Exception:  # noqa: BLE001 - NOT_FOUND from some servers
        return False


def firefly(i: int, state: str = "start") -> tuple[FlowKey, bytes]:
    sport = 1024 + i % 60000
    dst = str(ipaddress.IPv4Address("127.0.2.0") + i // 60000)
    key = FlowKey.of("127.0.0.1", dst, "tcp", sport, 1094)
    return key, build_firefly(state=state, src_ip="127.0.0.1", dst_ip=dst, src_port=sport,
                              dst_port=1094, experiment_id=3, activity_id=2)


def bench_fireflies(kind: str, p4info: Path, dev: Path, tmp: Path, n_lat: int, n_sus: int) -> dict:
    spec, proc = start_switch(kind, 1, tmp / "logs")
    rt = None
    try:
        cfg = load_config(None, {
            "grpc_addr": spec.grpc_addr, "device_id": spec.device_id, "launch": "never",
            "state_dir": str(tmp / f"state-{kind}"), "firefly_listen": "127.0.0.1:0",
            "p4info": str(p4info), "device_config": str(dev), "poll_interval_s": 3600,
            "firefly.rate_per_source": 1e9, "firefly.burst": 1e9, "firefly.max_flows": 65536,
            "firefly.idle_timeout_s": 600})
        rt = build(cfg, with_api=False)
        rt.start()
        if not rt.controller.wait_ready(60):
            raise RuntimeError(f"{kind}: controller not ready: {rt.controller.status()}")
        obs = P4RuntimeDriver("obs", spec.device_id, spec.grpc_addr, p4info, dev, election_id=(0, 1))
        obs.connect()
        addr = rt.controller.udp_receiver.address
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        lat = []
        for i in range(n_lat):
            key, data = firefly(i)
            t0 = time.perf_counter()
            sock.sendto(data, addr)
            while not entry_present(obs, key):
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError(f"{kind}: entry {key} not readable after 10 s")
            lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.2)  # the last latency install is counted just after its entry is readable
        base = rt.controller.stats["flows_installed"]
        items = [firefly(n_lat + i) for i in range(n_sus)]
        t0 = time.perf_counter()
        for i, (_, data) in enumerate(items):
            sock.sendto(data, addr)
            if i % 200 == 199:
                time.sleep(0.001)  # keep the socket buffer from overflowing
        deadline = t0 + 300
        while rt.controller.stats["flows_installed"] - base < n_sus and time.perf_counter() < deadline:
            time.sleep(0.005)
        took = time.perf_counter() - t0
        done = rt.controller.stats["flows_installed"] - base
        on_switch = len(obs.installed_flows())
        obs.close()
        sock.close()
        return {"latency_ms": {"n": n_lat, "p50": round(pct(lat, 50), 2), "p99": round(pct(lat, 99), 2),
                               "mean": round(statistics.fmean(lat), 2), "max": round(max(lat), 2)},
                "sustained": {"sent": n_sus, "installed": done, "seconds": round(took, 3),
                              "fireflies_per_s": round(done / took, 1), "entries_on_switch": on_switch}}
    finally:
        if rt is not None:
            rt.stop()
        launcher.terminate([proc])


def driver_before(rev: str) -> types.ModuleType:
    """controller/drivers/p4runtime.py as it was at `rev` (git), importable next to today's."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:controller/drivers/p4runtime.py"],
                         capture_output=True, text=True, check=True).stdout
    mod = types.ModuleType("p4runtime_before")
    mod.__file__ = f"{rev}:controller/drivers/p4runtime.py"
    sys.modules[mod.__name__] = mod
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)  # noqa: S102 - our own history
    return mod


def timed(fn, n: int = 3) -> tuple[float, list[float], object]:
    runs, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), runs, out


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def installs_during_pass(d: P4RuntimeDriver, desired: DesiredState, n: int = 20) -> dict:
    """Flow installs (one RPC each) while a reconcile pass reads the tables back in another
    thread: the read holds no lock, so they are not held up by it."""
    done = threading.Event()
    worker = threading.Thread(target=lambda: (d.reconcile(desired), done.set()))
    worker.start()
    lat = []
    for i in range(n):
        key = FlowKey.of(f"2001:db8::{i + 1:x}", "2001:db8::ffff", 6, 2000, 443)  # firefly_v6: v4 is full
        t0 = time.perf_counter()
        d.install_flow(FlowRule(key, 3, 2, 0))
        lat.append(time.perf_counter() - t0)
        if done.is_set():
            break
        time.sleep(0.05)
    worker.join()
    for i in range(len(lat)):
        d.remove_flow(FlowKey.of(f"2001:db8::{i + 1:x}", "2001:db8::ffff", 6, 2000, 443))
    return {"n": len(lat), "p50": ms(statistics.median(lat)), "max": ms(max(lat))}


def bench_counter_read(kind: str, p4info: Path, dev: Path, tmp: Path, n_tags: int, n_flows: int,
                       before_rev: str, n_drift: int) -> dict:
    spec, proc = start_switch(kind, 2, tmp / "logs")
    try:
        d = P4RuntimeDriver("scale", spec.device_id, spec.grpc_addr, p4info, dev)
        d.connect()
        d.ensure_pipeline()
        rules, tag = [], 1
        for exp in range(1, 512):
            for act in [None, *range(0, 63)]:
                if tag > n_tags:
                    break
                rules.append(TagRule(tag, exp, act))
                tag += 1
        t0 = time.perf_counter()
        d.sync_tags(rules)
        tags_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        flows = {}
        for i in range(n_flows):
            key = FlowKey(ipaddress.IPv4Address("10.0.0.0") + i, ipaddress.IPv4Address("10.128.0.1"), 6, 1000 + i % 50000, 443)
            flows[key] = FlowRule(key, 3, 2, 0)
        d.client.write_updates([d.codec.update(p4runtime_pb2.Update.INSERT, d._flow_entry(k, r))
                                for k, r in flows.items()], batch=2000)
        flows_s = time.perf_counter() - t0
        old = driver_before(before_rev).P4RuntimeDriver(
            "before", spec.device_id, spec.grpc_addr, p4info, dev, election_id=(0, 1))
        old.connect()
        runs_now, runs_before = [], []
        for _ in range(3):  # interleaved, so that both see the same switch and machine load
            _, r, snap = timed(d.read_counters, 1)
            runs_now += r
            _, r, snap_old = timed(old.read_counters, 1)
            runs_before += r
        poll_now, poll_before = statistics.median(runs_now), statistics.median(runs_before)
        assert len(snap.flows) == n_flows, (len(snap.flows), n_flows)
        assert len(snap_old.flows) == n_flows and snap_old.tags == snap.tags
        old.close()
        desired = DesiredState(Forwarding({"00:00:00:00:00:01": 1, "00:00:00:00:00:02": 2}, (1, 2), 255, 3),
                               rules, flows)
        first = d.reconcile(desired)  # writes the forwarding part: not measured
        assert first.repairs[("flow", "missing")] == 0, first.repairs
        pass_s, pass_runs, res = timed(lambda: d.reconcile(desired))
        assert res.total == 0, res.repairs
        during = installs_during_pass(d, desired)
        # drift: entries deleted behind the controller's back, then one repairing pass
        gone = list(flows.items())[:n_drift]
        d.client.write_updates([d.codec.update(p4runtime_pb2.Update.DELETE, d._flow_entry(k, r))
                                for k, r in gone]
                               + [d.codec.update(p4runtime_pb2.Update.DELETE, d._tag_entry(r))
                                  for r in rules[:n_drift // 10]])
        t0 = time.perf_counter()
        fixed = d.reconcile(desired)
        repair_s = time.perf_counter() - t0
        assert fixed.repairs[("flow", "missing")] == len(gone), fixed.repairs
        d.close()
        return {"tags": len(rules), "flows": n_flows, "install_tags_s": round(tags_s, 3),
                "install_flows_s": round(flows_s, 2),
                "read_all_counters_s": {"median": round(poll_now, 3),
                                        "runs": [round(r, 3) for r in runs_now]},
                "counter_poll_ms": {"before": ms(poll_before), "after": ms(poll_now),
                                    "before_runs": [ms(r) for r in runs_before],
                                    "after_runs": [ms(r) for r in runs_now], "before_rev": before_rev},
                "reconcile_pass_ms": {"in_sync": ms(pass_s), "runs": [ms(r) for r in pass_runs],
                                      "read_ms": ms(res.read_s), "write_ms": ms(res.write_s)},
                "flow_install_during_pass_ms": during,
                "reconcile_repair_ms": {"flows_deleted": len(gone), "tags_deleted": n_drift // 10,
                                        "pass": ms(repair_s),
                                        "repairs": {f"{k}/{c}": n for (k, c), n in fixed.repairs.items()}}}
    finally:
        launcher.terminate([proc])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/controller.json")
    ap.add_argument("--targets", default="soft,bmv2", help="comma list of soft, bmv2 (bmv2 skipped when absent)")
    ap.add_argument("--latency-n", type=int, default=200)
    ap.add_argument("--sustained-n", type=int, default=2000)
    ap.add_argument("--tags", type=int, default=4096 - 1, help="tag rules (cells 1..4095)")
    ap.add_argument("--flows", type=int, default=65536)
    ap.add_argument("--before", default=BEFORE_REV, metavar="REV",
                    help=f"git revision of the driver to compare the counter poll with (default {BEFORE_REV})")
    ap.add_argument("--drift", type=int, default=1000, help="flow entries deleted before the repair pass")
    ap.add_argument("--skip-fireflies", action="store_true", help="only the counter/reconcile figures")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.latency_n, args.sustained_n, args.tags, args.flows, args.drift = 20, 200, 200, 2000, 100
    logging.basicConfig(level=logging.WARNING)
    p4info, dev, which = program()
    results: dict = {"program": which, "targets": {}}
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmpdir:
        tmp = Path(tmpdir)
        for kind in [t.strip() for t in args.targets.split(",") if t.strip()]:
            if kind == "bmv2" and not launcher.bmv2_installed():
                results["targets"][kind] = {"skipped": "BMv2 simple_switch_grpc not installed"}
                print(f"{kind}: skipped (not installed)")
                continue
            out = results["targets"][kind] = {}
            try:
                if not args.skip_fireflies:
                    out["fireflies"] = bench_fireflies(kind, p4info, dev, tmp, args.latency_n, args.sustained_n)
                    f = out["fireflies"]
                    print(f"{kind}: firefly->entry latency p50 {f['latency_ms']['p50']} ms, "
                          f"p99 {f['latency_ms']['p99']} ms (n={args.latency_n}); sustained "
                          f"{f['sustained']['fireflies_per_s']} fireflies/s into entries "
                          f"({f['sustained']['installed']}/{args.sustained_n})", flush=True)
                out["counter_read"] = bench_counter_read(kind, p4info, dev, tmp, args.tags, args.flows,
                                                         args.before, args.drift)
                c = out["counter_read"]
                print(f"{kind}: read all counters with {c['tags']} tags + {c['flows']} flows: "
                      f"{c['read_all_counters_s']['median']} s (median of 3); installing the flows "
                      f"took {c['install_flows_s']} s", flush=True)
                cp, rp, rr = c["counter_poll_ms"], c["reconcile_pass_ms"], c["reconcile_repair_ms"]
                fi = c["flow_install_during_pass_ms"]
                print(f"{kind}: counter poll {cp['before']} ms before ({cp['before_rev']}) -> "
                      f"{cp['after']} ms now; reconcile pass in sync {rp['in_sync']} ms "
                      f"(read {rp['read_ms']} ms); repairing {rr['flows_deleted']} flows + "
                      f"{rr['tags_deleted']} tags: {rr['pass']} ms; a flow install during a "
                      f"pass: p50 {fi['p50']} ms, max {fi['max']} ms", flush=True)
            except Exception as exc:  # noqa: BLE001 - report, go on with the next target
                out["error"] = f"{type(exc).__name__}: {exc}"
                print(f"{kind}: failed: {out['error']}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.out}")
    return 1 if any("error" in v for v in results["targets"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
