"""`marker run` in a throwaway namespace: control socket, np_api pipe, poller, ongoing
fireflies, rules gone after end / stop / crash + `marker clean`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from scitags_core import flowlabel
from scitags_core.firefly_parse import parse_firefly
from tests.marker.netns import ROOT, probe_label, run_in
from labnet.waiting import wait_until as wait_for

pytestmark = pytest.mark.netns
HERE = Path(__file__).resolve().parent
MARKER = str(Path(sys.executable).with_name("marker"))
COLLECTOR_PORT = 10999


class Daemon:
    def __init__(self, ns: str, tmp: Path, *extra: str) -> None:
        self.ns, self.sock, self.pipe = ns, tmp / "marker.sock", tmp / "np_api"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.sink = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(HERE / "udp_sink.py"),
                                      str(COLLECTOR_PORT)], stdout=subprocess.PIPE, text=True)
        assert self.sink.stdout.readline().strip() == "ready"
        self.log = open(tmp / "marker.log", "w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, MARKER, "run", "--socket", str(self.sock), "--np-api", str(self.pipe),
             "--no-destination-fireflies", "--collector", f"[::1]:{COLLECTOR_PORT}", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        wait_for(lambda: self.marker("status", check=False).returncode == 0, what="marker daemon")

    def marker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_in(self.ns, MARKER, *args, "--socket", str(self.sock), check=check, env=self.env)

    def fireflies(self, n: int) -> list:
        out = []
        for _ in range(n):
            line = self.sink.stdout.readline()
            out.append(parse_firefly(json.loads(line).encode()))
        return out

    def fireflies_through(self, state: str, most: int = 100) -> list:
        """Fireflies up to and including the first in `state` (ongoing ones keep coming every
        interval, so how many precede it depends on how fast the machine is)."""
        out = []
        while len(out) < most and (not out or out[-1].state.value != state):
            out.extend(self.fireflies(1))
        return out

    def rules(self) -> str:
        return run_in(self.ns, "nft", "list", "ruleset").stdout

    def close(self) -> None:
        for p in (self.proc, self.sink):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        self.log.close()


@pytest.fixture
def daemon_factory(ns, tmp_path) -> Iterator:
    made: list[Daemon] = []

    def make(*extra: str) -> Daemon:
        d = Daemon(ns, tmp_path, *extra)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def test_control_socket_and_np_api_flows(daemon_factory):
    d = daemon_factory("--ongoing", "0.5")
    out = d.marker("flow", "start", "udp", "::1", "41001", "::1", "41002", "cms", "Cache", "--json")
    reply = json.loads(out.stdout)
    assert reply["ok"] and reply["flow"]["experiment"] == "cms"
    label = int(reply["flow"]["flow_label"], 16)
    assert flowlabel.decode_label(label)[:2] == (3, 3)
    assert probe_label(d.ns, 41002, 41001) == label
    (start,) = d.fireflies(1)
    assert start.state.value == "start" and (start.experiment_id, start.activity_id) == (3, 3)
    ongoing = d.fireflies(1)[0]
    assert ongoing.state.value == "ongoing" and ongoing.start_time == start.start_time

    # np_api: a good line, a name (rejected like the reference), an id out of range
    with open(d.pipe, "w") as pipe:
        pipe.write("start udp ::1 41003 ::1 41004 4 3\nstart udp ::1 1 ::1 2 lhcb 3\n"
                   "start udp ::1 1 ::1 2 4 99\n")
    wait_for(lambda: probe_label(d.ns, 41004, 41003) != 0, what="np_api flow marked")
    assert flowlabel.decode_label(probe_label(d.ns, 41004, 41003))[:2] == (4, 3)
    status = json.loads(d.marker("status", "--json").stdout)
    assert status["counters"]["np_api_rejected"] == 2 and status["flows"] == 2
    flows = json.loads(d.marker("flow", "list", "--json").stdout)
    assert sorted(f["source"] for f in flows) == ["control", "np_api"]

    bad = d.marker("flow", "start", "udp", "::1", "1", "::1", "2", "cms", "nosuch", check=False)
    assert bad.returncode == 2 and "unknown activity 'nosuch'" in bad.stdout

    d.marker("flow", "end", "udp", "::1", "41001", "::1", "41002")  # no tag needed to end
    assert probe_label(d.ns, 41002, 41001) == 0
    assert "41001" not in d.rules()
    ends = [f for f in d.fireflies_through("end") if f.state.value == "end"]
    assert ends and ends[0].src_port == 41001

    d.proc.send_signal(signal.SIGTERM)  # stop: the np_api flow ends too, nothing left
    assert d.proc.wait(10) == 0
    assert "scitags_marker" not in d.rules()
    assert not d.sock.exists() and not d.pipe.exists()


def test_ipv4_flow_gets_fireflies_only(daemon_factory):
    d = daemon_factory("--ongoing", "0")
    out = d.marker("flow", "start", "tcp", "127.0.0.1", "41010", "127.0.0.1", "41011", "atlas", "Debug")
    assert "fireflies only" in out.stdout
    (ff,) = d.fireflies(1)
    assert ff.afi.value == "ipv4" and (ff.experiment_id, ff.activity_id) == (2, 9)
    assert "41010" not in d.rules()


def test_crash_then_clean_leaves_nothing(daemon_factory):
    d = daemon_factory()
    d.marker("flow", "start", "udp", "::1", "41020", "::1", "41021", "3", "3")
    d.proc.kill()
    d.proc.wait(10)
    assert "scitags_marker" in d.rules() and d.sock.exists()
    out = run_in(d.ns, MARKER, "clean", "--socket", str(d.sock), "--np-api", str(d.pipe), "--json", env=d.env)
    result = json.loads(out.stdout)
    assert result["tables"] == ["scitags_marker"]
    assert "scitags_marker" not in d.rules()
    assert not d.sock.exists() and not d.pipe.exists()


CONNECT = r"""
import socket, sys, time
srv = socket.socket(socket.AF_INET6); srv.bind(("::1", 5201)); srv.listen()
cli = socket.socket(socket.AF_INET6); cli.bind(("::1", 41030)); cli.connect(("::1", 5201))
acc, _ = srv.accept()
print("up", flush=True)
sys.stdin.readline()
"""


def test_poller_marks_matching_connections(daemon_factory):
    d = daemon_factory("--poll-experiment", "lhcb", "--poll-activity", "Data Challenge",
                       "--poll-ports", "5201", "--poll-interval", "0.2", "--ongoing", "0")
    conn = subprocess.Popen(["ip", "netns", "exec", d.ns, sys.executable, "-c", CONNECT],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert conn.stdout.readline().strip() == "up"
        wait_for(lambda: "sport 41030" in d.rules() and "sport 5201" in d.rules(), what="poller rules")
        starts = d.fireflies(2)
        assert {(f.src_port, f.dst_port) for f in starts} == {(41030, 5201), (5201, 41030)}
        assert all((f.experiment_id, f.activity_id) == (4, 4) for f in starts)
    finally:
        conn.stdin.close()
        conn.wait(10)
    wait_for(lambda: "41030" not in d.rules(), what="poller rules removed")
    assert {f.state.value for f in d.fireflies(2)} == {"end"}


def test_standalone_flow_and_bad_input(ns, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sock = str(tmp_path / "none.sock")
    start = run_in(ns, MARKER, "flow", "start", "udp", "::1", "41040", "::1", "41041", "belleii", "Recovery",
                   "--socket", sock, env=env)
    assert "label 0x" in start.stdout
    assert flowlabel.decode_label(probe_label(ns, 41041, 41040))[:2] == (6, 12)
    run_in(ns, MARKER, "flow", "end", "udp", "::1", "41040", "::1", "41041", "--socket", sock, env=env)
    assert probe_label(ns, 41041, 41040) == 0
    assert "scitags_marker" not in run_in(ns, "nft", "list", "ruleset").stdout  # last flow: table gone
    for args, words in [
        (("tcp", "::1", "1", "::1", "2", "nosuch", "Cache"), "unknown experiment 'nosuch'"),
        (("tcp", "::1", "1", "::1", "2", "3", "64"), "activity id 64 outside the flow-label range"),
        (("tcp", "::1", "1", "::1", "2", "600", "1"), "experiment id 600 outside"),
        (("tcp", "::1", "1", "::1x", "2", "cms", "Cache"), "invalid destination address"),
    ]:
        bad = run_in(ns, MARKER, "flow", "start", *args, "--socket", sock, env=env, check=False)
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr
    v4 = run_in(ns, MARKER, "flow", "start", "tcp", "127.0.0.1", "1", "127.0.0.1", "2", "cms", "Cache",
                "--socket", sock, env=env)
    assert "IPv4: fireflies only" in v4.stdout
    assert "scitags_marker" not in run_in(ns, "nft", "list", "ruleset").stdout


SINK = r"""
import socket, struct, sys
rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
rx.setsockopt(socket.IPPROTO_IPV6, 11, 1)   # IPV6_FLOWINFO: labels of received datagrams
rx.bind(("::1", 41051)); rx.settimeout(3)
labels, total = set(), 0
print("up", flush=True)
try:
    while True:
        data, anc, _, _ = rx.recvmsg(2048, 256)
        total += len(data)
        labels |= {struct.unpack("!I", v[:4])[0] & 0xFFFFF for l, t, v in anc if t == 11}
except socket.timeout:
    pass
print(total, " ".join(hex(x) for x in labels))
"""


def test_send_marks_its_own_socket_without_nftables(ns):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sink = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SINK],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout.readline().strip() == "up"
    out = run_in(ns, MARKER, "send", "udp", "::1", "41050", "::1", "41051", "dune", "Cache",
                 "--seconds", "0.5", "--rate", "2M", "--json", env=env)
    reply = json.loads(out.stdout)
    total, labels = sink.communicate(timeout=20)[0].split(maxsplit=1)
    assert int(total) == reply["sent_bytes"] > 0
    assert [int(x, 16) for x in labels.split()] == [int(reply["flow"]["flow_label"], 16)]
    assert flowlabel.decode_label(int(reply["flow"]["flow_label"], 16))[:2] == (8, 3)
    assert "scitags_marker" not in run_in(ns, "nft", "list", "ruleset").stdout


def test_garbage_on_the_control_socket_is_answered_not_fatal(daemon_factory):
    import socket as socket_mod

    d = daemon_factory("--ongoing", "0")
    for garbage in (b"not json\n", b"[1, 2]\n", b'{"op": "flow", "state": "start"}\n', b'{"op": "nosuch"}\n',
                    b"\xff\xfe\n"):
        with socket_mod.socket(socket_mod.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(d.sock))
            s.sendall(garbage)
            reply = json.loads(s.makefile().readline())
        assert reply["ok"] is False and reply["message"], garbage
    assert json.loads(d.marker("status", "--json").stdout)["ok"] is True
