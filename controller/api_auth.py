"""Who may use the HTTP API, and what went wrong answering it.

Loopback-only by default. Any other bind address needs a bearer token (`--api-token-file`,
YAML `api_token_file`); with `--api-tls-cert/--api-tls-key` the API speaks HTTPS. With a
token configured every request to /api and /metrics must carry `Authorization: Bearer
<token>` (POSTs included); the dashboard's static files carry no data and are served to
anyone. Without a token (loopback only) GETs and POSTs are open to local users, but a POST
a browser sends from another origin (a web page's form aimed at 127.0.0.1) is refused, and so
is a request naming another host than a loopback one (DNS rebinding: a web page's own name
made to point at 127.0.0.1).

Refusals (401/403) and handler failures (500) are counted: /api/v1/status "api", metrics
scitags_api_unauthorized_requests_total{reason} and scitags_api_internal_errors_total.
"""
from __future__ import annotations

import collections
import hmac
import ipaddress
import logging
import os
import re
import ssl
import threading
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily

from controller.errors import UsageError

log = logging.getLogger(__name__)

REASONS = ("missing-token", "wrong-token", "cross-origin", "foreign-host")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; a name or a wildcard address is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: str) -> str:
    """The bearer token: the file's first line, stripped. ValueError names the cause."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"api_token_file {path}: cannot read: {exc.strerror or exc}") from None
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise ValueError(f"api_token_file {path}: the token must be at least 16 characters "
                         f"(e.g. `openssl rand -hex 32 > {path}`)")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"api_token_file {path}: the token must be printable, without spaces")
    return token


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"api_tls_cert {cert} / api_tls_key {key}: {exc}") from None
    return ctx


def check_settings(host: str, token_file: str | None, tls_cert: str | None,
                   tls_key: str | None) -> None:
    """Refuse settings that would expose the API (ValueError: the caller exits 2)."""
    if not is_loopback(host) and not token_file:
        raise ValueError(f"api address {host!r} is not loopback: binding to it needs "
                         "--api-token-file FILE (YAML api_token_file), the bearer token every "
                         "client must send")
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("api TLS needs both --api-tls-cert and --api-tls-key")


class ApiGuard:
    """Admission of API requests (the bearer token; without one: a loopback Host and
    same-origin POSTs), the TLS context, and the counts of refusals and internal errors."""

    def __init__(self, token: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        self._token = token.encode() if token else None
        self.tls = tls
        self._lock = threading.Lock()
        self.unauthorized: collections.Counter = collections.Counter({r: 0 for r in REASONS})
        self.internal_errors = 0

    @classmethod
    def from_settings(cls, host: str, token_file: str | None = None, tls_cert: str | None = None,
                      tls_key: str | None = None) -> "ApiGuard":
        check_settings(host, token_file, tls_cert, tls_key)
        token = read_token(token_file) if token_file else None
        tls = tls_context(tls_cert, tls_key) if tls_cert else None
        return cls(token, tls)

    @property
    def token_required(self) -> bool:
        return self._token is not None

    def refusal(self, method: str, headers) -> tuple[int, str] | None:
        """None when the request may go on, else (HTTP status, reason); the refusal is counted."""
        reason = self._reason(method, headers)
        if reason is None:
            return None
        with self._lock:
            self.unauthorized[reason] += 1
        return (401 if reason in ("missing-token", "wrong-token") else 403), reason

    def _reason(self, method: str, headers) -> str | None:
        if self._token is None:
            if not loopback_host(headers):
                return "foreign-host"
            if method == "POST" and not same_origin(headers):
                return "cross-origin"
            return None
        scheme, _, given = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return "missing-token"
        if not hmac.compare_digest(given.strip().encode(), self._token):  # constant time
            return "wrong-token"
        return None

    def failed(self) -> None:
        with self._lock:
            self.internal_errors += 1

    def status(self) -> dict:
        with self._lock:
            return {"auth": "bearer-token" if self._token else "none (loopback only)",
                    "tls": self.tls is not None,
                    "unauthorized": dict(self.unauthorized),
                    "internal_errors": self.internal_errors}

    def collect(self):
        st = self.status()
        m = CounterMetricFamily("scitags_api_unauthorized_requests", "HTTP API requests refused "
                                "(missing-token, wrong-token: 401; cross-origin: a browser POST "
                                "from another site, foreign-host: a Host header that is not "
                                "loopback without a token, 403).", labels=["reason"])
        for reason, n in st["unauthorized"].items():
            m.add_metric([reason], n)
        yield m
        e = CounterMetricFamily("scitags_api_internal_errors", "HTTP API requests that failed "
                                "inside the controller (answered 500).")
        e.add_metric([], st["internal_errors"])
        yield e


def same_origin(headers) -> bool:
    """False when a browser says the request comes from a page of another origin."""
    origin = headers.get("Origin")
    if not origin:
        return True  # not a browser's cross-site request (curl, the CLI)
    return urlsplit(origin).netloc.lower() == (headers.get("Host") or "").lower()


def loopback_host(headers) -> bool:
    """False when the Host header names something other than a loopback address or localhost."""
    host = headers.get("Host")
    if not host:
        return True  # HTTP/1.0 without Host: not a browser
    name = urlsplit("//" + host).hostname or ""
    return is_loopback(name)


_TOKEN_IN_URL = re.compile(r"(token=)[^&\s]*")


def redact(text: str) -> str:
    """A request line for the log, without the token the dashboard was opened with."""
    return _TOKEN_IN_URL.sub(r"\1<redacted>", text)


def refusal_message(reason: str) -> str:
    return {"missing-token": "authorization required: send 'Authorization: Bearer <token>'",
            "wrong-token": "wrong bearer token",
            "cross-origin": "cross-origin POST refused",
            "foreign-host": "Host is not a loopback address: this API has no token, it answers "
                            "loopback names only (start it with --api-token-file)"}[reason]


TOKEN_FILE_ENV = "SCITAGS_API_TOKEN_FILE"


def client_headers(environ=None) -> dict:
    """What the `controller counters/flows/status/history` clients send: the bearer token of
    $SCITAGS_API_TOKEN_FILE when set (a controller started with --api-token-file)."""
    path = (environ if environ is not None else os.environ).get(TOKEN_FILE_ENV)
    if not path:
        return {}
    try:
        return {"Authorization": f"Bearer {read_token(path)}"}
    except ValueError as exc:  # bad input: exit 2
        raise UsageError(f"${TOKEN_FILE_ENV}: {exc}") from None
