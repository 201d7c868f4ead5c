#!/usr/bin/env python3
"""Placement modes (issue 15): forwarding rate in wire mode vs static mode, and MAC learning.

Targets: BMv2 simple_switch_grpc when installed, and the built-in target, same run.
  static   flow-labelled IPv6/TCP H1 -> H2 through l2_forward (bench_p4program's frames and
           closed loop, bench_p4program.measure)
  wire     the same frames through a wire pair 1 <-> 2 (port_mode), no MAC lookup
  learning new source MACs sent on a learn port at a paced rate: time from a MAC's first frame
           leaving the sender to its entries being written (p50/p99), and how many of the
           MACs were learned (the rest: packet-ins or sightings dropped on the way) with the
           rate achieved (learned MACs per second)
Needs root (veths).
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench.figures import write_figures  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from bench_p4program import H1, H2, frame, measure  # noqa: E402
from controller.drivers.base import DesiredState, Forwarding, PortEntry, TagRule  # noqa: E402
from controller.drivers.p4runtime import P4RuntimeDriver  # noqa: E402
from controller.launcher import free_tcp_port, stop_process  # noqa: E402
from controller.learning import MacLearning  # noqa: E402
from controller.topology import Topology  # noqa: E402
from labnet.veth import VethPorts, wait_for_port  # noqa: E402
from tests.conftest import BMV2_BIN, HAVE_BMV2, P4_BUILD  # noqa: E402
from tests.p4.dataplane import CPU_PORT, switch_command  # noqa: E402

RULES = [TagRule(1, 3, 14), TagRule(2, 3, None)]
STATIC = Forwarding({H1: 1, H2: 2}, (1, 2), CPU_PORT, None)
WIRE = Forwarding({}, (), CPU_PORT, None, (PortEntry(1, "wire", 2), PortEntry(2, "wire", 1)))


class Target:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ports = VethPorts([1, 2, 3], tag=f"bm{kind[0]}")
        self.grpc_port = free_tcp_port()

    def __enter__(self) -> "Target":
        self.ports.create()
        cmd = switch_command(self.kind, self.ports, self.grpc_port)
        if self.kind == "bmv2":
            cmd[1:1] = ["--log-level", "off"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.grpc_port, self.proc)
        self.driver = P4RuntimeDriver("bench", 1, f"127.0.0.1:{self.grpc_port}",
                                      P4_BUILD / "scitags.p4info.txtpb", P4_BUILD / "scitags.json",
                                      cpu_port=CPU_PORT)
        self.driver.connect()
        self.driver.ensure_pipeline()
        return self

    def program(self, f: Forwarding) -> None:
        self.driver.reconcile(DesiredState(f, RULES, {}))
        time.sleep(0.3)
        self.ports.drain()

    def __exit__(self, *exc) -> None:
        self.driver.close()
        stop_process(self.proc, timeout=10)
        self.ports.destroy()


def learn_topology() -> Topology:
    return Topology.from_dict({"switches": {"bench": {
        "device_id": 1, "grpc_port": 1, "mode": "learn", "ports": [1, 2, 3],
        "learn_ageing_s": 600}}}, "bench-learn")


def learning(t: Target, rate: int, count: int, base: int) -> dict:
    """`count` new source MACs at `rate` frames/s on port 1 (one frame each)."""
    topo = learn_topology()
    learner = MacLearning(topo)
    learner.attach("bench", t.driver)
    modes = tuple(PortEntry(m.port, m.action) for m in topo.port_modes("bench").values())
    t.program(Forwarding({}, tuple(topo.flood_ports("bench")), CPU_PORT, None, modes, (), 600))
    template = bytes(Ether(src="02:00:00:00:00:01", dst="02:ff:ff:ff:ff:fe")
                     / IPv6(src="2001:db8::9", dst="2001:db8::8") / UDP(sport=1000, dport=2000))
    macs = [f"02:00:{(base + i) >> 16 & 255:02x}:{(base + i) >> 8 & 255:02x}:{(base + i) & 255:02x}:01"
            for i in range(count)]
    frames = [template[:6] + bytes.fromhex(m.replace(":", "")) + template[12:] for m in macs]
    sent_at: dict[str, float] = {}
    t0 = time.monotonic()
    for i, (mac, data) in enumerate(zip(macs, frames)):
        due = t0 + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # never a busy loop: the learner's threads share this process's GIL
        sent_at[mac] = time.monotonic()
        t.ports.send(1, data)
    sent_s = time.monotonic() - t0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(learner.table("bench")) < count:
        time.sleep(0.05)
        t.ports.drain()
    learner.stop()
    with learner._lock:  # noqa: SLF001 - the bench reads the install times
        installed = {mac: e.installed_at for mac, e in learner._tables["bench"].items()}  # noqa: SLF001
    lat = sorted((installed[m] - sent_at[m]) * 1000 for m in installed if m in sent_at)
    span = (max(installed.values()) - t0) if installed else 0
    return {"target": t.kind, "offered_macs_per_s": rate,
            "sent_macs_per_s": round(count / sent_s) if sent_s else 0, "macs": count, "learned": len(lat),
            "learned_fraction": round(len(lat) / count, 4),
            "learn_rate_per_s": round(len(lat) / span) if span else 0,
            "p50_ms": round(statistics.median(lat), 2) if lat else None,
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2) if lat else None,
            "learner_drops": learner.stats.get("dropped_queue_full", 0),
            "packet_in_learn": t.driver.stats.get("learn_packet_in", 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench-results/modes.json")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--macs", type=int, default=2000)
    ap.add_argument("--rates", default="200,1000,2000,20000")
    ap.add_argument("--cases", default="forwarding,learning", help="comma-separated subset")
    args = ap.parse_args()
    results, learn = [], []
    targets = (["bmv2"] if HAVE_BMV2 else []) + ["soft"]
    for kind in targets:
        with Target(kind) as t:
            count = args.count if kind == "bmv2" else min(args.count, 5000)
            cases = args.cases.split(",")
            for mode, f in ((("static", STATIC), ("wire", WIRE)) * 2 if "forwarding" in cases else ()):
                t.program(f)
                r = {"target": kind, "mode": mode, **measure(t.ports, frame(args.size), count)}
                results.append(r)
                print(f"{kind:5} {mode:6} {args.size}B frames: {r['pps']:>8} pps "
                      f"(sent {r['sent']}, received {r['received']}, loss {r['loss']:.1%})", flush=True)
            rates = [int(x) for x in args.rates.split(",")] if "learning" in cases else []
            for i, rate in enumerate(rates):
                r = learning(t, rate, args.macs, base=(i + 1) << 12)
                learn.append(r)
                print(f"{kind:5} learning at {rate:>5} new MACs/s offered ({r['sent_macs_per_s']}/s sent): "
                      f"{r['learned']}/{r['macs']} "
                      f"learned, {r['learn_rate_per_s']}/s, first frame -> installed p50 "
                      f"{r['p50_ms']} ms p99 {r['p99_ms']} ms", flush=True)
    figures = {"forwarding": results, "learning": learn, "bmv2": BMV2_BIN if HAVE_BMV2 else None}
    for kind in targets:
        best = {m: max((r["pps"] for r in results if r["target"] == kind and r["mode"] == m), default=0)
                for m in ("static", "wire")}
        if best["static"]:
            figures[f"{kind}_wire_vs_static"] = round(best["wire"] / best["static"], 3)
            print(f"{kind}: wire forwards at {best['wire'] / best['static']:.0%} of static's rate "
                  f"(best of two runs each)")
    write_figures(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
