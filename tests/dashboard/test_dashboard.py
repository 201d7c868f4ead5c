"""The dashboard in a real browser (Debian's headless Chromium, driven by Selenium) against a
real controller counting real traffic through the built-in target: the chart and the table
show the experiments that were sent with the controller's exact bytes, the firefly flow with
its bytes, the buckets and the switch; the console stays free of errors; a screenshot is kept
(pytest's tmp dir, and $SCITAGS_ARTIFACTS when set). With a bearer token configured the page
opened as /?token=... sends it on every fetch and drops it from the address bar."""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest

from labnet.waiting import wait_until
from scitags_core import flowlabel
from tests.api_auth.client import call
from tests.conftest import IS_ROOT
from tests.controller.harness import (CMS, HAVE_SOFT_CLI, PERFSONAR, one_switch_lab, send_all,
                                      start_flow, v4, v6)
from tests.dashboard import browser

ATLAS, PRODUCTION_INPUT = 2, 15
TAG_SOURCES = ("flowlabel", "exthdr", "firefly")  # an experiment's own bytes (the page's too)

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(not IS_ROOT, reason="needs root for the switch's veth ports"),
              pytest.mark.skipif(not HAVE_SOFT_CLI, reason="softswitch/cli.py not built"),
              pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))]


@pytest.fixture
def lab(tmp_path):
    drivers = []

    def chromium():
        d = browser.chromium()
        drivers.append(d)
        return d

    with one_switch_lab("soft", tmp_path) as (sw, controller):
        try:
            yield sw, controller, chromium
        finally:
            for d in drivers:
                d.quit()


def keep_screenshot(driver, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height, 800), 4000))  # the whole page
    assert driver.save_screenshot(str(shot)), "screenshot failed"
    assert shot.stat().st_size > 10_000, "screenshot is empty"
    if os.environ.get("SCITAGS_ARTIFACTS"):
        out = Path(os.environ["SCITAGS_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / name)
    return shot


def page_until(driver, cond, what: str, timeout: float = 30, explain=None) -> dict:
    """The page's state once cond(state) holds; on timeout the assertion shows the last one
    (and explain(), what the controller says then)."""
    last = {}

    def check():
        last["state"] = driver.execute_script(PAGE_STATE)
        return cond(last["state"]) and last["state"]
    try:
        return wait_until(check, timeout=timeout, what=what, interval=0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the page showed {last.get('state')}"
                             + (f"; the controller: {explain()}" if explain else "")) from None


def per_experiment(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        if r["source"] in TAG_SOURCES:
            out[r["experiment"]] = out.get(r["experiment"], 0) + r["bytes"]
    return out


PAGE_STATE = r"""
const rows = {}, acts = {}, series = {}, flows = {}, buckets = {};
for (const tr of document.querySelectorAll('#experiments tr.experiment'))
  rows[tr.dataset.experiment] = Number(tr.dataset.bytes);
for (const tr of document.querySelectorAll('#experiments tr.activity'))
  acts[tr.dataset.experiment + '/' + tr.dataset.activity] = Number(tr.dataset.bytes);
for (const g of document.querySelectorAll('#chart g.series')) {
  let sum = 0;
  for (const r of g.querySelectorAll('rect')) sum += Number(r.dataset.bytes);
  series[g.dataset.key] = {rects: g.querySelectorAll('rect').length, bytes: sum, total: Number(g.dataset.bytes)};
}
for (const tr of document.querySelectorAll('#flows-live tr[data-flow]')) flows[tr.dataset.flow] = Number(tr.dataset.bytes);
for (const tr of document.querySelectorAll('#buckets tr[data-bucket]')) buckets[tr.dataset.bucket] = Number(tr.dataset.bytes);
const sw = {};
for (const s of document.querySelectorAll('#switches .switch')) sw[s.dataset.switch] = s.dataset.status;
return {window: document.querySelector('#windows button.active').textContent.replace(/\s+/g, ' '),
        table_window: document.getElementById('table-window').textContent,
        state: document.body.dataset.state, renders: Number(document.body.dataset.renders || 0),
        rows, acts, series, flows, buckets, switches: sw, error: document.getElementById('error').hidden ? null :
        document.getElementById('error').textContent,
        notice: document.getElementById('notice').hidden ? null : document.getElementById('notice').textContent};
"""


@pytest.mark.parametrize("auth", ["loopback", "token"])
def test_dashboard_shows_the_traffic(lab, tmp_path, auth):
    from selenium.webdriver.support.ui import Select  # selenium: only where the test runs

    sw, controller, chromium = lab
    token = None
    overrides = {}
    if auth == "token":
        token = secrets.token_hex(24)
        (tmp_path / "api.token").write_text(token + "\n")
        overrides["api_token_file"] = str(tmp_path / "api.token")
    rt = controller(**overrides)
    base = rt.api.url

    key = start_flow(rt, 42001)  # a firefly-declared IPv4 flow, cms/perfSONAR
    cms = v6(flowlabel.encode_label(CMS, PERFSONAR), payload=b"c" * 40)
    atlas = v6(flowlabel.encode_label(ATLAS, PRODUCTION_INPUT), sport=5001, payload=b"a" * 300)
    ipv4 = v4(42001, payload=b"f" * 120)
    send_all(sw, 1, [cms] * 5 + [atlas] * 3 + [ipv4] * 4)
    rt.controller.poll_all()

    status, _, totals = call(base + "/api/v1/counters", token)
    assert status == 200
    status, _, window = call(base + "/api/v1/counters?since=1h", token)
    assert status == 200
    want = per_experiment(window["counters"])
    # what was sent, exactly: labelled frames under their tag, the firefly flow's frames under cms
    assert want == {"cms": 5 * len(cms) + 4 * len(ipv4), "atlas": 3 * len(atlas)}, window["counters"]
    assert per_experiment(totals["counters"]) == want
    flow_bytes = rt.controller.flows[key].as_dict()["bytes"]
    assert flow_bytes == 4 * len(ipv4)
    key2 = start_flow(rt, 42002)  # a second live flow, without traffic: the top 1 is the first
    _, _, top = call(base + "/api/v1/flows?limit=1", token)
    assert [f["flow"] for f in top["live"]] == [str(key)] and top["live_total"] == 2
    assert top["live"][0]["bytes"] == flow_bytes
    _, _, top = call(base + "/api/v1/flows?limit=0", token)
    assert top["live"] == [] and top["live_total"] == 2

    driver = chromium()
    driver.get(base + "/" + (f"?token={token}" if token else ""))
    def controller_now():
        return {"window": per_experiment(call(base + "/api/v1/counters?since=1h", token)[2]["counters"]),
                "totals": per_experiment(call(base + "/api/v1/counters", token)[2]["counters"]),
                "status": rt.controller.status()["switches"]}
    seen = page_until(driver, lambda s: s["state"] == "ready" and s["rows"] == want,
                      "the page to show the experiments' bytes", explain=controller_now)
    assert seen["error"] is None and seen["notice"] is None, seen
    assert seen["acts"] == {"cms/perfSONAR": want["cms"], "atlas/Production Input": want["atlas"]}
    assert set(seen["series"]) == {"cms", "atlas"}, seen["series"]
    for exp, s in seen["series"].items():  # the chart: a stacked series per experiment
        assert s["rects"] >= 1 and s["bytes"] == s["total"] == want[exp], (exp, s)
    assert seen["flows"] == {str(key): flow_bytes, str(key2): 0}
    assert seen["buckets"], "no bucket rows"
    assert seen["switches"] == {"s1": "ready"}
    assert "token" not in driver.current_url  # kept in memory only

    # by activity on click of an experiment
    driver.find_element("css selector", '#experiments tr.experiment[data-experiment="atlas"]').click()
    drilled = page_until(driver, lambda s: set(s["series"]) == {"Production Input"},
                         "the chart by activity", timeout=15)
    assert drilled["series"]["Production Input"]["bytes"] == want["atlas"]
    driver.find_element("id", "drill-back").click()
    # another window (7 d: hour steps) and one switch: the same traffic, the same bytes
    driver.find_element("css selector", '#windows button[data-window="7d"]').click()
    Select(driver.find_element("id", "switch")).select_by_value("s1")

    def same_traffic(s):
        return (s["rows"] == want and {k: v["bytes"] for k, v in s["series"].items()} == want
                and "switch s1" in s["table_window"] and "7 d" == s["window"])
    page_until(driver, same_traffic, "the 7 d window of switch s1", timeout=20)
    keep_screenshot(driver, tmp_path, f"dashboard-{auth}.png")
    errors = browser.console_errors(driver)
    assert errors == [], errors


def test_page_without_the_token_says_so(lab, tmp_path):
    """Opened without the token the API needs, the page shows why, and no data."""
    sw, controller, chromium = lab
    (tmp_path / "api.token").write_text(secrets.token_hex(24))
    rt = controller(api_token_file=str(tmp_path / "api.token"))
    driver = chromium()
    driver.get(rt.api.url + "/")
    msg = wait_until(lambda: driver.execute_script(
        "const e = document.getElementById('error'); return e.hidden ? null : e.textContent"),
        timeout=20, what="the error banner")
    assert "needs a token" in msg
    assert driver.execute_script("return document.body.dataset.state") == "loading"
    assert rt.controller.status()["api"]["unauthorized"]["missing-token"] >= 1
