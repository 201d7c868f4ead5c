"""Mininet hosts for scitags labs: IPv6 on, flow labels under our control, no DAD delay.

`net.ipv6.auto_flowlabels=0` so unmarked traffic carries label 0 (not a hash that can look
like an experiment, SPEC.md); `accept_dad=0` so a static address is usable at once.
Checksum/segmentation offloads are off on the hosts' and the switches' veths (Lab.start, as
the p4lang tutorials do): a software switch (ours or BMv2) reads frames from a raw socket and
must see finished checksums and packets no larger than the MTU; with TSO/GSO on, a host hands
AF_PACKET 64 KB TCP super-frames that no switch port can send. Checked, not assumed.
"""
from __future__ import annotations

from mininet.node import Host

from controller.topology import HostSpec

OFFLOADS = "rx off tx off sg off tso off gso off gro off"
# ethtool -k names of what must end up off (the rest of OFFLOADS is best effort)
MUST_BE_OFF = ("tcp-segmentation-offload", "generic-segmentation-offload",
               "generic-receive-offload")


def offloads_off(node: object, intf: str) -> str | None:
    """Turn the offloads off on intf (in node's namespace); None when TSO/GSO/GRO are off,
    else why not (ethtool missing, or the features still on)."""
    cmd = node.cmd  # type: ignore[attr-defined]
    out = cmd(f"ethtool -K {intf} {OFFLOADS} 2>&1; ethtool -k {intf} 2>&1")
    features = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    still_on = [f for f in MUST_BE_OFF if not features.get(f, "").strip().startswith("off")]
    if not still_on:
        return None
    return (f"{intf}: cannot turn {', '.join(still_on)} off with ethtool "
            f"(install ethtool?): {out.strip()[-200:]}")


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
        self.spec = spec
