"""A throwaway network namespace holding veth pairs s<N> (switch side) / t<N> (test side),
with the test sockets opened inside it: labnet.veth.VethPorts addressed the way the
softswitch tests use it. Deleting the namespace deletes every veth in it."""
from __future__ import annotations

import secrets

from labnet.veth import VethPorts


class NetLab:
    """Namespace `ns` with veth pairs s<N> / t<N>; the switch is run inside the namespace."""

    def __init__(self, ports: list[int]) -> None:
        self.ns = f"sst-{secrets.token_hex(3)}"
        self.ports = ports
        # promiscuous like the switch's own ports: the tests send to arbitrary MACs
        self._veth = VethPorts(ports, tag="", netns=self.ns, promiscuous=True)
        self._veth.create()

    def sh(self, *argv: str) -> None:
        self._veth.sh(*argv)

    def send(self, port: int, frame: bytes) -> None:
        if not self._veth.send(port, frame):
            raise OSError(f"could not send {len(frame)} bytes on t{port}")

    def receive(self, port: int, timeout: float = 2.0, count: int = 1) -> list[bytes]:
        """Frames the switch sent out of port (seen on t<port>), up to count."""
        return self._veth.receive(timeout, ports=[port], most=count)[port]

    def close(self) -> None:
        self._veth.destroy()
