#!/usr/bin/env python3
"""Path figures: marked-flow throughput host to host through each P4 target, and the
marker's cost on a host.

1. Through the switch: topologies/single.yaml in Mininet with the built-in softswitch and
   (when installed) BMv2, the controller programming it, a marked IPv6 TCP flow (marker +
   nftables) with iperf3 at full speed: Mbit/s and packets/s the switch forwarded.
2. Marker overhead: two namespaces joined by a veth, no switch: iperf3 TCP throughput
   without a rule, with the flow's marking rule, and with that rule behind 100 others
   (the nft chain is linear): the cost the marker adds to a host's transfers.

Prints the figures and writes them as JSON to --out (default bench-results/path.json).
Needs root, iperf3 and nft; part 1 also needs the compiled P4 program.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# -- part 2: marker overhead over a bare veth ---------------------------------------------
def _ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {ns}: {proc.stderr.strip()}")
    return proc


def _iperf(ns_client: str, ns_server: str, dst: str, cport: int, seconds: float) -> float:
    server = subprocess.Popen(["ip", "netns", "exec", ns_server, "iperf3", "-s", "-1", "-p", "5999", "-B", dst],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.4)
    try:
        out = _ns(ns_client, "iperf3", "-c", dst, "-p", "5999", "--cport", str(cport), "-t", str(seconds), "-J").stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"]
    finally:
        server.wait(timeout=30)


def marker_overhead(seconds: float, repeats: int) -> dict[str, Any]:
    from marker.flows import make_key
    from marker.nftables import Nft
    from scitags_core import flowlabel

    tag = secrets.token_hex(2)
    a, b = f"bpa-{tag}", f"bpb-{tag}"
    for ns in (a, b):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "link", "add", f"bpv{tag}a", "netns", a, "type", "veth",
                        "peer", "name", f"bpv{tag}b", "netns", b], check=True)
        for ns, intf, addr in ((a, f"bpv{tag}a", "2001:db8:99::1"), (b, f"bpv{tag}b", "2001:db8:99::2")):
            _ns(ns, "sysctl", "-qw", "net.ipv6.auto_flowlabels=0")
            _ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{intf}.accept_dad=0")
            _ns(ns, "ip", "-6", "addr", "add", f"{addr}/64", "dev", intf, "nodad")
            _ns(ns, "ip", "link", "set", intf, "up")
            _ns(ns, "ip", "link", "set", "lo", "up")
        nft = Nft(netns=a)
        key = make_key("tcp", "2001:db8:99::1", 45000, "2001:db8:99::2", 5999)
        label = flowlabel.encode_label(3, 3)
        cases: dict[str, list[float]] = {"no_marking": [], "one_rule": [], "rule_after_100_others": []}
        for _ in range(repeats):
            nft.drop_table()
            cases["no_marking"].append(_iperf(a, b, "2001:db8:99::2", 45000, seconds))
            nft.mark(key, label)
            cases["one_rule"].append(_iperf(a, b, "2001:db8:99::2", 45000, seconds))
            nft.drop_table()
            for i in range(100):  # other flows' rules first: the chain is walked in order
                nft.mark(make_key("tcp", "2001:db8:99::1", 46000 + i, "2001:db8:99::2", 5999), label)
            nft.mark(key, label)
            cases["rule_after_100_others"].append(_iperf(a, b, "2001:db8:99::2", 45000, seconds))
            nft.drop_table()
        base = statistics.median(cases["no_marking"])
        result: dict[str, Any] = {"seconds_per_run": seconds, "repeats": repeats}
        for name, values in cases.items():
            med = statistics.median(values)
            result[name] = {"gbit_s_median": round(med / 1e9, 3),
                            "gbit_s_runs": [round(v / 1e9, 3) for v in values],
                            "vs_no_marking_pct": round((med / base - 1) * 100, 1)}
        return result
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False)


# -- part 1: through the P4 targets --------------------------------------------------------
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
    ap.add_argument("--repeats", type=int, default=3, help="runs per marker-overhead case")
    ap.add_argument("--switch", action="append", choices=["soft", "bmv2"],
                    help="targets to measure (default: soft, and bmv2 when installed)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("iperf3") or not shutil.which("nft"):
        print("bench_path: needs root, iperf3 and nft", file=sys.stderr)
        return 2
    from labnet.switches import bmv2_available

    figures: dict[str, Any] = {"benchmark": "path"}
    print("marker overhead over a veth (iperf3 TCP, no switch):", flush=True)
    figures["marker_overhead"] = mo = marker_overhead(args.seconds, args.repeats)
    for name in ("no_marking", "one_rule", "rule_after_100_others"):
        print(f"  {name:24s} {mo[name]['gbit_s_median']:8.3f} Gbit/s  ({mo[name]['vs_no_marking_pct']:+.1f}%)")
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
