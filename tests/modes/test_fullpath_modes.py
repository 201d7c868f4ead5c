"""Full path in Mininet for each placement mode (issue 15), on BMv2 and the built-in target:

- wire and learn: the lab runs topologies/wire.yaml and learn.yaml (Mininet needs the hosts to
  create them), the controller a copy WITHOUT the hosts (their ports declared under `ports:`,
  the learn triangle's switch links kept for the spanning tree): hosts it does not know
  exchange traffic, which every switch on the path counts exactly;
- tap: topologies/tap.yaml, where tc mirred copies both directions of s1's link to h1 onto the
  tap switch t1's two ports: t1 counts the same packets and bytes as the inline s1, once each,
  and per direction (t1's ports are labelled lan / wan).
Frames are sent paced (send_frames.py) so that no target drops under a loaded machine.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from labnet.waiting import poll, wait_until
from scitags_core import flowlabel
from tests.fullpath.conftest import SWITCHES, TOPOLOGIES, grpc_offset, needs_mininet, needs_program

pytestmark = [needs_mininet, needs_program, pytest.mark.mininet]
SEND_FRAMES = Path(__file__).resolve().parents[1] / "fullpath" / "send_frames.py"
CMS, CACHE = 3, 3
N_OUT, N_BACK, PPS = 60, 40, 200


def without_hosts(src: Path, dest: Path) -> Path:
    """The controller's copy: no hosts, no host links; their switch ports under `ports:`."""
    doc = yaml.safe_load(src.read_text())
    hosts = set(doc.pop("hosts", {}) or {})
    kept = []
    for link in doc.get("links", []):
        for me, other, port in (("node1", "node2", "port1"), ("node2", "node1", "port2")):
            if link[other] in hosts and link[me] not in hosts:
                spec = doc["switches"][link[me]]
                ports = spec.setdefault("ports", {})
                if isinstance(ports, list):
                    ports = spec["ports"] = {p: {} for p in ports}
                ports.setdefault(link[port], {})
        if link["node1"] not in hosts and link["node2"] not in hosts:
            kept.append(link)
    doc["links"] = kept
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


class Run:
    def __init__(self, lab: Any, ctl: Any) -> None:
        self.lab, self.ctl = lab, ctl
        self.h1, self.h2 = lab.host("h1"), lab.host("h2")

    def send(self, src: Any, dst: Any, n: int, sport: int) -> int:
        """n UDP datagrams labelled cms/Cache, paced; returns the frames' total bytes."""
        label = flowlabel.encode_label(CMS, CACHE, entropy=5)
        frames = [bytes(Ether(src=src.spec.mac, dst=dst.spec.mac)
                        / IPv6(src=str(src.spec.ipv6.ip), dst=str(dst.spec.ipv6.ip), fl=label)
                        / UDP(sport=sport, dport=9) / Raw(b"%05d" % i + b"m" * 300)) for i in range(n)]
        path = self.lab.log_dir / f"frames-{sport}.bin"
        path.write_bytes(b"".join(struct.pack("!H", len(f)) + f for f in frames))
        out = src.cmd(f"python3 {SEND_FRAMES} {src.defaultIntf().name} {path} {PPS}")
        assert out.strip().endswith(str(n)), out
        return sum(map(len, frames))

    def cms(self, rows: list[dict]) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for r in rows:
            if r.get("source") == "flowlabel" and str(r.get("experiment")).lower() == "cms" \
                    and str(r.get("activity")).lower() == "cache":
                p, b = out.get(r["switch"], (0, 0))
                out[r["switch"]] = (p + r["packets"], b + r["bytes"])
        return out

    def deltas(self, before: dict, switches, want: dict, timeout: float = 30.0) -> dict:
        """Per-switch cms/Cache deltas once they equal `want` (a loaded target may still be
        working through its queue), else the last seen."""
        last: list = []

        def check() -> bool:
            now = self.cms(self.ctl.counters())
            last.append({s: (now.get(s, (0, 0))[0] - before.get(s, (0, 0))[0],
                             now.get(s, (0, 0))[1] - before.get(s, (0, 0))[1]) for s in switches})
            return last[-1] == want
        poll(check, timeout, 0.5)
        return last[-1]

    def rx(self, host: Any) -> int:
        return int(host.cmd(f"cat /sys/class/net/{host.defaultIntf().name}/statistics/rx_packets"))


@pytest.fixture(params=SWITCHES)
def switch(request) -> str:
    return request.param


@pytest.fixture
def run(switch, tmp_path) -> Iterator:
    from controller.topology import load_topology
    from labnet.controller_proc import ControllerProcess
    from labnet.network import Lab
    from labnet.topofile import shifted_copy

    made: list = []

    def start(name: str, hide_hosts: bool) -> Run:
        offset = grpc_offset()
        lab_file = shifted_copy(TOPOLOGIES / name, tmp_path / "lab", offset)
        ctl_file = without_hosts(lab_file, tmp_path / f"ctl-{name}") if hide_hosts else lab_file
        lab = Lab(load_topology(lab_file), switch=switch)
        made.append(lab)
        lab.start()
        ctl = ControllerProcess(ctl_file, switch, api=f"127.0.0.1:{9180 + offset}",
                                state_dir=tmp_path / "state", log_path=lab.log_dir / "controller.log",
                                poll_interval=0.5)
        made.append(ctl)
        ctl.start()
        lab.track("controller", ctl.proc.pid)
        r = Run(lab, ctl)
        for _ in range(20):  # neighbour discovery through the switches (learn: learning)
            if "1 received" in r.h1.cmd(f"ping -6 -c1 -W1 {r.h2.spec.ipv6.ip}"):
                break
        else:
            pytest.fail(f"h1 cannot reach h2; logs in {lab.log_dir}\n{ctl.log_tail()}")
        return r

    yield start
    for thing in reversed(made):
        thing.stop()


@pytest.mark.parametrize("name", ["wire.yaml", "learn.yaml"])
def test_unlisted_hosts_forwarded_and_counted(run, name):
    r = run(name, hide_hosts=True)
    topo_switches = set(yaml.safe_load((TOPOLOGIES / name).read_text())["switches"])
    before = r.cms(r.ctl.settled_counters())
    rx_before = r.rx(r.h2), r.rx(r.h1)
    out = r.send(r.h1, r.h2, N_OUT, 41000)
    back = r.send(r.h2, r.h1, N_BACK, 42000)
    path = {"wire.yaml": {"w1"}, "learn.yaml": {"l1", "l2"}}[name]  # h1 - l1 - l2 - h2 on the tree
    assert path <= topo_switches
    want = {s: (N_OUT + N_BACK, out + back) for s in path}
    assert r.deltas(before, path, want) == want
    assert r.rx(r.h2) - rx_before[0] >= N_OUT and r.rx(r.h1) - rx_before[1] >= N_BACK
    if name == "learn.yaml":
        learned = r.ctl.status()["placement"]["learning"]["learned_macs"]
        assert learned["l1"] >= 2 and learned["l2"] >= 2, learned


def test_tap_counts_what_the_inline_switch_counts_once(run):
    r = run("tap.yaml", hide_hosts=False)
    before = r.cms(r.ctl.settled_counters())
    out = r.send(r.h1, r.h2, N_OUT, 43000)
    back = r.send(r.h2, r.h1, N_BACK, 44000)
    want = {"s1": (N_OUT + N_BACK, out + back), "t1": (N_OUT + N_BACK, out + back)}
    assert r.deltas(before, ("s1", "t1"), want) == want
    want = {"to_wan": (N_OUT, out), "from_wan": (N_BACK, back)}

    def directions() -> dict:  # read by the placement extension every 5 s
        return {row["direction"]: (row["packets"], row["bytes"])
                for row in r.ctl.status()["placement"]["direction"]
                if row["switch"] == "t1" and row["activity"] == "Cache" and row["experiment"] == "cms"}
    last: list = []
    if not wait_until(lambda: last.append(directions()) or last[-1] == want, 15, interval=0.5,
                      what="t1's direction counts"):
        pytest.fail(f"t1 per direction: {last[-1]} != {want}")
