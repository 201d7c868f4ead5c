#!/usr/bin/env python3
"""OpenFlow driver benchmark on Open vSwitch (netdev bridge, hosts in network namespaces).

Figures:
  * flow-mod installs per second: firefly 5-tuple entries, (a) one install_flow() call per
    flow, each confirmed by a barrier (what the controller does per firefly), and (b) batches
    of --batch flow-mods per barrier (what a reconcile or a restart replay can do);
  * firefly-to-flow latency p50/p99: a real firefly datagram leaves host h1 (AF_PACKET in
    its namespace), OVS copies it to the controller (packet-in), the driver hands it over as
    a FireflyPacket, it is parsed (scitags_core.firefly_parse) and install_flow() returns
    after the switch confirmed the entry. One firefly at a time: latency, not queueing.

Needs root and Open vSwitch (started if installed and not running). Prints the figures and
writes them as JSON to --out (default bench-results/openflow.json). Exit 1 when OVS or the
lab cannot be set up.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import write_figures  # noqa: E402
from controller.drivers import openflow_pipeline as pl  # noqa: E402
from controller.drivers.base import FireflyPacket, FlowKey, FlowRule  # noqa: E402
from controller.drivers.openflow import OpenFlowDriver  # noqa: E402
from scitags_core.firefly_build import build_firefly  # noqa: E402
from scitags_core.firefly_parse import parse_firefly  # noqa: E402
from tests.openflow.helpers import A1, A2, v6_frame  # noqa: E402
from tests.openflow.ovslab import OvsLab, ovs_unavailable_reason  # noqa: E402

H1, H2 = "00:00:00:00:00:01", "00:00:00:00:00:02"


def flow_keys(count: int, base_port: int) -> list[FlowKey]:
    return [FlowKey.of(A1, A2, "tcp", base_port + i % 50000, 443 + i // 50000) for i in range(count)]


def bench_installs(driver: OpenFlowDriver, count: int, batch: int) -> dict[str, float]:
    keys = flow_keys(count, 10000)
    start = time.perf_counter()
    for key in keys:
        driver.install_flow(FlowRule(key, 3, 14, 300))
    single = count / (time.perf_counter() - start)
    for key in keys:
        driver.remove_flow(key)

    keys = flow_keys(count, 20000)
    msgs = [pl.firefly_add(key, 3, 14, 300, i + 1_000_000) for i, key in enumerate(keys)]
    start = time.perf_counter()
    for i in range(0, len(msgs), batch):
        driver._send(msgs[i:i + batch], "benchmark batch")  # noqa: SLF001 - measuring the link
    batched = count / (time.perf_counter() - start)
    installed = len(driver.installed_flows())
    if installed < count:
        raise RuntimeError(f"only {installed} of {count} batched flows were installed")
    driver._send([pl.delete_kind(pl.KIND_FIREFLY)], "benchmark cleanup")  # noqa: SLF001
    return {"flows": count, "one_per_barrier_per_s": round(single, 1),
            "batch_size": batch, "batched_per_s": round(batched, 1)}


def bench_latency(driver: OpenFlowDriver, lab: OvsLab, samples: int) -> dict[str, float]:
    done = threading.Event()
    finished: list[float] = []
    failures: list[str] = []

    def on_event(event: object) -> None:
        if not isinstance(event, FireflyPacket):
            return
        try:
            rec = parse_firefly(event.payload)
            key = FlowKey(rec.src_ip, rec.dst_ip, 6 if rec.protocol == "tcp" else 17,
                          rec.src_port, rec.dst_port)
            driver.install_flow(FlowRule(key, rec.experiment_id, rec.activity_id, 300))
            finished.append(time.perf_counter())
        except Exception as exc:  # reported in the figures, never a hang
            failures.append(f"{type(exc).__name__}: {exc}")
        done.set()

    driver.set_event_handler(on_event)
    latencies = []
    for i in range(samples):
        body = build_firefly(state="start", src_ip=A1, dst_ip=A2, src_port=30000 + i,
                             dst_port=443, experiment_id=3, activity_id=14, protocol="tcp")
        frame = v6_frame(H1, H2, 0, 30000 + i, 10514, src=A1, dst=A2, payload=body)
        done.clear()
        sent = time.perf_counter()
        lab.send("h1", frame)
        if not done.wait(timeout=10):
            raise RuntimeError(f"firefly {i} produced no flow within 10 s")
        if failures:
            raise RuntimeError(f"firefly {i}: {failures[-1]}")
        latencies.append((finished[-1] - sent) * 1000)
    driver.set_event_handler(lambda event: None)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"samples": samples, "p50_ms": round(cuts[49], 3), "p99_ms": round(cuts[98], 3),
            "max_ms": round(max(latencies), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/openflow.json", help="JSON figures file")
    ap.add_argument("--flows", type=int, default=2000, help="flows per install run")
    ap.add_argument("--batch", type=int, default=500, help="flow-mods per barrier (batched run)")
    ap.add_argument("--samples", type=int, default=300, help="fireflies for the latency run")
    args = ap.parse_args()
    if args.flows < 1 or args.batch < 1 or args.samples < 2:
        ap.error("--flows and --batch must be >= 1, --samples >= 2")

    reason = ovs_unavailable_reason()
    if reason:
        print(f"bench_openflow: {reason}", file=sys.stderr)
        return 1
    lab = OvsLab({"h1": (H1, 1), "h2": (H2, 2)})
    driver = OpenFlowDriver("s1", lab.target)
    try:
        lab.start()
        driver.connect()
        driver.ensure_pipeline()
        driver.set_forwarding({H1: 1, H2: 2}, [1, 2], None, None)
        installs = bench_installs(driver, args.flows, args.batch)
        latency = bench_latency(driver, lab, args.samples)
    except Exception as exc:
        print(f"bench_openflow: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        driver.close()
        lab.stop()

    version = subprocess.run(["ovs-vswitchd", "--version"], capture_output=True, text=True,
                             check=False).stdout
    ovs = version.splitlines()[0] if version else "Open vSwitch"
    figures = {"switch": f"{ovs}, datapath_type=netdev", "flow_mod_installs": installs,
               "firefly_to_flow_latency": latency}
    print(f"flow-mod installs ({installs['flows']} firefly entries on {ovs}):")
    print(f"  one install_flow per barrier: {installs['one_per_barrier_per_s']:>10.1f} /s")
    print(f"  batches of {installs['batch_size']:<5} per barrier:  {installs['batched_per_s']:>10.1f} /s")
    print(f"firefly -> flow installed ({latency['samples']} fireflies, one at a time):")
    print(f"  p50 {latency['p50_ms']:.3f} ms   p99 {latency['p99_ms']:.3f} ms   "
          f"max {latency['max_ms']:.3f} ms")
    write_figures(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
