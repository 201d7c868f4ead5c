"""Extension points against a real switch: an Extension's settings, flow-lifecycle and
counter-poll listeners, firefly-accepted hooks, status and metrics contributions; a listener
that raises is counted and never stops the controller."""
from __future__ import annotations

import threading

import pytest
from prometheus_client.core import CounterMetricFamily

from controller import extensions
from controller.config import ConfigError, load_config
from controller.extensions import Extension
from labnet.waiting import wait_until
from scitags_core import flowlabel
from tests.controller.harness import (CMS, H1, H2, PERFSONAR, api, counters, send_all,
                                      send_firefly, start_flow, v4, v6)

pytestmark = pytest.mark.timeout(120)


class Recorder(Extension):
    name = "recorder"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flows, self.polls, self.fireflies = [], [], []
        self.section: dict = {}

    def configure(self, section: dict) -> None:
        if not isinstance(section.get("label", "x"), str):
            raise ValueError("label must be a string")
        self.section = section

    def attach(self, controller) -> None:
        h = controller.hooks
        h.on_flow(lambda e: self._keep(self.flows, e))
        h.on_poll(lambda e: self._keep(self.polls, e))
        h.on_firefly(lambda e: self._keep(self.fireflies, e))
        h.on_poll(lambda e: 1 / 0)  # a broken listener: counted, the others still run
        h.add_status("recorder", lambda: {"flows_seen": len(self.flows), **self.section})
        ext = self

        class Collector:
            def collect(self):
                m = CounterMetricFamily("scitags_recorder_flow_events", "Flow events seen.")
                m.add_metric([], len(ext.flows))
                yield m
        h.add_collector(Collector())

    def _keep(self, where: list, event) -> None:
        with self.lock:
            where.append(event)


def test_listeners_status_and_metrics(one_switch):
    sw, start = one_switch
    rec = Recorder()
    rt = start(extensions=[rec], sections={"recorder": {"label": "lab"}})
    key = start_flow(rt, 42001)
    tagged = v6(flowlabel.encode_label(CMS, PERFSONAR))
    send_all(sw, 1, [tagged] * 2 + [v4(42001)] * 3)
    counters(rt)  # a poll
    send_firefly(rt, "end", H1["ipv4"], H2["ipv4"], 42001, 1094, CMS, PERFSONAR)
    wait_until(lambda: any(e.kind == "ended" for e in rec.flows), what="flow ended")
    kinds = [(e.kind, e.reason, e.key) for e in rec.flows]
    assert kinds == [("installed", "start", key), ("ended", "end", key)]
    assert rec.flows[-1].counts["s1"].packets == 3 and rec.flows[-1].flow["packets"] == 3
    assert [(f.record.state.value, f.via) for f in rec.fireflies] == [("start", "udp"), ("end", "udp")]
    assert rec.fireflies[0].sender == H1["ipv4"] and rec.fireflies[0].deviations == ()
    moved = [p for p in rec.polls if p.tags or p.flows]
    tag_id = next(m.rule.tag_id for m in rt.controller.tags.values()
                  if (m.rule.experiment, m.rule.activity) == (CMS, PERFSONAR))
    assert sum(p.tags.get(tag_id).packets for p in moved if tag_id in p.tags) == 2
    assert sum(p.flows[key].packets for p in moved if key in p.flows) == 3
    assert sum(p.buckets["firefly_only"].packets for p in rec.polls if "firefly_only" in p.buckets) == 3
    status = api(rt, "/api/v1/status")
    assert status["recorder"] == {"flows_seen": 2, "label": "lab"}
    assert status["hook_errors"]["poll"] >= 1 and rt.controller.switches["s1"].ready
    assert "scitags_recorder_flow_events_total 2.0" in api(rt, "/metrics")


def test_extension_sections_and_bad_settings(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("recorder:\n  label: 5\npoll_interval_s: 1\n")
    cfg = load_config(str(conf), {}, ["recorder"])
    assert cfg.extensions == {"recorder": {"label": 5}}
    with pytest.raises(ValueError, match="label must be a string"):
        Recorder().configure(cfg.extensions["recorder"])
    with pytest.raises(ConfigError, match="unknown key.*recorder"):
        load_config(str(conf), {})  # a section no extension claims is a typo
    assert [type(e).__name__ for e in extensions.load(["tests.controller.test_hooks:Recorder",
                                                        "controller.not_written_yet:X"])] == ["Recorder"]
