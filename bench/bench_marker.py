#!/usr/bin/env python3
"""Marker figures: what marking costs a host's transfers, by number of marked flows.

Two namespaces joined by a veth, no switch. iperf3 TCP throughput of one flow (and the
packet rate of one UDP flow of 1200-byte datagrams, where each packet walks the hook: TCP
hands the hook 64 KB GSO segments, which hides a per-packet cost)
 - with no marking at all,
 - marked by the verdict-map layout (marker.nftmap) among 1, 100 and 10,000 marked flows,
 - marked by one rule per flow (the layout the marker had before) alone and among 100 flows,
all in the same run, cases interleaved per repeat so a slow moment hits every case alike.
The measured flow is always one of the marked flows, so its packets pay the lookup, the
jump and the label rewrite. Target: the map within 5% of no marking at 10,000 flows.

Prints the figures and writes them as JSON to --out (default bench-results/marker.json).
Needs root, iperf3 and nft.
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
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SRC, DST = "2001:db8:99::1", "2001:db8:99::2"
IPERF_PORT, MEASURED_PORT = 5999, 45000


def _ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {ns}: {proc.stderr.strip()}")
    return proc


def _iperf(ns_client: str, ns_server: str, protocol: str, seconds: int) -> tuple[float, float]:
    """(rate, the client's CPU share in %). TCP: bits/s received. UDP (1200-byte datagrams,
    no rate limit): datagrams/s the client got out through the output hook (the receiver, on
    the same two cores, drops some; what it gets is not the figure)."""
    server = subprocess.Popen(["ip", "netns", "exec", ns_server, "iperf3", "-s", "-1", "-p", str(IPERF_PORT),
                               "-B", DST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.4)
    udp = ("-u", "-b", "0", "-l", "1200") if protocol == "udp" else ()
    try:
        out = _ns(ns_client, "iperf3", "-c", DST, "-p", str(IPERF_PORT), "--cport", str(MEASURED_PORT), *udp,
                  "-t", str(seconds), "-J").stdout
        end = json.loads(out)["end"]
        cpu = end["cpu_utilization_percent"]["host_total"]
        if protocol == "udp":
            return end["sum_sent"]["packets"] / end["sum_sent"]["seconds"], cpu
        return end["sum_received"]["bits_per_second"], cpu
    finally:
        server.wait(timeout=30)


def _veth_pair() -> tuple[str, str]:
    tag = secrets.token_hex(2)
    a, b = f"bma-{tag}", f"bmb-{tag}"
    for ns in (a, b):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "link", "add", f"bmv{tag}a", "netns", a, "type", "veth",
                    "peer", "name", f"bmv{tag}b", "netns", b], check=True)
    for ns, intf, addr in ((a, f"bmv{tag}a", SRC), (b, f"bmv{tag}b", DST)):
        _ns(ns, "sysctl", "-qw", "net.ipv6.auto_flowlabels=0")
        _ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{intf}.accept_dad=0")
        _ns(ns, "ip", "-6", "addr", "add", f"{addr}/64", "dev", intf, "nodad")
        _ns(ns, "ip", "link", "set", intf, "up")
        _ns(ns, "ip", "link", "set", "lo", "up")
    return a, b


def cases(ns: str) -> dict[str, Callable[[str], None]]:
    """Name -> set-up of that case's marking for a protocol's measured flow (each starts
    from an empty table)."""
    from marker.flows import make_key
    from marker.nftables import Nft
    from scitags_core import flowlabel

    def others(n: int) -> list[tuple[Any, int]]:
        # other flows to the same server, tags and entropy as varied as a busy node's
        return [(make_key("tcp", SRC, 10000 + i, DST, IPERF_PORT + 1),
                 flowlabel.encode_label(1 + i % 14, i % 5, entropy=i % 32)) for i in range(n)]

    def marking(layout: str, n: int) -> Callable[[str], None]:
        def setup(protocol: str) -> None:
            measured = make_key(protocol, SRC, MEASURED_PORT, DST, IPERF_PORT)
            # the rules layout walks its rules in order: the measured flow's rule comes last
            Nft(netns=ns, layout=layout).mark_many([*others(n - 1), (measured, flowlabel.encode_label(3, 3, 7))])
        return setup

    return {"no_marking": lambda _protocol: None, "map_1_flow": marking("map", 1),
            "map_100_flows": marking("map", 100), "map_10000_flows": marking("map", 10_000),
            "rules_1_flow": marking("rules", 1), "rules_100_flows": marking("rules", 100)}


def _summary(runs: dict[str, list[tuple[float, float]]], scale: float, unit: str) -> dict[str, Any]:
    """Medians per case. `vs_no_marking_pct` is the median of each repeat's ratio to the
    no-marking run of the same repeat (pairs share the machine's load of the moment);
    `per_cpu` divides the rate by the client's CPU share, which is what marking costs when
    other work on the machine decides how much CPU the transfer gets."""
    base = runs["no_marking"]

    def paired(values: list[float], base_values: list[float]) -> float:
        return round((statistics.median(v / b for v, b in zip(values, base_values)) - 1) * 100, 1)

    out: dict[str, Any] = {}
    for name, v in runs.items():
        rates, per_cpu = [r for r, _ in v], [r / max(c, 1e-9) * 100 for r, c in v]
        out[name] = {f"{unit}_median": round(statistics.median(rates) / scale, 3),
                     f"{unit}_runs": [round(x / scale, 3) for x in rates],
                     "vs_no_marking_pct": paired(rates, [r for r, _ in base]),
                     f"{unit}_per_cpu_median": round(statistics.median(per_cpu) / scale, 3),
                     "per_cpu_vs_no_marking_pct": paired(per_cpu, [r / max(c, 1e-9) * 100 for r, c in base]),
                     "client_cpu_pct_median": round(statistics.median(c for _, c in v), 1)}
    return out


def marker_throughput(seconds: int, repeats: int) -> dict[str, Any]:
    from marker.nftables import Nft

    a, b = _veth_pair()
    try:
        nft = Nft(netns=a)
        todo = cases(a)
        runs: dict[str, dict[str, list[tuple[float, float]]]] = {p: {name: [] for name in todo}
                                                                 for p in ("tcp", "udp")}
        setup_s: dict[str, list[float]] = {name: [] for name in todo}
        names = list(todo)
        for repeat in range(repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:  # no case always first
                setup = todo[name]
                for protocol in ("tcp", "udp"):
                    nft.drop_table()
                    t0 = time.monotonic()
                    setup(protocol)
                    setup_s[name].append(time.monotonic() - t0)
                    runs[protocol][name].append(_iperf(a, b, protocol, seconds))
        nft.drop_table()
        return {"seconds_per_run": seconds, "repeats": repeats,
                "tcp_throughput": _summary(runs["tcp"], 1e9, "gbit_s"),
                "udp_1200_byte_packets": _summary(runs["udp"], 1e3, "kpps"),
                "setup_s_median": {name: round(statistics.median(v), 3) for name, v in setup_s.items()}}
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/marker.json")
    ap.add_argument("--seconds", type=int, default=1, help="length of each iperf3 run (whole seconds)")
    ap.add_argument("--repeats", type=int, default=15, help="runs per case")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("iperf3") or not shutil.which("nft"):
        print("bench_marker: needs root, iperf3 and nft", file=sys.stderr)
        return 2
    print(f"marker cost over a veth (iperf3 TCP and UDP, {args.repeats} x {args.seconds:g}s per case, medians):", flush=True)
    figures: dict[str, Any] = {"benchmark": "marker"}
    figures["throughput"] = res = marker_throughput(args.seconds, args.repeats)
    tcp, udp = res["tcp_throughput"], res["udp_1200_byte_packets"]
    print(f"  {'case':16s} {'TCP Gbit/s':>10s} {'vs none':>8s} {'per CPU':>8s} | {'UDP kpps':>8s} {'vs none':>8s} "
          f"{'per CPU':>8s} | {'set-up s':>8s}")
    for name in tcp:
        t, u = tcp[name], udp[name]
        print(f"  {name:16s} {t['gbit_s_median']:10.2f} {t['vs_no_marking_pct']:+7.1f}% "
              f"{t['per_cpu_vs_no_marking_pct']:+7.1f}% | {u['kpps_median']:8.1f} {u['vs_no_marking_pct']:+7.1f}% "
              f"{u['per_cpu_vs_no_marking_pct']:+7.1f}% | {res['setup_s_median'][name]:8.2f}")
    print("  (vs none: median of per-repeat ratios to the unmarked run; per CPU: rate per client CPU share)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
