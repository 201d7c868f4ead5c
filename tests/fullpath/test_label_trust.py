"""Full path, counts an operator can trust (issue 16) and flowd-go's extension-header tags
(issue 11): hosts in Mininet namespaces send raw frames (built with scapy, sent with
AF_PACKET by send_frames.py) across two P4 switches (h1 - s1 - s2 - h2) managed by
`controller start`; counters are read through its API as deltas around each test's traffic.

- a trust scope: marked flows from the trusted address and 10x as much unmarked traffic with
  random labels from another prefix: the marked flows' counts are exact on every switch, the
  background is all in the untrusted_label bucket (and, where it matches a tag, in the
  untrusted-label rows: what it would have been);
- no scope: 10,000 random-label flows with marked traffic: the controller's background
  estimate is within 20% of the injected background that landed under the tags;
- flowd-go's Hop-by-Hop, Destination and both headers (SPEC.md bytes), with the kernel's label
  left in place: every switch counts them under the option's tag with source `exthdr`.
"""
from __future__ import annotations

import random
import struct
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from scitags_core import flowlabel
from scitags_core.registry import Registry
from tests.fullpath.conftest import SWITCHES, grpc_offset, needs_mininet, needs_program
from tests.fullpath.test_fullpath import delta

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REGISTRY_FILE = ROOT / "scitags_core" / "data" / "registry-2025-09-04.json"
P4INFO_TEXT = (ROOT / "p4src" / "build" / "v1model" / "scitags.p4info.txtpb")
needs_new_program = pytest.mark.skipif(
    not P4INFO_TEXT.exists() or "label_trust" not in P4INFO_TEXT.read_text(),
    reason="the compiled program predates exthdr_policy/label_trust (make p4)")
pytestmark = [needs_mininet, needs_program, pytest.mark.mininet, pytest.mark.timeout(300)]

POLL = 1.0
H1 = {"mac": "00:00:00:00:00:01", "ipv6": "2001:db8:1::1/64", "ipv4": "10.0.1.1/24"}
H2 = {"mac": "00:00:00:00:00:02", "ipv6": "2001:db8:1::2/64", "ipv4": "10.0.1.2/24"}
SRC, DST = H1["ipv6"].split("/")[0], H2["ipv6"].split("/")[0]
OTHER_PREFIX = "2001:db8:77::"  # the unmarked senders outside the trust scope
KERNEL_LABEL = 0x5A3C1  # a kernel hash label flowd-go leaves in place
PATH = ["s1", "s2"]

REGISTRY = Registry.from_file(REGISTRY_FILE)
EXPERIMENTS = {e.id for e in REGISTRY.experiments if e.markable}
PAIRS = {(e.id, a.id) for e in REGISTRY.experiments if e.markable for a in e.activities if a.markable}
MARKED = [(3, 2), (2, 3), (5, 4)]  # cms/perfSONAR, atlas/Data Brokering, alice/Data Challenge


def two_switch_topology(path: Path) -> Path:
    doc = {"name": "line2", "description": "h1 - s1 - s2 - h2",
           "switches": {"s1": {"device_id": 1, "grpc_port": 50001, "cpu_port": 255, "kind": "p4"},
                        "s2": {"device_id": 2, "grpc_port": 50002, "cpu_port": 255, "kind": "p4"}},
           "hosts": {"h1": H1, "h2": H2},
           "links": [{"node1": "h1", "node2": "s1", "port2": 1},
                     {"node1": "s1", "port1": 2, "node2": "s2", "port2": 1},
                     {"node1": "h2", "node2": "s2", "port2": 2}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class TwoSwitchLab:
    def __init__(self, lab: Any, topo: Path, tmp: Path, kind: str, offset: int) -> None:
        self.lab, self.topo, self.tmp, self.kind, self.offset = lab, topo, tmp, kind, offset
        self.h1 = lab.host("h1")
        self.sent = 0

    def controller(self, extra: list[str]) -> Any:
        from labnet.controller_proc import ControllerProcess

        ctl = ControllerProcess(self.topo, self.kind, api=f"127.0.0.1:{9180 + self.offset}",
                                state_dir=self.tmp / "state", log_path=self.lab.log_dir / "controller.log",
                                poll_interval=POLL, extra=["--registry", str(REGISTRY_FILE), *extra])
        ctl.start()
        self.lab.track("controller", ctl.proc.pid)
        for _ in range(20):  # neighbour discovery through the switches, once programmed
            if "1 received" in self.h1.cmd(f"ping -6 -c1 -W1 {DST}"):
                return ctl
        ctl.stop()
        pytest.fail(f"h1 cannot reach {DST}; logs in {self.lab.log_dir}")

    def send(self, frames: list[bytes], pps: float) -> None:
        """Send the frames out of h1 (paced: no switch may drop any)."""
        self.sent += 1
        path = self.tmp / f"frames-{self.sent}.bin"
        path.write_bytes(b"".join(struct.pack("!H", len(f)) + f for f in frames))
        out = self.h1.cmd(f"{sys.executable} {HERE / 'send_frames.py'} h1-eth0 {path} {pps}")
        assert out.strip().endswith(str(len(frames))), out


@pytest.fixture(scope="module", params=SWITCHES)
def lab2(request, tmp_path_factory) -> Iterator[TwoSwitchLab]:
    from controller.topology import load_topology
    from labnet.network import Lab
    from labnet.topofile import shifted_copy

    tmp = tmp_path_factory.mktemp(f"trust-{request.param}")
    offset = grpc_offset()
    topo = shifted_copy(two_switch_topology(tmp / "line2-src.yaml"), tmp / "topo", offset)
    lab = Lab(load_topology(topo), switch=request.param)
    try:
        lab.start()
        yield TwoSwitchLab(lab, topo, tmp, request.param, offset)
    finally:
        lab.stop()


def frame(label: int, sport: int, size: int, src: str = SRC, ext: bytes = b"", nh: int = 17) -> bytes:
    """UDP h1 -> h2 (a closed port), `ext` (extension headers) between IPv6 and UDP."""
    udp = UDP(sport=sport, dport=9)
    udp.chksum = 0xFFFF  # fixed: the bytes are ours alone, nothing checks it on the way
    l4 = bytes(udp / Raw(b"s" * size))
    return bytes(Ether(src=H1["mac"], dst=H2["mac"]) / IPv6(src=src, dst=DST, fl=label, nh=nh if ext else 17)
                 / Raw(ext + l4))


def label_tag(label: int) -> tuple[int, int] | None:
    """The (experiment, activity | None) whose entry a label matches, as the switch does
    (the exact pair first, then the experiment's wildcard), or None."""
    f = flowlabel.decode_label(label)
    if (f.experiment, f.activity) in PAIRS:
        return f.experiment, f.activity
    if f.experiment in EXPERIMENTS:
        return f.experiment, None
    return None


def random_label(rng: random.Random) -> int:
    while True:
        label = rng.getrandbits(20)
        if label:  # 0 is "unmarked", not a random label
            return label


def marked_frames(per_pair: int, sport0: int) -> dict[tuple[int, int], list[bytes]]:
    return {(e, a): [frame(flowlabel.encode_label(e, a, entropy=i % 4), sport0 + 10 * j + i % 10,
                           100 + (i % 7) * 50) for i in range(per_pair)]
            for j, (e, a) in enumerate(MARKED)}


def per_switch_delta(before, after, sw, **match) -> tuple[int, int]:
    return delta(before, after, switch=sw, **match)


@needs_new_program
def test_trust_scope_keeps_random_labels_in_their_bucket(lab2: TwoSwitchLab):
    ctl = lab2.controller(["--trust-labels-from", f"{SRC}/128"])
    try:
        rng = random.Random(16)
        marked = marked_frames(100, 42000)
        background = [frame(random_label(rng), 20000 + i % 30000, rng.randrange(20, 900),
                            src=f"{OTHER_PREFIX}{rng.randrange(1, 0xFFFF):x}") for i in range(3000)]
        would_be: dict[tuple[int, int | None], list[int]] = {}
        for f in background:
            tag = label_tag(IPv6(f[14:54]).fl)
            if tag is not None:
                would_be.setdefault(tag, [0, 0])
                would_be[tag][0] += 1
                would_be[tag][1] += len(f)
        mixed = [f for frames in marked.values() for f in frames] + background
        rng.shuffle(mixed)
        before = ctl.counters()
        lab2.send(mixed, pps=800)
        after = ctl.settled_counters()
        for sw in PATH:
            for (e, a), frames in marked.items():
                got = per_switch_delta(before, after, sw, source="flowlabel", experiment_id=e, activity_id=a)
                assert got == (len(frames), sum(map(len, frames))), (sw, e, a, got)
                assert per_switch_delta(before, after, sw, source="flowlabel", experiment_id=e,
                                        activity_id=None) == (0, 0)
            assert per_switch_delta(before, after, sw, source="bucket", bucket="untrusted_label") == \
                (len(background), sum(map(len, background)))
            assert per_switch_delta(before, after, sw, source="bucket", bucket="unregistered") == (0, 0)
            for (e, a), (pkts, nbytes) in would_be.items():
                assert per_switch_delta(before, after, sw, source="untrusted-label", experiment_id=e,
                                        activity_id=a) == (pkts, nbytes), (sw, e, a)
        status = ctl.status()["label_trust"]
        assert status["label_counts"] == "verified", status
    finally:
        ctl.stop()


def test_background_estimate_within_20_percent(lab2: TwoSwitchLab):
    from controller.cmd_query import api_get

    ctl = lab2.controller([])
    try:
        rng = random.Random(1016)
        background = [frame(random_label(rng), 1024 + i, rng.randrange(20, 900)) for i in range(10_000)]
        truth, unregistered = [0, 0], [0, 0]
        for f in background:
            hit = label_tag(IPv6(f[14:54]).fl) is not None
            acc = truth if hit else unregistered
            acc[0] += 1
            acc[1] += len(f)
        marked = marked_frames(50, 43000)
        mixed = [f for frames in marked.values() for f in frames] + background
        rng.shuffle(mixed)
        first = api_get(ctl.api, "/api/v1/counters")
        lab2.send(mixed, pps=1500)
        ctl.settled_counters()
        last = api_get(ctl.api, "/api/v1/counters")
        assert last["label_trust"]["label_counts"] == "unverified"
        for sw in PATH:
            assert delta(first["counters"], last["counters"], switch=sw, source="bucket",
                         bucket="unregistered") == tuple(unregistered), sw  # nothing dropped
            was = first["label_background"].get(sw, {"packets": 0.0, "bytes": 0.0})
            now = last["label_background"][sw]
            est = (now["packets"] - was["packets"], now["bytes"] - was["bytes"])
            assert abs(est[0] - truth[0]) <= 0.2 * truth[0], (sw, est, truth)
            assert abs(est[1] - truth[1]) <= 0.2 * truth[1], (sw, est, truth)
            # the marked flows are there, background on top
            for (e, a), frames in marked.items():
                got = delta(first["counters"], last["counters"], switch=sw, source="flowlabel",
                            experiment_id=e, activity_id=a)
                assert got[0] >= len(frames)
    finally:
        ctl.stop()


def options_header(next_hdr: int, experiment: int, activity: int) -> bytes:
    """flowd-go's 8-byte options header (SPEC.md): NH, 0, 0x1E, 3, experiment (2 bytes),
    activity, Pad1."""
    return bytes([next_hdr, 0, 0x1E, 3, experiment >> 8, experiment & 0xFF, activity, 0])


@needs_new_program
def test_flowd_go_options_counted_as_exthdr_on_every_switch(lab2: TwoSwitchLab):
    assert label_tag(KERNEL_LABEL) is None  # the kernel label alone would be "unregistered"
    ctl = lab2.controller([])
    try:
        exp, act = 3, 2  # cms/perfSONAR
        shapes = {"hopbyhop": (options_header(17, exp, act), 0),
                  "destination": (options_header(17, exp, act), 60),
                  "both": (options_header(60, exp, act) + options_header(17, exp, act), 0)}
        frames = [frame(label, 44000 + i, 200 + 10 * i, ext=ext, nh=nh)
                  for i, (ext, nh) in enumerate(shapes.values()) for label in (0, KERNEL_LABEL)
                  for _ in range(10)]
        before = ctl.counters()
        lab2.send(frames, pps=500)
        after = ctl.settled_counters()
        for sw in PATH:
            assert per_switch_delta(before, after, sw, source="exthdr", experiment_id=exp,
                                    activity_id=act) == (len(frames), sum(map(len, frames))), sw
            assert per_switch_delta(before, after, sw, source="flowlabel", experiment_id=exp,
                                    activity_id=act) == (0, 0)
            for bucket in ("unregistered", "exthdr_unregistered", "exthdr_mismatch", "exthdr_unparsed"):
                assert per_switch_delta(before, after, sw, source="bucket", bucket=bucket) == (0, 0), bucket
        rows = [r for r in after if r["source"] == "exthdr"]
        assert {r["switch"] for r in rows} == set(PATH)
        assert all((r["experiment"], r["activity"]) == ("cms", "perfSONAR") for r in rows)
    finally:
        ctl.stop()
