"""The export as real collectors read it: pmacct's nfacctd with the shipped deploy/pmacct
configuration (JSON with Stardust's keys and the scitags fields) and nfdump's nfcapd
(`nfdump -r`), both receiving the same export at once. Checked exactly against what was fed."""
from __future__ import annotations

import collections
import time
from ipaddress import ip_address

import pytest

from controller.drivers.base import Counts, FlowKey
from controller.ipfix.exporter import IpfixExporter
from controller.ipfix.reports import AggregateReports, DomainIds, FlowInfo, FlowReports
from tests.ipfix.collectors import (
    HAVE_NFACCTD, HAVE_NFDUMP, MISSING_NFACCTD, MISSING_NFDUMP, Nfacctd, Nfcapd)

needs_nfacctd = pytest.mark.skipif(not HAVE_NFACCTD, reason=MISSING_NFACCTD)
needs_nfdump = pytest.mark.skipif(not HAVE_NFDUMP, reason=MISSING_NFDUMP)
DOMAINS = {"s1": 1, "s2": 2}
PROTO_NAMES = {6: "tcp", 17: "udp"}


def five_tuple(key: FlowKey) -> tuple:
    return (str(key.src), str(key.dst), key.src_port, key.dst_port, key.protocol)


def make_flows(n: int, t0: float) -> list[FlowInfo]:
    flows = []
    for i in range(n):
        if i % 2:
            key = FlowKey.of(f"2001:db8::{i:x}", "2001:db8:1::1", "tcp", 30000 + i, 443)
            label = (0x30038 | (i & 3)) if i % 4 == 1 else 0  # some flows with a label seen
        else:
            key = FlowKey.of(f"10.1.{i >> 8}.{i & 255}", "192.0.2.7", "udp", 20000 + i, 2811)
            label = 0
        flows.append(FlowInfo(key, experiment=1 + i % 14, activity=1 + i % 4, started=t0, flow_label=label))
    return flows


def export_scenario(exporter: IpfixExporter, n_flows: int = 240):
    """Flows on two switches, each read three times (two active timeouts) and ended;
    aggregates for a few tags. Returns what a collector must end up with."""
    t0 = time.time() - 60
    ids = DomainIds(DOMAINS)
    flows_rep = FlowReports(exporter.submit_many, ids, active_timeout_s=10)  # polls 11-12 s apart
    aggs = AggregateReports(exporter.submit_many, ids, interval_s=30)
    aggs._start = t0
    flows = make_flows(n_flows, t0)
    for info in flows:
        flows_rep.started(info)
    want_flows: dict[tuple, dict] = {}
    for step, dt in enumerate((1, 12, 24)):  # polls: deltas of the flows that moved
        for switch in ("s1", "s2"):
            deltas = [(info.key, Counts(i + 1, (i + 1) * 1200 + (i if step == 0 else 0)))
                      for i, info in enumerate(flows) if ("s1" if i % 3 else "s2") == switch]
            flows_rep.reading(switch, deltas, now=t0 + dt)
    reasons = ("end", "idle:s1", "evicted")
    for i, info in enumerate(flows):
        switch = "s1" if i % 3 else "s2"
        packets = (i + 1) * 4
        flows_rep.ended(info.key, {switch: (packets, packets * 1200 + i)}, reasons[i % 3], now=t0 + 30)
        want_flows[five_tuple(info.key)] = {
            "packets": packets, "bytes": packets * 1200 + i, "experiment": info.experiment,
            "activity": info.activity, "label": info.flow_label, "switch": switch,
            "start": t0, "end_reason": {"end": 3, "idle:s1": 1, "evicted": 4}[reasons[i % 3]]}
    want_aggs: dict[tuple, list[int]] = collections.defaultdict(lambda: [0, 0])
    for j in range(40):
        switch, exp, act = ("s1", "s2")[j % 2], 1 + j % 5, (None, 1, 2, 4)[j % 4]
        aggs.add(switch, "flowlabel", exp, act, j + 1, (j + 1) * 1500, now=t0 + 1 + j / 4)
        want_aggs[(switch, exp, act or 0)][0] += j + 1
        want_aggs[(switch, exp, act or 0)][1] += (j + 1) * 1500
    assert aggs.flush(now=t0 + 30) == len(want_aggs)
    records = flows_rep.records["active"] + flows_rep.records["end"] + aggs.records
    return want_flows, dict(want_aggs), records


@needs_nfacctd
@needs_nfdump
def test_nfacctd_and_nfcapd_read_the_export(tmp_path):
    nfacctd = Nfacctd(tmp_path / "pmacct").start()
    nfcapd = Nfcapd(tmp_path / "nfdump").start()
    exporter = IpfixExporter([("127.0.0.1", nfacctd.port), ("127.0.0.1", nfcapd.port)]).start()
    try:
        want_flows, want_aggs, n_records = export_scenario(exporter)
        assert exporter.flush()
        total_bytes = sum(f["bytes"] for f in want_flows.values()) + sum(b for _, b in want_aggs.values())
        rows = nfacctd.wait_bytes(total_bytes)
        nf_flows = nfcapd.flows()
        summary = nfcapd.summary()
    finally:
        exporter.stop()
        nfacctd.stop()
        nfcapd.stop()
    st = exporter.status()
    assert st["collectors"][0]["records"] == st["collectors"][1]["records"] == n_records == st["submitted"]
    assert n_records == 240 * 3 + len(want_aggs)

    # ---- pmacct: Stardust keys, scitags fields, exact sums per 5-tuple ----
    flow_rows = [r for r in rows if r["metering_process"] == "0"]
    agg_rows = [r for r in rows if r["metering_process"] == "1"]
    assert len(flow_rows) + len(agg_rows) == len(rows)
    for key in ("ip_src", "ip_dst", "port_src", "port_dst", "ip_proto", "timestamp_start",
                "timestamp_end", "packets", "bytes", "scitags_experiment", "scitags_activity",
                "ipv6_flow_label", "switch", "export_proto_sysid", "flow_end_reason"):
        assert all(key in r for r in rows), f"key {key} missing in nfacctd's JSON"
    got: dict[tuple, dict] = {}
    for r in flow_rows:
        proto = {v: k for k, v in PROTO_NAMES.items()}[r["ip_proto"]]
        g = got.setdefault((r["ip_src"], r["ip_dst"], r["port_src"], r["port_dst"], proto),
                           {"packets": 0, "bytes": 0, "reasons": set(), "tags": set()})
        g["packets"] += r["packets"]
        g["bytes"] += r["bytes"]
        g["reasons"].add(int(r["flow_end_reason"]))
        g["tags"].add((int(r["scitags_experiment"]), int(r["scitags_activity"]),
                       int(r["ipv6_flow_label"]), r["switch"], r["export_proto_sysid"],
                       round(float(r["timestamp_start"]) * 1000)))
    assert set(got) == set(want_flows)
    for ft, w in want_flows.items():
        g = got[ft]
        assert (g["packets"], g["bytes"]) == (w["packets"], w["bytes"]), ft
        assert g["reasons"] == {2, w["end_reason"]}, ft  # active-timeout records, then the end
        assert g["tags"] == {(w["experiment"], w["activity"], w["label"], w["switch"],
                              DOMAINS[w["switch"]], int(w["start"] * 1000))}, ft
    got_aggs: dict[tuple, list[int]] = collections.defaultdict(lambda: [0, 0])
    for r in agg_rows:
        k = (r["switch"], int(r["scitags_experiment"]), int(r["scitags_activity"]))
        assert r["export_proto_sysid"] == DOMAINS[r["switch"]]
        got_aggs[k][0] += r["packets"]
        got_aggs[k][1] += r["bytes"]
    assert dict(got_aggs) == want_aggs

    # ---- nfdump: the same flows with the right bytes and packets ----
    assert "Sequence Errors: 0" in summary and f"Flows: {n_records}," in summary, summary
    nf_got: dict[tuple, list[int]] = collections.defaultdict(lambda: [0, 0])
    agg_bytes = 0
    for f in nf_flows:
        src = f.get("src4_addr") or f.get("src6_addr")
        if f["proto"] == 0:  # aggregate records: no 5-tuple
            agg_bytes += f["in_bytes"]
            continue
        dst = f.get("dst4_addr") or f.get("dst6_addr")
        k = (str(ip_address(src)), str(ip_address(dst)), f["src_port"], f["dst_port"], f["proto"])
        nf_got[k][0] += f["in_packets"]
        nf_got[k][1] += f["in_bytes"]
    assert dict(nf_got) == {k: [w["packets"], w["bytes"]] for k, w in want_flows.items()}
    assert agg_bytes == sum(b for _, b in want_aggs.values())


@needs_nfacctd
def test_collector_started_late_decodes_after_the_template_refresh(tmp_path):
    nfacctd = Nfacctd(tmp_path / "pmacct")
    exporter = IpfixExporter([("127.0.0.1", nfacctd.port)], template_refresh_s=2.0).start()
    t0 = time.time()
    ids = DomainIds(DOMAINS)
    rep = FlowReports(exporter.submit_many, ids, active_timeout_s=10)
    flows = make_flows(30, t0)
    try:
        for info in flows[:10]:  # templates and data, to nobody
            rep.ended(info.key, {"s1": (1, 100)}, "end", now=t0 + 1, info=info)
        exporter.flush()
        nfacctd.start()
        for info in flows[10:20]:  # data only: the collector has no template yet
            rep.ended(info.key, {"s1": (2, 200)}, "end", now=t0 + 2, info=info)
        exporter.flush()
        time.sleep(2.5)  # the refresh re-sends the templates
        for info in flows[20:]:
            rep.ended(info.key, {"s1": (3, 300)}, "end", now=t0 + 3, info=info)
        exporter.flush()
        rows = nfacctd.wait_bytes(10 * 300)
    finally:
        exporter.stop()
        nfacctd.stop()
    assert sorted((r["ip_src"], r["bytes"]) for r in rows) == sorted(
        (str(f.key.src), 300) for f in flows[20:])
