#!/usr/bin/env python3
"""Firefly relay benchmark: fireflies relayed per second with zero loss to a local UDP
receiver, and the controller's firefly-to-entry latency with the relay on vs off, in the
same run.

Relay throughput: controller/relay.py's FireflyRelay in this process (pinned to CPU 0) is
fed parsed records of the deployed senders' shapes (flowd-go bare JSON, XRootD, dCache,
flowd 1.1.7; every one repaired, re-encoded with the RFC 5424 header and sent), one
distinct flow per record; a receiver process pinned to CPU 1 counts the datagrams on a real
UDP socket. Flat out: records offered back to back into an unbounded queue, time to the
last datagram received. Ladder of offered rates (paced on_firefly calls, the production
queue bound): the stated rate is the highest with every record delivered and nothing
dropped, at it and every step below. The relay's own rate limit is lifted for this (it
measures the relay, not its budget).

Latency: bench_controller's method (a `start` firefly over UDP -> its entry readable on a
built-in switch through a second P4Runtime session), p50/p99, in alternating blocks relay
off / on (the relay extension configured as `--relay` does, to a local UDP socket).

Prints the figures, writes JSON to --out (default bench-results/relay.json).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_firefly import _pin, random_addresses  # noqa: E402
from bench.figures import write_figures  # noqa: E402

LATENCY_BLOCKS = 2  # alternating relay off / on blocks
LADDER = [2_000, 5_000, 10_000, 20_000, 30_000, 40_000, 60_000, 80_000]
CORPUS_SIZE = 130_000  # one flat-out run and the ladder without reusing a record
RELAY_CPU, RECEIVER_CPU = 0, 1


def build_records(n: int, seed: int = 20251201) -> list:
    """Parsed records of the real senders' shapes, a distinct flow in each."""
    from scitags_core.firefly_parse import parse_firefly
    from tests.core.real_senders import dcache, flowd_go, xrootd_pair
    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc)
    ref_header = "<134>1 " + now.isoformat() + " dtn flowd - firefly-json - "
    records = []
    for i in range(n):
        src, dst = random_addresses(rng, ipv6=False)
        sport, exp, act = rng.randrange(1024, 65536), rng.randrange(1, 15), rng.randrange(1, 25)
        start = now - dt.timedelta(seconds=rng.randrange(1, 3600))
        kind = i % 4
        if kind == 0:
            data = flowd_go("start", src, sport, dst, 1094, exp, act, start=start)
        elif kind == 1:
            data = xrootd_pair("start", src, sport, dst, 1094, exp, act, start=start, now=now)[i % 2]
        elif kind == 2:
            data = dcache("start", src, sport, dst, 1094, exp, act, start=start, now=now, sender_ip=src)
        else:
            doc = {"version": 1, "flow-lifecycle": {"state": "ongoing", "current-time": now.isoformat()},
                   "flow-id": {"afi": "ipv4", "src-ip": src, "dst-ip": dst, "protocol": "tcp",
                               "src-port": sport, "dst-port": 1094},
                   "context": {"experiment-id": exp, "activity-id": act, "application": "flowd v1.1.7"}}
            data = (ref_header + json.dumps(doc)).encode()  # the reference's ongoing: no start-time
        records.append(parse_firefly(data))
    return records


def receiver_process(conn) -> None:
    pinned = _pin(RECEIVER_CPU)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    conn.send((sock.getsockname(), pinned))
    count, last = 0, 0.0
    while True:
        try:
            sock.recv(65535)
            count += 1
            last = time.perf_counter()  # CLOCK_MONOTONIC: comparable with the parent's
            continue
        except socket.timeout:
            pass
        if conn.poll():
            cmd = conn.recv()
            if cmd == "count":
                conn.send(count)
            elif cmd == "last":
                conn.send(last)
            elif cmd == "reset":
                count = 0
                conn.send(True)
            else:
                return


def _received(conn) -> int:
    conn.send("count")
    return conn.recv()


def _settle(conn, relay, timeout: float = 20.0) -> int:
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = _received(conn)
        if now == last and relay.status()["queue_depth"] == 0:
            return now
        last = now
    return last


def bench_throughput(records: list, step_s: float) -> dict[str, Any]:
    from controller.relay import DEFAULT_MAX_QUEUE, FireflyRelay
    pinned = _pin(RELAY_CPU)
    ctx = mp.get_context("fork")
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=receiver_process, args=(child,), daemon=True)
    proc.start()
    address, receiver_pinned = conn.recv()
    # flat out: a queue that holds everything (throughput); the ladder: the production queue
    # bound, so a rate the relay cannot keep up with shows as queue-full drops
    relay = FireflyRelay([address], rate_per_s=1e9, burst=10**6, max_queue=len(records) + 1,
                         hostname="bench-gw").start()
    peer = ("10.0.0.1", 50000)
    cursor = 0
    steps: list[dict[str, Any]] = []
    stated = 0
    try:
        # flat out: every record offered back to back; time until all have arrived
        conn.send("reset")
        conn.recv()
        n = min(len(records) // 3, 20_000)
        before = relay.status()
        t0 = time.perf_counter()
        for record in records[cursor:cursor + n]:
            relay.on_firefly(record, peer)
        cursor += n
        got = _settle(conn, relay)
        conn.send("last")
        took = conn.recv() - t0  # first offer -> last datagram received
        flat = {"offered": n, "received": got, "seconds": round(took, 3),
                "relayed_per_s": round(got / took) if took > 0 else None,
                "dropped": relay.status()["dropped_total"] - before["dropped_total"]}
        print(f"  flat out: {n:,} offered, {got:,} received in {took:.2f} s "
              f"-> {flat['relayed_per_s'] or 0:,}/s", flush=True)
        relay.stop()
        relay = FireflyRelay([address], rate_per_s=1e9, burst=10**6, max_queue=DEFAULT_MAX_QUEUE,
                             hostname="bench-gw").start()
        for rate in LADDER:
            total = int(rate * step_s)
            if cursor + total > len(records):
                break
            conn.send("reset")
            conn.recv()
            before = relay.status()["dropped_total"]
            start, sent = time.perf_counter(), 0
            while sent < total:
                due = min(total, int((time.perf_counter() - start) * rate) + 1)
                while sent < due:
                    relay.on_firefly(records[cursor + sent], peer)
                    sent += 1
                time.sleep(0.0002)
            cursor += total
            got = _settle(conn, relay)
            dropped = relay.status()["dropped_total"] - before
            lost = total - got
            steps.append({"offered_per_s": rate, "offered": total, "received": got, "lost": lost,
                          "dropped": dropped})
            print(f"  offered {rate:>7,}/s  received {got:>7,}/{total:<7,} lost {lost:>6,} "
                  f"dropped {dropped}", flush=True)
            if lost or dropped:
                break
            stated = rate
    finally:
        relay.stop()
        conn.send("stop")
        proc.join(5)
    return {"relay_pinned": pinned, "receiver_pinned": receiver_pinned,
            "max_zero_loss_rate_per_s": stated, "ladder_queue_bound": DEFAULT_MAX_QUEUE,
            "flat_out": flat, "ladder": steps}


def bench_latency(n: int, relay_on: bool, tmp: Path, block: int = 0) -> dict[str, Any]:
    """firefly -> entry latencies (ms) through a real controller and softswitch, relay on or off."""
    from controller.relay import RelayExtension
    import bench_controller as bc
    from controller import launcher
    from controller.config import load_config
    from controller.drivers.p4runtime import P4RuntimeDriver
    from controller.runtime import build
    p4info, dev, _ = bc.program()
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    collector.bind(("127.0.0.1", 0))
    collector.setblocking(False)
    spec, proc = bc.start_switch("soft", 1, tmp / "logs")
    rt = None
    try:
        values = {"grpc_addr": spec.grpc_addr, "device_id": spec.device_id, "launch": "never",
                  "state_dir": str(tmp / f"state-{relay_on}-{block}"), "firefly_listen": "127.0.0.1:0",
                  "p4info": str(p4info), "device_config": str(dev), "poll_interval_s": 3600,
                  "firefly.rate_per_source": 1e9, "firefly.burst": 1e9,
                  "firefly.idle_timeout_s": 600}
        cfg = load_config(None, values, ["relay"])
        extensions = []
        if relay_on:  # as `controller start --relay HOST:PORT` configures it
            cfg.extensions["relay"] = {"targets": ["%s:%d" % collector.getsockname()]}
            extensions = [RelayExtension()]
        rt = build(cfg, with_api=False, extensions=extensions)
        rt.start()
        if not rt.controller.wait_ready(60):
            raise RuntimeError(f"controller not ready: {rt.controller.status()}")
        obs = P4RuntimeDriver("obs", spec.device_id, spec.grpc_addr, p4info, dev, election_id=(0, 1))
        obs.connect()
        addr = rt.controller.udp_receiver.address
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        lat = []
        offset = 20_000 * (2 * block + relay_on)  # distinct flows in every block
        for i in range(n):
            key, data = bc.firefly(offset + i)
            t0 = time.perf_counter()
            sock.sendto(data, addr)
            while not bc.entry_present(obs, key):
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError(f"entry {key} not readable after 10 s")
            lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.5)
        relayed = 0
        while True:
            try:
                collector.recv(65535)
                relayed += 1
            except BlockingIOError:
                break
        obs.close()
        sock.close()
        return {"latencies_ms": lat, "relayed_to_collector": relayed if relay_on else None}
    finally:
        if rt is not None:
            rt.stop()
        launcher.terminate([proc])
        collector.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench-results/relay.json")
    parser.add_argument("--step-seconds", type=float, default=1.5)
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="short steps (smoke test, not figures)")
    args = parser.parse_args(argv)
    step_s = 0.5 if args.quick else args.step_seconds
    n_lat = 20 if args.quick else args.latency_n
    started = time.monotonic()
    records = build_records(20_000 if args.quick else CORPUS_SIZE)
    print("firefly relay throughput (relay on one core, receiver on the other):", flush=True)
    throughput = bench_throughput(records, step_s)
    latency: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        # off, on, off, on: both settings see the same drift of the machine's other load
        runs: dict[bool, list] = {False: [], True: []}
        relayed = 0
        for block in range(LATENCY_BLOCKS):
            for relay_on in (False, True):
                result = bench_latency(n_lat // LATENCY_BLOCKS, relay_on, Path(tmp), block)
                runs[relay_on] += result["latencies_ms"]
                relayed += result["relayed_to_collector"] or 0
        bc = sys.modules["bench_controller"]
        for relay_on, lat in runs.items():
            latency["relay_on" if relay_on else "relay_off"] = {
                "n": len(lat), "p50_ms": round(bc.pct(lat, 50), 2), "p99_ms": round(bc.pct(lat, 99), 2)}
            print(f"  firefly->entry latency, relay {'on ' if relay_on else 'off'}: p50 "
                  f"{bc.pct(lat, 50):.2f} ms, p99 {bc.pct(lat, 99):.2f} ms (n={len(lat)})", flush=True)
        latency["relay_on"]["relayed_to_collector"] = relayed
    results = {
        "benchmark": "firefly relay (controller/relay.py) to a local UDP receiver",
        "unit": "fireflies per second; latency in ms",
        "corpus": {"records": len(records), "shapes": "flowd-go bare JSON, XRootD, dCache, flowd 1.1.7 "
                   "ongoing (all repaired and re-encoded)"},
        "throughput": throughput, "latency": latency,
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    print(f"relayed with zero loss: {throughput['max_zero_loss_rate_per_s']:,}/s; flat out "
          f"{throughput['flat_out']['relayed_per_s'] or 0:,}/s")
    write_figures(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
