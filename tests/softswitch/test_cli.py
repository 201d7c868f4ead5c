"""The `softswitch` command: simple_switch_grpc's flags, exit codes, BMv2-like console
log, forwarding over veths in a namespace, clean shutdown on SIGTERM."""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from labnet.veth import in_netns
from netlab import NetLab
from p4json import ETHERNET, C, E, F, Program, extract, set_egress
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "softswitch.cli"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cross_program() -> dict:
    """Port 1 <-> port 2, whatever the frame."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.state("start", [extract("ethernet")])
    p.action("cross", [], [set_egress({"type": "expression", "value": E(
        "&", E("-", C(3), F("standard_metadata", "ingress_port")), C(0x1FF))})])
    p.call("ingress", "tbl_cross", "cross")
    p.deparse("ethernet")
    return p.build()


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, env=ENV,
                          timeout=timeout, cwd=ROOT)


def test_help_lists_simple_switch_flags():
    out = run_cli("--help")
    assert out.returncode == 0
    for flag in ("--interface", "--device-id", "--grpc-server-addr", "--cpu-port",
                 "--log-console", "--log-level", "--no-p4"):
        assert flag in out.stdout


@pytest.mark.parametrize("args", [["--bogus"], [], ["-i", "x@y", "--no-p4"],
                                  ["-i", "1@", "--no-p4"], ["--cpu-port", "3", "-i", "3@lo",
                                                            "--no-p4"]])
def test_bad_usage_exits_2(args):
    assert run_cli(*args).returncode == 2


def test_unloadable_program_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    r = run_cli(str(bad), "--no-grpc")
    assert r.returncode == 2 and "cannot load" in r.stderr
    r = run_cli(str(tmp_path / "missing.json"), "--no-grpc")
    assert r.returncode == 2 and "cannot read" in r.stderr
    doc = cross_program()
    doc["meter_arrays"] = [{"name": "m", "id": 0}]
    bad.write_text(json.dumps(doc))
    r = run_cli(str(bad), "--no-grpc")
    assert r.returncode == 2 and "meters: 'm'" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for AF_PACKET sockets")
def test_missing_interface_exits_1():
    r = run_cli("--no-p4", "--no-grpc", "-i", "1@nosuchif9")
    assert r.returncode == 1 and "cannot open interface" in r.stderr


class Running:
    """A softswitch process in a namespace, its stdout collected line by line."""

    def __init__(self, lab: NetLab, args: list[str]) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns] + CLI + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=ENV, cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.log.append(line)
            if text in line:
                return
        raise AssertionError(f"'{text}' not logged; log so far:\n{''.join(self.log)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


@pytest.mark.netns
def test_runs_forwards_logs_and_stops_cleanly(lab, tmp_path):
    prog = tmp_path / "cross.json"
    prog.write_text(json.dumps(cross_program()))
    sw = Running(lab, ["-i", "1@s1", "--interface", "2@s2", "--device-id", "3", "--log-console",
                       "--thrift-port", "9090", str(prog), "--", "--grpc-server-addr",
                       "127.0.0.1:50051", "--cpu-port", "255"])
    try:
        sw.wait_for("softswitch running")
        f = raw(Ether(dst="00:00:00:00:00:02") / IP() / UDP() / Raw(b"c" * 100))
        lab.send(1, f)
        assert lab.receive(2, timeout=5) == [f]
        lab.send(2, f)
        assert lab.receive(1, timeout=5) == [f]
        sw.wait_for("Processing packet received on port 1")
        sw.wait_for("Egress port is 2")
        if any("P4Runtime server listening" in line for line in sw.log):
            s = in_netns(lab.ns, lambda: socket.create_connection(("127.0.0.1", 50051), 5))
            s.close()
    finally:
        code = sw.stop()
    assert code == 0
    joined = "".join(sw.log)
    assert "Adding interface s1 as port 1" in joined
    assert "--thrift-port is accepted for compatibility and ignored" in joined
    assert "[bmv2] [D]" in joined
    # promiscuous mode ended with the socket
    flags = subprocess.run(["ip", "netns", "exec", lab.ns, "ip", "link", "show", "s1"],
                           capture_output=True, text=True).stdout
    assert "PROMISC" not in flags


@pytest.mark.netns
def test_no_p4_start_drops_until_a_program_arrives(lab):
    sw = Running(lab, ["-i", "1@s1", "-i", "2@s2", "--no-p4", "--no-grpc", "--log-console",
                       "-L", "info"])
    try:
        sw.wait_for("softswitch running")
        lab.send(1, raw(Ether() / Raw(b"x" * 50)))
        assert lab.receive(2, timeout=0.5) == []
    finally:
        assert sw.stop() == 0


# ---- TLS for the P4Runtime server, with simple_switch_grpc's options ----

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl CLI absent (makes the test certificates)")


@pytest.fixture
def certs(tmp_path) -> dict[str, str]:
    """A throwaway CA with a server and a client certificate for 127.0.0.1."""
    from tests.controller.test_start_cli import _certs
    return _certs(tmp_path)


def tls_args(c: dict[str, str], **drop: bool) -> list[str]:
    args = {"--grpc-server-ssl": None, "--grpc-server-cert": c["server.pem"],
            "--grpc-server-key": c["server.key"], "--grpc-server-cacert": c["ca.pem"],
            "--grpc-server-with-client-auth": None}
    out: list[str] = []
    for opt, value in args.items():
        if not drop.get(opt.lstrip("-").replace("-", "_")):
            out += [opt] if value is None else [opt, value]
    return out


@needs_openssl
def test_tls_bad_usage_exits_2(certs, tmp_path):
    r = run_cli("--no-p4", *tls_args(certs, grpc_server_key=True))
    assert r.returncode == 2 and "--grpc-server-ssl needs --grpc-server-key" in r.stderr
    r = run_cli("--no-p4", *tls_args(certs, grpc_server_ssl=True))
    assert r.returncode == 2 and "without --grpc-server-ssl" in r.stderr
    r = run_cli("--no-p4", *tls_args(certs, grpc_server_cacert=True))
    assert r.returncode == 2 and "needs --grpc-server-cacert" in r.stderr
    mismatched = tls_args(certs)
    mismatched[mismatched.index("--grpc-server-key") + 1] = certs["client.key"]
    r = run_cli("--no-p4", *mismatched)
    assert r.returncode == 2 and certs["client.key"] in r.stderr
    r = run_cli("--no-p4", *tls_args(certs), "--grpc-server-cacert", str(tmp_path / "none.pem"))
    assert r.returncode == 2 and "none.pem" in r.stderr


@needs_openssl
@pytest.mark.timeout(90)
def test_tls_server_with_client_auth(certs, tmp_path):
    from controller.drivers.base import SwitchUnreachable
    from controller.drivers.p4runtime import P4RuntimeDriver
    from controller.p4runtime_client import TLSOptions
    from tests.conftest import P4_BUILD
    from controller.launcher import free_tcp_port
    from labnet.veth import wait_for_port
    p4info, device_json = P4_BUILD / "scitags.p4info.txtpb", P4_BUILD / "scitags.json"
    if not (p4info.is_file() and device_json.is_file()):
        pytest.skip(f"P4 program not built ({P4_BUILD}): make p4")
    port = free_tcp_port()
    addr = f"127.0.0.1:{port}"
    proc = subprocess.Popen(CLI + ["--no-p4", "--device-id", "1", "--log-console", "-L", "info",
                                   "--", "--grpc-server-addr", addr, "--cpu-port", "255",
                                   *tls_args(certs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                            cwd=ROOT)
    try:
        wait_for_port(port, proc)
        client = TLSOptions(certs["ca.pem"], certs["client.pem"], certs["client.key"])
        d = P4RuntimeDriver("s1", 1, addr, p4info, device_json, tls=client)
        d.connect()
        try:
            assert d.is_primary and d.ensure_pipeline()  # the program went over TLS
        finally:
            d.close()
        # Without TLS, and with TLS but no client certificate, there is no session.
        for tls in (None, TLSOptions(certs["ca.pem"])):
            other = P4RuntimeDriver("s1", 1, addr, p4info, device_json, tls=tls, timeout=2)
            with pytest.raises(SwitchUnreachable):
                other.connect()
            other.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"listening on {addr} (port {port}, TLS, client certificates required)" in out
