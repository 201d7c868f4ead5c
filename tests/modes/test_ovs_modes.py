"""Placement modes on Open vSwitch through the OpenFlow driver (what OpenFlow can do): a wire
pair forwards whatever the addresses, a tap port counts and forwards nothing, a learn port
uses OVS's own learning (NORMAL). Real OVS (tests/openflow/ovslab.py), skipped without it."""
from __future__ import annotations

import pytest

from controller.drivers.base import DesiredState, Forwarding, PortEntry, TagRule
from controller.drivers.openflow import OpenFlowDriver
from scitags_core.flowlabel import encode_label
from tests.openflow.conftest import clean_lab, lab  # noqa: F401 - the OVS lab fixtures
from tests.openflow.helpers import v6_frame

pytestmark = pytest.mark.netns
CMS = 3
TAGS = [TagRule(1, CMS, 14)]
STRANGER_A, STRANGER_B = "02:aa:00:00:00:0a", "02:bb:00:00:00:0b"


@pytest.fixture
def driver(clean_lab):  # noqa: F811
    drv = OpenFlowDriver("s1", clean_lab.target)
    drv.connect()
    drv.ensure_pipeline()
    yield drv
    drv.close()


def got(lab, until: int) -> dict[str, int]:  # noqa: F811
    frames = lab.receive(timeout=2.0, until=until)
    frames = {h: f for h, f in frames.items() if f}
    extra = lab.receive(timeout=0.3)
    return {h: len(f) + len(extra.get(h, [])) for h, f in {**extra, **frames}.items() if f or extra.get(h)}


def test_wire_and_tap_on_ovs(driver, clean_lab):  # noqa: F811
    modes = (PortEntry(1, "wire", 2), PortEntry(2, "wire", 1), PortEntry(3, "tap"))
    driver.reconcile(DesiredState(Forwarding({}, (), 255, None, modes), TAGS, {}))
    clean_lab.sync()
    clean_lab.drain()
    label = encode_label(CMS, 14, entropy=3)
    a_to_b = v6_frame(STRANGER_A, STRANGER_B, label)
    before = driver.read_counters().tags.get(1)
    clean_lab.send("h1", a_to_b)
    assert got(clean_lab, 1) == {"h2": 1}
    clean_lab.send("h2", v6_frame(STRANGER_B, STRANGER_A, label))
    assert got(clean_lab, 1) == {"h1": 1}
    clean_lab.send("h3", a_to_b)  # tap: counted, not forwarded
    assert got(clean_lab, 1) == {}
    after = driver.read_counters().tags.get(1)
    assert after.packets - (before.packets if before else 0) == 3


def test_learn_is_normal_on_ovs(driver, clean_lab):  # noqa: F811
    modes = tuple(PortEntry(p, "learn") for p in (1, 2, 3))
    driver.reconcile(DesiredState(Forwarding({}, (), 255, None, modes), TAGS, {}))
    clean_lab.sync()
    clean_lab.drain()
    clean_lab.send("h1", v6_frame(STRANGER_A, STRANGER_B, 0))
    assert got(clean_lab, 3) == {"h2": 1, "h3": 1, "mon1": 1}  # unknown: OVS floods
    clean_lab.send("h2", v6_frame(STRANGER_B, STRANGER_A, 0))
    assert got(clean_lab, 1) == {"h1": 1}  # learned by OVS
