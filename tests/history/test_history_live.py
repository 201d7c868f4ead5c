"""History against the real built-in target: traffic at known (controllable) times, exact
sums for windows that cut steps, across a controller restart, a switch restart and a
registry refresh; gaps where no controller ran; the CLI's answers and exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from controller.windows import iso
from labnet.waiting import wait_until
from scitags_core import flowlabel
from tests.conftest import ROOT
from tests.controller.harness import (CMS, PERFSONAR, REGISTRY, api, api_addr, counters, row,
                                      send_all, start_flow, v4, v6)

pytestmark = pytest.mark.timeout(180)

TAGGED = v6(flowlabel.encode_label(CMS, PERFSONAR))
N = len(TAGGED)


def send(sw, n: int, frame: bytes = TAGGED) -> None:
    send_all(sw, 1, [frame] * n)


def at(clock, offset: float) -> str:
    return iso(clock.t0 + offset)


def window(rt, since: str, until: str | None = None, **filters) -> dict:
    q = f"since={since}" + (f"&until={until}" if until else "")
    q += "".join(f"&{k}={v}" for k, v in filters.items())
    return api(rt, "/api/v1/counters?" + q.replace("+", "%2B"))


def history(rt, since: str, until: str | None = None, **params) -> dict:
    q = f"since={since}" + (f"&until={until}" if until else "")
    q += "".join(f"&{k}={v}" for k, v in params.items())
    return api(rt, "/api/v1/history?" + q.replace("+", "%2B"))


def cms_points(answer: dict, source: str = "flowlabel", activity: str = "perfSONAR") -> list:
    found = [s for s in answer["series"] if s["switch"] == "s1" and s["source"] == source
             and s["experiment"] == "cms" and s["activity"] == activity]
    assert len(found) <= 1
    return found[0]["points"] if found else []


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_windows_cut_steps_exact_sums_and_cli(lab, clock):
    sw, start = lab
    rt = start()  # the run starts at t0
    clock.set(10)
    send(sw, 3)
    key = start_flow(rt, 43001)
    send(sw, 2, v4(43001))
    counters(rt)  # poll: in the step [t0, t0+60)
    clock.set(70)
    send(sw, 2)
    counters(rt)  # [t0+60, t0+120)
    clock.set(130)
    send(sw, 4)
    counters(rt)  # [t0+120, t0+180)
    clock.set(200)
    rt.controller.save()  # part saved, part pending: answers combine both
    send(sw, 1)
    counters(rt)  # [t0+180, t0+240), not saved yet

    # a window cutting steps covers the whole steps it touches, and says so
    w = window(rt, at(clock, 30), at(clock, 100))
    assert (w["since"], w["until"]) == (at(clock, 0), at(clock, 120))
    assert w["timezone"] and w["gaps"] == []
    r = row(w["counters"], source="flowlabel", experiment="cms", activity="perfSONAR")
    assert (r["packets"], r["bytes"]) == (5, 5 * N)
    assert row(w["counters"], source="firefly", experiment="cms")["bytes"] == 2 * len(v4(43001))
    w = window(rt, at(clock, 60), at(clock, 120))
    assert row(w["counters"], source="flowlabel", experiment="cms", activity="perfSONAR")["packets"] == 2
    assert row(w["counters"], source="firefly", experiment="cms") is None
    # since 1h (the controller's clock: now = t0+200) includes the current step, = the totals
    w = window(rt, "1h")
    total = row(counters(rt), source="flowlabel", experiment="cms", activity="perfSONAR")
    assert row(w["counters"], source="flowlabel", experiment="cms", activity="perfSONAR")["bytes"] \
        == total["bytes"] == 10 * N
    assert w["gaps"] == [[clock.t0 - 3600 + 180, clock.t0]]  # before the first run (widened to its step)

    h = history(rt, at(clock, 0), at(clock, 240), step="1m")
    assert h["step_s"] == 60 and h["since"] == at(clock, 0) and h["until"] == at(clock, 240)
    t0 = int(clock.t0)
    assert cms_points(h) == [[t0, 3, 3 * N], [t0 + 60, 2, 2 * N], [t0 + 120, 4, 4 * N],
                             [t0 + 180, 1, N]]
    assert cms_points(h, "firefly", "perfSONAR") == [[t0, 2, 2 * len(v4(43001))]]
    buckets = {b["bucket"]: b["points"] for b in h["buckets"] if b["switch"] == "s1"}
    assert buckets["firefly_only"] == [[t0, 2, 2 * len(v4(43001))]]
    h2 = history(rt, at(clock, 0), at(clock, 240), step="2m", source="flowlabel", experiment="cms")
    assert h2["step_s"] == 120 and h2["buckets"] == []
    assert cms_points(h2) == [[t0, 5, 5 * N], [t0 + 120, 5, 5 * N]]
    assert {s["source"] for s in h2["series"]} == {"flowlabel"}
    assert key in rt.controller.flows

    # the CLI asks the same; its window and time zone are stated
    out = cli("counters", "--since", at(clock, 30), "--until", at(clock, 100), "--api", api_addr(rt), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["since"] == at(clock, 0) and data["until"] == at(clock, 120)
    assert row(data["counters"], source="flowlabel", experiment="cms", activity="perfSONAR")["packets"] == 5
    out = cli("counters", "--since", at(clock, 30), "--until", at(clock, 100), "--api", api_addr(rt))
    assert out.returncode == 0 and f"window {at(clock, 0)} .. {at(clock, 120)}" in out.stdout
    assert "time zone" in out.stdout
    out = cli("history", "--since", at(clock, 0), "--until", at(clock, 240), "--experiment", "cms",
              "--source", "flowlabel", "--csv", "--api", api_addr(rt))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "time,epoch,switch,source,experiment,activity,packets,bytes"
    assert f"{at(clock, 60)},{t0 + 60},s1,flowlabel,cms,perfSONAR,2,{2 * N}" in lines
    assert len([ln for ln in lines if ",perfSONAR," in ln]) == 4
    out = cli("history", "--since", at(clock, 0), "--until", at(clock, 240), "--step", "2m",
              "--switch", "s1", "--api", api_addr(rt))
    assert out.returncode == 0 and "step 120 s" in out.stdout, out.stderr
    table = [ln.split() for ln in out.stdout.splitlines() if " flowlabel " in ln and "perfSONAR" in ln]
    assert [(r[0], r[-2], r[-1]) for r in table] == [(at(clock, 0), "5", str(5 * N)),
                                                      (at(clock, 120), "5", str(5 * N))]
    assert any(ln.split()[2:4] == ["bucket", "firefly_only"] for ln in out.stdout.splitlines()[3:])

    # bad or reversed windows: exit 2 / HTTP 400 with the reason
    for args, reason in ((["counters", "--since", "1h", "--until", "2h"], "backwards"),
                         (["counters", "--since", "soon"], "is not one of"),
                         (["history", "--since", "1h", "--step", "5x"], "unit"),
                         (["history", "--since", "1h", "--step", "90s"], "multiple of the fine step"),
                         # valid here, but after the controller's now (its clock is 5 days behind)
                         (["counters", "--since", at(clock, 86400)], "backwards")):
        out = cli(*args, "--api", api_addr(rt))
        assert out.returncode == 2 and reason in out.stderr, (args, out.returncode, out.stderr)
    for path in ("/api/v1/history?since=never", "/api/v1/history", "/api/v1/counters?until=1h",
                 "/api/v1/history?since=1h&step=90s", "/api/v1/counters?since=1h&until=2h"):
        with pytest.raises(urllib.error.HTTPError) as err:
            api(rt, path)
        assert err.value.code == 400 and json.loads(err.value.read())["error"], path


def test_controller_restart_no_gap_in_counts_gap_in_time(lab, clock):
    sw, start = lab
    rt = start()
    clock.set(10)
    send(sw, 3)
    counters(rt)
    clock.set(20)
    rt.stop()  # last heartbeat t0+20
    send(sw, 2)  # counted by the switch while no controller runs
    clock.set(200)
    rt2 = start()  # same state dir: its first poll adds the 2 (at t0+200)
    counters(rt2)
    clock.set(250)
    send(sw, 4)
    counters(rt2)
    t0 = int(clock.t0)
    h = history(rt2, at(clock, 0), at(clock, 300))
    assert cms_points(h) == [[t0, 3, 3 * N], [t0 + 180, 2, 2 * N], [t0 + 240, 4, 4 * N]]
    assert h["gaps"] == [[t0 + 20, t0 + 200]]
    w = window(rt2, at(clock, 0), at(clock, 300))
    assert w["gaps"] == [[t0 + 20, t0 + 200]]
    got = row(w["counters"], source="flowlabel", experiment="cms", activity="perfSONAR")
    total = row(counters(rt2), source="flowlabel", experiment="cms", activity="perfSONAR")
    assert got["packets"] == total["packets"] == 9  # no gap, no double count
    # a window inside the downtime: no traffic, all gap
    w = window(rt2, at(clock, 60), at(clock, 120))
    assert row(w["counters"], source="flowlabel", experiment="cms") is None
    assert w["gaps"] == [[t0 + 60, t0 + 120]]
    out = cli("counters", "--since", at(clock, 60), "--until", at(clock, 120), "--api", api_addr(rt2))
    assert out.returncode == 0 and f"GAP {at(clock, 60)} .. {at(clock, 120)}" in out.stdout


def test_switch_restart_counts_every_step_once(lab, clock):
    sw, start = lab
    rt = start()
    clock.set(10)
    send(sw, 3)
    counters(rt)
    sw.restart()  # its counters start from zero
    st = rt.controller.switches["s1"]
    wait_until(lambda: st.pipeline_pushes == 2 and st.ready, timeout=60, what="re-push")
    clock.set(70)
    send(sw, 2)
    counters(rt)
    t0 = int(clock.t0)
    h = history(rt, at(clock, 0), at(clock, 120))
    assert cms_points(h) == [[t0, 3, 3 * N], [t0 + 60, 2, 2 * N]]
    assert h["gaps"] == []
    w = window(rt, at(clock, 0), at(clock, 120))
    assert row(w["counters"], source="flowlabel", experiment="cms", activity="perfSONAR")["packets"] == 5


def test_registry_refresh_names_kept_per_step(lab, clock, tmp_path):
    sw, start = lab
    reg_path = tmp_path / "registry-hist.json"
    doc = json.loads(REGISTRY.read_text())
    reg_path.write_text(json.dumps(doc))
    rt = start(registry=str(reg_path))
    clock.set(10)
    send(sw, 3)
    counters(rt)
    clock.set(70)  # the refresh folds what is counted so far under the old names first
    send(sw, 1)
    doc["modified"] = "2026-11-25T00:00:00Z"
    cms = next(e for e in doc["experiments"] if e["expId"] == CMS)
    next(a for a in cms["activities"] if a["activityId"] == PERFSONAR)["activityName"] = "perfSONAR-v2"
    reg_path.write_text(json.dumps(doc))
    api(rt, "/api/v1/registry/refresh", method="POST")
    send(sw, 2)
    counters(rt)
    t0 = int(clock.t0)
    h = history(rt, at(clock, 0), at(clock, 120), experiment="cms", source="flowlabel")
    assert cms_points(h) == [[t0, 3, 3 * N], [t0 + 60, 1, N]]
    assert cms_points(h, activity="perfSONAR-v2") == [[t0 + 60, 2, 2 * N]]
    w = window(rt, at(clock, 60), at(clock, 120), experiment="cms")
    assert row(w["counters"], source="flowlabel", activity="perfSONAR")["packets"] == 1
    assert row(w["counters"], source="flowlabel", activity="perfSONAR-v2")["packets"] == 2
