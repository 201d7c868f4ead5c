#!/usr/bin/env python3
"""Compile the P4 program for every target a compiler is installed for, and record which
sources each output came from.

`make p4` runs this. The outputs are committed, so the rest of the project works where the
compilers are absent; each target's sources.sha256 lets a test catch outputs that are stale
relative to p4src/.

  v1model  p4c-bm2-ss                           build/v1model: scitags.json, scitags.p4info.txtpb
  tna      bf-p4c --target tofino  --arch tna   build/tna:  scitags.p4info.txtpb, bfrt.json,
  t2na     bf-p4c --target tofino2 --arch t2na              pipe/context.json, pipe/tofino[2].bin,
                                                            resources.json (what the chip gives)
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
P4SRC = ROOT / "p4src"
BUILD = P4SRC / "build"
STAMP = "sources.sha256"


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    source_dir: str          # p4src/<source_dir>/scitags.p4, hashed with p4src/shared/
    compiler: str            # executable name
    compiler_paths: tuple[str, ...]
    args: tuple[str, ...]
    binary: str = ""         # the Tofino binary's name under pipe/

    @property
    def program(self) -> pathlib.Path:
        return P4SRC / self.source_dir / "scitags.p4"

    @property
    def outdir(self) -> pathlib.Path:
        return BUILD / self.name

    def find_compiler(self) -> str | None:
        return shutil.which(self.compiler) or next(
            (p for p in self.compiler_paths if os.access(p, os.X_OK)), None)


TOFINO_PATHS = ("/opt/p4/tofino/bin/bf-p4c", "/opt/p4/bin/bf-p4c")
# bf-p4c's annotation parser does not list @controller_header, which its own P4Runtime
# generator honours (the TNA P4Info has controller_packet_metadata: test_p4info_parity), so it
# warns "Unknown annotation" on packet_in/packet_out. Silenced here only: the v1model compile
# of the same sources still reports any annotation that is really unknown.
TOFINO_QUIRKS = ("--Wdisable=unknown",
                 # counters as P4Runtime counters, not barefoot.* externs: what Stratum serves
                 # and the controller reads, the same names as on v1model
                 "--p4runtime-force-std-externs")
TARGETS = {
    "v1model": Target("v1model", "v1model", "p4c-bm2-ss", ("/opt/p4/bin/p4c-bm2-ss",),
                      ("--std", "p4-16", "--target", "bmv2", "--arch", "v1model")),
    "tna": Target("tna", "tna", "bf-p4c", TOFINO_PATHS,
                  ("--std", "p4-16", "--target", "tofino", "--arch", "tna", "-g", *TOFINO_QUIRKS),
                  "tofino.bin"),
    "t2na": Target("t2na", "tna", "bf-p4c", TOFINO_PATHS,
                   ("--std", "p4-16", "--target", "tofino2", "--arch", "t2na", "-g", *TOFINO_QUIRKS),
                   "tofino2.bin"),
}

# What a Tofino compile keeps (relative to its output folder); the rest (logs, graphs, .bfa)
# is the compiler's working material.
TOFINO_KEEP = ("scitags.p4info.txtpb", "bfrt.json", "pipe/context.json", "resources.json")
# Kept gzipped (<name>.gz, no timestamp: the same sources give the same bytes): each is over
# 1 MiB as the compiler writes it; controller/drivers/tofino_pipeline.py reads either form.
TOFINO_GZIPPED = ("pipe/context.json", "pipe/tofino.bin", "pipe/tofino2.bin")


def stored_name(rel: str) -> str:
    """Where a kept output is in build/<target>/ (gzipped ones get .gz)."""
    return rel + ".gz" if rel in TOFINO_GZIPPED else rel
TOFINO_KEEP_IF_MADE = ("scitags.conf", "manifest.json")   # bf_switchd's conf; the compile manifest


def sources_hash(target: Target | str = "v1model") -> str:
    """sha256 over the target's .p4 sources (shared/ and its own folder): path and content."""
    t = TARGETS[target] if isinstance(target, str) else target
    digest = hashlib.sha256()
    for folder in ("shared", t.source_dir):
        for path in sorted((P4SRC / folder).rglob("*.p4")):
            digest.update(str(path.relative_to(P4SRC)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def recorded_hash(target: Target) -> str | None:
    stamp = target.outdir / STAMP
    return stamp.read_text().split()[0] if stamp.exists() else None


def compile_target(target: Target, compiler: str, outdir: pathlib.Path) -> subprocess.CompletedProcess:
    """Compile into outdir. Source paths are relative, so no output names a machine's folder."""
    outdir.mkdir(parents=True, exist_ok=True)
    program = str(target.program.relative_to(ROOT))
    if target.name == "v1model":
        cmd = [compiler, *target.args, "-o", str(outdir / "scitags.json"),
               "--p4runtime-files", str(outdir / "scitags.p4info.txtpb"), program]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    with tempfile.TemporaryDirectory(prefix=f"p4build-{target.name}-") as work:
        # The P4Info in binary: bf-p4c's own text printer logs a warning on the barefoot.*
        # Any it cannot expand (PortMetadata); written as text here, byte for byte the same
        # from the same binary.
        cmd = [compiler, *target.args, "-o", work,
               "--p4runtime-files", f"{work}/scitags.p4info.bin", program]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if result.returncode == 0:
            work_dir = pathlib.Path(work)
            p4info_as_text(work_dir / "scitags.p4info.bin", work_dir / "scitags.p4info.txtpb")
            (work_dir / "resources.json").write_text(
                json.dumps(resource_summary(work_dir, target), indent=1, sort_keys=True) + "\n")
            made = [r for r in TOFINO_KEEP_IF_MADE if (work_dir / r).exists()]
            for rel in (*TOFINO_KEEP, f"pipe/{target.binary}", *made):
                dest = outdir / stored_name(rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if rel in TOFINO_GZIPPED:
                    dest.write_bytes(gzip.compress((work_dir / rel).read_bytes(), 9, mtime=0))
                    (outdir / rel).unlink(missing_ok=True)
                else:
                    shutil.copyfile(work_dir / rel, dest)
        return result


def p4info_as_text(binary: pathlib.Path, text: pathlib.Path) -> None:
    """The P4Info in protobuf text format (the P4Runtime bindings of the virtualenv)."""
    from google.protobuf import text_format
    from p4.config.v1 import p4info_pb2
    info = p4info_pb2.P4Info()
    info.ParseFromString(binary.read_bytes())
    text.write_text(text_format.MessageToString(info))


def resource_summary(work: pathlib.Path, target: Target) -> dict:
    """What the program takes of the chip, small enough to read in a review: stages used of
    those available, SRAM / TCAM / map RAM blocks used of those available, PHV bits, and per
    match table its entries and stages. From the compiler's pipe/logs/resources.json (blocks
    per stage), pipe/logs/metrics.json (PHV) and pipe/context.json (tables)."""
    mau = json.loads((work / "pipe/logs/resources.json").read_text())["resources"]["mau"]
    stages = mau["mau_stages"]

    def used(stage: dict, kind: str, items: str) -> int:
        return len(stage.get(kind, {}).get(items, []))

    def available(stage: dict, kind: str, rows: str = "nRows", cols: str = "nColumns") -> int:
        s = stage.get(kind, {})
        return s.get(rows, 0) * s.get(cols, 1)

    summary: dict = {"target": target.name, "stages_available": mau["nStages"],
                     "stages_used": sum(1 for s in stages if s.get("logical_tables", {}).get("ids"))}
    for label, kind, items, rows, cols in (("sram", "rams", "srams", "nRows", "nColumns"),
                                           ("tcam", "tcams", "tcams", "nRows", "nColumns"),
                                           ("map_ram", "map_rams", "maprams", "nRows", "nUnits")):
        summary[f"{label}_blocks_used"] = sum(used(s, kind, items) for s in stages)
        summary[f"{label}_blocks_available"] = available(stages[0], kind, rows, cols) * mau["nStages"]
    phv = json.loads((work / "pipe/logs/metrics.json").read_text()).get("phv", {})
    summary["phv_bits_occupied"] = {kind: sum(c.get("bits_occupied", 0) for c in phv.get(kind, []))
                                    for kind in ("normal", "tagalong", "mocha", "dark") if phv.get(kind)}
    context = json.loads((work / "pipe/context.json").read_text())
    tables = []
    for t in context["tables"]:
        if t.get("table_type") != "match" or t["name"].startswith("tbl_") or "$" in t["name"]:
            continue
        stage_tables = t.get("match_attributes", {}).get("stage_tables", [])
        tables.append({"name": t["name"], "entries": t.get("size", 0),
                       "stages": sorted({st["stage_number"] for st in stage_tables})})
    summary["tables"] = sorted(tables, key=lambda t: t["name"])
    return summary


def write_stamp(target: Target, digest: str) -> None:
    (target.outdir / STAMP).write_text(f"{digest}  p4src/shared/**/*.p4 p4src/{target.source_dir}/**/*.p4\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="only say whether the committed outputs match the sources (exit 1 if not)")
    ap.add_argument("--target", action="append", choices=sorted(TARGETS),
                    help="build only these targets (repeatable; default: every target)")
    args = ap.parse_args()
    targets = [TARGETS[n] for n in (args.target or TARGETS)]
    if args.check:
        stale = 0
        for t in targets:
            current, recorded = sources_hash(t), recorded_hash(t)
            fresh = recorded == current
            stale += not fresh
            print(f"{t.name}: outputs {'fresh' if fresh else 'STALE'} (sources {current[:12]}, "
                  f"recorded {(recorded or '(none)')[:12]})")
        return 1 if stale else 0
    failed = 0
    for t in targets:
        compiler = t.find_compiler()
        if compiler is None:
            print(f"{t.name}: {t.compiler} not found (PATH, {', '.join(t.compiler_paths)}): "
                  f"keeping the committed outputs in {t.outdir.relative_to(ROOT)}")
            continue
        print(f"{t.name}: compiling {t.program.relative_to(ROOT)} with {compiler}", flush=True)
        started = time.monotonic()
        result = compile_target(t, compiler, t.outdir)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            print(f"{t.name}: compiler failed (exit {result.returncode})", file=sys.stderr)
            failed += 1
            continue
        write_stamp(t, sources_hash(t))
        print(f"{t.name}: wrote {t.outdir.relative_to(ROOT)} in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
