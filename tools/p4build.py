#!/usr/bin/env python3
"""Compile the P4 program with p4c-bm2-ss and record which sources it came from.

`make p4` runs this. The outputs (BMv2 JSON, P4Info text) are committed, so the rest of
the project works where p4c is absent; sources.sha256 lets a test catch outputs that are
stale relative to p4src/.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
P4SRC = ROOT / "p4src"
TARGETS = {"v1model": P4SRC / "v1model" / "scitags.p4"}
BUILD = P4SRC / "build"


def sources_hash() -> str:
    """sha256 over every .p4 source (path and content), in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(P4SRC.rglob("*.p4")):
        if BUILD in path.parents:
            continue
        digest.update(str(path.relative_to(P4SRC)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def find_p4c() -> str | None:
    return shutil.which("p4c-bm2-ss") or next(
        (p for p in ["/opt/p4/bin/p4c-bm2-ss"] if os.access(p, os.X_OK)), None)


def compile_v1model(p4c: str, outdir: pathlib.Path) -> subprocess.CompletedProcess:
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [p4c, "--std", "p4-16", "--target", "bmv2", "--arch", "v1model",
           "-o", str(outdir / "scitags.json"),
           "--p4runtime-files", str(outdir / "scitags.p4info.txtpb"),
           str(TARGETS["v1model"].relative_to(ROOT))]
    # Relative source path, so the JSON's "program" names no machine-specific folder.
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true",
                    help="only say whether the committed outputs match the sources")
    args = ap.parse_args()
    outdir = BUILD / "v1model"
    stamp = outdir / "sources.sha256"
    current = sources_hash()
    if args.check:
        recorded = stamp.read_text().split()[0] if stamp.exists() else "(none)"
        fresh = recorded == current
        print(f"p4 outputs {'fresh' if fresh else 'STALE'}: sources {current[:12]}, "
              f"recorded {recorded[:12]}")
        return 0 if fresh else 1
    p4c = find_p4c()
    if p4c is None:
        print(f"p4c-bm2-ss not found (PATH or /opt/p4/bin): keeping the committed outputs in "
              f"{outdir.relative_to(ROOT)}")
        return 0
    print(f"compiling {TARGETS['v1model'].relative_to(ROOT)} with {p4c}")
    result = compile_v1model(p4c, outdir)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        print(f"p4c failed (exit {result.returncode})", file=sys.stderr)
        return 1
    stamp.write_text(f"{current}  p4src/**/*.p4\n")
    print(f"wrote {outdir.relative_to(ROOT)}/scitags.json, scitags.p4info.txtpb, sources.sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main())
