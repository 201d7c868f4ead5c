"""Fixtures: one OVS lab per module (bridge + host namespaces), a fresh pipeline per test."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.openflow.ovslab import OvsLab, ovs_unavailable_reason

H1, H2, H3, MON = "00:00:00:00:00:01", "00:00:00:00:00:02", "00:00:00:00:00:03", "00:00:00:00:00:0f"
HOSTS = {"h1": (H1, 1), "h2": (H2, 2), "h3": (H3, 3), "mon1": (MON, 4)}
MAC_PORTS = {H1: 1, H2: 2, H3: 3, MON: 4}
FLOOD_PORTS = [1, 2, 3]  # host ports, no monitor port (Topology.flood_ports)
MONITOR_PORT = 4


@pytest.fixture(scope="module")
def lab() -> Iterator[OvsLab]:
    reason = ovs_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = OvsLab(HOSTS)
    try:
        lab.start()
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        lab.stop()
        pytest.skip(f"cannot build the OVS lab (netdev bridge + namespaces): {exc}")
    yield lab
    lab.stop()


@pytest.fixture
def clean_lab(lab: OvsLab) -> OvsLab:
    """The lab with an empty flow table, as a freshly started switch has."""
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", lab.bridge], check=True,
                   capture_output=True)
    lab.drain()
    return lab
