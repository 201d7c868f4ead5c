"""Processes the lab started, identified so that cleanup never ends anyone else's.

A fingerprint is (pid, start time, command line): a pid reused by an unrelated process
after a crash has another start time and is left alone.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Iterable


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime in clock ticks


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def fingerprint(pid: int) -> dict[str, Any]:
    return {"pid": pid, "start": _start_time(pid), "cmdline": _cmdline(pid)}


def matches(fp: dict[str, Any]) -> bool:
    """The recorded process is still the one running under that pid."""
    pid = fp.get("pid")
    return isinstance(pid, int) and pid > 1 and _start_time(pid) == fp.get("start") is not None


def netns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def pids_in_netns(netns: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and netns_of(int(entry.name)) == netns:
            found.append(int(entry.name))
    return found


def terminate(pids: Iterable[int], timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL what is still there after `timeout`."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_start_time(p) is not None for p in pids):
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_in_netns(netns: str | None, exclude: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
    """End every process in a lab host's namespace (never in our own namespace)."""
    if not netns or netns == netns_of(os.getpid()):
        return []
    pids = [p for p in pids_in_netns(netns) if p not in exclude]
    terminate(pids)
    return pids


def kill_fingerprint(fp: dict[str, Any]) -> bool:
    if not matches(fp):
        return False
    terminate([fp["pid"]])
    return True
