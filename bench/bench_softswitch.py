#!/usr/bin/env python3
"""Packets per second through the built-in v1model target (softswitch).

Measures, for 64-byte and 1500-byte frames on the program's hot path (an IPv6/UDP
frame with a registered scitags flow label, forwarded by the L2 table and counted):
  * in-process: Engine.process() in a loop;
  * over veths: frames sent into one veth of a fresh network namespace, forwarded by a
    SoftSwitch with AF_PACKET ports, counted on the other veth (needs root); and the
    same through BMv2 simple_switch_grpc, same program and entries, when installed;
  * where the engine's time goes (cProfile of the in-process run).
The program is p4src/build/v1model/scitags.json when built, else the hand-built mirror of
it (tests/softswitch/scitags_like.py), or --program. Figures go to stdout and, as JSON,
to --out. Takes about a minute.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "softswitch"))

from bench.figures import write_figures  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw, raw  # noqa: E402

from diffkit import BMV2_BIN, HAVE_BMV2, Scenario, apply_setup  # noqa: E402
from softswitch.engine import Engine  # noqa: E402

COMPILED = ROOT / "p4src" / "build" / "v1model" / "scitags.json"
CPU = 255
EXPERIMENT, ACTIVITY, TAG = 37, 5, 42


def encode_label(experiment: int, activity: int) -> int:
    return (int(f"{experiment:09b}"[::-1], 2) << 9) | (activity << 2)


def frame(size: int) -> bytes:
    base = Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01") / \
        IPv6(src="2001:db8::1", dst="2001:db8::2", fl=encode_label(EXPERIMENT, ACTIVITY)) / \
        UDP(sport=40000, dport=5201)
    return raw(base / Raw(b"\x00" * max(0, size - len(base))))


def _by_suffix(names: list[str], suffix: str) -> str | None:
    hits = [n for n in names if n == suffix or n.endswith("." + suffix)]
    return hits[0] if len(hits) == 1 else None


def plan(doc: dict) -> tuple[Scenario, list[str]]:
    """Control-plane setup for the scitags hot path, where the program has the tables, as
    a diffkit Scenario (so the engine and BMv2 get the same entries); and notes."""
    probe = Engine(cpu_port=CPU)
    probe.load(doc)
    sc, notes = Scenario(doc, [1, 2]), []
    tables = probe.table_names()
    l2 = _by_suffix(tables, "l2_forward")
    if l2:
        act = _by_suffix(probe.table_info(l2).actions, "set_egress_port")
        for port in (1, 2):
            sc.table_add(l2, [("exact", bytes([0, 0, 0, 0, 0, port]))], act, [bytes([0, port])])
    else:
        notes.append("no l2_forward table: frames take the program's default path")
    pol = _by_suffix(tables, "scitag_policy")
    if pol:
        act = _by_suffix(probe.table_info(pol).actions, "count_tag")
        sc.table_add(pol, [("exact", EXPERIMENT.to_bytes(2, "big")),
                           ("ternary", bytes([ACTIVITY]), b"\x3f")], act,
                     [TAG.to_bytes(2, "big")], 10)
    sc.clone_session(100, [(CPU, 0)])
    sc.mc_group(1, [(1, 0), (2, 0)])
    return sc, notes


def configured_engine(sc: Scenario) -> Engine:
    e = Engine(cpu_port=CPU)
    e.load(sc.program)
    apply_setup(e, sc)
    return e


def load_program(path: str | None) -> tuple[dict, str]:
    if path:
        return json.loads(Path(path).read_text()), path
    if COMPILED.exists():
        return json.loads(COMPILED.read_text()), str(COMPILED.relative_to(ROOT))
    import scitags_like
    return scitags_like.program(), "tests/softswitch/scitags_like.py (hand-built mirror)"


def in_process(sc: Scenario, size: int, seconds: float) -> dict:
    e = configured_engine(sc)
    f = frame(size)
    out = e.process(1, f)
    process = e.process
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(1000):
            process(1, f)
        n += 1000
        if time.perf_counter() >= deadline:
            break
    took = time.perf_counter() - t0
    return {"frame_bytes": len(f), "packets": n, "seconds": round(took, 3),
            "pps": round(n / took), "outputs_per_packet": len(out),
            "errors": e.stats().get("errors", 0)}


def profile(sc: Scenario, packets: int = 30000) -> dict:
    e = configured_engine(sc)
    f = frame(64)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(packets):
        e.process(1, f)
    prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _) in st.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}({fn})" if not file.startswith("<") else f"{file}({fn})"
        rows.append({"function": where, "calls_per_packet": round(nc / packets, 2),
                     "self_share": round(tt / total, 3), "cumulative_share": round(ct / total, 3)})
    rows.sort(key=lambda r: -r["self_share"])
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    return {"packets": packets, "us_per_packet_profiled": round(total / packets * 1e6, 2),
            "top": rows[:12]}


# ---- over veths ----------------------------------------------------------------------
SENDER = textwrap.dedent("""
    import socket, sys, time
    iface, size, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    frame = bytes.fromhex(sys.argv[4])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((iface, 0))
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(200):
            try:
                s.send(frame); n += 1
            except OSError:
                time.sleep(0.0005)
    print(n)
""")
RECEIVER = textwrap.dedent("""
    import socket, sys, time, select
    iface, seconds = sys.argv[1], float(sys.argv[2])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    print("ready", flush=True)
    n, first, last = 0, None, None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not select.select([s], [], [], 0.2)[0]:
            continue
        while True:
            try:
                data, addr = s.recvfrom(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if addr[2] == 4:
                continue
            now = time.monotonic()
            first = first or now
            last = now
            n += 1
    print(n, (last - first) if first and last and last > first else 0)
""")


class _Soft:
    """The SoftSwitch (AF_PACKET ports on s1/s2) in this process."""

    def __init__(self, lab, sc: Scenario) -> None:  # noqa: ANN001 - netlab.NetLab
        from labnet.veth import in_netns

        from softswitch.ports import RawSocketPort
        from softswitch.switch import SoftSwitch
        self.engine = configured_engine(sc)
        self.sw = SoftSwitch(self.engine, cpu_port=CPU)
        for p in (1, 2):
            self.sw.add_port(p, in_netns(lab.ns, lambda p=p: RawSocketPort(f"s{p}")))
        self.sw.start()

    def close(self) -> None:
        self.sw.close()


class _Bmv2:
    """simple_switch_grpc on s1/s2, configured over P4Runtime by bmv2_driver --serve."""

    def __init__(self, lab, sc: Scenario, tmp: Path) -> None:  # noqa: ANN001
        scen = tmp / "bench-scenario.json"
        scen.write_text(sc.to_json())
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'softswitch'}",
               "BMV2_LOG_LEVEL": "off"}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns, sys.executable,
             str(ROOT / "tests" / "softswitch" / "bmv2_driver.py"), "--serve", str(scen)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("BMv2 did not come up")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def over_veths(kind: str, sc: Scenario, size: int, seconds: float) -> dict:
    import tempfile

    from netlab import NetLab
    lab = NetLab([1, 2])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            switch = _Soft(lab, sc) if kind == "soft" else _Bmv2(lab, sc, Path(tmp))
            try:
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                recv = subprocess.Popen(["ip", "netns", "exec", lab.ns, sys.executable, "-c",
                                         RECEIVER, "t2", str(seconds + 1.5)],
                                        stdout=subprocess.PIPE, text=True, env=env)
                assert recv.stdout is not None
                recv.stdout.readline()  # ready
                f = frame(size)
                send = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-c",
                                       SENDER, "t1", str(size), str(seconds), f.hex()],
                                      capture_output=True, text=True, env=env,
                                      timeout=seconds + 30)
                got, span = recv.communicate(timeout=seconds + 30)[0].split()
            finally:
                switch.close()
        sent, received, took = int(send.stdout.strip() or 0), int(got), float(span)
        return {"frame_bytes": len(f), "sent": sent, "forwarded": received,
                "seconds": round(took, 3), "pps": round(received / took) if took else 0}
    finally:
        lab.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--program", help="BMv2 JSON (default: compiled scitags, else hand-built)")
    ap.add_argument("--out", default="bench-results/softswitch.json")
    ap.add_argument("--seconds", type=float, default=4.0, help="per measurement (default 4)")
    ap.add_argument("--no-veth", action="store_true", help="skip the veth measurements")
    args = ap.parse_args()

    doc, source = load_program(args.program)
    sc, notes = plan(doc)
    result: dict = {"program": source, "python": sys.version.split()[0], "notes": notes,
                    "in_process": {}, "veth": {}, "bmv2_veth": {}}
    print(f"program: {source}")
    for size in (64, 1500):
        r = in_process(sc, size, args.seconds)
        result["in_process"][str(size)] = r
        print(f"in-process  {r['frame_bytes']:5d} B: {r['pps']:>9,} packets/s")
    prof = profile(sc)
    result["profile"] = prof
    print(f"profile (64 B, {prof['us_per_packet_profiled']} us/packet under cProfile):")
    for row in prof["top"][:8]:
        print(f"  {row['self_share']:6.1%}  {row['calls_per_packet']:5.2f}/pkt  {row['function']}")
    kinds = [("soft", "veth", "softswitch"), ("bmv2", "bmv2_veth", "BMv2")]
    for kind, key, label in kinds:
        if args.no_veth:
            result[key] = {"skipped": "--no-veth"}
        elif os.geteuid() != 0:
            result[key] = {"skipped": "needs root for network namespaces"}
        elif kind == "bmv2" and not HAVE_BMV2:
            result[key] = {"skipped": f"BMv2 not installed ({BMV2_BIN} absent)"}
        else:
            for size in (64, 1500):
                try:
                    r = over_veths(kind, sc, size, args.seconds)
                except Exception as exc:  # report and go on: other figures still count
                    r = {"error": f"{type(exc).__name__}: {exc}"}
                    print(f"{label} over veths {size} B: failed: {r['error']}")
                else:
                    print(f"{label:>10} over veths {r['frame_bytes']:5d} B: {r['pps']:>9,} "
                          f"packets/s ({r['forwarded']:,} of {r['sent']:,} sent)")
                result[key][str(size)] = r
            continue
        print(f"{label} over veths: skipped ({result[key]['skipped']})")
    write_figures(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
