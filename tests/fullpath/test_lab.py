"""Mininet labs from topology files with P4 target processes: they come up configured for
scitags (IPv6, label 0, no DAD) and leave nothing behind: normal stop, failure, Ctrl-C, crash."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from labnet import procs
from labnet.hosts import MUST_BE_OFF, offloads_off
from labnet.network import RUN_DIR, Lab, new_prefix
from labnet.switches import SwitchStartError
from tests.fullpath.conftest import SWITCHES, TOPOLOGIES, needs_mininet

pytestmark = [needs_mininet, pytest.mark.mininet]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def leftovers(record: dict) -> list[str]:
    """What of a lab still exists: interfaces, processes, host namespaces."""
    left = [f"intf {i}" for i in record["intfs"] if Path(f"/sys/class/net/{i}").exists()]
    for group in ("switch_pids", "host_pids", "extra_pids"):
        left += [f"process {n}:{fp['pid']}" for n, fp in record[group].items() if procs.matches(fp)]
    for name, netns in record["host_netns"].items():
        left += [f"netns of {name}: pid {p}" for p in procs.pids_in_netns(netns)]
    return left


def offloads(node, intf: str) -> set[str]:
    """States of TSO/GSO/GRO on intf: no super-frames reach or leave a switch's raw socket."""
    out = node.cmd(f"ethtool -k {intf}")
    return {line.split(":", 1)[1].split()[0] for line in out.splitlines()
            if line.split(":", 1)[0] in MUST_BE_OFF}


class RootShell:
    """The root namespace, with a Mininet node's cmd()."""
    name = "root"

    def cmd(self, command: str) -> str:
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout


def test_offloads_off_says_why_it_failed():
    problem = offloads_off(RootShell(), "nosuchif0")
    assert problem is not None and problem.startswith("nosuchif0: cannot turn")
    assert "generic-segmentation-offload" in problem


def test_topology_files_load():
    from controller.topology import load_topology

    for name, switches in (("single.yaml", 1), ("line3.yaml", 3), ("site2site.yaml", 3)):
        topo = load_topology(TOPOLOGIES / name)
        assert len(topo.switches) == switches
        assert any(h.monitor for h in topo.hosts.values())


@pytest.mark.parametrize("switch", SWITCHES)
@pytest.mark.parametrize("topology", ["line3.yaml", "site2site.yaml"])
def test_lab_comes_up_and_cleans_up(lab_factory, switch, topology):
    lab: Lab = lab_factory(topology, switch)
    assert all(lab.switches_alive().values()), lab.switches_alive()
    for name, spec in lab.topology.hosts.items():
        host = lab.host(name)
        assert host.cmd("sysctl -n net.ipv6.auto_flowlabels").strip() == "0"
        assert host.cmd(f"sysctl -n net.ipv6.conf.{name}-eth0.accept_dad").strip() == "0"
        assert spec.mac in host.cmd(f"ip link show {name}-eth0")
        if spec.ipv6:
            assert host.cmd("sysctl -n net.ipv6.conf.all.disable_ipv6").strip() == "0"
            assert str(spec.ipv6.ip) in host.cmd("ip -6 addr show")
            assert "tentative" not in host.cmd("ip -6 addr show")
        if spec.ipv4:
            assert spec.ipv4.with_prefixlen in host.cmd("ip -4 addr show")
        assert offloads(host, f"{name}-eth0") == {"off"}
    for sw, spec in lab.topology.switches.items():
        cmdline = lab.record["switch_pids"][sw]["cmdline"]
        assert f"127.0.0.1:{spec.grpc_port}" in cmdline and f"--device-id {spec.device_id}" in cmdline
        for (a, b), port in ((e[:2], e[2]["ports"][sw]) for e in lab.topology.graph.edges(sw, data=True)):
            assert f"{port}@{lab.prefix}{sw}p{port}" in cmdline
            assert offloads(lab.switch(sw), f"{lab.prefix}{sw}p{port}") == {"off"}
    record = json.loads(lab.run_file.read_text())
    assert leftovers(record)  # running now
    lab.stop()
    assert leftovers(record) == []
    assert not lab.run_file.exists()


def test_failed_start_leaves_nothing(topo_copy):
    from controller.topology import load_topology

    topo = load_topology(topo_copy("line3.yaml"))
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", topo.switches["s2"].grpc_port))  # s2 cannot get its port
    blocker.listen()
    lab = Lab(topo, switch="soft")
    try:
        with pytest.raises(SwitchStartError, match="already in use"):
            lab.start()
    finally:
        blocker.close()
    assert leftovers(lab.record) == [] and not lab.run_file.exists()


def _lab_process(topo: Path, prefix: str) -> subprocess.Popen:
    # stderr to a file: a pipe nobody drains would block the lab once its log fills it
    log = open(topo.parent / f"{prefix}-lab.log", "w+")
    proc = subprocess.Popen([sys.executable, str(HERE / "lab_proc.py"), str(topo), "soft", prefix],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.wait(10)
        log.seek(0)
        raise AssertionError(log.read() or line)
    return proc


def test_ctrl_c_cleans_up(topo_copy):
    prefix = new_prefix()
    proc = _lab_process(topo_copy("single.yaml"), prefix)
    record = json.loads((RUN_DIR / f"{prefix}.json").read_text())
    assert leftovers(record)  # it is running
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    assert leftovers(record) == []
    assert not (RUN_DIR / f"{prefix}.json").exists()


def test_crash_then_clean_script(topo_copy):
    prefix = new_prefix()
    proc = _lab_process(topo_copy("single.yaml"), prefix)
    record = json.loads((RUN_DIR / f"{prefix}.json").read_text())
    proc.kill()  # no chance to clean up
    proc.wait(10)
    assert leftovers(record)  # switch process, veths, the sleep in h1's namespace
    out = subprocess.run([sys.executable, str(ROOT / "lab" / "clean.py"), prefix],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"lab {prefix}: ended" in out.stdout
    assert leftovers(record) == []
    assert not (RUN_DIR / f"{prefix}.json").exists()


def test_switch_interface_names_fit_ifnamsiz():
    from labnet.network import LabError, switch_intf_name

    assert switch_intf_name("labc", "s1", 3, 1) == "labcs1p3"
    assert switch_intf_name("labc", "border-switch", 12, 7) == "labcd7p12"  # too long: by device id
    with pytest.raises(LabError, match="longer than 15"):
        switch_intf_name("labc" * 3, "x", 123, 1234567)
