"""`controller start` as operators run it (a process that launches the built-in switch), the
query commands against it, exit codes, and TLS to a P4Runtime server."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from controller.drivers.p4runtime import P4RuntimeDriver
from controller.p4runtime_client import TLSOptions
from tests.conftest import BMV2_BIN, HAVE_BMV2
from tests.controller.harness import DEVICE_JSON, HAVE_SOFT_CLI, P4INFO, ROOT
from controller.launcher import free_tcp_port, is_listening

CONTROLLER = [sys.executable, "-m", "controller.cli"]


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([*CONTROLLER, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", [
    pytest.param("soft", marks=pytest.mark.skipif(not HAVE_SOFT_CLI, reason="softswitch/cli.py not built yet")),
    pytest.param("bmv2", marks=[pytest.mark.bmv2, pytest.mark.skipif(
        not HAVE_BMV2, reason=f"BMv2 not installed ({BMV2_BIN} absent)")])])
def test_start_launches_switch_and_answers_queries(tmp_path, kind):
    grpc_port, api_port = free_tcp_port(), free_tcp_port()
    api = f"127.0.0.1:{api_port}"
    proc = subprocess.Popen(
        [*CONTROLLER, "start", "--switch", kind, "--grpc-addr", f"127.0.0.1:{grpc_port}",
         "--device-id", "3", "--state-dir", str(tmp_path), "--api", api, "--firefly-listen", "off",
         "--p4info", str(P4INFO), "--device-config", str(DEVICE_JSON), "--poll-interval", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            r = run("status", "--api", api, "--json")
            if r.returncode == 0:
                status = json.loads(r.stdout)
                if status["switches"]["s1"]["ready"]:
                    break
            time.sleep(0.3)
        assert status and status["switches"]["s1"]["ready"], status
        assert status["switches"]["s1"]["pipeline_pushes"] == 1
        r = run("counters", "--api", api, "--json")
        assert r.returncode == 0 and isinstance(json.loads(r.stdout), list)
        r = run("flows", "--api", api)
        assert r.returncode == 0 and "STATUS" in r.stdout
        r = run("status", "--api", api)
        assert r.returncode == 0 and "ready" in r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    # the log says what was written where
    assert "launched" in out and "pipeline pushed" in out and "controller.sqlite" in out
    assert (tmp_path / "controller.sqlite").is_file()
    assert (tmp_path / "switch-logs" / "s1.log").is_file()
    # the launched switch was stopped with the controller
    assert not is_listening("127.0.0.1", grpc_port)


def test_exit_codes(tmp_path):
    r = run("counters", "--api", f"127.0.0.1:{free_tcp_port()}")
    assert r.returncode == 1 and "no controller API" in r.stderr
    r = run("start", "--topology", str(tmp_path / "missing.yaml"), "--p4info", str(P4INFO),
            "--device-config", str(DEVICE_JSON), "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "missing.yaml: cannot read" in r.stderr
    r = run("start", "--switch", "tofino3")  # not a target: bad usage
    assert r.returncode == 2
    r = run("start", "--p4info", str(tmp_path / "none.txtpb"), "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "make p4" in r.stderr
    bad = tmp_path / "c.yaml"
    bad.write_text("firefly: {when_full: panic}\n")
    r = run("start", "--config", str(bad))
    assert r.returncode == 2 and "when_full" in r.stderr


def _certs(tmp_path):
    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", "ext.cnf", "-out", f"{name}.pem")
    return {n: str(tmp_path / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI absent (makes the test certificates)")
def test_tls_with_client_certificates(tmp_path):
    from softswitch.engine import Engine
    from softswitch.p4runtime_server import P4RuntimeServer, TlsFiles
    c = _certs(tmp_path)
    engine = Engine(cpu_port=255)
    server = P4RuntimeServer(engine, 1, 255, lambda frame: engine.process(255, frame))
    port = server.start("127.0.0.1:0", TlsFiles(c["server.pem"], c["server.key"], c["ca.pem"], True))
    try:
        d = P4RuntimeDriver("s1", 1, f"127.0.0.1:{port}", P4INFO, DEVICE_JSON,
                            tls=TLSOptions(c["ca.pem"], c["client.pem"], c["client.key"]))
        d.connect()
        assert d.is_primary and d.ensure_pipeline()
        d.close()
        plain = P4RuntimeDriver("s1", 1, f"127.0.0.1:{port}", P4INFO, DEVICE_JSON, timeout=2)
        from controller.drivers.base import SwitchUnreachable
        with pytest.raises(SwitchUnreachable):
            plain.connect()
    finally:
        server.stop()
