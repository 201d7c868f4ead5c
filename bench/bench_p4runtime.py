#!/usr/bin/env python3
"""P4Runtime table writes per second: the softswitch server over real gRPC on loopback, and
BMv2's simple_switch_grpc in the same run when it is installed.

The server runs in its own process (the client's CPU is not counted against it); each
target gets the same program (softswitch/p4rt/sample_program: table ingress.fwd, 48-bit
exact key, one 9-bit parameter, direct counter, idle-timeout support) and the same writes:
INSERT then DELETE of N entries, in batches of 1 (one RPC in flight, then 32 in flight)
and of 1000. Figures: writes per second (wall clock) and server CPU time per write, whose
inverse is the writes per second one server core sustains. A last part runs the server's
write path in-process (no gRPC) under cProfile to say where the time goes.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing
import os
import pathlib
import pstats
import sys
import time
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from bench.figures import write_figures  # noqa: E402
from p4.v1 import p4runtime_pb2 as p4r  # noqa: E402
from p4.v1 import p4runtime_pb2_grpc  # noqa: E402

from softswitch.p4rt import sample_program as sp  # noqa: E402
from softswitch.p4rt.testkit import (BMV2_BIN, Bmv2, exact, pipeline_request,  # noqa: E402
                                     table_entry)

DEVICE_ID = 1
INSERT, DELETE = p4r.Update.INSERT, p4r.Update.DELETE


def _serve(conn: Any) -> None:
    """Child process: engine + P4Runtime server on 127.0.0.1, until told to stop."""
    from softswitch.engine import Engine
    from softswitch.p4runtime_server import P4RuntimeServer
    engine = Engine(cpu_port=sp.CPU_PORT)
    server = P4RuntimeServer(engine, DEVICE_ID, sp.CPU_PORT, lambda frame: None)
    conn.send(server.start("127.0.0.1:0"))
    conn.recv()
    server.stop()


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests(n: int, batch: int, kind: int, offset: int) -> list[p4r.WriteRequest]:
    out = []
    for start in range(0, n, batch):
        req = p4r.WriteRequest(device_id=DEVICE_ID)
        for i in range(start, min(n, start + batch)):
            te = table_entry(sp.T_FWD, [exact(1, (offset + i).to_bytes(6, "big"))],
                             sp.A_SET_PORT if kind == INSERT else None,
                             [(1, (i % 500).to_bytes(2, "big"))] if kind == INSERT else [])
            req.updates.add(type=kind).entity.table_entry.CopyFrom(te)
        out.append(req)
    return out


def run_requests(stub: Any, reqs: list[p4r.WriteRequest], inflight: int) -> None:
    if inflight <= 1:
        for r in reqs:
            stub.Write(r)
        return
    pending: list[Any] = []
    for r in reqs:
        pending.append(stub.Write.future(r))
        if len(pending) >= inflight:
            pending.pop(0).result()
    for f in pending:
        f.result()


def measure(stub: Any, pid: int, n: int, batch: int, inflight: int,
            offset: int) -> dict[str, float]:
    result: dict[str, float] = {"writes": n, "batch": batch, "in_flight": inflight}
    cpu = 0.0
    for kind, name in ((INSERT, "insert"), (DELETE, "delete")):
        reqs = requests(n, batch, kind, offset)
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        run_requests(stub, reqs, inflight)
        dt, dc = time.perf_counter() - t0, cpu_seconds(pid) - c0
        result[f"{name}_per_s"] = round(n / dt)
        cpu += dc
    result["server_cpu_us_per_write"] = round(cpu / (2 * n) * 1e6, 1)
    result["writes_per_server_cpu_s"] = round(2 * n / cpu) if cpu else None  # type: ignore
    return result


def measure_floor(stub: Any, pid: int, n: int) -> dict[str, float]:
    """Capabilities RPCs, 32 in flight: what one RPC costs the server with no work in it."""
    req = p4r.CapabilitiesRequest()
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    pending: list[Any] = []
    for _ in range(n):
        pending.append(stub.Capabilities.future(req))
        if len(pending) >= 32:
            pending.pop(0).result()
    for f in pending:
        f.result()
    dt, dc = time.perf_counter() - t0, cpu_seconds(pid) - c0
    return {"rpcs": n, "rpc_per_s": round(n / dt),
            "server_cpu_us_per_rpc": round(dc / n * 1e6, 1)}


def bench_target(stub: Any, pid: int, scale: float) -> dict[str, Any]:
    stub.SetForwardingPipelineConfig(pipeline_request(DEVICE_ID, sp.p4info(),
                                                      sp.device_config()))
    measure(stub, pid, 200, 1, 1, 10**9)            # warm-up (connections, code paths)
    return {
        "batch_1_sequential": measure(stub, pid, int(2000 * scale), 1, 1, 0),
        "batch_1_32_in_flight": measure(stub, pid, int(5000 * scale), 1, 32, 10**6),
        "batch_1000": measure(stub, pid, int(20000 * scale), 1000, 1, 2 * 10**6),
        "empty_rpc_floor": measure_floor(stub, pid, int(5000 * scale)),
    }


def bench_softswitch(scale: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    try:
        port = parent.recv()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            return bench_target(p4runtime_pb2_grpc.P4RuntimeStub(ch), proc.pid, scale)
    finally:
        parent.send("stop")
        proc.join(timeout=10)


def bench_bmv2(scale: float) -> dict[str, Any]:
    if not os.access(BMV2_BIN, os.X_OK):
        return {"skipped": f"{BMV2_BIN} not installed"}
    bm = Bmv2(DEVICE_ID)
    try:
        return bench_target(bm.stub, bm.proc.pid, scale)
    finally:
        bm.close()


def profile_handler(n: int, top: int) -> dict[str, Any]:
    """The server's write path without gRPC: Device.write on batches of 1000 inserts."""
    from softswitch.engine import Engine
    from softswitch.p4rt.device import Device
    engine = Engine(cpu_port=sp.CPU_PORT)
    device = Device(engine, DEVICE_ID)
    config = pipeline_request(DEVICE_ID, sp.p4info(), sp.device_config()).config
    device.set_pipeline(p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT, config)
    inserts = requests(n, 1000, INSERT, 0)
    deletes = requests(n, 1000, DELETE, 0)
    wire = [r.SerializeToString() for r in inserts]

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    parse_s = timed(lambda: [p4r.WriteRequest.FromString(b) for b in wire])
    insert_s = timed(lambda: [device.write(r) for r in inserts])
    delete_s = timed(lambda: [device.write(r) for r in deletes])
    singles = requests(2000, 1, INSERT, 0)
    single_s = timed(lambda: [device.write(r) for r in singles])
    for r in requests(2000, 1, DELETE, 0):
        device.write(r)
    prof = cProfile.Profile()
    prof.enable()
    for r in inserts:
        device.write(r)
    for r in deletes:
        device.write(r)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    rows = []
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    for (file, line, fn), (_, ncalls, tottime, _, _) in sorted(
            stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:  # type: ignore[attr-defined]
        path = pathlib.Path(file)
        if path.is_relative_to(ROOT):
            path = path.relative_to(ROOT)
        where = f"{path}:{line}({fn})" if line else fn
        rows.append({"function": where, "calls": ncalls,
                     "share_of_time": round(tottime / total, 3)})
    return {"writes": n,
            "parse_WriteRequest_us_per_update": round(parse_s / n * 1e6, 2),
            "insert_per_s": round(n / insert_s), "delete_per_s": round(n / delete_s),
            "single_update_write_us": round(single_s / len(singles) * 1e6, 1),
            "profile_top_by_own_time": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/p4runtime.json")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the write counts")
    ap.add_argument("--json", action="store_true", help="print the JSON only")
    args = ap.parse_args()
    if args.scale <= 0:
        ap.error("--scale must be positive")
    t0 = time.monotonic()
    results: dict[str, Any] = {
        "what": "P4Runtime table writes over gRPC on 127.0.0.1 (INSERT then DELETE)",
        "program": "softswitch/p4rt/sample_program: ingress.fwd (48-bit exact key, one "
                   "9-bit param, direct counter, idle timeout)",
        "cpus": os.cpu_count(),
        "targets": {"softswitch": bench_softswitch(args.scale),
                    "bmv2": bench_bmv2(args.scale)},
        "softswitch_write_path_in_process": profile_handler(int(20000 * args.scale), 12),
    }
    results["seconds"] = round(time.monotonic() - t0, 1)
    out = write_figures(args.out, results, say=False)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, res in results["targets"].items():
        if "skipped" in res:
            print(f"{name:10s} skipped: {res['skipped']}")
            continue
        for mode, r in res.items():
            if mode == "empty_rpc_floor":
                print(f"{name:10s} {mode:22s} {r['rpc_per_s']:>7} Capabilities/s, server CPU "
                      f"{r['server_cpu_us_per_rpc']} us/RPC (gRPC's own cost)")
                continue
            print(f"{name:10s} {mode:22s} insert {r['insert_per_s']:>7}/s  delete "
                  f"{r['delete_per_s']:>7}/s  server CPU {r['server_cpu_us_per_write']:>6} "
                  f"us/write (= {r['writes_per_server_cpu_s']}/s per core)")
    h = results["softswitch_write_path_in_process"]
    print(f"in-process write path (no gRPC), batches of 1000: insert {h['insert_per_s']}/s, "
          f"delete {h['delete_per_s']}/s; parsing a WriteRequest "
          f"{h['parse_WriteRequest_us_per_update']} us/update; a one-update Write "
          f"{h['single_update_write_us']} us")
    for row in h["profile_top_by_own_time"]:
        print(f"  {row['share_of_time']:6.1%}  {row['calls']:>8}  {row['function']}")
    print(f"figures written to {out} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
