"""Mininet hosts for scitags labs: IPv6 on, flow labels under our control, no DAD delay.

`net.ipv6.auto_flowlabels=0` so unmarked traffic carries label 0 (not a hash that can look
like an experiment, SPEC.md); `accept_dad=0` so a static address is usable at once.
Checksum/segmentation offloads are off: a software switch reads frames from a raw socket and
must see finished checksums and packets no larger than the MTU.
"""
from __future__ import annotations

from mininet.node import Host

from controller.topology import HostSpec

OFFLOADS = "rx off tx off sg off tso off gso off gro off"


def offloads_off(node: object, intf: str) -> None:
    node.cmd(f"ethtool -K {intf} {OFFLOADS} >/dev/null 2>&1")  # type: ignore[attr-defined]


class ScitagsHost(Host):
    """A Mininet host configured from a topology HostSpec."""

    def configure(self, spec: HostSpec) -> None:
        intf = self.defaultIntf()
        name = intf.name
        self.cmd("sysctl -qw net.ipv6.auto_flowlabels=0")
        ipv6_off = "1" if spec.monitor and spec.ipv6 is None else "0"  # a monitor stays silent
        for scope in ("all", "default", name):
            self.cmd(f"sysctl -qw net.ipv6.conf.{scope}.disable_ipv6={ipv6_off}")
            self.cmd(f"sysctl -qw net.ipv6.conf.{scope}.accept_dad=0")
            self.cmd(f"sysctl -qw net.ipv6.conf.{scope}.dad_transmits=0")
        if spec.monitor:
            self.cmd(f"sysctl -qw net.ipv6.conf.{name}.router_solicitations=0")
        intf.setMAC(spec.mac)
        self.cmd(f"ip -4 addr flush dev {name}")
        if spec.ipv4 is not None:
            self.cmd(f"ip -4 addr add {spec.ipv4.with_prefixlen} dev {name}")
        if spec.ipv6 is not None:
            self.cmd(f"ip -6 addr add {spec.ipv6.with_prefixlen} dev {name} nodad")
        self.cmd(f"ip link set {name} up")
        self.cmd("ip link set lo up")
        offloads_off(self, name)
        self.spec = spec
