#!/usr/bin/env python3
"""Marker figures: what marking costs a host's transfers, by number of marked flows.

Cases, all in the same run, interleaved (each repeat starts with another case):
 - no_marking: no marker table at all,
 - map_N_flows: the verdict-map layout (marker.nftmap) with 1, 100 and 10,000 marked flows,
 - rules_N_flows: one rule per flow (the layout the marker had before), 1 and 100 flows.
The measured flow is always one of the marked ones (last, for the rules), so its packets pay
the lookup, the jump and the label rewrite. Two measurements per case:
1. Throughput: iperf3 TCP over a veth between two namespaces; the figure is the median of
   each repeat's ratio to the no-marking run of the same repeat (this machine's load moves
   single runs by tens of percent; quartiles are given). TCP hands the hook 64 KB GSO
   segments, so it shows little of a per-packet cost.
2. CPU per packet: one process sends 64-byte UDP datagrams as fast as it can into a veth
   whose peer is down (the kernel drops them after the output hook, so no receive work
   lands on the sender); its own CPU time (getrusage) per datagram. CPU time, unlike
   throughput, does not depend on how much of the machine the sender got.
Target: the map within 5% of no marking at 10,000 flows (throughput), and its per-packet
cost the same at 1 and at 10,000 flows.

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
from bench.figures import write_figures  # noqa: E402

SRC, DST = "2001:db8:99::1", "2001:db8:99::2"
SINK_SRC, SINK_DST = "2001:db8:98::1", "2001:db8:98::2"  # the veth whose peer is down
IPERF_PORT, MEASURED_PORT = 5999, 45000

# Sends 64-byte datagrams on a connected socket; prints its CPU nanoseconds per datagram.
SENDER = r"""
import resource, socket, sys
n, src, dst, sport, dport = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((src, sport)); s.connect((dst, dport))
send, payload = s.send, b"x" * 64
for _ in range(2000): send(payload)   # warm caches and the route
r0 = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(n): send(payload)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / n * 1e9)
"""


def _ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {ns}: {proc.stderr.strip()}")
    return proc


def _veth_link() -> tuple[str, str]:
    """(client ns, server ns) joined by a veth, SRC on the client side, DST on the other; and
    in the client ns a second veth to SINK_DST whose peer is down (a packet sink)."""
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
    _ns(a, "ip", "link", "add", "bmsink0", "type", "veth", "peer", "name", "bmsink1")
    _ns(a, "ip", "-6", "addr", "add", f"{SINK_SRC}/64", "dev", "bmsink0", "nodad")
    _ns(a, "ip", "link", "set", "bmsink0", "up")
    _ns(a, "ip", "-6", "neigh", "replace", SINK_DST, "lladdr", "02:00:00:00:00:02", "dev", "bmsink0",
        "nud", "permanent")
    return a, b


def _iperf(ns_client: str, ns_server: str, seconds: int) -> float:
    """iperf3 TCP from the client ns to the server ns: bits/s received."""
    server = subprocess.Popen(["ip", "netns", "exec", ns_server, "iperf3", "-s", "-1", "-p", str(IPERF_PORT),
                               "-B", DST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.4)
    try:
        out = _ns(ns_client, "iperf3", "-c", DST, "-p", str(IPERF_PORT), "--cport", str(MEASURED_PORT),
                  "-t", str(seconds), "-J").stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"]
    finally:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _cpu_ns_per_packet(ns: str, packets: int) -> float:
    out = _ns(ns, sys.executable, "-c", SENDER, str(packets), SINK_SRC, SINK_DST, str(MEASURED_PORT),
              str(IPERF_PORT)).stdout
    return float(out.strip())


def cases() -> dict[str, Callable[[str, str], None]]:
    """Name -> set-up of that case's marking in a client namespace (from an empty table) for
    a measured flow, "tcp" (the iperf3 transfer) or "udp" (the CPU-per-packet sender)."""
    from marker.flows import make_key
    from marker.nftables import Nft
    from scitags_core import flowlabel

    measured = {"tcp": make_key("tcp", SRC, MEASURED_PORT, DST, IPERF_PORT),
                "udp": make_key("udp", SINK_SRC, MEASURED_PORT, SINK_DST, IPERF_PORT)}

    def others(n: int) -> list[tuple[Any, int]]:
        # other flows to the same server, tags and entropy as varied as a busy node's
        return [(make_key("tcp", SRC, 10000 + i, DST, IPERF_PORT + 1),
                 flowlabel.encode_label(1 + i % 14, i % 5, entropy=i % 32)) for i in range(n)]

    def marking(layout: str, n: int) -> Callable[[str, str], None]:
        def setup(ns: str, which: str) -> None:
            # the rules layout walks its rules in order: the measured flow's rule comes last
            Nft(netns=ns, layout=layout).mark_many([*others(n - 1), (measured[which], flowlabel.encode_label(3, 3, 7))])
        return setup

    return {"no_marking": lambda _ns, _which: None, "map_1_flow": marking("map", 1),
            "map_100_flows": marking("map", 100), "map_10000_flows": marking("map", 10_000),
            "rules_1_flow": marking("rules", 1), "rules_100_flows": marking("rules", 100)}


def _paired(values: list[float], base: list[float], against: str = "no_marking") -> dict[str, Any]:
    """Median and quartiles of each repeat's value / the base's value in that repeat, in %."""
    ratios = sorted(v / b for v, b in zip(values, base))
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return {f"vs_{against}_pct": round((statistics.median(ratios) - 1) * 100, 1),
            f"vs_{against}_pct_quartiles": [round((q1 - 1) * 100, 1), round((q3 - 1) * 100, 1)]}


def marker_cost(seconds: int, repeats: int, packets: int) -> dict[str, Any]:
    from marker.nftables import Nft

    a = b = ""
    try:
        a, b = _veth_link()
        nft = Nft(netns=a)
        todo = cases()
        names = list(todo)
        tcp: dict[str, list[float]] = {name: [] for name in todo}
        cpu: dict[str, list[float]] = {name: [] for name in todo}
        setup_s: dict[str, list[float]] = {name: [] for name in todo}
        for repeat in range(repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:  # no case always first
                for which, measure in (("tcp", lambda: tcp[name].append(_iperf(a, b, seconds))),
                                       ("udp", lambda: cpu[name].append(_cpu_ns_per_packet(a, packets)))):
                    nft.drop_table()
                    t0 = time.monotonic()
                    todo[name](a, which)
                    setup_s[name].append(time.monotonic() - t0)
                    measure()
        nft.drop_table()
        base_cpu = statistics.median(cpu["no_marking"])
        return {"seconds_per_run": seconds, "repeats": repeats, "udp_packets_per_run": packets,
                "tcp_throughput": {name: {"gbit_s_median": round(statistics.median(v) / 1e9, 3),
                                          "gbit_s_runs": [round(x / 1e9, 3) for x in v],
                                          **_paired(v, tcp["no_marking"])} for name, v in tcp.items()},
                "cpu_per_packet": {name: {"ns_median": round(statistics.median(v)),
                                          "ns_runs": [round(x) for x in v],
                                          "added_ns": round(statistics.median(v) - base_cpu),
                                          **_paired(v, cpu["no_marking"])} for name, v in cpu.items()},
                "cpu_per_packet_map_10000_flows": _paired(cpu["map_10000_flows"], cpu["map_1_flow"], "map_1_flow"),
                "cpu_per_packet_rules_100_flows": _paired(cpu["rules_100_flows"], cpu["rules_1_flow"], "rules_1_flow"),
                "setup_s_median": {name: round(statistics.median(v), 3) for name, v in setup_s.items()}}
    finally:
        for ns in (a, b):
            if ns:
                subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/marker.json")
    ap.add_argument("--seconds", type=int, default=2, help="length of each iperf3 run (whole seconds)")
    ap.add_argument("--repeats", type=int, default=7, help="runs per case")
    ap.add_argument("--packets", type=int, default=300_000, help="datagrams per CPU-per-packet run")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("iperf3") or not shutil.which("nft"):
        print("bench_marker: needs root, iperf3 and nft", file=sys.stderr)
        return 2
    print(f"marker cost ({args.repeats} repeats; iperf3 TCP {args.seconds}s over a veth; "
          f"{args.packets} UDP datagrams for the CPU per packet):", flush=True)
    figures: dict[str, Any] = {"benchmark": "marker"}
    figures["cost"] = res = marker_cost(args.seconds, args.repeats, args.packets)
    tcp, cpu = res["tcp_throughput"], res["cpu_per_packet"]
    print(f"  {'case':16s} {'TCP Gbit/s':>10s} {'vs none':>8s} {'quartiles':>15s} | {'CPU ns/pkt':>10s} "
          f"{'added':>6s} {'vs none':>8s} {'quartiles':>15s} | {'set-up s':>8s}")
    for name in tcp:
        t, c = tcp[name], cpu[name]
        tq, cq = t["vs_no_marking_pct_quartiles"], c["vs_no_marking_pct_quartiles"]
        print(f"  {name:16s} {t['gbit_s_median']:10.2f} {t['vs_no_marking_pct']:+7.1f}% "
              f"{f'{tq[0]:+.1f}..{tq[1]:+.1f}%':>15s} | {c['ns_median']:10d} {c['added_ns']:+6d} "
              f"{c['vs_no_marking_pct']:+7.1f}% {f'{cq[0]:+.1f}..{cq[1]:+.1f}%':>15s} | "
              f"{res['setup_s_median'][name]:8.2f}")
    flat, linear = res["cpu_per_packet_map_10000_flows"], res["cpu_per_packet_rules_100_flows"]
    fq = flat["vs_map_1_flow_pct_quartiles"]
    print(f"  CPU per packet, 10,000 flows vs 1 (map): {flat['vs_map_1_flow_pct']:+.1f}% (quartiles "
          f"{fq[0]:+.1f}..{fq[1]:+.1f}%); 100 flows vs 1 (rules): {linear['vs_rules_1_flow_pct']:+.1f}%")
    write_figures(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
