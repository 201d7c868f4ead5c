"""The scripted demo: marked IPv6 transfers for two experiments, an IPv4 transfer described
by fireflies only, unmarked traffic, a transfer marked as flowd-go marks it (the scitags option
in a Hop-by-Hop header), unmarked flows from a host with Linux's random flow labels on (the
unregistered bucket and the background estimate), then the operator's counters table.

Raises TrafficError (exit 1) when the counters do not show what was sent.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import time
from typing import Any

from controller import launcher
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
EXTHDR = ("alice", 5, "perfSONAR", 2)  # name, id, activity name, id of the option-marked transfer
EXTHDR_DATAGRAMS, EXTHDR_SIZE = 300, 1000
RANDOM_LABEL_FLOWS = 400  # unmarked UDP flows, one datagram each, from a host with auto labels

# A UDP sender whose socket carries flowd-go's Hop-by-Hop header (SPEC.md: NH, length 0, option
# 0x1E length 3, experiment (2 bytes), activity, Pad1; the kernel fills NH): IPV6_HOPOPTS.
EXTHDR_SENDER = """
import socket, sys
dst, port, exp, act, n, size = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:7])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, 54, bytes([0, 0, 0x1E, 3, exp >> 8, exp & 255, act, 0]))
for i in range(n):
    s.sendto(b"%06d" % i + b"f" * (size - 6), (dst, port))
print(n)
"""
# Unmarked flows: a socket (a source port, so a flow hash and a label) per datagram.
RANDOM_LABEL_SENDER = """
import socket, sys
dst, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.sendto(b"u" * 200, (dst, 9000 + i))
print(n)
"""


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

    # 4. flowd-go's marking: the scitags option in a Hop-by-Hop header, the label left alone
    exthdr_bytes = None
    if program_has("ScitagsIngress.exthdr_policy"):
        name, exp_id, act_name, act_id = EXTHDR
        out = src.cmd(shlex.join([sys.executable, script(lab, "exthdr_sender.py", EXTHDR_SENDER),
                                  str(dst.spec.ipv6.ip), "5205", str(exp_id), str(act_id),
                                  str(EXTHDR_DATAGRAMS), str(EXTHDR_SIZE)]))
        if not out.strip().endswith(str(EXTHDR_DATAGRAMS)):
            raise TrafficError(f"Hop-by-Hop option sender failed: {out.strip()[-300:]}")
        exthdr_bytes = EXTHDR_DATAGRAMS * EXTHDR_SIZE
        say(f"flowd-go-style transfer: {EXTHDR_DATAGRAMS} UDP datagrams with the scitags Hop-by-Hop "
            f"option {name}/{act_name} ({exthdr_bytes} payload bytes)")

    # 5. a host with Linux's default random flow labels (net.ipv6.auto_flowlabels=1)
    dst.cmd("sysctl -qw net.ipv6.auto_flowlabels=1")
    try:
        out = dst.cmd(shlex.join([sys.executable, script(lab, "random_label_sender.py", RANDOM_LABEL_SENDER),
                                  str(src.spec.ipv6.ip), str(RANDOM_LABEL_FLOWS)]))
    finally:
        dst.cmd("sysctl -qw net.ipv6.auto_flowlabels=0")
    if not out.strip().endswith(str(RANDOM_LABEL_FLOWS)):
        raise TrafficError(f"random-label sender failed: {out.strip()[-300:]}")
    say(f"{dst.name} with auto flow labels on: {RANDOM_LABEL_FLOWS} unmarked UDP flows to {src.name} "
        "(random labels: the unregistered bucket, and the BACKGROUND estimate of those that hit a tag)")

    launcher.stop_process(daemon, timeout=10)
    rows = ctl.settled_counters()  # wait until the switches' counters stop moving
    say("operator's counters (controller counters):")
    print(ctl.counters_table(), flush=True)
    check(rows, path, results, r4, say, exthdr_bytes)


def marker_base() -> list[str]:
    from labnet.traffic import MARKER

    return [MARKER]


def script(lab: Lab, name: str, text: str) -> str:
    """A sender script written to the lab's log folder (hosts share the file system)."""
    path = lab.log_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def program_has(table: str) -> bool:
    """The compiled program the lab runs has this table (the P4Info names it)."""
    from labnet.controller_proc import program_dir

    p4info = program_dir() / "scitags.p4info.txtpb"
    return p4info.exists() and f'"{table}"' in p4info.read_text()


def check(rows: list[dict], path: list[str], results: list[dict], r4: dict, say: Say,
          exthdr_bytes: int | None = None) -> None:
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
        if exthdr_bytes is not None:
            got = counted(sw, "exthdr", EXTHDR[0], EXTHDR[2])
            if got < exthdr_bytes:
                problems.append(f"{sw}: option-marked {EXTHDR[0]}/{EXTHDR[2]} counted {got} bytes "
                                f"< {exthdr_bytes} sent (source exthdr)")
        unregistered = sum(x["packets"] for x in rows if x["switch"] == sw
                           and x.get("bucket") == "unregistered")
        if unregistered < RANDOM_LABEL_FLOWS * 0.9:  # ~3% of random labels hit a tag instead
            problems.append(f"{sw}: unregistered bucket {unregistered} packets < 90% of the "
                            f"{RANDOM_LABEL_FLOWS} random-label flows")
    if problems:
        raise TrafficError("counters do not match the traffic:\n  " + "\n  ".join(problems))
    say("counters match: each experiment counted on every switch of the path, "
        "the IPv4 transfer under its firefly flow")
