"""Full path: hosts with the marker, P4 switches (softswitch / BMv2), the controller.

One lab per switch kind on topologies/line3.yaml (h1 - s1 - s2 - s3 - h2, monitor on s2,
cms mirrored), controller polling every second. Counters are compared as deltas around
each test's traffic.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from scitags_core import flowlabel
from tests.fullpath.conftest import SWITCHES, TOPOLOGIES, grpc_offset, needs_mininet, needs_program

pytestmark = [needs_mininet, needs_program, pytest.mark.mininet]
HERE = Path(__file__).resolve().parent
POLL = 1.0


class FullPath:
    def __init__(self, lab: Any, ctl: Any) -> None:
        self.lab, self.ctl = lab, ctl
        self.h1, self.h2, self.mon = lab.host("h1"), lab.host("h2"), lab.host("mon1")
        self.path = lab.topology.switches_on_path(self.h1.spec.ipv6.ip, self.h2.spec.ipv6.ip)

    def counters(self) -> list[dict]:
        return self.ctl.counters()

    def settle(self) -> list[dict]:
        return self.ctl.settled_counters()

    def marker(self, *args: str) -> str:
        from labnet.traffic import marker_cmd

        return marker_cmd(self.h1, *args)


def total(rows: list[dict], **match: Any) -> tuple[int, int]:
    sel = [r for r in rows if all(str(r.get(k)).lower() == str(v).lower() for k, v in match.items())]
    return sum(r["packets"] for r in sel), sum(r["bytes"] for r in sel)


def delta(before: list[dict], after: list[dict], **match: Any) -> tuple[int, int]:
    (p0, b0), (p1, b1) = total(before, **match), total(after, **match)
    return p1 - p0, b1 - b0


@pytest.fixture(scope="module", params=SWITCHES)
def fp(request, tmp_path_factory) -> Iterator[FullPath]:
    from controller.topology import load_topology
    from labnet.controller_proc import ControllerProcess
    from labnet.network import Lab
    from labnet.topofile import shifted_copy

    tmp = tmp_path_factory.mktemp(f"fullpath-{request.param}")
    offset = grpc_offset()
    topo_file = shifted_copy(TOPOLOGIES / "line3.yaml", tmp, offset)
    lab = Lab(load_topology(topo_file), switch=request.param)
    ctl = None
    try:
        lab.start()
        ctl = ControllerProcess(topo_file, request.param, api=f"127.0.0.1:{9180 + offset}",
                                state_dir=tmp / "state", log_path=lab.log_dir / "controller.log",
                                mirror=["cms"], poll_interval=POLL)
        ctl.start()
        lab.track("controller", ctl.proc.pid)
        f = FullPath(lab, ctl)
        for afi in (6, 4):  # neighbour discovery / ARP through the switches first
            dst = str((f.h2.spec.ipv6 if afi == 6 else f.h2.spec.ipv4).ip)
            for _ in range(20):
                if "1 received" in f.h1.cmd(f"ping -{afi} -c1 -W1 {dst}"):
                    break
            else:
                pytest.fail(f"h1 cannot reach {dst}; logs in {lab.log_dir}")
        yield f
    finally:
        if ctl is not None:
            ctl.stop()
        lab.stop()


def test_marked_flow_counted_on_every_switch_of_the_path(fp: FullPath):
    from labnet.traffic import flow_args, run_client, start_server, transfer

    t = transfer(fp.h1, fp.h2, 6, 5301, 40101)
    server = start_server(t)
    time.sleep(0.3)
    before = fp.counters()
    out = fp.marker("flow", "start", *flow_args(t), "atlas", "Debug", "--standalone")
    assert "label 0x" in out
    result = run_client(t, 2, "4M")
    fp.marker("flow", "end", *flow_args(t), "--standalone")
    server.wait(10)
    after = fp.settle()
    sent = result["sent_bytes"]
    assert fp.path == ["s1", "s2", "s3"]
    for sw in fp.path:
        pkts, got = delta(before, after, switch=sw, source="flowlabel", experiment="atlas", activity="Debug")
        # every data segment carries at least its payload; headers add ~5% (eth+ipv6+tcp+options)
        assert sent <= got <= sent * 1.10 + 20_000, (sw, sent, got)
        assert pkts >= sent // 1500
        # nothing of it under another experiment
        _, other = delta(before, after, switch=sw, source="flowlabel", experiment="cms", activity="Cache")
        assert other == 0


def test_firefly_ipv4_flow_counted_and_removed_after_end(fp: FullPath):
    from labnet.traffic import flow_args, run_client, start_server, transfer

    t = transfer(fp.h1, fp.h2, 4, 5302, 40102)
    server = start_server(t)
    time.sleep(0.3)
    out = fp.marker("flow", "start", *flow_args(t), "lhcb", "Cache", "--standalone")
    assert "IPv4: fireflies only" in out

    def live() -> dict | None:
        return next((f for f in fp.ctl.flows()["live"] if f["src_port"] == 40102), None)

    deadline = time.monotonic() + 10
    while live() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    entry = live()
    assert entry is not None and entry["afi"] == 4
    assert (entry["experiment_name"], entry["activity_name"]) == ("lhcb", "Cache")
    before = fp.counters()
    result = run_client(t, 2, "4M")
    server.wait(10)
    after = fp.settle()
    for sw in fp.path:
        _, got = delta(before, after, switch=sw, source="firefly", experiment="lhcb", activity="Cache")
        assert result["sent_bytes"] <= got <= result["sent_bytes"] * 1.10 + 20_000, (sw, got)
    fp.marker("flow", "end", *flow_args(t), "--standalone")
    deadline = time.monotonic() + 10
    while live() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live() is None

    def recent() -> list[dict]:  # ended flows reach the store on its next save
        return [f for f in fp.ctl.flows()["recent"] if f.get("src_port") == 40102 or ":40102" in f.get("flow", "")]

    deadline = time.monotonic() + 15
    while not recent() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert recent(), "ended flow not in the recent list"


def _capture(host: Any, intf: str, pcap: Path, filt: str) -> Any:
    proc = host.popen(["tcpdump", "-i", intf, "-U", "-n", "-w", str(pcap), filt])
    time.sleep(1.0)  # tcpdump needs a moment before it sees packets
    return proc


def _frames(pcap: Path) -> list[bytes]:
    from scapy.all import rdpcap

    return [bytes(p) for p in rdpcap(str(pcap))]


def test_monitor_port_receives_exact_copies(fp: FullPath, tmp_path):
    src, dst = str(fp.h1.spec.ipv6.ip), str(fp.h2.spec.ipv6.ip)
    cms = flowlabel.encode_label(3, 3, entropy=9)  # mirrored (--mirror cms)
    atlas = flowlabel.encode_label(2, 9, entropy=9)  # not mirrored
    mon_pcap, h1_pcap = tmp_path / "mon.pcap", tmp_path / "h1.pcap"
    caps = [_capture(fp.mon, "mon1-eth0", mon_pcap, "ip6 and udp"),
            _capture(fp.h1, "h1-eth0", h1_pcap, "ip6 and udp and dst port 5401")]
    for port, label in ((5401, cms), (5402, atlas)):
        out = fp.h1.cmd(shlex.join([sys.executable, str(HERE / "send_udp.py"), src, dst, "41001", str(port),
                                    "30", hex(label)]))
        assert out.strip().endswith("30"), out
    time.sleep(1.5)
    for c in caps:
        c.terminate()
        c.wait(10)
    sent = _frames(h1_pcap)
    mirrored = _frames(mon_pcap)
    assert len(sent) == 30
    assert mirrored == sent  # byte for byte, in order; the atlas packets were not copied


def test_unmarked_never_attributed_and_wrong_label_is_a_mismatch(fp: FullPath):
    src, dst = str(fp.h1.spec.ipv6.ip), str(fp.h2.spec.ipv6.ip)
    before = fp.counters()
    out = fp.h1.cmd(shlex.join([sys.executable, str(HERE / "send_udp.py"), src, dst, "41002", "5501", "40", "0"]))
    assert out.strip().endswith("40")
    after = fp.settle()
    for sw in fp.path:
        tagged = [r for r in after if r["switch"] == sw and r["source"] != "bucket"]
        for r in tagged:
            assert delta(before, after, switch=sw, source=r["source"], experiment=r["experiment"],
                         activity=r["activity"]) == (0, 0), r
        assert delta(before, after, switch=sw, source="bucket", bucket="unmarked")[0] >= 40

    # a flow declared by its firefly as cms/Cache whose packets carry atlas/Debug
    fp.marker("flow", "start", "udp", src, "41003", dst, "5502", "cms", "Cache", "--standalone")
    try:
        time.sleep(1.0)  # firefly -> controller -> flow entry on the switches
        before = fp.counters()
        wrong = flowlabel.encode_label(2, 9, entropy=0)
        fp.h1.cmd(shlex.join([sys.executable, str(HERE / "send_udp.py"), src, dst, "41003", "5502", "25", hex(wrong)]))
        after = fp.settle()
    finally:
        fp.marker("flow", "end", "udp", src, "41003", dst, "5502", "--standalone")
    for sw in fp.path:
        assert delta(before, after, switch=sw, source="bucket", bucket="mismatch")[0] >= 25, sw


def test_marker_rules_gone_after_end_and_after_clean(fp: FullPath):
    src, dst = str(fp.h1.spec.ipv6.ip), str(fp.h2.spec.ipv6.ip)
    fp.marker("flow", "start", "tcp", src, "41100", dst, "5601", "cms", "Cache", "--standalone")
    assert "scitags_marker" in fp.h1.cmd("nft list ruleset")
    fp.marker("flow", "end", "tcp", src, "41100", dst, "5601", "--standalone")
    assert "scitags_marker" not in fp.h1.cmd("nft list ruleset")

    # a daemon killed with a live flow leaves its rule; `marker clean` removes it
    sock = str(fp.lab.log_dir / "h1-clean-test.sock")
    from labnet.traffic import MARKER

    daemon = fp.h1.popen([MARKER, "run", "--socket", sock, "--no-np-api", "--ongoing", "0"])
    deadline = time.monotonic() + 15
    while "rc=0" not in fp.h1.cmd(f"{MARKER} status --socket {sock} >/dev/null 2>&1; echo rc=$?"):
        assert time.monotonic() < deadline, "marker daemon did not start"
        time.sleep(0.2)
    fp.marker("flow", "start", "tcp", src, "41101", dst, "5602", "3", "3", "--daemon", "--socket", sock)
    assert "41101" in fp.h1.cmd("nft list ruleset")
    daemon.kill()
    daemon.wait(10)
    assert "41101" in fp.h1.cmd("nft list ruleset")
    out = fp.marker("clean", "--socket", sock, "--json")
    assert json.loads(out)["tables"] == ["scitags_marker"]
    assert "scitags_marker" not in fp.h1.cmd("nft list ruleset")
