"""Who may use the HTTP API, against a real controller (its HTTP server on loopback; the switch
it manages is not running, which the API does not need): loopback without a token by default;
any other address refused at start without --api-token-file (exit 2); with a token every /api
and /metrics request needs `Authorization: Bearer <token>` (401 otherwise, counted, JSON, no
stack trace), POSTs included; a cross-origin browser POST is refused on loopback; HTTPS with a
certificate made here; a failing handler answers 500 JSON, counted."""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from controller.api_auth import ApiGuard, check_settings, is_loopback, redact
from controller.config import ConfigError, load_config
from controller.launcher import free_tcp_port
from tests.api_auth.client import call
from tests.conftest import ROOT
from tests.controller.harness import start_controller

pytestmark = pytest.mark.timeout(120)


def topology() -> str:
    """One switch nobody runs: the controller keeps retrying it, its API answers meanwhile."""
    return json.dumps({"name": "auth", "switches": {"s1": {"device_id": 1, "grpc_port": free_tcp_port(),
                                                           "cpu_port": 255}},
                       "hosts": {}, "links": []})


@pytest.fixture
def controller(tmp_path):
    runtimes = []

    def start(name: str = "ctl", **overrides):
        rt = start_controller(tmp_path, topology(), name, **overrides)
        runtimes.append(rt)
        return rt

    yield start
    for rt in runtimes:
        rt.stop()


def token_file(tmp_path, token: str | None = None) -> tuple[str, str]:
    token = token or secrets.token_urlsafe(32)
    path = tmp_path / "api.token"
    path.write_text(token + "\n")
    return token, str(path)


def test_loopback_by_default_and_open_there(controller):
    assert load_config(None, {}).api == "127.0.0.1:9180"
    rt = controller()
    host, _ = rt.api.address
    assert ipaddress.ip_address(host).is_loopback
    status, _, body = call(rt.api.url + "/api/v1/status")
    assert status == 200 and body["api"]["auth"] == "none (loopback only)" and body["api"]["tls"] is False
    # POST without a token file on loopback: allowed (documented), registry refetched
    status, _, body = call(rt.api.url + "/api/v1/registry/refresh", method="POST")
    assert status == 200 and body["tags"] > 0, body


def test_token_required_everywhere_but_the_page(controller, tmp_path):
    token, path = token_file(tmp_path)
    rt = controller(api_token_file=path)
    url = rt.api.url
    for endpoint in ("/api/v1/status", "/api/v1/counters", "/api/v1/flows", "/api/v1/fireflies",
                     "/metrics", "/api/v1/nosuch"):
        status, headers, body = call(url + endpoint)
        assert status == 401, endpoint
        assert headers["Content-Type"].startswith("application/json")
        assert body == {"error": "authorization required: send 'Authorization: Bearer <token>'"}
        assert headers["WWW-Authenticate"] == 'Bearer realm="scitags-p4"'
        status, _, body = call(url + endpoint, token=token[:-1] + ("x" if token[-1] != "x" else "y"))
        assert status == 401 and body == {"error": "wrong bearer token"}, endpoint
    status, _, body = call(url + "/api/v1/status", headers={"Authorization": f"Basic {token}"})
    assert status == 401 and "Traceback" not in json.dumps(body)
    # the right token
    status, _, body = call(url + "/api/v1/status", token=token)
    assert status == 200 and body["api"]["auth"] == "bearer-token"
    assert body["api"]["unauthorized"] == {"missing-token": 7, "wrong-token": 6, "cross-origin": 0,
                                           "foreign-host": 0}
    status, _, metrics = call(url + "/metrics", token=token)
    assert status == 200
    assert 'scitags_api_unauthorized_requests_total{reason="missing-token"} 7.0' in metrics
    assert 'scitags_api_unauthorized_requests_total{reason="wrong-token"} 6.0' in metrics
    status, _, body = call(url + "/api/v1/nosuch", token=token)
    assert status == 404
    # POST: refused without the token, done with it
    status, _, body = call(url + "/api/v1/registry/refresh", method="POST")
    assert status == 401 and "error" in body
    status, _, body = call(url + "/api/v1/registry/refresh", method="POST", token="wrong" * 5)
    assert status == 401
    status, _, body = call(url + "/api/v1/registry/refresh", method="POST", token=token)
    assert status == 200 and body["tags"] > 0
    # the dashboard's static files hold no data: served without the token, typed
    for path_, ctype in (("/", "text/html"), ("/dashboard/app.js", "text/javascript"),
                         ("/dashboard/style.css", "text/css")):
        status, headers, body = call(url + path_)
        assert status == 200 and headers["Content-Type"].startswith(ctype), path_
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        assert len(body) > 500


def test_cross_origin_post_refused_on_loopback(controller):
    rt = controller()
    url = rt.api.url
    status, _, body = call(url + "/api/v1/registry/refresh", method="POST",
                           headers={"Origin": "http://evil.example"})
    assert status == 403 and body == {"error": "cross-origin POST refused"}
    host = url.split("//", 1)[1]
    status, _, _ = call(url + "/api/v1/registry/refresh", method="POST", headers={"Origin": f"http://{host}"})
    assert status == 200  # the dashboard's own origin
    assert call(url + "/api/v1/status")[2]["api"]["unauthorized"]["cross-origin"] == 1


def test_foreign_host_refused_without_token(controller, tmp_path):
    """DNS rebinding: a page whose name resolves to 127.0.0.1 reads nothing from a tokenless API."""
    rt = controller()
    url = rt.api.url
    port = rt.api.address[1]
    status, _, body = call(url + "/api/v1/status", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "loopback" in body["error"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert call(url + "/api/v1/status", headers={"Host": host})[0] == 200, host
    assert call(url + "/", headers={"Host": "evil.example"})[0] == 200  # the page: no data
    # with a token the name does not matter (a proxy may keep its own)
    token, path = token_file(tmp_path)
    rt2 = controller("ctl2", api_token_file=path)
    assert call(rt2.api.url + "/api/v1/status", token, headers={"Host": "dash.example.org"})[0] == 200
    assert "token=<redacted>" in redact('"GET /?token=abc123&x=1 HTTP/1.1" 200 -')


def run_start(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", "start", "--launch", "never",
                           "--firefly-listen", "off", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


@pytest.mark.parametrize("addr", ["0.0.0.0:9181", "[::]:9181", ":9181", "192.0.2.10:9181",
                                  "myhost.example:9181"])
def test_non_loopback_without_token_refused_at_start(tmp_path, addr):
    r = run_start("--api", addr, "--state-dir", str(tmp_path))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "not loopback" in r.stderr and "--api-token-file" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_yaml_equivalents(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("api: 0.0.0.0:9181\n")
    r = run_start("--config", str(cfg_file), "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "not loopback" in r.stderr, r.stderr
    token, _ = token_file(tmp_path)
    cfg_file.write_text("api: 0.0.0.0:9181\napi_token_file: api.token\n")  # relative to the file
    cfg = load_config(str(cfg_file), {})
    assert cfg.api_token_file == str(tmp_path / "api.token")
    assert ApiGuard.from_settings("0.0.0.0", cfg.api_token_file).token_required
    cfg_file.write_text("api_tls_cert: cert.pem\n")
    with pytest.raises(ConfigError, match="both --api-tls-cert and --api-tls-key"):
        load_config(str(cfg_file), {})


def test_unusable_token_file_refused_at_start(tmp_path):
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    for path, why in ((tmp_path / "absent.token", "cannot read"), (short, "at least 16")):
        r = run_start("--api", "127.0.0.1:0", "--api-token-file", str(path), "--state-dir", str(tmp_path))
        assert r.returncode == 2 and why in r.stderr, r.stderr


def test_loopback_rule():
    assert is_loopback("127.0.0.1") and is_loopback("127.3.4.5") and is_loopback("::1")
    assert is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.org")
    check_settings("0.0.0.0", "some.token", None, None)  # allowed with a token (not bound here)


def self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "api.pem", tmp_path / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_tls(controller, tmp_path):
    cert, key = self_signed(tmp_path)
    token, path = token_file(tmp_path)
    rt = controller(api_token_file=path, api_tls_cert=cert, api_tls_key=key)
    assert rt.api.url.startswith("https://127.0.0.1:")
    ctx = ssl.create_default_context(cafile=cert)  # verifies the certificate and 127.0.0.1
    status, _, body = call(rt.api.url + "/api/v1/status", token, context=ctx)
    assert status == 200 and body["api"]["tls"] is True
    assert call(rt.api.url + "/api/v1/status", context=ctx)[0] == 401
    status, headers, _ = call(rt.api.url + "/", context=ctx)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    # plain HTTP to the HTTPS port gets no answer; the server goes on
    plain = rt.api.url.replace("https://", "http://") + "/api/v1/status"
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(plain, timeout=5).read()
    assert call(rt.api.url + "/api/v1/status", token, context=ctx)[0] == 200
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(rt.api.url + "/", timeout=5, context=ssl.create_default_context())


def test_bad_certificate_refused_at_start(tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    _, path = token_file(tmp_path)
    r = run_start("--api", "127.0.0.1:0", "--api-token-file", path, "--api-tls-cert", str(bogus),
                  "--api-tls-key", str(bogus), "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "api_tls_cert" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_handler_failure_is_500_json_counted(controller, monkeypatch):
    rt = controller()

    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(rt.controller, "firefly_status", broken)
    status, headers, body = call(rt.api.url + "/api/v1/fireflies")
    assert status == 500 and headers["Content-Type"].startswith("application/json")
    assert body == {"error": "RuntimeError: disk on fire"}
    monkeypatch.undo()
    st = call(rt.api.url + "/api/v1/status")[2]
    assert st["api"]["internal_errors"] == 1
    assert "scitags_api_internal_errors_total 1.0" in call(rt.api.url + "/metrics")[2]
    status, _, body = call(rt.api.url + "/api/v1/flows?recent=abc")
    assert status == 400 and "abc" in body["error"]


def test_cli_clients_send_the_token(controller, tmp_path):
    token, path = token_file(tmp_path)
    rt = controller(api_token_file=path)
    cmd = [sys.executable, "-m", "controller.cli", "status", "--json", "--api", "%s:%d" % rt.api.address]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and "401" in r.stderr, (r.returncode, r.stderr)
    env = {**os.environ, "SCITAGS_API_TOKEN_FILE": path}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["api"]["auth"] == "bearer-token"
    env["SCITAGS_API_TOKEN_FILE"] = str(tmp_path / "absent")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert r.returncode == 2 and "SCITAGS_API_TOKEN_FILE" in r.stderr and "Traceback" not in r.stderr
