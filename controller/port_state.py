"""Link state of a switch's ports, for wire pairs (issue 15): a pair whose partner's link is
down drops what enters the other port (port_mode action wire_down, counted in
wire_down_counter) instead of sending it into a dead link.

P4Runtime has no port status, so this reads what the controller can see: the operstate of the
Linux interfaces the topology maps to the ports (`interfaces: {port: ifname}`, the way BMv2 and
the built-in target are launched here). A port without a known interface is taken as up (a
switch elsewhere: BMv2 then drops on the down link itself, uncounted). The reconciler asks on
every pass, so a change takes effect within `reconcile_interval_s`.
"""
from __future__ import annotations

from pathlib import Path

from controller.topology import Topology

SYS_NET = Path("/sys/class/net")
DOWN_STATES = {"down", "lowerlayerdown", "notpresent"}


def down_ports(topology: Topology, switch: str, sys_net: Path = SYS_NET) -> set[int]:
    """Ports of `switch` whose interface is known and not up."""
    ifaces = topology.switches[switch].options.get("interfaces") or {}
    down = set()
    for port, ifname in ifaces.items():
        try:
            state = (sys_net / str(ifname) / "operstate").read_text().strip()
        except OSError:
            continue  # not on this host (or not in this namespace): cannot tell
        if state in DOWN_STATES:
            down.add(int(port))
    return down
