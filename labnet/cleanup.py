"""Remove what a lab left behind (after a crash, kill -9, or a failed start).

Reads the run records in /run/labnet/*.json: ends the recorded switch processes, host
shells and every process still in a recorded host namespace, deletes the recorded
switch-side veths. Records whose owner is still running are skipped unless named.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from labnet import procs

RUN_DIR = Path(os.environ.get("LABNET_RUN_DIR", "/run/labnet"))  # one JSON record per running lab


def intf_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def clean_record(record: dict[str, Any]) -> dict[str, list[str]]:
    done: dict[str, list[str]] = {"processes": [], "intfs": []}
    for name, netns in record.get("host_netns", {}).items():
        for pid in procs.kill_in_netns(netns):
            done["processes"].append(f"{name}:{pid}")
    for group in ("extra_pids", "switch_pids", "host_pids"):
        for name, fp in record.get(group, {}).items():
            if procs.kill_fingerprint(fp):
                done["processes"].append(f"{name}:{fp['pid']}")
    for intf in record.get("intfs", []):
        if intf_exists(intf):
            subprocess.run(["ip", "link", "del", intf], capture_output=True)
            done["intfs"].append(intf)
    for name, fp in record.get("switch_pids", {}).items():
        for arg in str(fp.get("cmdline", "")).split():
            if arg.startswith("ipc:///tmp/labnet-"):
                Path(arg[len("ipc://"):]).unlink(missing_ok=True)
    return done


def clean(run_dir: Path, prefixes: Sequence[str] = (), force: bool = False) -> list[dict[str, Any]]:
    results = []
    for path in sorted(run_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        prefix = record.get("prefix", path.stem)
        if prefixes and prefix not in prefixes:
            continue
        owner = record.get("owner_pid")
        owner_alive = isinstance(owner, int) and Path(f"/proc/{owner}").exists()
        if owner_alive and not (force or prefixes):
            results.append({"prefix": prefix, "skipped": f"owner pid {owner} still running"})
            continue
        done = clean_record(record)
        path.unlink(missing_ok=True)
        results.append({"prefix": prefix, **done})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labnet-clean", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefix", nargs="*", help="lab prefixes to clean (default: labs whose owner is gone)")
    parser.add_argument("--force", action="store_true", help="also labs whose owner still runs")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    results = clean(RUN_DIR, args.prefix, args.force)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "skipped" in r:
                print(f"lab {r['prefix']}: skipped ({r['skipped']})")
            else:
                print(f"lab {r['prefix']}: ended {len(r['processes'])} process(es), "
                      f"deleted {len(r['intfs'])} interface(s)")
        if not results:
            print("no lab records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
