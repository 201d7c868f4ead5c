"""Counts an operator can trust (issue 16) and extension-header tags (issue 11), controller side:
the trust scope settings, the per-tag sources (flowlabel, exthdr, untrusted-label, confirmed)
in the accounting and its SQLite state, the background-estimate and confirmed/claimed columns,
and, against a real switch running the program, the same end to end through the API, the CLI
and /metrics."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller import cli, label_background, label_trust
from controller.accounting import Accounting
from controller.config import ConfigError, load_config
from controller.drivers.base import CounterSnapshot, Counts
from controller.queries import LabelView, counter_rows
from controller.runtime import build
from controller.store import Store, TotalKey
from controller.tags import TagBook
from scitags_core import flowlabel
from scitags_core.registry import Registry
from tests.controller.harness import (CMS, H1, H2, PERFSONAR, REGISTRY, P4INFO, api, api_addr,
                                      counters, row, send_all, send_firefly, start_flow)

HAVE_NEW_PROGRAM = "label_trust" in P4INFO.read_text() if P4INFO.exists() else False
needs_new_program = pytest.mark.skipif(
    not HAVE_NEW_PROGRAM, reason=f"{P4INFO} is the program before exthdr_policy/label_trust (make p4)")


# ---- the scope as settings ----

def test_scope_parsed_and_normalized():
    assert label_trust.parse_scope(None, "x") is None
    assert label_trust.parse_scope("2001:DB8:1::/48", "x") == ("2001:db8:1::/48",)
    assert label_trust.parse_scope(["2001:db8::/32", "2001:db8::/32", "::/0"], "x") == \
        ("2001:db8::/32", "::/0")
    assert label_trust.parse_scope([], "x") == ()


@pytest.mark.parametrize("bad, cause", [
    ("2001:db8::1/64", "host bits set"),
    ("10.0.0.0/8", "IPv4: flow labels exist only in IPv6"),
    ("nonsense", "not a valid prefix"),
    (42, "is not a prefix"),
])
def test_bad_prefix_refused_with_cause(bad, cause):
    with pytest.raises(ValueError, match=cause):
        label_trust.parse_scope([bad], "trust_labels_from")


def test_yaml_and_command_line(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("trust_labels_from: ['2001:db8:1::/48']\nexperiment_wildcard: off\n")
    cfg = load_config(str(conf), {})
    assert cfg.trust_labels_from == ["2001:db8:1::/48"] and cfg.experiment_wildcard is False
    cfg = load_config(str(conf), {"trust_labels_from": ["2001:db8:2::/48"], "experiment_wildcard": True})
    assert cfg.trust_labels_from == ["2001:db8:2::/48"] and cfg.experiment_wildcard is True
    conf.write_text("trust_labels_from: ['2001:db8:1::1/48']\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: trust_labels_from: '2001:db8:1::1/48'.*host bits"):
        load_config(str(conf), {})
    assert load_config(None, {}).trust_labels_from is None  # default: no scope


def test_topology_switch_scope_overrides_and_is_checked(tmp_path):
    topo = {"name": "t", "switches": {
        "s1": {"device_id": 1, "grpc_port": 50101, "cpu_port": 255},
        "s2": {"device_id": 2, "grpc_port": 50102, "cpu_port": 255,
               "trust_labels_from": ["2001:db8:2::/48"]},
        "s3": {"device_id": 3, "grpc_port": 50103, "cpu_port": 255, "trust_labels_from": []}},
        "hosts": {"h1": {"mac": "00:00:00:00:00:01"}},
        "links": [{"node1": "h1", "node2": "s1", "port2": 1},
                  {"node1": "s1", "port1": 2, "node2": "s2", "port2": 1},
                  {"node1": "s2", "port1": 2, "node2": "s3", "port2": 1}]}
    from controller.topology import Topology
    t = Topology.from_dict(topo, "topo.yaml")
    scopes = label_trust.switch_scopes(("2001:db8:1::/48",), t.switches, t.source)
    assert scopes == {"s1": ("2001:db8:1::/48",), "s2": ("2001:db8:2::/48",), "s3": ()}
    topo["switches"]["s2"]["trust_labels_from"] = ["2001:db8:zz::/48"]
    path = tmp_path / "topo.yaml"
    path.write_text(json.dumps(topo))
    cfg = load_config(None, {"topology": str(path), "launch": "never", "state_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=rf"{path}: switch s2: trust_labels_from: '2001:db8:zz::/48'"):
        build(cfg, with_api=False)


def test_cli_exits_2_on_a_bad_prefix(tmp_path):
    out = subprocess.run([sys.executable, "-m", "controller.cli", "start", "--launch", "never",
                          "--state-dir", str(tmp_path), "--trust-labels-from", "2001:db8::/129"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert "command line: trust_labels_from: '2001:db8::/129'" in out.stderr


def test_status_says_unverified_without_scope():
    class P4:  # a driver that can enforce (P4Runtime) vs one that cannot (OpenFlow)
        enforces_label_trust = True

        def has_table(self, name):
            return True

    class OF:
        enforces_label_trust = False

    st = label_trust.status({"s1": None, "s2": ("2001:db8::/32",), "s3": ("2001:db8::/32",)},
                            {"s1": P4(), "s2": P4(), "s3": OF()})
    assert st["configured"] and st["label_counts"] == "unverified"
    assert st["unverified_switches"] == ["s1", "s3"]
    assert st["switches"]["s2"] == {"trust_labels_from": ["2001:db8::/32"], "enforced": True,
                                    "label_counts": "verified"}
    assert st["switches"]["s3"]["enforced"] is False
    # the real drivers say which they are
    from controller.drivers.openflow import OpenFlowDriver
    from controller.drivers.p4runtime import P4RuntimeDriver
    assert P4RuntimeDriver.enforces_label_trust and not OpenFlowDriver.enforces_label_trust


# ---- tags and accounting ----

def _registry() -> Registry:
    return Registry.from_file(REGISTRY)


def test_experiment_wildcard_off_leaves_exact_pairs_only(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    reg = _registry()
    on = TagBook(store).build(reg)
    off = TagBook(store, experiment_wildcard=False).build(reg)
    wild = [m for m in on.values() if m.rule.activity is None]
    assert wild and len(off) == len(on) - len(wild)
    assert all(m.rule.activity is not None for m in off.values())
    store.close()


def _keys(switch="s1", registry="reg-1"):
    return {11: TotalKey(switch, "flowlabel", 3, 2, "cms", "perfSONAR", registry),
            12: TotalKey(switch, "flowlabel", 3, -1, "cms", "*", registry)}


def test_every_per_tag_source_totalled_and_persisted(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    acc = Accounting(store)
    acc.sync_tag_cells("s1", [11, 12], [])
    snap = CounterSnapshot("s1", 1.0, tags={11: Counts(5, 500)}, exthdr_tags={11: Counts(2, 220)},
                           untrusted_tags={12: Counts(3, 300)}, confirmed_tags={11: Counts(4, 400)})
    out = acc.apply_snapshot(snap, _keys(), "reg-1", lambda k: None, None)
    assert out.exthdr_tags == {11: Counts(2, 220)} and out.untrusted_tags == {12: Counts(3, 300)}
    snap2 = CounterSnapshot("s1", 2.0, tags={11: Counts(6, 600)}, exthdr_tags={11: Counts(3, 330)},
                            untrusted_tags={12: Counts(3, 300)}, confirmed_tags={11: Counts(4, 400)})
    acc.apply_snapshot(snap2, _keys(), "reg-1", lambda k: None, 1.0)
    acc.save()
    # the cells survived a re-sync of the tag cells (they are tag cells too)
    acc.sync_tag_cells("s1", [11, 12], [])
    assert acc.baseline("s1", "tag:exthdr:11") == Counts(3, 330)
    again = Accounting(Store(tmp_path / "s.sqlite"))
    again.load()
    totals = dict(again.totals_and_rates()[0])
    k = _keys()[11]
    assert totals[k] == Counts(6, 600)
    assert totals[TotalKey("s1", "exthdr", 3, 2, "cms", "perfSONAR", "reg-1")] == Counts(3, 330)
    assert totals[TotalKey("s1", "untrusted-label", 3, -1, "cms", "*", "reg-1")] == Counts(3, 300)
    assert totals[TotalKey("s1", "confirmed", 3, 2, "cms", "perfSONAR", "reg-1")] == Counts(4, 400)
    rows = counter_rows(again, labels=LabelView("reg-1", [(3, 2), (3, None)], {"s1": True}))
    assert {r["source"] for r in rows} == {"flowlabel", "exthdr", "untrusted-label"}
    fl = row(rows, source="flowlabel", activity="perfSONAR")
    assert (fl["confirmed_bytes"], fl["claimed_bytes"], fl["claimed_packets"]) == (400, 200, 2)
    assert fl["label_counts"] == "verified"
    assert "confirmed_bytes" not in row(rows, source="exthdr")


def test_background_column_from_the_unregistered_bucket(tmp_path):
    acc = Accounting(Store(tmp_path / "s.sqlite"))
    rules = [(3, 2), (3, None), (2, 9)]
    covers = label_background.covers(rules)
    unregistered = Counts(100_000, 10_000_000)
    acc.totals = {**{k: Counts(50, 5000) for k in _keys().values()},
                  TotalKey("s1", "bucket", -1, -1, "unregistered", "", "reg-1"): unregistered,
                  TotalKey("s1", "flowlabel", 3, 2, "cms", "perfSONAR", "reg-0"): Counts(1, 100)}
    rows = counter_rows(acc, labels=LabelView("reg-1", rules, {}))
    free = 1 - label_background.covered_share(covers)
    exact = row(rows, source="flowlabel", activity="perfSONAR", registry="reg-1")
    wild = row(rows, source="flowlabel", activity="*")
    assert exact["background_packets"] == round(100_000 / free / 32768, 3)
    assert wild["background_bytes"] == round(10_000_000 / free * 63 / 32768, 3)
    assert exact["label_counts"] == "unverified"
    # an older registry's rows: no estimate (its rules are not installed any more)
    assert row(rows, source="flowlabel", registry="reg-0")["background_packets"] is None


# ---- end to end against a real switch (the program with exthdr_policy and label_trust) ----

OUTSIDE = "2001:db8:99::7"


def _frame(label: int, src: str = H1["ipv6"], sport: int = 5000, ext: bytes = b"",
           first_nh: int | None = None) -> bytes:
    l4 = bytes(TCP(sport=sport, dport=1094) / Raw(b"x" * 40))
    ip = IPv6(src=src, dst=H2["ipv6"], fl=label, nh=first_nh if ext else 6)
    return bytes(Ether(src=H1["mac"], dst=H2["mac"]) / ip / Raw(ext + l4))


def _hop(exp: int, act: int) -> bytes:
    return bytes([6, 0, 0x1E, 3, exp >> 8, exp & 0xFF, act, 0])  # flowd-go's Hop-by-Hop header


@needs_new_program
@pytest.mark.timeout(180)
def test_scope_exthdr_and_confirmed_end_to_end(one_switch):
    sw, start = one_switch
    # the IPv6 flow's firefly comes from 127.0.0.1 (UDP on loopback), not from its endpoint
    rt = start(trust_labels_from=[f"{H1['ipv6']}/128"], **{"firefly.require_endpoint": False})
    tag = flowlabel.encode_label(CMS, PERFSONAR, entropy=1)
    inside, outside = _frame(tag), _frame(tag, src=OUTSIDE)
    unregistered_outside = _frame(flowlabel.encode_label(300, 1), src=OUTSIDE)
    opt = _frame(0x5A3C1, src=OUTSIDE, ext=_hop(CMS, PERFSONAR), first_nh=0)
    send_all(sw, 1, [inside] * 4 + [outside] * 3 + [unregistered_outside] * 2 + [opt] * 5)
    rows = counters(rt)
    assert row(rows, source="flowlabel", activity="perfSONAR")["packets"] == 4
    assert row(rows, source="untrusted-label", activity="perfSONAR")["bytes"] == 3 * len(outside)
    assert row(rows, source="exthdr", activity="perfSONAR")["bytes"] == 5 * len(opt)
    assert row(rows, bucket="untrusted_label")["packets"] == 5
    assert row(rows, bucket="unregistered") is None
    fl = row(rows, source="flowlabel", activity="perfSONAR")
    assert fl["label_counts"] == "verified" and fl["background_packets"] == 0.0
    data = api(rt, "/api/v1/counters")
    assert data["label_trust"]["label_counts"] == "verified"
    assert data["label_trust"]["switches"]["s1"]["trust_labels_from"] == [f"{H1['ipv6']}/128"]
    metrics = api(rt, "/metrics")
    assert 'scitags_label_trust_scope_configured{switch="s1"} 1.0' in metrics
    assert ('scitags_bytes_total{activity="perfSONAR",experiment="cms",source="exthdr",switch="s1"} '
            f"{5 * len(opt)}.0") in metrics
    # a firefly flow whose packets carry the same tag: confirmed, the rest claimed
    key = start_flow(rt, 5100)
    from controller.drivers.base import FlowKey
    v6key = FlowKey.of(H1["ipv6"], H2["ipv6"], "tcp", 5101, 1094)
    send_firefly(rt, "start", H1["ipv6"], H2["ipv6"], 5101, 1094, CMS, PERFSONAR, sender="127.0.0.1")
    from labnet.waiting import wait_until
    wait_until(lambda: v6key in rt.controller.flows and rt.controller.flows[v6key].installed, what="v6 flow")
    declared = _frame(tag, sport=5101)
    send_all(sw, 1, [declared] * 6)
    fl = row(counters(rt), source="flowlabel", activity="perfSONAR")
    assert fl["packets"] == 10 and fl["confirmed_packets"] == 6 and fl["claimed_packets"] == 4
    assert fl["confirmed_bytes"] == 6 * len(declared)
    assert key in rt.controller.flows
    # the CLI header says the counts are verified
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["counters", "--api", api_addr(rt)]) == 0
    assert out.getvalue().startswith("label counts: verified")
    assert "BACKGROUND" in out.getvalue() and "exthdr" in out.getvalue()


@needs_new_program
@pytest.mark.timeout(180)
def test_without_scope_unverified_with_an_estimate(one_switch):
    sw, start = one_switch
    rt = start()
    tag = flowlabel.encode_label(CMS, PERFSONAR, entropy=1)
    background = [_frame(flowlabel.encode_label(300 + i % 100, i % 64, entropy=i % 4), sport=6000 + i)
                  for i in range(200)]  # unregistered experiments: all in the bucket
    send_all(sw, 1, [_frame(tag)] * 3 + background)
    rows = counters(rt)
    fl = row(rows, source="flowlabel", activity="perfSONAR")
    assert fl["label_counts"] == "unverified" and fl["background_packets"] > 0, rows
    assert row(rows, bucket="unregistered")["packets"] == 200
    data = api(rt, "/api/v1/counters")
    assert data["label_trust"]["label_counts"] == "unverified"
    metrics = api(rt, "/metrics")
    assert 'scitags_label_trust_scope_configured{switch="s1"} 0.0' in metrics
    assert 'scitags_label_background_packets{activity="perfSONAR",experiment="cms",switch="s1"}' in metrics
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["counters", "--api", api_addr(rt)]) == 0
    assert out.getvalue().startswith("label counts: UNVERIFIED on s1")
    # the scope is a reconciled setting: the switch holds the trust entries after a restart
    # of the controller with a scope (one entry, default distrust)
    rt.stop()
    rt2 = start(name="ctl2", trust_labels_from=["2001:db8::/64"])
    d = rt2.controller.switches["s1"].driver
    from controller.drivers.p4runtime import T_TRUST
    entries = d._read_tables([T_TRUST])[T_TRUST]
    assert len(entries) == 1 and entries[0].action == "ScitagsIngress.trust_label"
    assert d._read_default(T_TRUST) in ("ScitagsIngress.distrust_label", None)
