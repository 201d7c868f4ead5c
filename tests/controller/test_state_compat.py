"""A state directory written by the controller before the issue-12 restructure (made by
running that controller against the built-in target: tests/controller/data/README.md) is
read by this one: the same totals, flow history and tag cells."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from controller.store import Store
from tests.controller.harness import api, counters

pytestmark = pytest.mark.timeout(120)
DATA = Path(__file__).parent / "data"
STATE = DATA / "state-before-issue12"
STABLE = ("switch", "source", "experiment_id", "experiment", "activity_id", "activity", "bucket",
          "registry", "packets", "bytes")


def test_state_written_before_is_read(one_switch, tmp_path):
    expected = json.loads((DATA / "state-before-issue12.expected.json").read_text())
    shutil.copytree(STATE, tmp_path / "old")
    before = Store(tmp_path / "old" / "controller.sqlite")
    try:
        tag_ids = before.tag_ids()
    finally:
        before.close()
    _, start = one_switch
    # the fresh switch gets the pipeline pushed; the registry is the persisted one
    rt = start(name="old", registry="")
    rows = counters(rt)
    got = sorted(tuple(r[k] for k in STABLE) for r in rows)
    want = sorted(tuple(r[k] for k in STABLE) for r in expected["counters"])
    assert got == want
    recent = api(rt, "/api/v1/flows")["recent"]
    assert [(f["flow"], f["end_reason"], f["packets"], f["bytes"]) for f in recent] == \
        [(f["flow"], f["end_reason"], f["packets"], f["bytes"]) for f in expected["recent_flows"]]
    assert rt.store.tag_ids() == tag_ids and len(tag_ids) == len(rt.controller.tags)
    assert rt.controller.registry.identity == expected["counters"][0]["registry"]
