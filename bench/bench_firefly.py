#!/usr/bin/env python3
"""Firefly receive-path benchmark: scitags-p4's FireflyReceiver vs the reference listener.

Both receivers run in their own process pinned to one core (CPU 0); a sender process
pinned to the other core sends real UDP datagrams on loopback. Two corpora, each with a
distinct flow (addresses, ports) in every datagram:
  * flowd: built the way the reference sender (PyPI `scitags`, backends/udp_firefly.py)
    builds fireflies (both receivers take it);
  * flowd-go: the bare JSON document of flowd-go 2.4 (no syslog header, "start-time": ""
    on end, some with skOps), byte for byte as tests/core/real_senders.py builds it: only
    ours takes it (the reference listener ignores datagrams without "firefly-json"), so it
    is measured with the acceptance rules for deployed senders, next to the reference's
    figure on its own shape.

Per receiver:
  * capacity: the sender sends as fast as it can for a few seconds; fireflies accepted
    per second between the first and the last one delivered (parse + validate + deliver);
  * ladder: paced offered rates, stepping up until the first loss; the stated rate is the
    highest offered rate with zero loss at it and at every lower step;
  * per CPU-second: fireflies delivered per second of CPU the receiver process used during
    the capacity run (the figure other load on a shared machine disturbs least).

The reference listener (scitags.plugins.firefly.run) is driven the way flowd runs it: its
ThreadedUDPServer and handler unchanged, stdout to /dev/null (the handler prints every
datagram), and a counting queue standing in for flowd's PubSubQueue (cheaper than the
real multiprocessing queue, so the comparison favours the reference).

Prints the figures and writes them as JSON to --out (default bench-results/firefly.json).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.figures import write_figures  # noqa: E402

TARGET_RATE = 20_000  # fireflies/s the issue asks for
TARGET_RATIO = 5.0  # times the reference
CORPUS_SIZE = 16_384  # distinct flows: defeats any per-address cache in the receivers
OUR_LADDER = [20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 140_000, 160_000, 200_000]
REF_LADDER = [2_000, 4_000, 8_000, 12_000, 16_000, 20_000, 24_000, 32_000, 48_000]
REFINE_STEPS = 2  # bisections between the last lossless and the first lossy rate
RECEIVER_CPU, SENDER_CPU = 0, 1


def _pin(cpu: int) -> bool:
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
            return True
    except (AttributeError, OSError):
        pass
    return False


@contextlib.contextmanager
def _reference_config(port: int):
    """scitags.config reads /etc/flowd/flowd.cfg at import; point it at a temporary one."""
    import scitags.settings
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as fh:
        fh.write(f"PLUGIN = 'firefly'\nBACKEND = 'udp_firefly'\n"
                 f"FIREFLY_LISTENER_HOST = '127.0.0.1'\nFIREFLY_LISTENER_PORT = {port}\n")
    scitags.settings.CONFIG_PATH = fh.name
    try:
        import scitags.config  # noqa: F401  (executes the config file)
        yield
    finally:
        os.unlink(fh.name)


def random_addresses(rng: random.Random, ipv6: bool) -> tuple[str, str]:
    """A distinct (src, dst) per datagram: 2001:db8::/32 or 10.0.0.0/8."""
    if ipv6:
        return tuple(str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96))) for _ in "sd")
    return tuple(str(ipaddress.IPv4Address((10 << 24) | rng.getrandbits(24))) for _ in "sd")


def random_flows(n: int, seed: int):
    """(rng, src, dst, state) per datagram: IPv4 and IPv6 in turn, start/ongoing/end in turn."""
    rng = random.Random(seed)
    for i in range(n):
        src, dst = random_addresses(rng, ipv6=bool(i % 2))
        yield rng, src, dst, ("start", "ongoing", "end")[i % 3]


def build_corpus(n: int, seed: int = 20251125) -> list[bytes]:
    """Fireflies built by the reference sender's own code (firefly_json + its syslog header)."""
    import scitags
    # Without pyroute2 its optional netlink module calls sys.exit(); None in sys.modules
    # makes the import fail the way udp_firefly's try/except ImportError expects.
    sys.modules.setdefault("scitags.netlink.cache", None)
    with _reference_config(0):
        from scitags.backends import udp_firefly as ref
    now = dt.datetime.now(dt.timezone.utc)
    corpus = []
    for rng, src, dst, state in random_flows(n, seed):
        start = (now - dt.timedelta(seconds=rng.randrange(1, 3600))).isoformat()
        flow = scitags.FlowID(state, "tcp", src, rng.randrange(1024, 65536), dst,
                              rng.choice([1094, 443, 2811]), rng.randrange(1, 15),
                              rng.randrange(1, 25), start, now.isoformat() if state == "end" else None)
        doc = ref.firefly_json(flow, {"experiments": {}, "activities": {}}, None, {})
        header = "<{}>{} {} {} {} {} {} {} ".format(
            ref.SYSLOG_PRIORITY, ref.SYSLOG_VERSION, dt.datetime.utcnow().isoformat() + "+00:00",
            ref.SYSLOG_HOSTNAME, ref.SYSLOG_APP_NAME, ref.SYSLOG_PROCID, ref.SYSLOG_MSGID,
            ref.SYSLOG_STRUCT_DATA)
        corpus.append((header + json.dumps(doc)).encode("utf-8"))
    return corpus


def build_flowd_go_corpus(n: int, seed: int = 20251201) -> list[bytes]:
    """flowd-go 2.4 default shape: bare JSON, start / end ("start-time": "") / ongoing+skOps."""
    from tests.core.real_senders import flowd_go
    now = dt.datetime.now(dt.timezone.utc)
    corpus = []
    for rng, src, dst, state in random_flows(n, seed):
        start = now - dt.timedelta(seconds=rng.randrange(1, 3600), microseconds=rng.randrange(10**6))
        corpus.append(flowd_go(
            state, src, rng.randrange(1024, 65536), dst, rng.choice([1094, 443, 2811]),
            rng.randrange(1, 15), rng.randrange(1, 25), start=None if state == "end" else start,
            end=now if state == "end" else None, now=now,
            skops={"tcpInfo": {"rtt": rng.randrange(100, 90000), "bytesAcked": rng.getrandbits(32)}}
            if state == "ongoing" else None))
    return corpus


class _Tally:
    """Deliveries per measurement step: count and first/last delivery time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0
        self.cpu0 = time.process_time()

    def hit(self) -> None:
        now = time.perf_counter()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now

    def snapshot(self) -> tuple[int, float, float]:
        return self.count, self.first, self.last


def _serve(conn, tally: _Tally, extra=lambda: {}) -> None:
    while True:
        cmd = conn.recv()
        if cmd == "reset":
            tally.reset()
            conn.send(True)
        elif cmd == "snapshot":  # with the process's CPU seconds since the reset
            conn.send((*tally.snapshot(), extra(), time.process_time() - tally.cpu0))
        else:
            return


def ours_process(conn) -> None:
    pinned = _pin(RECEIVER_CPU)
    from scitags_core.firefly_receiver import FireflyReceiver
    tally = _Tally()
    receiver = FireflyReceiver(port=0, host="127.0.0.1")
    receiver.subscribe(lambda record, peer: tally.hit())
    receiver.start()
    conn.send((receiver.address, pinned))
    try:
        _serve(conn, tally, lambda: receiver.counters().as_dict())
    finally:
        receiver.stop()


def reference_process(conn, port: int) -> None:
    pinned = _pin(RECEIVER_CPU)
    devnull = open(os.devnull, "w")
    sys.stdout = devnull  # flowd runs as a daemon; its handler print()s every datagram
    with _reference_config(port):
        from scitags.config import config
        from scitags.plugins import firefly as ref_listener
    # The corpus builder may have imported scitags.config before the fork.
    config.update(FIREFLY_LISTENER_HOST="127.0.0.1", FIREFLY_LISTENER_PORT=port)
    tally = _Tally()

    class CountingQueue:  # stands in for flowd's PubSubQueue
        def put(self, flow_id: Any) -> None:
            with tally.lock:
                tally.hit()

    term = threading.Event()
    server = threading.Thread(target=ref_listener.run, args=(CountingQueue(), term, None), daemon=True)
    server.start()
    time.sleep(0.5)  # run() binds in its own thread
    conn.send((("127.0.0.1", port), pinned))
    try:
        _serve(conn, tally)
    finally:
        term.set()


def sender_process(conn, corpora: dict[str, list[bytes]]) -> None:
    _pin(SENDER_CPU)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    sendto = sock.sendto
    while True:
        cmd = conn.recv()
        if cmd is None:
            return
        address, rate, duration, name = cmd
        corpus = corpora[name]
        n = len(corpus)
        sent, start = 0, time.perf_counter()
        if rate is None:  # as fast as possible
            deadline = start + duration
            while time.perf_counter() < deadline:
                for _ in range(256):
                    sendto(corpus[sent % n], address)
                    sent += 1
        else:
            total = int(rate * duration)
            while sent < total:
                due = min(total, int((time.perf_counter() - start) * rate) + 1)
                while sent < due:
                    sendto(corpus[sent % n], address)
                    sent += 1
                time.sleep(0.0002)
        conn.send((sent, time.perf_counter() - start))


class Bench:
    def __init__(self, corpora: dict[str, list[bytes]]) -> None:
        ctx = mp.get_context("fork")
        self.ctx = ctx
        self.corpus = next(iter(corpora))
        self.sender_conn, child = ctx.Pipe()
        self.sender = ctx.Process(target=sender_process, args=(child, corpora), daemon=True)
        self.sender.start()

    def close(self) -> None:
        self.sender_conn.send(None)
        self.sender.join(5)

    def _settle(self, conn) -> tuple[int, float, float, dict]:
        """Wait until deliveries stop growing, then return the snapshot."""
        last = None
        for _ in range(100):
            time.sleep(0.15)
            conn.send("snapshot")
            snap = conn.recv()
            if last is not None and snap[0] == last[0]:
                return snap
            last = snap
        return last

    def step(self, conn, address, rate: int | None, duration: float) -> dict[str, Any]:
        conn.send("reset")
        conn.recv()
        self.sender_conn.send((address, rate, duration, self.corpus))
        sent, send_time = self.sender_conn.recv()
        delivered, first, last, extra, cpu = self._settle(conn)
        span = last - first
        result = {"offered_per_s": rate if rate is not None else round(sent / send_time),
                  "sent": sent, "delivered": delivered, "lost": sent - delivered,
                  "loss_pct": round(100.0 * (sent - delivered) / sent, 3) if sent else 0.0,
                  "delivered_per_s": round(delivered / span) if span > 0 else None,
                  # fireflies per CPU-second of the receiver process: what other load on the
                  # machine changes least
                  "cpu_s": round(cpu, 3), "per_cpu_s": round(delivered / cpu) if cpu > 0 else None}
        if extra:
            result["rejected"] = extra.get("rejected_total")
        return result

    def run_receiver(self, name: str, target, args: tuple, ladder: list[int], step_s: float,
                     capacity_s: float) -> dict[str, Any]:
        conn, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=target, args=(child, *args), daemon=True)
        proc.start()
        address, pinned = conn.recv()
        try:
            capacity = self.step(conn, address, None, capacity_s)
            print(f"  {name:9s} overload: sent {capacity['sent']:>9,} in {capacity_s} s, "
                  f"delivered {capacity['delivered_per_s'] or 0:>7,}/s", flush=True)
            steps: list[dict[str, Any]] = []
            stated, lossy = 0, None

            def measure(rate: int) -> bool:
                result = self.step(conn, address, rate, step_s)
                steps.append(result)
                print(f"  {name:9s} offered {rate:>7,}/s  delivered {result['delivered']:>7,}"
                      f"/{result['sent']:<7,} lost {result['lost']:>6,}", flush=True)
                return result["lost"] == 0

            for rate in ladder:
                if not measure(rate):
                    lossy = rate
                    break
                stated = rate
            for _ in range(REFINE_STEPS if lossy else 0):
                middle = (stated + lossy) // 2 // 500 * 500
                if middle <= stated:
                    break
                if measure(middle):
                    stated = middle
                else:
                    lossy = middle
        finally:
            conn.send("stop")
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        # Throughput while overloaded: lossy ladder steps and the flat-out run.
        saturated = [s["delivered_per_s"] or 0 for s in [*steps, capacity] if s["lost"]]
        lower = [s for s in steps if s["offered_per_s"] <= stated]
        return {"pinned_to_one_core": pinned,
                "max_zero_loss_rate_per_s": stated,
                "loss_at_stated_rate": next((s["lost"] for s in steps
                                             if s["offered_per_s"] == stated), None),
                "loss_below_stated_rate": sum(s["lost"] for s in lower),
                "saturation_per_s": max(saturated) if saturated else None,
                "per_cpu_second": capacity["per_cpu_s"],
                "overload": capacity, "ladder": steps}


def _has_orjson() -> bool:
    try:
        import orjson  # noqa: F401
    except ImportError:
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench-results/firefly.json", help="JSON results path")
    parser.add_argument("--step-seconds", type=float, default=1.5, help="duration of a ladder step")
    parser.add_argument("--quick", action="store_true", help="short steps (smoke test, not figures)")
    args = parser.parse_args(argv)
    step_s = 0.5 if args.quick else args.step_seconds
    capacity_s = 0.5 if args.quick else 1.5
    started = time.monotonic()

    size = 2_048 if args.quick else CORPUS_SIZE
    corpus = build_corpus(size)
    go_corpus = build_flowd_go_corpus(size)
    from scitags_core.firefly import FireflyRejected
    from scitags_core.firefly_parse import parse_firefly
    for name, datagrams in (("flowd", corpus), ("flowd-go", go_corpus)):
        try:
            for datagram in datagrams:  # the figures are for fireflies taken, not refused
                parse_firefly(datagram)
        except FireflyRejected as exc:
            raise SystemExit(f"bench_firefly: our receiver refuses the {name} corpus: {exc}")
    bench = Bench({"flowd": corpus, "flowd-go": go_corpus})
    try:
        print("scitags-p4 FireflyReceiver (one core), flowd 1.1.7 shape:", flush=True)
        ours = bench.run_receiver("ours", ours_process, (), OUR_LADDER, step_s, capacity_s)
        print("scitags-p4 FireflyReceiver (one core), flowd-go 2.4 bare-JSON shape:", flush=True)
        bench.corpus = "flowd-go"
        ours_go = bench.run_receiver("ours-go", ours_process, (), OUR_LADDER, step_s, capacity_s)
        bench.corpus = "flowd"
        print("reference scitags 1.1.7 firefly listener (one core), flowd shape:", flush=True)
        ref = bench.run_receiver("reference", reference_process, (_free_port(),), REF_LADDER,
                                 step_s, capacity_s)
    finally:
        bench.close()

    def ratio(key: str, mine: dict | None = None) -> float | None:
        mine = ours if mine is None else mine
        return round(mine[key] / ref[key], 2) if mine.get(key) and ref.get(key) else None

    results = {
        "benchmark": "firefly receive path (real UDP on 127.0.0.1, parse + validate + deliver)",
        "unit": "fireflies per second, receiver pinned to one core",
        "corpus": {"datagrams": len(corpus), "mean_bytes": round(sum(map(len, corpus)) / len(corpus)),
                   "built_by": "scitags 1.1.7 udp_firefly.firefly_json + its syslog header"},
        "corpus_flowd_go": {"datagrams": len(go_corpus),
                            "mean_bytes": round(sum(map(len, go_corpus)) / len(go_corpus)),
                            "built_by": "tests/core/real_senders.py flowd_go (bare JSON, as flowd-go 2.4)"},
        "ours": ours, "ours_flowd_go": ours_go, "reference": ref,
        "ratio_zero_loss_rate": ratio("max_zero_loss_rate_per_s"),
        "ratio_saturation": ratio("saturation_per_s"),
        "ratio_per_cpu_second": ratio("per_cpu_second"),
        "ratio_per_cpu_second_flowd_go": ratio("per_cpu_second", ours_go),
        "ratio_zero_loss_rate_flowd_go": ratio("max_zero_loss_rate_per_s", ours_go),
        "ratio_saturation_flowd_go": ratio("saturation_per_s", ours_go),
        "target_per_s": TARGET_RATE, "target_ratio": TARGET_RATIO,
        "meets_target": ours["max_zero_loss_rate_per_s"] >= TARGET_RATE
        and ours["loss_below_stated_rate"] == 0,
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "machine": platform.machine(),
                        "orjson": _has_orjson()},
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    results["meets_ratio"] = bool(results["ratio_zero_loss_rate"]
                                  and results["ratio_zero_loss_rate"] >= TARGET_RATIO
                                  and results["ratio_zero_loss_rate_flowd_go"]
                                  and results["ratio_zero_loss_rate_flowd_go"] >= TARGET_RATIO)
    print()
    print(f"zero-loss rate  ours {ours['max_zero_loss_rate_per_s']:>8,}/s   reference "
          f"{ref['max_zero_loss_rate_per_s']:>8,}/s   ratio {results['ratio_zero_loss_rate']}x   "
          f"(loss at/below it: {ours['loss_below_stated_rate']} / {ref['loss_below_stated_rate']})")
    print(f"saturation      ours {ours['saturation_per_s'] or 0:>8,}/s   reference "
          f"{ref['saturation_per_s'] or 0:>8,}/s   ratio {results['ratio_saturation']}x")
    print(f"per CPU-second  ours {ours['per_cpu_second'] or 0:>8,}   reference "
          f"{ref['per_cpu_second'] or 0:>8,}   ratio {results['ratio_per_cpu_second']}x; flowd-go bare "
          f"JSON {ours_go['per_cpu_second'] or 0:,} (ratio {results['ratio_per_cpu_second_flowd_go']}x)")
    print(f"flowd-go bare JSON: zero-loss {ours_go['max_zero_loss_rate_per_s']:>8,}/s "
          f"(ratio {results['ratio_zero_loss_rate_flowd_go']}x), saturation "
          f"{ours_go['saturation_per_s'] or 0:>8,}/s (ratio {results['ratio_saturation_flowd_go']}x)")
    print(f"target {TARGET_RATE:,}/s with zero loss and {TARGET_RATIO}x the reference: "
          f"{'met' if results['meets_target'] and results['meets_ratio'] else 'NOT met'}"
          f"   ({results['wall_seconds']} s)")
    write_figures(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
