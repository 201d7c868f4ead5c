"""Start a switch process (BMv2 simple_switch_grpc or the built-in `softswitch`) when none
listens at a switch's gRPC address. Both take simple_switch_grpc's flags (target options
after `--`).

Also the one place for what every switch-starting caller (controller, lab, tests, bench,
tools) needs: where the P4 tools are (p4_tool, bmv2_binary), whether a TCP port listens
(is_listening, wait_listening), a free port, and stopping a process (stop_process)."""
from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

from controller.topology import SwitchSpec

log = logging.getLogger(__name__)

P4_TOOLS_DIR = Path("/opt/p4/bin")  # where scripts/setup.sh builds BMv2 and p4c
BMV2_ENV = "BMV2_BIN"  # the one variable that names another simple_switch_grpc
BMV2_DEFAULT = str(P4_TOOLS_DIR / "simple_switch_grpc")


class LaunchError(RuntimeError):
    """A switch process could not be started; names the switch, command and cause."""


def p4_tool(name: str, env: str | None = None) -> str | None:
    """An executable of the P4 toolchain (simple_switch_grpc, p4c-bm2-ss, ...): $env when
    set, else on PATH, else in /opt/p4/bin; None when it is not there (or not executable)."""
    if env and os.environ.get(env):
        path = os.environ[env]
        return path if os.access(path, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    path = P4_TOOLS_DIR / name
    return str(path) if os.access(path, os.X_OK) else None


def bmv2_binary() -> str:
    """BMv2's simple_switch_grpc ($BMV2_BIN, PATH, /opt/p4/bin); the expected path when
    absent, for messages (check with bmv2_installed)."""
    return p4_tool("simple_switch_grpc", BMV2_ENV) or os.environ.get(BMV2_ENV) or BMV2_DEFAULT


def bmv2_installed() -> bool:
    return p4_tool("simple_switch_grpc", BMV2_ENV) is not None


def is_listening(host: str, port: int, timeout: float = 0.3) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(host: str, port: int, proc: subprocess.Popen | None = None,
                   timeout: float = 20.0) -> bool:
    """Wait until host:port listens; False on timeout or when proc exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if is_listening(host, port):
            return True
        time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


def switch_binary(kind: str, override: str | None = None) -> str:
    """The executable for a switch kind: BMv2 from PATH or /opt/p4/bin; the built-in target
    from the running virtualenv (next to this Python), else PATH."""
    if override:
        return override
    if kind == "bmv2":
        return bmv2_binary()
    beside = Path(sys.executable).with_name("softswitch")
    return str(beside) if beside.exists() else (shutil.which("softswitch") or "softswitch")


def switch_argv0(kind: str, override: str | None = None) -> list[str]:
    """The command that starts a switch kind (the built-in target also runs as a module of
    this Python when its console script is not installed)."""
    exe = switch_binary(kind, override)
    if kind == "soft" and not override and shutil.which(exe) is None:
        return [sys.executable, "-m", "softswitch.cli"]
    return [exe]


@functools.cache
def bmv2_has_thrift(binary: str) -> bool:
    """BMv2 built with Thrift opens a Thrift server (default port 9090, shared by every
    instance): such a build needs its own --thrift-port per switch."""
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--thrift-port" in out.stdout + out.stderr


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def simple_switch_args(kind: str, binary: str | list[str], *, device_id: int, grpc_addr: str,
                       interfaces: Mapping[int, str], cpu_port: int | None = 255,
                       json_path: str | None = None, thrift_port: int | None = None) -> list[str]:
    """simple_switch_grpc's command line (target options after `--`), for BMv2 or the
    built-in target, which takes the same flags. The one place that builds it."""
    cmd = [binary] if isinstance(binary, str) else list(binary)
    cmd += ["--device-id", str(device_id)]
    for port, ifname in sorted(interfaces.items()):
        cmd += ["-i", f"{port}@{ifname}"]
    if kind == "bmv2":
        # Per-instance Thrift port and notification socket: BMv2's defaults (9090,
        # /tmp/bmv2-<device id>-...) collide when several switches run on one machine.
        if bmv2_has_thrift(cmd[0]):
            cmd += ["--thrift-port", str(thrift_port or free_tcp_port())]
        port = grpc_addr.rsplit(":", 1)[-1]
        cmd += ["--notifications-addr", f"ipc:///tmp/bmv2-{port}-{device_id}-notifications.ipc"]
    cmd += [json_path] if json_path else ["--no-p4"]
    cmd += ["--", "--grpc-server-addr", grpc_addr]
    if cpu_port is not None:
        cmd += ["--cpu-port", str(cpu_port)]
    return cmd


def switch_command(kind: str, spec: SwitchSpec, binary: str | list[str]) -> list[str]:
    return simple_switch_args(
        kind, binary, device_id=spec.device_id, grpc_addr=spec.grpc_addr,
        interfaces=spec.options.get("interfaces") or {}, cpu_port=spec.cpu_port,
        thrift_port=spec.options.get("thrift_port"))


def launch(kind: str, spec: SwitchSpec, log_dir: Path, binary: str | None = None,
           wait_s: float = 15.0) -> subprocess.Popen:
    argv0 = switch_argv0(kind, binary)
    if shutil.which(argv0[0]) is None:
        raise LaunchError(f"switch {spec.name}: {kind} executable {argv0[0]} not found")
    cmd = switch_command(kind, spec, argv0)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    log.info("switch %s: launched %s (pid %d), log %s", spec.name, " ".join(cmd), proc.pid, log_path)
    if wait_listening(spec.grpc_host, spec.grpc_port, proc, wait_s):
        return proc
    if proc.poll() is not None:
        raise LaunchError(f"switch {spec.name}: {' '.join(cmd)} exited with {proc.returncode}; "
                          f"see {log_path}")
    stop_process(proc)
    raise LaunchError(f"switch {spec.name}: no gRPC server on {spec.grpc_addr} after {wait_s:g}s; see {log_path}")


def terminate(procs: list[subprocess.Popen], timeout: float = 5.0) -> None:
    """stop_process for several at once (all get SIGTERM first)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        stop_process(p, timeout)
