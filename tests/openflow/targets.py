"""The two switch targets behind one test interface: (driver, net) for OVS and for P4.

`net` sends frames from a named host and reports what each host received, whether hosts are
namespaces on an OVS bridge (ovslab) or veth ends of the P4 softswitch (labnet.veth).
"""
from __future__ import annotations

from dataclasses import dataclass

from labnet.veth import VethPorts


@dataclass
class VethNet:
    """labnet.veth.VethPorts addressed by host name, like OvsLab."""

    veth: VethPorts
    ports: dict[str, int]

    def sync(self) -> None:
        """P4 table writes take effect before the write returns: nothing to wait for."""

    def send(self, host: str, frame: bytes, count: int = 1) -> None:
        for _ in range(count):
            self.veth.send(self.ports[host], frame)

    def drain(self) -> None:
        self.veth.drain()

    def receive(self, timeout: float = 1.0, until: int | None = None) -> dict[str, list[bytes]]:
        got = self.veth.receive(timeout=timeout, until=until)
        return {host: got.get(port, []) for host, port in self.ports.items()}
