"""A real Prometheus (Debian package `prometheus`) scrapes the controller's /metrics every
second while the built-in target counts real traffic; the PromQL answer for CMS bytes
through s1 over a window agrees exactly with `controller counters --since/--until`.

Exactness: the window's bounds are whole seconds (the history's fine step is 1 s here) in
quiet periods: every packet before the window was polled and scraped before it starts, every
packet in it was polled after it started and scraped before it ends. Then the last sample at
or before each bound is the counter's value at that bound, and
`x - x offset <window>` evaluated at the window's end is exactly the bytes in it (no
extrapolation, unlike increase())."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from controller.launcher import free_tcp_port, stop_process, wait_listening
from controller.windows import iso
from labnet.waiting import wait_until
from scitags_core import flowlabel
from tests.conftest import ROOT
from tests.controller.harness import CMS, PERFSONAR, api_addr, counters, row, send_all, v6
from tests.prometheus.conftest import PROMETHEUS

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(PROMETHEUS is None, reason="prometheus absent (Debian package prometheus)")]

SERIES = 'scitags_bytes_total{switch="s1",experiment="cms",activity="perfSONAR",source="flowlabel"}'


def start_prometheus(tmp, target: str) -> tuple[subprocess.Popen, str]:
    port = free_tcp_port()
    conf = tmp / "prometheus.yml"
    conf.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: scitags-controller
    static_configs: [{{targets: ["{target}"]}}]
""")
    log = open(tmp / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    wait_listening("127.0.0.1", port, proc, timeout=30)
    return proc, f"http://127.0.0.1:{port}"


def promql(base: str, query: str, at: float | None = None) -> list:
    params = {"query": query} | ({"time": f"{at:.3f}"} if at is not None else {})
    with urllib.request.urlopen(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10) as r:
        answer = json.loads(r.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def scraped_value(base: str) -> float | None:
    result = promql(base, SERIES)
    return float(result[0]["value"][1]) if result else None


def quiet_bound() -> float:
    """A whole second at least 1 s ahead, reached (at least one scrape in between)."""
    bound = math.ceil(time.time()) + 1
    time.sleep(bound + 1.5 - time.time())
    return float(bound)


def test_promql_window_agrees_with_controller_counters(lab, tmp_path):
    sw, start = lab
    rt = start(history={"fine_step": "1s", "coarse_step": "60s", "fine_keep": "1h"},
               history_clock=time.time)
    prom, base = start_prometheus(tmp_path, api_addr(rt))
    try:
        frame = v6(flowlabel.encode_label(CMS, PERFSONAR))
        send_all(sw, 1, [frame] * 3)  # before the window
        total = row(counters(rt), source="flowlabel", experiment="cms", activity="perfSONAR")["bytes"]
        wait_until(lambda: scraped_value(base) == total, timeout=30, what="first scrape with traffic")
        t0 = quiet_bound()
        send_all(sw, 1, [frame] * 5)  # inside the window
        total = row(counters(rt), source="flowlabel", experiment="cms", activity="perfSONAR")["bytes"]
        wait_until(lambda: scraped_value(base) == total, timeout=30, what="scrape with the window's traffic")
        t1 = quiet_bound()
        window_s = int(t1 - t0)
        result = promql(base, f"{SERIES} - {SERIES} offset {window_s}s", at=t1)
        assert len(result) == 1, result
        prom_bytes = float(result[0]["value"][1])
        out = subprocess.run([sys.executable, "-m", "controller.cli", "counters", "--since", iso(t0),
                              "--until", iso(t1), "--experiment", "cms", "--json", "--api", api_addr(rt)],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert (data["since"], data["until"]) == (iso(t0), iso(t1))  # whole 1 s steps: not widened
        ctl = row(data["counters"], switch="s1", source="flowlabel", activity="perfSONAR")["bytes"]
        assert ctl == prom_bytes == 5 * len(frame)
        # and the counter over all time, the same in both
        assert float(promql(base, SERIES, at=t1)[0]["value"][1]) == total == 8 * len(frame)
    finally:
        stop_process(prom)
