"""Mininet switches that are P4 target processes: the built-in `softswitch` or BMv2
`simple_switch_grpc`, started with `-i PORT@IFACE` per link and a P4Runtime gRPC server on
127.0.0.1:grpc_port. Both start without a pipeline (`--no-p4`): the controller pushes it.

No OVS, no OpenFlow controller: Mininet only builds the veths; the switch process reads
and writes them with raw sockets (in the root namespace, like Mininet's kernel switches).
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

from mininet.node import Switch

from controller import launcher

START_TIMEOUT_S = 30.0


class SwitchStartError(RuntimeError):
    """A switch process that exited or never opened its gRPC port; carries its log tail."""


def bmv2_available() -> bool:
    return launcher.bmv2_installed()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class P4ProcessSwitch(Switch):
    """Base class: subclasses say which command line starts the target."""

    target = "p4"

    def __init__(self, name: str, *, device_id: int, grpc_port: int, cpu_port: int | None = 255,
                 log_dir: str = "/tmp/labnet", on_pid: Callable[[str, int], None] | None = None,
                 **params: object) -> None:
        super().__init__(name, dpid=f"{device_id:016x}", **params)
        self.device_id = device_id
        self.grpc_port = grpc_port
        self.cpu_port = cpu_port
        self.log_path = Path(log_dir) / f"{name}.{self.target}.log"
        self.on_pid = on_pid
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def setup(cls) -> None:  # Mininet hook; nothing to check globally (no OVS module needed)
        pass

    def interfaces(self) -> dict[int, str]:
        return {port: intf.name for port, intf in self.intfs.items() if intf.name != "lo"}

    def simple_switch_args(self, argv0: list[str], thrift_port: int | None = None) -> list[str]:
        """The one command-line builder (controller.launcher), for this switch's ports."""
        return launcher.simple_switch_args(
            "bmv2" if self.target == "bmv2" else "soft", argv0, device_id=self.device_id,
            grpc_addr=f"127.0.0.1:{self.grpc_port}", interfaces=self.interfaces(),
            cpu_port=self.cpu_port, thrift_port=thrift_port)

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, controllers: list[object]) -> None:  # noqa: ARG002 - no OpenFlow controllers
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if launcher.is_listening("127.0.0.1", self.grpc_port):
            raise SwitchStartError(f"{self.name}: 127.0.0.1:{self.grpc_port} is already in use "
                                   "(another switch or lab running?)")
        argv = self.command()
        with open(self.log_path, "wb") as log:
            log.write((" ".join(argv) + "\n").encode())
            log.flush()
            # Own session: Ctrl-C in the terminal reaches the lab, which stops us in order.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        if self.on_pid is not None:
            self.on_pid(self.name, self.proc.pid)
        if launcher.wait_listening("127.0.0.1", self.grpc_port, self.proc, START_TIMEOUT_S):
            if self.on_pid is not None:  # again: now the command line is readable
                self.on_pid(self.name, self.proc.pid)
            return
        if self.proc.poll() is not None:
            raise SwitchStartError(f"{self.name}: {argv[0]} exited with {self.proc.returncode}; "
                                   f"log {self.log_path}:\n{_tail(self.log_path)}")
        raise SwitchStartError(f"{self.name}: no gRPC server on 127.0.0.1:{self.grpc_port} after "
                               f"{START_TIMEOUT_S:.0f}s; log {self.log_path}:\n{_tail(self.log_path)}")

    def stop_process(self) -> None:
        if self.proc is None:
            return
        launcher.stop_process(self.proc)
        self.proc = None

    def stop(self, deleteIntfs: bool = True) -> None:  # noqa: N803 - Mininet's signature
        self.stop_process()
        super().stop(deleteIntfs)

    def connected(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and launcher.is_listening("127.0.0.1", self.grpc_port)


class SoftSwitch(P4ProcessSwitch):
    """The built-in Python v1model target."""

    target = "softswitch"

    def command(self) -> list[str]:
        return self.simple_switch_args(launcher.switch_argv0("soft"))


class Bmv2Switch(P4ProcessSwitch):
    """BMv2 simple_switch_grpc; thrift port and notification socket made unique per lab."""

    target = "bmv2"

    def thrift_port(self) -> int:
        """Derived from the gRPC port (unique per lab), never BMv2's shared default 9090."""
        port = self.grpc_port - 40000
        return port if port >= 1024 else self.grpc_port + 10000

    def command(self) -> list[str]:
        if not launcher.bmv2_installed():
            raise SwitchStartError(f"{self.name}: BMv2 not installed ({launcher.bmv2_binary()} missing)")
        return self.simple_switch_args([launcher.bmv2_binary()], thrift_port=self.thrift_port())


SWITCH_CLASSES: dict[str, type[P4ProcessSwitch]] = {"soft": SoftSwitch, "bmv2": Bmv2Switch}


def pick_switch(kind: str) -> str:
    """`auto`: BMv2 when installed, else the built-in target."""
    if kind == "auto":
        return "bmv2" if bmv2_available() else "soft"
    if kind not in SWITCH_CLASSES:
        raise ValueError(f"unknown switch kind {kind!r} (soft, bmv2, auto)")
    return kind
