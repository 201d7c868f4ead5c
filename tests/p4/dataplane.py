"""Packet-test harness for the P4 program: one test code path for every target.

A target is a switch process (the built-in `softswitch`, or BMv2 `simple_switch_grpc`)
attached to veth pairs (labnet.veth.VethPorts): the switch takes one end (port N), the test
sends and captures on the other. Both targets are started with the same simple_switch_grpc
flags and programmed over P4Runtime, so the tests cannot tell them apart.
"""
from __future__ import annotations

from controller.launcher import simple_switch_args, switch_argv0
from labnet.veth import VethPorts

CPU_PORT = 255


def switch_command(kind: str, ports: VethPorts, grpc_port: int, device_id: int = 1,
                   json_path: str | None = None) -> list[str]:
    """The controller's own launch command line, for either target."""
    return simple_switch_args(kind, switch_argv0(kind), device_id=device_id,
                              grpc_addr=f"127.0.0.1:{grpc_port}", cpu_port=CPU_PORT,
                              interfaces={p: ports.switch_iface(p) for p in ports.ports},
                              json_path=json_path)
