#!/usr/bin/env python3
"""IPFIX export figures (controller/ipfix), against a real local collector (nfdump's nfcapd
on loopback, whose own count and sequence check decide what arrived):

- export rate: firefly flow records submitted to the exporter at offered rates stepping up
  (and once unpaced); the stated rate is the highest achieved rate of the steps at which
  nfcapd received every record (its flow count equals what was submitted, no sequence
  errors), each lower step lossless too;
- export cost on a counter poll with --flows live firefly flows (default 65,536): the
  controller's poll processing (controller.accounting.Accounting.apply_snapshot, then the poll
  listeners through controller.hooks.Hooks) on one switch reading in which every flow moved,
  timed without and with the IPFIX listener in the same run (alternating rounds), for a poll
  where no flow is due for a record (bookkeeping only) and one where every flow's active
  timeout expires at once (--flows records queued in that poll; the sender thread's time to
  send them after the poll is given too: it shares the interpreter). The switch read itself
  (gRPC) is the same with and without export and is not part of these times
  (bench_controller.py measures it).

Prints the figures and writes them as JSON to --out (default bench-results/ipfix.json).
"""
from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import write_figures  # noqa: E402
from controller.accounting import Accounting  # noqa: E402
from controller.drivers.base import CounterSnapshot, Counts, FlowKey  # noqa: E402
from controller.events import FlowEvent  # noqa: E402
from controller.hooks import Hooks  # noqa: E402
from controller.ipfix.encoding import FlowRecord  # noqa: E402
from controller.ipfix.exporter import IpfixExporter  # noqa: E402
from controller.ipfix.feature import IpfixExport, IpfixSettings  # noqa: E402
from controller.store import Store, TotalKey  # noqa: E402
from tests.ipfix.collectors import HAVE_NFDUMP, MISSING_NFDUMP, Nfcapd  # noqa: E402

RATE_LADDER = [10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000]
STEP_RECORDS = 100_000
COLLECTOR_BUFFER = 4 << 20  # nfcapd -B: a 4 MiB receive buffer (net.core.rmem_max here)


def flow_records(n: int) -> list[FlowRecord]:
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        v6 = i % 2 == 1
        src = (ipaddress.IPv6Address("2001:db8::") + i) if v6 else (ipaddress.IPv4Address("10.0.0.0") + i)
        dst = ipaddress.ip_address("2001:db8:1::1" if v6 else "192.0.2.1")
        out.append(FlowRecord(1 + i % 4, f"s{1 + i % 4}", src, dst, 6, 1024 + i % 60000, 443, now - 60_000,
                              now, i % 1000 + 1, (i % 1000 + 1) * 1400, i % 1000 + 1,
                              (i % 1000 + 1) * 1400, 2, 1 + i % 14, 1 + i % 4, 0x30038 if v6 else 0))
    return out


def export_step(records: list[FlowRecord], rate: float | None, workdir: Path) -> dict:
    """Submit all records at `rate` per second (None: as fast as submit() goes) to nfcapd."""
    collector = Nfcapd(workdir, socket_buffer=COLLECTOR_BUFFER).start()
    exporter = IpfixExporter([("127.0.0.1", collector.port)], queue_size=len(records)).start()
    chunk = 500
    t0 = time.perf_counter()
    for start in range(0, len(records), chunk):
        if rate is not None:
            wait = t0 + start / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        for rec in records[start:start + chunk]:
            exporter.submit(rec)
    flushed = exporter.flush(120)
    took = time.perf_counter() - t0
    exporter.stop()
    time.sleep(2.0)  # nfcapd reads what is still in its socket buffer before it is stopped
    collector.stop()
    summary = collector.summary()
    got = int(summary.split("Flows: ")[1].split(",")[0]) if "Flows: " in summary else 0
    seq_errors = int(summary.split("Sequence Errors: ")[1].split(",")[0]) if "Sequence Errors" in summary else -1
    st = exporter.status()
    return {"offered_per_s": rate, "records": len(records), "received": got,
            "sequence_errors": seq_errors, "lossless": flushed and got == len(records) and seq_errors == 0,
            "achieved_per_s": round(len(records) / took), "exporter_dropped": st["dropped"],
            "send_dropped": st["collectors"][0]["dropped"], "messages": st["collectors"][0]["messages"]}


def bench_rate(tmp: Path, n: int) -> dict:
    records = flow_records(n)
    steps = []
    unpaced = export_step(records, None, tmp / "unpaced")
    print(f"  unpaced: {unpaced['achieved_per_s']:,} records/s, received {unpaced['received']:,}/{n:,}",
          flush=True)
    best = None
    for i, rate in enumerate(RATE_LADDER):
        step = export_step(records, rate, tmp / f"step{i}")
        steps.append(step)
        print(f"  offered {rate:>7,}/s: achieved {step['achieved_per_s']:>7,}/s, "
              f"received {step['received']:,}/{n:,}, seq errors {step['sequence_errors']}", flush=True)
        if not step["lossless"]:
            break
        best = max(best or 0, step["achieved_per_s"])
    return {"collector": "nfcapd (nfdump)", "records_per_step": n,
            "lossless_records_per_s": best, "unpaced": unpaced, "ladder": steps}


class Poll:
    """One switch's poll processing, as the controller's poller does it (accounting, then the
    poll listeners), over n live firefly flows that all moved since the last poll."""

    def __init__(self, n: int, store: Store) -> None:
        self.keys = [FlowKey(ipaddress.IPv4Address("10.0.0.0") + i, ipaddress.IPv4Address("10.128.0.1"),
                             6, 1000 + i % 50000, 443) for i in range(n)]
        self.accounting = Accounting(store)
        self.flow_counts = {k: {} for k in self.keys}
        self.total_key = TotalKey("s1", "firefly", 3, 2, "cms", "Cache", "bench")
        self.readings = 0
        self.taken_at = time.time()

    def flow_of(self, key: FlowKey):
        return self.flow_counts[key], self.total_key

    def snapshot(self) -> CounterSnapshot:
        self.readings += 1
        self.taken_at += 2.0
        r = self.readings
        return CounterSnapshot("s1", self.taken_at, {}, {},
                               {k: Counts(r * 10, r * 14_000) for k in self.keys})

    def run(self, hooks: Hooks) -> float:
        snap = self.snapshot()
        t0 = time.perf_counter()
        deltas = self.accounting.apply_snapshot(snap, {}, "bench", self.flow_of, snap.taken_at - 2.0)
        if hooks.poll_listeners:
            hooks.poll(deltas)
        return time.perf_counter() - t0


def bench_poll(tmp: Path, n: int, rounds: int) -> dict:
    store = Store(tmp / "bench.sqlite")
    collector = Nfcapd(tmp / "poll-collector").start()
    out = {"flows": n, "rounds": rounds}
    try:
        for case, active_timeout in (("no_record_due", 3600.0), ("all_records_due", 1.0)):
            poll = Poll(n, store)
            settings = IpfixSettings(collectors=[f"127.0.0.1:{collector.port}"],
                                     active_timeout_s=active_timeout, queue_records=max(65_536, n))
            export = IpfixExport(settings, {"s1": 1}, lambda tag_id: None, clock=lambda: poll.taken_at)
            export.start()
            now = time.time()
            for k in poll.keys:  # the flows' installed events, as the controller sends them
                export.on_flow(FlowEvent("installed", "start", k, 3, 2, {}, {"started": now}, now))
            plain, exporting = Hooks(), Hooks()
            exporting.on_poll(export.on_poll)
            poll.run(plain)  # first reading: baselines
            poll.run(exporting)  # the export's first sight of each flow (its state is made)
            export.exporter.flush(60)
            first_records = export.flows.records["active"]
            without, with_export, drain = [], [], []
            for _ in range(rounds):
                without.append(poll.run(plain))
                with_export.append(poll.run(exporting))
                t0 = time.perf_counter()
                export.exporter.flush(60)
                drain.append(time.perf_counter() - t0)
            st = export.status()
            export.stop()
            out[case] = {
                "active_timeout_s": active_timeout,
                "poll_s_without_export": {"median": round(statistics.median(without), 4),
                                          "runs": [round(x, 4) for x in without]},
                "poll_s_with_export": {"median": round(statistics.median(with_export), 4),
                                       "runs": [round(x, 4) for x in with_export]},
                "sender_s_after_poll": {"median": round(statistics.median(drain), 4),
                                        "runs": [round(x, 4) for x in drain]},
                "records_per_poll": round((st["flow_records"]["active"] - first_records) / rounds),
                "records_sent": st["collectors"][0]["records"], "dropped": st["dropped"]}
            print(f"  {case}: poll {statistics.median(without) * 1000:.1f} ms without export, "
                  f"{statistics.median(with_export) * 1000:.1f} ms with "
                  f"({out[case]['records_per_poll']:,} records per poll; the sender thread "
                  f"then needs {statistics.median(drain) * 1000:.1f} ms to send them)", flush=True)
    finally:
        collector.stop()
        store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/ipfix.json")
    ap.add_argument("--records", type=int, default=STEP_RECORDS, help="records per rate step")
    ap.add_argument("--flows", type=int, default=65_536, help="live flows in the poll figure")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not HAVE_NFDUMP:
        print(f"bench_ipfix: {MISSING_NFDUMP}", file=sys.stderr)
        return 2
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="bench-ipfix-") as tmp:
        print("IPFIX export rate to nfcapd (zero loss):", flush=True)
        results["export_rate"] = bench_rate(Path(tmp), args.records)
        print(f"  => {results['export_rate']['lossless_records_per_s']} records/s with zero loss", flush=True)
        print(f"IPFIX export cost on a counter poll with {args.flows:,} live flows:", flush=True)
        results["poll_cost"] = bench_poll(Path(tmp), args.flows, args.rounds)
    write_figures(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
