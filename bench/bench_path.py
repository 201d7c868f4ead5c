#!/usr/bin/env python3
"""Path figures: marked-flow throughput host to host through each P4 target.

topologies/single.yaml in Mininet with the built-in softswitch and (when installed) BMv2,
the controller programming it, a marked IPv6 TCP flow (marker + nftables) with iperf3 at
full speed: Mbit/s and packets/s the switch forwarded. (What marking costs on the host,
by number of marked flows, is bench/bench_marker.py.)

Prints the figures and writes them as JSON to --out (default bench-results/path.json).
Needs root, iperf3, nft and the compiled P4 program.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.figures import write_figures  # noqa: E402


def through_switch(switch: str, seconds: float) -> dict[str, Any]:
    from controller.topology import load_topology
    from labnet.controller_proc import ControllerProcess
    from labnet.network import Lab
    from labnet.topofile import shifted_copy
    from labnet.traffic import flow_args, marker_cmd, run_client, start_server, transfer

    tmp = Path(tempfile.mkdtemp(prefix="bench-path-"))
    offset = 3000 + secrets.randbelow(500) * 20
    topo = shifted_copy(ROOT / "topologies" / "single.yaml", tmp, offset)
    lab = Lab(load_topology(topo), switch=switch)
    ctl = None
    try:
        lab.start()
        ctl = ControllerProcess(topo, switch, api=f"127.0.0.1:{9180 + offset}", state_dir=tmp / "state",
                                log_path=lab.log_dir / "controller.log", mirror=[])
        ctl.start()
        assert ctl.proc is not None
        lab.track("controller", ctl.proc.pid)
        h1, h2 = lab.host("h1"), lab.host("h2")
        for _ in range(20):
            if "1 received" in h1.cmd(f"ping -6 -c1 -W1 {h2.spec.ipv6.ip}"):
                break
        t = transfer(h1, h2, 6, 5201, 40201)
        server = start_server(t)
        time.sleep(0.4)
        marker_cmd(h1, "flow", "start", *flow_args(t), "cms", "Cache", "--standalone")
        r = run_client(t, seconds, "0")
        marker_cmd(h1, "flow", "end", *flow_args(t), "--standalone")
        server.wait(timeout=30)
        time.sleep(2.5)
        rows = [x for x in ctl.counters() if x["source"] == "flowlabel" and x["experiment"] == "cms"]
        packets = sum(x["packets"] for x in rows)
        return {"switch": switch, "seconds": seconds, "mbit_s": round(r["bps"] / 1e6, 2),
                "sent_bytes": r["sent_bytes"], "counted_packets": packets,
                "packets_per_s": round(packets / seconds, 1),
                "counted_bytes": sum(x["bytes"] for x in rows)}
    finally:
        if ctl is not None:
            ctl.stop()
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/path.json")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each iperf3 run")
    ap.add_argument("--switch", action="append", choices=["soft", "bmv2"],
                    help="targets to measure (default: soft, and bmv2 when installed)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("iperf3") or not shutil.which("nft"):
        print("bench_path: needs root, iperf3 and nft", file=sys.stderr)
        return 2
    from labnet.switches import bmv2_available

    figures: dict[str, Any] = {"benchmark": "path"}
    from labnet.controller_proc import program_dir

    program = program_dir() / "scitags.json"
    switches = args.switch or (["soft"] + (["bmv2"] if bmv2_available() else []))
    figures["through_switch"] = []
    if not program.exists():
        figures["through_switch_skipped"] = f"compiled P4 program missing ({program})"
        print(f"through the switch: skipped ({figures['through_switch_skipped']})")
    for sw in ([] if not program.exists() else switches):
        print(f"marked flow h1 -> h2 through {sw} (single.yaml, iperf3 TCP {args.seconds:g}s):", flush=True)
        try:
            res = through_switch(sw, args.seconds)
        except Exception as exc:  # noqa: BLE001 - report and keep the other figures
            res = {"switch": sw, "error": f"{type(exc).__name__}: {exc}"}
            print(f"  error: {res['error']}")
        else:
            print(f"  {res['mbit_s']:.2f} Mbit/s, {res['packets_per_s']:.0f} packets/s counted as cms/Cache")
        figures["through_switch"].append(res)
    write_figures(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
