"""The controller as a lab process: `controller start` against the lab's switches.

The lab starts the switches itself, so the controller never launches any (`--launch never`);
it listens for fireflies in band only (packet-ins from the switches: hosts live in their own
namespaces), on its own API port and state directory so two labs do not share anything.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controller import launcher
from controller.cmd_query import ApiUnavailable, api_get

DEFAULT_API = "127.0.0.1:9180"
ROOT = Path(__file__).resolve().parent.parent


def program_dir() -> Path:
    """The compiled P4 program: p4src/build/v1model, or $LABNET_P4_BUILD (a test build)."""
    return Path(os.environ.get("LABNET_P4_BUILD") or ROOT / "p4src" / "build" / "v1model")


class ControllerStartError(RuntimeError):
    """The controller exited or never programmed the switches; carries its log tail."""


def controller_command() -> list[str]:
    beside = Path(sys.executable).with_name("controller")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "controller.cli"]


class ControllerProcess:
    def __init__(self, topology_file: str | Path, switch: str, *, api: str = DEFAULT_API,
                 state_dir: str | Path, log_path: str | Path, mirror: list[str] | None = None,
                 poll_interval: float = 1.0, extra: list[str] | None = None) -> None:
        self.api = api
        self.poll_interval = poll_interval
        self.log_path = Path(log_path)
        self.argv = [*controller_command(), "-v", "start", "--topology", str(topology_file),
                     "--switch", switch, "--launch", "never", "--api", api,
                     "--state-dir", str(state_dir), "--firefly-listen", "off",
                     "--poll-interval", str(poll_interval), *(extra or [])]
        build = program_dir()
        self.argv += ["--p4info", str(build / "scitags.p4info.txtpb"),
                      "--device-config", str(build / "scitags.json")]
        for tag in mirror or []:
            self.argv += ["--mirror", tag]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            log.write((" ".join(self.argv) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControllerStartError(f"controller exited with {self.proc.returncode}; "
                                           f"log {self.log_path}:\n{self.log_tail()}")
            try:
                status = self.status()
                switches = status.get("switches", {})
                states = {n: s.get("status") for n, s in switches.items()}
                if switches and all(s.get("status") == "ready" for s in switches.values()):
                    return
                last = f"switches {states}"
            except ApiUnavailable as exc:
                last = str(exc)
            time.sleep(0.3)
        raise ControllerStartError(f"controller not ready after {timeout:.0f}s ({last}); "
                                   f"log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def status(self) -> dict[str, Any]:
        return api_get(self.api, "/api/v1/status")

    def counters(self, **params: str | None) -> list[dict[str, Any]]:
        return api_get(self.api, "/api/v1/counters", params)["counters"]

    def settled_counters(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Counters once two successive polls agree (everything sent has been counted)."""
        poll = self.poll_interval

        def shape(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
            return [(r["packets"], r["bytes"]) for r in rows]

        time.sleep(poll * 1.5)
        last = self.counters()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(poll * 1.5)
            now = self.counters()
            if shape(now) == shape(last):
                return now
            last = now
        return last

    def flows(self) -> dict[str, Any]:
        return api_get(self.api, "/api/v1/flows", {"recent": "100"})

    def counters_table(self) -> str:
        out = subprocess.run([*controller_command(), "counters", "--api", self.api],
                             capture_output=True, text=True, timeout=30)
        return out.stdout + out.stderr

    def stop(self) -> None:
        if self.proc is None:
            return
        launcher.stop_process(self.proc, timeout=15)
        self.proc = None
