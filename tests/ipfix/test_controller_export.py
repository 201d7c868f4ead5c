"""End to end: `controller start` with the IPFIX extension and the built-in target (softswitch
on veth ports, real gRPC), real traffic of a firefly flow and of label-tagged packets through
the switch, exported to a real nfacctd running the shipped deploy/pmacct configuration and to
nfcapd: nfacctd's JSON and `nfdump -r` have the flow with exactly the bytes and packets the
switch counted, and the tag aggregate."""
from __future__ import annotations

import pytest

from controller.ipfix.feature import IpfixExtension
from labnet.waiting import wait_until
from scitags_core import flowlabel
from tests.conftest import IS_ROOT
from tests.controller.harness import (
    CMS, H1, H2, HAVE_SOFT_CLI, PERFSONAR, api, counters, flow_on_switch, observer, one_switch_lab,
    row, send_all, send_firefly, start_flow, v4, v6)
from tests.ipfix.collectors import (
    HAVE_NFACCTD, HAVE_NFDUMP, MISSING_NFACCTD, MISSING_NFDUMP, Nfacctd, Nfcapd)

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not IS_ROOT, reason="needs root for veth ports"),
    pytest.mark.skipif(not HAVE_SOFT_CLI, reason="softswitch/cli.py not built yet"),
    pytest.mark.skipif(not HAVE_NFACCTD, reason=MISSING_NFACCTD),
]


@pytest.fixture
def lab(tmp_path):
    nfacctd = Nfacctd(tmp_path / "pmacct").start()
    nfcapd = Nfcapd(tmp_path / "nfdump").start() if HAVE_NFDUMP else None
    try:
        with one_switch_lab("soft", tmp_path) as (sw, start_plain):
            def start(**section):  # the same export to both collectors (--ipfix is repeatable)
                section.setdefault("collectors", [f"127.0.0.1:{c.port}" for c in (nfacctd, nfcapd) if c])
                return start_plain(extensions=[IpfixExtension()], sections={"ipfix": section})
            yield sw, nfacctd, nfcapd, start
    finally:
        nfacctd.stop()
        if nfcapd:
            nfcapd.stop()


def test_firefly_flow_and_tag_aggregate_reach_nfacctd(lab):
    sw, nfacctd, nfcapd, start = lab
    rt = start(active_timeout_s=1.0, aggregate_interval_s=1.0, template_refresh_s=1.0)
    obs = observer(sw)
    try:
        key = start_flow(rt, 40100)
        frame = v4(40100)
        send_all(sw, 1, [frame] * 6)
        counters(rt)  # a poll: 6 packets counted, the flow's first record is due a second later
        wait_until(lambda: rt.controller.status()["ipfix"]["flow_records"]["active"] >= 1,
                   what="an active-timeout record", timeout=10)
        send_all(sw, 1, [frame] * 3)
        tagged = v6(flowlabel.encode_label(CMS, PERFSONAR), sport=5555)
        send_all(sw, 1, [tagged] * 5)
        counters(rt)
        send_firefly(rt, "end", H1["ipv4"], H2["ipv4"], 40100, 1094, CMS, PERFSONAR)
        wait_until(lambda: not flow_on_switch(obs, key), what="entry removed")
        recent = wait_until(lambda: api(rt, "/api/v1/flows")["recent"], what="flow history")
        counted = recent[0]
        assert counted["packets"] == 9 and counted["bytes"] == 9 * len(frame)
        tag_row = row(counters(rt), source="flowlabel", experiment="cms", activity="perfSONAR")
        assert tag_row["packets"] == 5 and tag_row["bytes"] == 5 * len(tagged)
        wait_until(lambda: rt.controller.status()["ipfix"]["aggregate_records"] >= 1,
                   what="the aggregate interval closed", timeout=10)
        status = api(rt, "/api/v1/status")["ipfix"]
        metrics = api(rt, "/metrics")
        rows = nfacctd.wait_bytes(counted["bytes"] + tag_row["bytes"])
    finally:
        obs.close()
    flow_rows = [r for r in rows if r["metering_process"] == "0"]
    agg_rows = [r for r in rows if r["metering_process"] == "1"]
    assert {(r["ip_src"], r["ip_dst"], r["port_src"], r["port_dst"], r["ip_proto"]) for r in flow_rows} == {
        (H1["ipv4"], H2["ipv4"], 40100, 1094, "tcp")}
    assert sum(r["packets"] for r in flow_rows) == counted["packets"]
    assert sum(r["bytes"] for r in flow_rows) == counted["bytes"]
    assert len(flow_rows) >= 2  # at least one active-timeout record, then the end
    assert {r["flow_end_reason"] for r in flow_rows} == {"2", "3"}
    assert {(r["scitags_experiment"], r["scitags_activity"], r["switch"], r["export_proto_sysid"])
            for r in flow_rows} == {(str(CMS), str(PERFSONAR), "s1", 1)}
    assert sum(r["bytes"] for r in agg_rows) == tag_row["bytes"]
    assert sum(r["packets"] for r in agg_rows) == tag_row["packets"]
    assert {(r["scitags_experiment"], r["scitags_activity"], r["switch"]) for r in agg_rows} == {
        (str(CMS), str(PERFSONAR), "s1")}
    coll = status["collectors"][0]
    assert coll["records"] == len(flow_rows) + len(agg_rows) and status["dropped"]["queue-full"] == 0
    assert status["observation_domains"] == {"s1": 1}
    assert f'scitags_ipfix_records_exported_total{{collector="127.0.0.1:{nfacctd.port}"}}' in metrics
    assert 'scitags_ipfix_records_dropped_total{collector="",reason="queue-full"} 0.0' in metrics
    if nfcapd is None:
        pytest.skip(MISSING_NFDUMP)  # the nfacctd half above has run
    nf = nfcapd.flows()
    nf_flow = [f for f in nf if f["proto"] == 6]
    assert {(f["src4_addr"], f["dst4_addr"], f["src_port"], f["dst_port"]) for f in nf_flow} == {
        (H1["ipv4"], H2["ipv4"], 40100, 1094)}
    assert sum(f["in_bytes"] for f in nf_flow) == counted["bytes"]
    assert sum(f["in_packets"] for f in nf_flow) == counted["packets"]
    assert sum(f["in_bytes"] for f in nf if f["proto"] == 0) == tag_row["bytes"]


def test_unreachable_collector_never_blocks_counting(lab):
    """A collector address that errors on every send: fireflies and counting go on, the
    records are counted as dropped, status and metrics say so."""
    sw, _, _, start = lab
    rt = start(collectors=["255.255.255.255:9"])  # broadcast: EACCES on each send, nothing leaves
    obs = observer(sw)
    try:
        key = start_flow(rt, 40200)
        send_all(sw, 1, [v4(40200)] * 4)
        counters(rt)
        send_firefly(rt, "end", H1["ipv4"], H2["ipv4"], 40200, 1094, CMS, PERFSONAR)
        wait_until(lambda: not flow_on_switch(obs, key), what="entry removed")
        assert api(rt, "/api/v1/flows")["recent"][0]["packets"] == 4
        wait_until(lambda: api(rt, "/api/v1/status")["ipfix"]["collectors"][0]["dropped"]["send-error"] >= 1,
                   what="the end record counted as dropped")
        metrics = api(rt, "/metrics")
    finally:
        obs.close()
    assert 'scitags_ipfix_records_dropped_total{collector="255.255.255.255:' in metrics
