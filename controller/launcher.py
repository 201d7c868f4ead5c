"""Start a switch process (BMv2 simple_switch_grpc or the built-in `softswitch`) when none
listens at a switch's gRPC address. Both take simple_switch_grpc's flags (target options
after `--`)."""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

from controller.topology import SwitchSpec

log = logging.getLogger(__name__)

BMV2_DEFAULT = "/opt/p4/bin/simple_switch_grpc"


class LaunchError(RuntimeError):
    """A switch process could not be started; names the switch, command and cause."""


def is_listening(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def switch_binary(kind: str, override: str | None = None) -> str:
    if override:
        return override
    if kind == "bmv2":
        return shutil.which("simple_switch_grpc") or BMV2_DEFAULT
    return shutil.which("softswitch") or str(Path(__file__).resolve().parent.parent / ".venv/bin/softswitch")


def switch_command(kind: str, spec: SwitchSpec, binary: str) -> list[str]:
    interfaces = [f"{port}@{ifname}" for port, ifname in
                  sorted((spec.options.get("interfaces") or {}).items())]
    ifargs = [a for i in interfaces for a in ("-i", i)]
    addr = spec.grpc_addr
    cpu = [] if spec.cpu_port is None else ["--cpu-port", str(spec.cpu_port)]
    # This BMv2 build has no Thrift server; a `thrift_port` switch option adds the flag.
    thrift = ["--thrift-port", str(spec.options["thrift_port"])] if "thrift_port" in spec.options else []
    return [binary, "--device-id", str(spec.device_id), *thrift, *ifargs,
            "--no-p4", "--", "--grpc-server-addr", addr, *cpu]


def launch(kind: str, spec: SwitchSpec, log_dir: Path, binary: str | None = None,
           wait_s: float = 15.0) -> subprocess.Popen:
    exe = switch_binary(kind, binary)
    if not Path(exe).exists() and shutil.which(exe) is None:
        raise LaunchError(f"switch {spec.name}: {kind} executable {exe} not found")
    cmd = switch_command(kind, spec, exe)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    log.info("switch %s: launched %s (pid %d), log %s", spec.name, " ".join(cmd), proc.pid, log_path)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"switch {spec.name}: {' '.join(cmd)} exited with {proc.returncode}; "
                              f"see {log_path}")
        if is_listening(spec.grpc_host, spec.grpc_port):
            return proc
        time.sleep(0.1)
    proc.terminate()
    raise LaunchError(f"switch {spec.name}: no gRPC server on {spec.grpc_addr} after {wait_s:g}s; see {log_path}")


def terminate(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
