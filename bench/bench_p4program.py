#!/usr/bin/env python3
"""The cost of scitag processing: packets per second through a switch running
p4src/v1model/scitags.p4 versus the same switch running a minimal L2 program
(bench/programs/l2_minimal.p4), same harness, same run.

Targets: BMv2 simple_switch_grpc when installed, and the built-in target. Cases, each on the
same veths one after the other:
  l2_minimal        flow-labelled IPv6/TCP through the minimal L2 program (the baseline)
  scitags           the same frames through scitags.p4, no trust scope (every label trusted)
  scitags+trust     the same, with a trust scope of 64 prefixes (label_trust has entries)
  scitags/exthdr    IPv6/TCP marked as flowd-go's hopbyhop strategy marks it (8-byte option)
A closed loop keeps at most a window of frames in flight; the rate is frames received on port
2 over the time between the first and the last one. Needs root (veths).
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import write_figures  # noqa: E402
from scapy.layers.inet import TCP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from controller.drivers.base import TagRule  # noqa: E402
from controller.drivers.p4runtime import P4RuntimeDriver  # noqa: E402
from scitags_core.flowlabel import encode_label  # noqa: E402
from tests.conftest import BMV2_BIN, HAVE_BMV2, HAVE_P4C, P4_BUILD, P4C_BIN  # noqa: E402
from controller.launcher import free_tcp_port, stop_process  # noqa: E402
from labnet.veth import VethPorts, wait_for_port  # noqa: E402
from tests.p4.dataplane import CPU_PORT, switch_command  # noqa: E402

H1, H2 = "00:00:00:00:01:01", "00:00:00:00:01:02"


def frame(size: int, marking: str = "label") -> bytes:
    """IPv6/TCP (next header 6: the switch parses the ports and looks the flow up) marked
    CMS/14: in the flow label, or with flowd-go's Hop-by-Hop option
    (NH 00 1E 03 E_hi E_lo A 00; /work/shared/scitags/SPEC.md) and the kernel's label."""
    tcp = bytes(TCP(sport=40000, dport=5201, flags="A", chksum=0x1234))
    if marking == "label":
        pkt = (Ether(src=H1, dst=H2) / IPv6(src="2001:db8::1", dst="2001:db8::2", nh=6,
                                            fl=encode_label(3, 14, entropy=5)) / Raw(tcp))
    else:
        option = bytes([6, 0, 0x1E, 3, 0, 3, 14, 0])
        pkt = (Ether(src=H1, dst=H2) / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0x5A3C1, nh=0)
               / Raw(option + tcp))
    return bytes(pkt / Raw(b"\0" * max(0, size - len(pkt))))


# The trust scope of the "+trust" case: the sender's /64 among 63 others.
TRUST_SCOPE = ["2001:db8::/64"] + [f"2001:db8:{i:x}::/48" for i in range(1, 64)]


def measure(ports: VethPorts, data: bytes, count: int, window: int = 256) -> dict:
    """Closed loop: at most `window` frames in flight, so the rate is what the switch
    sustains rather than what its receive buffer drops."""
    stamps: list[float] = []
    done = threading.Event()

    def receiver() -> None:
        idle_since = time.monotonic()
        while len(stamps) < count and time.monotonic() - idle_since < 3.0:
            got = ports.receive(timeout=0.05, ports=[2], until=1)[2]
            if got:
                now = time.monotonic()
                stamps.extend([now] * len(got))
                idle_since = now
        done.set()

    t = threading.Thread(target=receiver)
    t.start()
    sent = 0
    while sent < count and not done.is_set():
        if sent - len(stamps) < window:
            ports.send(1, data)
            sent += 1
        else:
            time.sleep(0.0002)
    t.join()
    n = len(stamps)
    span = (stamps[-1] - stamps[0]) if n > 1 else 0.0
    return {"sent": sent, "received": n, "loss": round(1 - n / sent, 4) if sent else 1.0,
            "pps": round(n / span) if span > 0 else 0}


def run(kind: str, case: str, json_path: pathlib.Path | None, size: int, count: int) -> dict:
    program, _, variant = case.partition("+")
    program, _, marking = program.partition("/")
    ports = VethPorts([1, 2], tag=f"bp{kind[0]}")
    ports.create()
    grpc_port = free_tcp_port()
    cmd = switch_command(kind, ports, grpc_port, json_path=str(json_path) if json_path else None)
    if kind == "bmv2":
        cmd.insert(1, "--log-level")
        cmd.insert(2, "off")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        wait_for_port(grpc_port, proc)
        if program == "scitags":
            driver = P4RuntimeDriver("bench", 1, f"127.0.0.1:{grpc_port}",
                                     P4_BUILD / "scitags.p4info.txtpb", P4_BUILD / "scitags.json",
                                     cpu_port=CPU_PORT)
            driver.connect()
            driver.ensure_pipeline()
            driver.set_forwarding({H1: 1, H2: 2}, [1, 2], CPU_PORT, None)
            driver.sync_tags([TagRule(1, 3, 14), TagRule(2, 3, None)])
            if variant == "trust":
                driver.set_label_trust(TRUST_SCOPE)
        time.sleep(0.5)
        ports.drain()
        result = measure(ports, frame(size, marking or "label"), count)
    finally:
        if driver is not None:
            driver.close()
        stop_process(proc, timeout=10)
        ports.destroy()
    return {"target": kind, "program": case, "frame_bytes": size, **result}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench-results/p4program.json")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--size", type=int, default=100)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = None
        if HAVE_P4C:
            baseline = pathlib.Path(tmp) / "l2_minimal.json"
            subprocess.run([P4C_BIN, "--std", "p4-16", "--arch", "v1model", "-o", str(baseline),
                            str(ROOT / "bench/programs/l2_minimal.p4")], check=True)
        targets = (["bmv2"] if HAVE_BMV2 else []) + ["soft"]
        cases = [("l2_minimal", baseline), ("scitags", None), ("scitags+trust", None),
                 ("scitags/exthdr", None)]
        for kind in targets:
            for program, path in cases:
                if program == "l2_minimal" and path is None:
                    continue
                count = args.count if kind == "bmv2" else min(args.count, 10000)
                r = run(kind, program, path, args.size, count)
                results.append(r)
                print(f"{kind:5} {program:10} {r['frame_bytes']}B frames: {r['pps']:>8} pps "
                      f"(sent {r['sent']}, received {r['received']}, loss {r['loss']:.1%})",
                      flush=True)
    figures = {"results": results, "bmv2": BMV2_BIN if HAVE_BMV2 else None}
    for kind in ("bmv2", "soft"):
        by = {r["program"]: r["pps"] for r in results if r["target"] == kind}
        if by.get("l2_minimal") and by.get("scitags"):
            figures[f"{kind}_scitags_vs_l2"] = round(by["scitags"] / by["l2_minimal"], 3)
            print(f"{kind}: scitags.p4 forwards at {by['scitags'] / by['l2_minimal']:.0%} "
                  f"of the minimal L2 program's rate")
        if by.get("scitags"):
            for case, what in (("scitags+trust", "with a 64-prefix trust scope"),
                               ("scitags/exthdr", "for extension-header-marked frames")):
                if by.get(case):
                    figures[f"{kind}_{case}_vs_scitags"] = round(by[case] / by["scitags"], 3)
                    print(f"{kind}: {what}: {by[case] / by['scitags']:.0%} of the label-marked rate")
    write_figures(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
