"""deploy/prometheus and deploy/grafana: promtool accepts the config and the rules, every
metric the rules and the dashboard use is one the controller exports, and the controller's
/metrics passes promtool's naming lint (units, _total)."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.controller.harness import CMS, PERFSONAR, api, counters, send_all, start_flow, v4, v6
from tests.prometheus.conftest import PROMTOOL
from tests.prometheus.promql import metric_names, template_metric
from scitags_core import flowlabel

PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "scitags-p4.json"
RULE_FILES = sorted(PROM.glob("*.rules.yml"))
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool absent (Debian package prometheus)")
PROMETHEUS_OWN = {"up"}  # what Prometheus itself records per target


@needs_promtool
def test_promtool_checks_config_and_rules():
    out = subprocess.run([PROMTOOL, "check", "config", str(PROM / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 rule files found" in out.stdout + out.stderr
    out = subprocess.run([PROMTOOL, "check", "rules", *map(str, RULE_FILES)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def rule_exprs() -> tuple[set[str], list[str]]:
    """(recorded names, every expression) of the shipped rule files."""
    recorded, exprs = set(), []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs.append(rule["expr"])
                if "record" in rule:
                    recorded.add(rule["record"])
    return recorded, exprs


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            exprs.append(f"__template__:{q}")
    return exprs


def test_promql_reader():
    assert metric_names('8 * sum by (experiment) (rate(scitags_bytes_total{switch=~"$switch",'
                        'source=~"a|b"}[$__rate_interval])) / scitags_x offset 5m') == \
        {"scitags_bytes_total", "scitags_x"}
    assert template_metric('label_values(scitags_bytes_total{switch=~"$switch"}, experiment)') == \
        {"scitags_bytes_total"}


def exported_names(text: str) -> set[str]:
    names = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        names.update({"counter": [fam.name + "_total"], "histogram": [fam.name + "_bucket", fam.name + "_sum",
                      fam.name + "_count"]}.get(fam.type, []))
        names.update(s.name for s in fam.samples)
    return names


def test_every_metric_used_is_exported_and_named_by_convention(lab):
    sw, start = lab
    rt = start()
    start_flow(rt, 44001)
    send_all(sw, 1, [v6(flowlabel.encode_label(CMS, PERFSONAR))] * 2 + [v4(44001)] * 2)
    counters(rt)
    text = api(rt, "/metrics")
    exported = exported_names(text)
    recorded, exprs = rule_exprs()
    used: dict[str, set[str]] = {}
    for e in exprs + dashboard_exprs():
        names = template_metric(e.split(":", 1)[1]) if e.startswith("__template__:") else metric_names(e)
        for n in names:
            used.setdefault(n, set()).add(e)
    assert {"scitags_bytes_total", "scitags_switch_up", "scitags_fireflies_refused_total",
            "scitags_bucket_bytes_total", "scitags_firefly_flows_limit"} <= set(used)
    missing = {n: sorted(es)[0] for n, es in used.items()
               if n not in exported and n not in recorded and n not in PROMETHEUS_OWN}
    assert not missing, f"used but not exported: {missing}"
    # no per-flow label sets: no label of a 5-tuple on any series
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            assert not {"src", "dst", "flow", "src_port", "dst_port"} & set(s.labels), s
    if PROMTOOL is None:
        pytest.skip("promtool absent (Debian package prometheus): naming lint not run")
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
