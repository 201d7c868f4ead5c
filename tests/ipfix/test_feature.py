"""The controller feature: settings, and the listeners fed with the controller's own event
types (controller.events), exporting over a real UDP socket."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from controller.drivers.base import Counts, FlowKey
from controller.events import FlowEvent, PollDeltas
from controller.hooks import Hooks
from controller.ipfix.feature import IpfixExport, IpfixSettings
from tests.ipfix import wire
from tests.ipfix.wire import Sink


def test_settings_from_yaml_and_command_line():
    s = IpfixSettings.from_dict({"collectors": ["127.0.0.1:4739"], "active_timeout_s": 30,
                                 "observation_domains": {"s1": 100}}, ["[::1]:2055"])
    assert s.collectors == ["127.0.0.1:4739", "[::1]:2055"] and s.active_timeout_s == 30.0
    assert s.observation_domains == {"s1": 100} and s.template_refresh_s == 60.0
    assert IpfixSettings.from_dict(["h:1"]).collectors == ["h:1"]
    assert IpfixSettings.from_dict(None, ["h:2"]).collectors == ["h:2"]
    for bad, match in (({"colectors": []}, "unknown key"), ({"active_timeout_s": 0}, "positive"),
                       ({"queue_records": "many"}, "integer"), ({"collectors": ["nohost"]}, "HOST:PORT"),
                       ({"observation_domains": {"s1": 0}}, "1..4294967295"), ("text", "mapping")):
        with pytest.raises(ValueError, match=match):
            IpfixSettings.from_dict(bad)


def test_listeners_export_flows_and_aggregates():
    sink = Sink()
    settings = IpfixSettings.from_dict({"collectors": ["%s:%d" % sink.addr], "active_timeout_s": 10,
                                        "aggregate_interval_s": 30})
    tags = {7: (3, 14), 8: (3, None)}
    export = IpfixExport(settings, {"s1": 1, "s2": 2}, tags.get).start()
    hooks = Hooks()
    export.attach(hooks)
    t0 = time.time()
    key = FlowKey.of("10.0.0.1", "10.0.0.2", "tcp", 5000, 443)
    try:
        hooks.flow(FlowEvent("installed", "start", key, 3, 14, {}, {"started": t0}, t0))
        hooks.poll(PollDeltas("s1", t0 + 2, None, tags={7: Counts(5, 500), 8: Counts(1, 100)},
                              flows={key: Counts(10, 15_000)}))
        hooks.poll(PollDeltas("s1", t0 + 14, 12.0, flows={key: Counts(4, 6_000)}))  # active timeout
        hooks.flow(FlowEvent("ended", "idle-timeout", key, 3, 14, {"s1": Counts(15, 22_000)},
                             {"started": t0}, t0 + 20))
        hooks.poll(PollDeltas("s1", t0 + 33, 19.0))  # the aggregate interval is over
        assert export.exporter.flush()
        status = hooks.status_sections()["ipfix"]
    finally:
        export.stop()
    assert status["flow_records"] == {"active": 1, "end": 1, "lost": 0}
    assert status["aggregate_records"] == 2 and status["flows_tracked"] == 0
    assert status["collectors"][0]["records"] == 4 and status["observation_domains"] == {"s1": 1, "s2": 2}
    msgs = sink.messages()
    sink.close()
    templates = msgs[0].templates
    per_template: dict[int, int] = {}
    for m in msgs:
        for tid, body in m.data_sets:
            per_template[tid] = per_template.get(tid, 0) + len(body) // sum(f[1] for f in templates[tid])
    assert per_template == {256: 2, 258: 2}  # interim + end record; two tags
    assert all(m.domain == 1 for m in msgs)
    assert sum(wire.data_records(m, templates) for m in msgs) == 4
    names = {f.name for f in export.collect()}
    assert {"scitags_ipfix_records_dropped", "scitags_ipfix_records_exported",
            "scitags_ipfix_messages_sent", "scitags_ipfix_queue_records"} <= names


@pytest.mark.parametrize("args, yaml_text, message", [
    (["--ipfix", "nohost"], None, "IPFIX collector 'nohost' is not HOST:PORT"),
    ([], "ipfix:\n  collectors: ['127.0.0.1:4739']\n  active_timout_s: 5\n", "unknown key(s) active_timout_s"),
])
def test_bad_ipfix_settings_exit_2(tmp_path, args, yaml_text, message):
    """`controller start` refuses bad IPFIX settings before it does anything (exit 2)."""
    import subprocess
    import sys
    extra = []
    if yaml_text:
        (tmp_path / "c.yaml").write_text(yaml_text)
        extra = ["--config", str(tmp_path / "c.yaml")]
    done = subprocess.run([sys.executable, "-m", "controller.cli", "start", "--launch", "never",
                           "--state-dir", str(tmp_path / "state"), "--api", "127.0.0.1:0",
                           "--firefly-listen", "off", *extra, *args],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_command_line_options_overlay_the_yaml_section():
    import argparse
    from controller.ipfix.feature import IpfixExtension
    ext = IpfixExtension()
    parser = argparse.ArgumentParser()
    ext.add_arguments(parser)
    args = parser.parse_args(["--ipfix", "127.0.0.1:4739", "--ipfix", "[::1]:2055",
                              "--ipfix-active-timeout", "30"])
    assert ext.options(args) == {"collectors": ["127.0.0.1:4739", "[::1]:2055"], "active_timeout_s": 30.0}
    assert ext.options(parser.parse_args([])) == {}
    ext.configure({"collectors": ["127.0.0.1:9"], "aggregate_interval_s": 10, **ext.options(args)})
    assert ext.settings.collectors == ["127.0.0.1:4739", "[::1]:2055"]
    assert (ext.settings.active_timeout_s, ext.settings.aggregate_interval_s) == (30.0, 10.0)
