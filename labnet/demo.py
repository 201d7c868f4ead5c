"""The scripted demo: marked IPv6 transfers for two experiments, an IPv4 transfer described
by fireflies only, unmarked traffic, then the operator's counters table.

Raises TrafficError (exit 1) when the counters do not show what was sent.
"""
from __future__ import annotations

import subprocess
import time
from typing import Any

from labnet.controller_proc import ControllerProcess
from labnet.network import Lab
from labnet import waiting
from labnet.progress import Say
from labnet.traffic import (
    TrafficError, finish_client, flow_args, marker_cmd, start_client, start_server, transfer,
)

# (experiment, activity) of the two marked transfers, by name as an operator types them
MARKED = [("cms", "Cache"), ("atlas", "Data Challenge")]
FIREFLY_ONLY = ("lhcb", "Cache")


def endpoints(lab: Lab) -> tuple[Any, Any]:
    """The first and last host with both address families (the longest path in our files)."""
    hosts = [h for h in lab.topology.hosts.values() if not h.monitor and h.ipv4 and h.ipv6]
    if len(hosts) < 2:
        raise TrafficError(f"{lab.topology.source}: need two hosts with IPv4 and IPv6 addresses")
    return lab.host(hosts[0].name), lab.host(hosts[-1].name)


def wait_until(cond, timeout: float, what: str) -> Any:
    return waiting.wait_until(cond, timeout, what, interval=0.2, error=TrafficError)


def reachability(src: Any, dst: Any, say: Say) -> None:
    for afi in (6, 4):
        addr = str((dst.spec.ipv6 if afi == 6 else dst.spec.ipv4).ip)
        wait_until(lambda: "1 received" in src.cmd(f"ping -{afi} -c1 -W1 {addr}"), 20,
                   f"{src.name} to reach {addr} through the switches")
    say(f"{src.name} reaches {dst.name} over IPv6 and IPv4")


def live_flow(ctl: ControllerProcess, src_port: int) -> dict | None:
    for f in ctl.flows().get("live", []):
        if f":{src_port}" in str(f.get("flow")) or f.get("src_port") == src_port:
            return f
    return None


def run_demo(lab: Lab, ctl: ControllerProcess | None, *, seconds: float, rate: str, say: Say) -> None:
    assert ctl is not None
    src, dst = endpoints(lab)
    path = lab.topology.switches_on_path(src.spec.ipv6.ip, dst.spec.ipv6.ip)
    say(f"transfers go {src.name} -> {dst.name} across {' -> '.join(path)}")
    reachability(src, dst, say)

    sock = str(lab.log_dir / f"{src.name}-marker.sock")
    say(f"starting the marker daemon on {src.name} (nftables flow labels + fireflies, control {sock})")
    daemon = src.popen([*marker_base(), "run", "--socket", sock, "--np-api", str(lab.log_dir / f"{src.name}.np_api"),
                        "--ongoing", "2"], stdout=open(lab.log_dir / f"{src.name}-marker.log", "wb"),
                       stderr=subprocess.STDOUT)
    wait_until(lambda: daemon.poll() is not None or "rc=0" in src.cmd(
        " ".join([*marker_base(), "status", "--socket", sock]) + " >/dev/null 2>&1; echo rc=$?"),
        15, "the marker daemon")
    if daemon.poll() is not None:
        raise TrafficError(f"marker daemon exited: see {lab.log_dir / (src.name + '-marker.log')}")

    # 1. two marked IPv6 transfers at once, one per experiment
    transfers = [transfer(src, dst, 6, 5201 + i, 40001 + i) for i in range(len(MARKED))]
    servers = [start_server(t) for t in transfers]
    time.sleep(0.5)
    for t, (exp, act) in zip(transfers, MARKED):
        out = marker_cmd(src, "flow", "start", *flow_args(t), exp, act, "--daemon", "--socket", sock)
        say(f"marker: {out.removeprefix('marker: ')}")
    say(f"marked IPv6 transfers: iperf3 {seconds:g}s at {rate}bit/s each")
    clients = [start_client(t, seconds, rate) for t in transfers]
    results = [finish_client(t, c, timeout=seconds + 30) for t, c in zip(transfers, clients)]
    for t, (exp, act) in zip(transfers, MARKED):
        marker_cmd(src, "flow", "end", *flow_args(t), "--daemon", "--socket", sock)
    for (exp, act), r in zip(MARKED, results):
        say(f"  {exp}/{act}: host sent {r['sent_bytes']} bytes ({r['bps'] / 1e6:.1f} Mbit/s)")
    for s in servers:
        s.wait(timeout=10)

    # 2. an IPv4 transfer: no flow label, the controller learns it from fireflies
    t4 = transfer(src, dst, 4, 5203, 40003)
    server = start_server(t4)
    time.sleep(0.5)
    out = marker_cmd(src, "flow", "start", *flow_args(t4), *FIREFLY_ONLY, "--daemon", "--socket", sock)
    say(f"marker: {out.removeprefix('marker: ')}")
    flow = wait_until(lambda: live_flow(ctl, t4.src_port), 10, "the controller to install the firefly flow")
    say(f"controller installed the firefly flow on {', '.join(flow.get('installed_on', [])) or '?'}")
    r4 = finish_client(t4, start_client(t4, seconds, rate), timeout=seconds + 30)
    say(f"  IPv4 {'/'.join(FIREFLY_ONLY)}: host sent {r4['sent_bytes']} bytes")
    marker_cmd(src, "flow", "end", *flow_args(t4), "--daemon", "--socket", sock)
    wait_until(lambda: live_flow(ctl, t4.src_port) is None, 10, "the firefly flow to be removed after `end`")
    say("end firefly: the controller removed the flow entry")
    server.wait(timeout=10)

    # 3. unmarked IPv6 traffic
    tu = transfer(src, dst, 6, 5204, 40004)
    server = start_server(tu)
    time.sleep(0.5)
    ru = finish_client(tu, start_client(tu, seconds, rate), timeout=seconds + 30)
    say(f"unmarked IPv6 transfer: host sent {ru['sent_bytes']} bytes (label 0: never an experiment)")
    server.wait(timeout=10)

    daemon.terminate()
    daemon.wait(timeout=10)
    rows = ctl.settled_counters()  # wait until the switches' counters stop moving
    say("operator's counters (controller counters):")
    print(ctl.counters_table(), flush=True)
    check(rows, path, results, r4, say)


def marker_base() -> list[str]:
    from labnet.traffic import MARKER

    return [MARKER]


def check(rows: list[dict], path: list[str], results: list[dict], r4: dict, say: Say) -> None:
    problems = []
    def counted(sw: str, source: str, exp: str, act: str) -> int:
        return sum(x["bytes"] for x in rows if x["switch"] == sw and x.get("source") == source
                   and str(x.get("experiment", "")).lower() == exp
                   and str(x.get("activity", "")).lower() == act.lower())

    for sw in path:
        for (exp, act), r in zip(MARKED, results):
            got = counted(sw, "flowlabel", exp, act)
            if got < r["sent_bytes"]:
                problems.append(f"{sw}: {exp}/{act} flow-label count {got} bytes < {r['sent_bytes']} sent")
        got = counted(sw, "firefly", *FIREFLY_ONLY)
        if got < r4["sent_bytes"]:
            problems.append(f"{sw}: firefly flow {'/'.join(FIREFLY_ONLY)} counted {got} bytes "
                            f"< {r4['sent_bytes']} sent over IPv4")
    if problems:
        raise TrafficError("counters do not match the traffic:\n  " + "\n  ".join(problems))
    say("counters match: each experiment counted on every switch of the path, "
        "the IPv4 transfer under its firefly flow")
