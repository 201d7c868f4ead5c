"""`controller start --switch ovs --openflow TARGET` as operators run it: a process attached to
a real netdev Open vSwitch bridge (never launched by the controller), without the P4 build
outputs, retrying while OVS is not there yet, counting traffic sent from host namespaces.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from scitags_core.flowlabel import encode_label
from tests.controller.harness import REGISTRY, ROOT
from tests.openflow.conftest import H1, H2
from labnet.waiting import poll as wait_until
from tests.openflow.helpers import v6_frame
from controller.launcher import free_tcp_port
from tests.openflow.ovslab import OvsLab, ovs_unavailable_reason

CONTROLLER = [sys.executable, "-m", "controller.cli"]
CMS, PERFSONAR = 3, 2


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CONTROLLER, *args], capture_output=True, text=True, timeout=30, cwd=ROOT)


def status(api: str) -> dict | None:
    r = run("status", "--api", api, "--json")
    return json.loads(r.stdout)["switches"]["s1"] if r.returncode == 0 else None


def perfsonar_packets(api: str) -> int | None:
    r = run("counters", "--api", api, "--json", "--experiment", "cms", "--activity", "perfSONAR")
    rows = [row for row in json.loads(r.stdout) if row["source"] == "flowlabel"] if r.returncode == 0 else []
    return rows[0]["packets"] if len(rows) == 1 else None


def test_bad_ovs_usage_exits_2(tmp_path) -> None:
    r = run("start", "--switch", "ovs", "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "--openflow" in r.stderr
    r = run("start", "--switch", "ovs", "--openflow", "tcp:localhost:6653", "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "tcp:HOST:PORT" in r.stderr
    r = run("start", "--switch", "ovs", "--openflow", "tcp:127.0.0.1:6653", "--launch", "always",
            "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "does not start Open vSwitch" in r.stderr
    r = run("start", "--switch", "soft", "--openflow", "tcp:127.0.0.1:6653", "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "switch ovs" in r.stderr


@pytest.mark.netns
@pytest.mark.timeout(180)
def test_start_switch_ovs_attaches_and_counts(tmp_path) -> None:
    reason = ovs_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = OvsLab({"h1": (H1, 1), "h2": (H2, 2)})
    api = f"127.0.0.1:{free_tcp_port()}"
    missing = tmp_path / "no-p4-build"  # an OVS-only controller needs no P4 program
    proc = subprocess.Popen(
        [*CONTROLLER, "start", "--switch", "ovs", "--openflow", lab.target,
         "--state-dir", str(tmp_path), "--api", api, "--firefly-listen", "off",
         "--registry", str(REGISTRY), "--poll-interval", "0.5",
         "--p4info", str(missing / "scitags.p4info.txtpb"), "--device-config", str(missing / "scitags.json")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # No bridge yet: the switch is reported unreachable at its address, and retried.
        s1 = wait_until(lambda: (st := status(api)) and st["status"] == "unreachable" and st, timeout=60)
        assert s1 and lab.target in s1["error"], s1
        assert proc.poll() is None
        try:
            lab.start()
        except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
            pytest.skip(f"cannot build the OVS lab (netdev bridge + namespaces): {exc}")
        s1 = wait_until(lambda: (st := status(api)) and st["ready"] and st, timeout=60)
        assert s1 and s1["ready"] and s1["pipeline_pushes"] == 1, s1
        lab.sync()  # the datapath follows the freshly installed tables (see OvsLab.sync)

        tagged = v6_frame(H1, H2, encode_label(CMS, PERFSONAR), 40000, 1094, "tcp")
        lab.send("h1", tagged, count=3)
        lab.send("h1", v6_frame(H1, H2, 0, 40001, 1094, "tcp"))
        # OVS moves datapath counts into its flow entries every <= 500 ms: wait for them.
        assert wait_until(lambda: perfsonar_packets(api) == 3, timeout=30), perfsonar_packets(api)
        rows = json.loads(run("counters", "--api", api, "--json").stdout)
        unmarked = [r for r in rows if r["bucket"] == "unmarked"]
        assert [r["packets"] for r in unmarked] == [1]
        assert {r["switch"] for r in rows} == {"s1"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        lab.stop()
    assert proc.returncode == 0, out
    assert "Open vSwitch over OpenFlow at " + lab.target in out
    assert "unreachable" in out and "retry in" in out
    assert not (tmp_path / "switch-logs").exists()  # nothing launched
