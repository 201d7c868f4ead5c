#!/usr/bin/env python3
"""Run every benchmark in bench/ and gather their figures.

Each bench/bench_*.py prints its figures and writes them as JSON to --out. This runner
calls them one after another (they all want the same two cores), then prints one summary
and writes bench-results/summary.json.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out-dir", default="bench-results")
    ap.add_argument("names", nargs="*", help="only these benchmarks (e.g. firefly softswitch)")
    args = ap.parse_args()
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    summary: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    failed = []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        out = out_dir / f"{name}.json"
        print(f"==> {name}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(script), "--out", str(out)])
        took = time.monotonic() - t0
        if proc.returncode != 0 or not out.exists():
            failed.append(name)
            summary[name] = {"error": f"exit {proc.returncode}", "seconds": round(took, 1)}
            continue
        summary[name] = json.loads(out.read_text())
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"figures written to {out_dir}/ (summary.json)")
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
