"""Local HTTP API of the running controller (JSON) and Prometheus metrics.

Endpoints (documented in controller/README.md):
  GET  /api/v1/status                      switches, registry, firefly protection, stats
  GET  /api/v1/counters?switch=&experiment=&activity=   per experiment/activity/source rows
  GET  /api/v1/counters?since=&until=&...   the same rows for a window (controller/windows.py)
  GET  /api/v1/history?since=&until=&step=&switch=&experiment=&activity=&source=   series
  GET  /api/v1/flows?recent=N               live firefly flows and recently ended ones
  GET  /api/v1/fireflies                    accepted/refused fireflies by reason
  POST /api/v1/registry/refresh             fetch the registry again and apply it
  GET  /metrics                             Prometheus text format
  GET  /                                    the dashboard (controller/dashboard/)
Who may call them: controller/api_auth.py (bearer token, TLS).
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from controller.metrics import ControllerCollector
from controller.api_auth import ApiGuard, redact, refusal_message
from controller.dashboard import Dashboard

log = logging.getLogger(__name__)


class ApiServer:
    def __init__(self, controller, host: str = "127.0.0.1", port: int = 9180,
                 guard: ApiGuard | None = None) -> None:
        self.controller = controller
        self.guard = guard or ApiGuard.from_settings(host)  # loopback only without a token
        self.dashboard = Dashboard()
        self.metrics = CollectorRegistry()
        self.metrics.register(ControllerCollector(controller))
        self.metrics.register(self.guard)
        controller.hooks.add_status("api", self.guard.status)
        for collector in controller.hooks.collectors:  # other features' metrics (controller.hooks)
            self.metrics.register(collector)
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "scitags-p4"
            timeout = 60  # a silent client does not hold its thread for ever

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("api: %s", redact(fmt % args))  # the dashboard's /?token=...

            def _send(self, code: int, body: bytes, ctype: str = "application/json",
                      headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, data: Any) -> None:
                self._send(code, json.dumps(data, default=str).encode() + b"\n")

            def _admitted(self) -> bool:
                refused = api.guard.refusal(self.command, self.headers)
                if refused is not None:
                    code, reason = refused
                    challenge = {"WWW-Authenticate": 'Bearer realm="scitags-p4"'} if code == 401 else None
                    self._send(code, json.dumps({"error": refusal_message(reason)}).encode() + b"\n",
                               headers=challenge)
                return refused is None

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                url = urlparse(self.path)
                page = api.dashboard.asset(url.path)  # static, no data: no token needed
                if page is not None:
                    self._send(200, page.body, page.content_type, page.headers)
                    return
                if not self._admitted():
                    return
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                try:
                    if url.path == "/metrics":
                        self._send(200, api.controller.traffic_metrics().encode()
                                   + generate_latest(api.metrics), CONTENT_TYPE_LATEST)
                    elif url.path == "/api/v1/status":
                        self._json(200, api.controller.status())
                    elif url.path == "/api/v1/counters" and ("since" in q or "until" in q):  # a window
                        answer = api.controller.window_counters(
                            q.get("since"), q.get("until"), q.get("switch"), q.get("experiment"), q.get("activity"))
                        self._json(200, {**answer, "label_trust": api.controller.label_trust_status()})
                    elif url.path == "/api/v1/history":
                        self._json(200, api.controller.history_series(
                            q.get("since"), q.get("until"), q.get("step"), q.get("switch"),
                            q.get("experiment"), q.get("activity"), q.get("source")))
                    elif url.path == "/api/v1/counters":
                        self._json(200, {"counters": api.controller.counter_rows(
                            q.get("switch"), q.get("experiment"), q.get("activity")),
                            "label_trust": api.controller.label_trust_status(),
                            "label_background": api.controller.label_background()})
                    elif url.path == "/api/v1/flows":
                        recent = int(q.get("recent", "50"))
                        limit = int(q["limit"]) if "limit" in q else None  # top N by bytes
                        self._json(200, api.controller.flow_rows(
                            max(0, min(recent, 10000)), None if limit is None else max(0, limit)))
                    elif url.path == "/api/v1/fireflies":
                        self._json(200, api.controller.firefly_status())
                    else:
                        self._json(404, {"error": f"no such endpoint {url.path}"})
                except ValueError as exc:
                    self._json(400, {"error": str(exc)})
                except Exception as exc:  # noqa: BLE001 - answer, never kill the server
                    api.guard.failed()
                    log.exception("api: %s failed", url.path)
                    self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if not self._admitted():
                    return
                if url.path != "/api/v1/registry/refresh":
                    self._json(404, {"error": f"no such endpoint {url.path}"})
                    return
                try:
                    reg = api.controller.refresh_registry()
                    self._json(200, {"registry": reg.identity, "source": reg.source,
                                     "tags": len(api.controller.tags)})
                except Exception as exc:  # noqa: BLE001
                    self._json(502, {"error": str(exc)})

        self.httpd = _Server((host, port), Handler, self.guard)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]

    @property
    def url(self) -> str:
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.guard.tls else 'http'}://{host}:{port}"

    def start(self) -> "ApiServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="api", daemon=True)
        self._thread.start()
        log.info("API on %s (dashboard at /, JSON under /api/v1, Prometheus at /metrics; %s)",
                 self.url, "bearer token required" if self.guard.token_required else "no token")
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    """TLS handshakes in the request's own thread (a slow client never stalls accept), and a
    failing connection is logged, never printed as a traceback."""

    def __init__(self, address, handler, guard: ApiGuard) -> None:
        self.guard = guard
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        if self.guard.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(30)
        with self.guard.tls.wrap_socket(request, server_side=True) as tls_request:
            super().finish_request(tls_request, client_address)

    def handle_error(self, request, client_address) -> None:
        log.debug("api: connection from %s failed", client_address, exc_info=True)
