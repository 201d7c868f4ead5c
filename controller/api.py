"""Local HTTP API of the running controller (JSON) and Prometheus metrics.

Endpoints (documented in controller/README.md):
  GET  /api/v1/status                      switches, registry, firefly protection, stats
  GET  /api/v1/counters?switch=&experiment=&activity=   per experiment/activity/source rows
  GET  /api/v1/flows?recent=N               live firefly flows and recently ended ones
  GET  /api/v1/fireflies                    accepted/refused fireflies by reason
  POST /api/v1/registry/refresh             fetch the registry again and apply it
  GET  /metrics                             Prometheus text format
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)


class ControllerCollector:
    """Reads the controller's state at scrape time (no duplicated bookkeeping)."""

    def __init__(self, controller) -> None:
        self.c = controller

    def collect(self):
        labels = ["switch", "experiment", "activity", "source"]
        b = CounterMetricFamily("scitags_bytes", "Bytes counted per experiment and activity "
                                "(source: flowlabel = IPv6 flow-label tag, exthdr = IPv6 extension-header "
                                "option, firefly = firefly-declared flow, untrusted-label = a label from "
                                "outside the trust scope, as it would have been counted).",
                                labels=labels)
        p = CounterMetricFamily("scitags_packets", "Packets counted per experiment and activity.",
                                labels=labels)
        rate = GaugeMetricFamily("scitags_rate_bytes_per_second", "Rate over the last counter poll.",
                                 labels=labels)
        bb = CounterMetricFamily("scitags_bucket_bytes", "Bytes without a registered tag of their own "
                                 "(unmarked, unregistered, consistent, mismatch, firefly_only, parser_error).",
                                 labels=["switch", "bucket"])
        bp = CounterMetricFamily("scitags_bucket_packets", "Packets per bucket.", labels=["switch", "bucket"])
        agg: dict[tuple, list[float]] = {}
        label_labels = ["switch", "experiment", "activity"]
        confirmed = CounterMetricFamily(
            "scitags_label_confirmed_bytes", "Flow-label bytes of firefly flows that declared the "
            "same experiment/activity (the rest of scitags_bytes{source=flowlabel} is claimed).",
            labels=label_labels)
        background = GaugeMetricFamily(
            "scitags_label_background_bytes", "Estimated bytes of random (kernel) flow labels in "
            "scitags_bytes{source=flowlabel}, from the unregistered bucket (controller/README.md).",
            labels=label_labels)
        background_p = GaugeMetricFamily(
            "scitags_label_background_packets", "Estimated packets of random flow labels in "
            "scitags_packets{source=flowlabel}.", labels=label_labels)
        label_agg: dict[tuple, list[float]] = {}
        for r in self.c.counter_rows():
            if r["source"] == "bucket":
                bb.add_metric([r["switch"], r["bucket"]], r["bytes"])
                bp.add_metric([r["switch"], r["bucket"]], r["packets"])
                continue
            # Several registry versions may name the same series: sum them per label set.
            key = (r["switch"], r["experiment"], r["activity"], r["source"])
            acc = agg.setdefault(key, [0, 0, 0.0])
            acc[0] += r["bytes"]
            acc[1] += r["packets"]
            acc[2] += r["rate_bps"] / 8
            if r["source"] == "flowlabel":
                lab = label_agg.setdefault(key[:3], [0, 0.0, 0.0])
                lab[0] += r["confirmed_bytes"]
                lab[1] += r["background_bytes"] or 0.0
                lab[2] += r["background_packets"] or 0.0
        for key, (nbytes, npackets, r_bps) in agg.items():
            b.add_metric(list(key), nbytes)
            p.add_metric(list(key), npackets)
            rate.add_metric(list(key), r_bps)
        yield from (b, p, rate, bb, bp)
        for key, (conf, bg_bytes, bg_packets) in label_agg.items():
            confirmed.add_metric(list(key), conf)
            background.add_metric(list(key), bg_bytes)
            background_p.add_metric(list(key), bg_packets)
        yield from (confirmed, background, background_p)
        trust = self.c.label_trust_status()
        scope = GaugeMetricFamily(
            "scitags_label_trust_scope_configured", "1 when the switch counts flow labels as tags "
            "only from a trust scope (verified); 0: every label counts, label counts unverified.",
            labels=["switch"])
        for name, t in trust["switches"].items():
            scope.add_metric([name], 1 if t["label_counts"] == "verified" else 0)
        yield scope

        ff = self.c.firefly_status()
        acc_m = CounterMetricFamily("scitags_fireflies_accepted", "Fireflies accepted by the protection policy.")
        acc_m.add_metric([], ff["accepted"])
        yield acc_m
        ref = CounterMetricFamily("scitags_fireflies_refused", "Fireflies refused, by reason.", labels=["reason"])
        for reason, n in ff["refused"].items():
            ref.add_metric([reason], n)
        yield ref
        flows = GaugeMetricFamily("scitags_firefly_flows", "Firefly flows installed now.")
        flows.add_metric([], len(self.c.flow_service))
        yield flows
        st = self.c.status()
        up = GaugeMetricFamily("scitags_switch_up", "1 when the switch is connected and in sync.",
                               labels=["switch"])
        primary = GaugeMetricFamily("scitags_switch_primary", "1 when this controller is primary for the switch.",
                                    labels=["switch"])
        for name, s in st["switches"].items():
            up.add_metric([name], 1 if s["ready"] else 0)
            primary.add_metric([name], 1 if s["primary"] else 0)
        yield up
        yield primary
        repairs = CounterMetricFamily(
            "scitags_reconcile_repairs", "Entries the periodic reconcile rewrote because they "
            "drifted (kind: l2, tag, flow, multicast_group, clone_session; change: missing = "
            "re-inserted, modified = rewritten, extra = deleted).",
            labels=["switch", "kind", "change"])
        passes = CounterMetricFamily("scitags_reconcile_passes", "Reconcile passes (read back "
                                     "and repair) per switch.", labels=["switch"])
        for name, session in self.c.switches.items():
            passes.add_metric([name], session.reconciles)
            for (kind, change), n in sorted(session.repairs.items()):
                repairs.add_metric([name, kind, change], n)
        yield repairs
        yield passes
        ops = CounterMetricFamily("scitags_controller_events", "Controller events by kind.", labels=["event"])
        for k, v in st["stats"].items():
            ops.add_metric([k], v)
        yield ops


class ApiServer:
    def __init__(self, controller, host: str = "127.0.0.1", port: int = 9180) -> None:
        self.controller = controller
        self.metrics = CollectorRegistry()
        self.metrics.register(ControllerCollector(controller))
        for collector in controller.hooks.collectors:  # other features' metrics (controller.hooks)
            self.metrics.register(collector)
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "scitags-p4"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("api: " + fmt, *args)

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, data: Any) -> None:
                self._send(code, json.dumps(data, default=str).encode() + b"\n")

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                url = urlparse(self.path)
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                try:
                    if url.path == "/metrics":
                        self._send(200, generate_latest(api.metrics), CONTENT_TYPE_LATEST)
                    elif url.path == "/api/v1/status":
                        self._json(200, api.controller.status())
                    elif url.path == "/api/v1/counters":
                        self._json(200, {"counters": api.controller.counter_rows(
                            q.get("switch"), q.get("experiment"), q.get("activity")),
                            "label_trust": api.controller.label_trust_status(),
                            "label_background": api.controller.label_background()})
                    elif url.path == "/api/v1/flows":
                        recent = int(q.get("recent", "50"))
                        self._json(200, api.controller.flow_rows(max(0, min(recent, 10000))))
                    elif url.path == "/api/v1/fireflies":
                        self._json(200, api.controller.firefly_status())
                    else:
                        self._json(404, {"error": f"no such endpoint {url.path}"})
                except ValueError as exc:
                    self._json(400, {"error": str(exc)})
                except Exception as exc:  # noqa: BLE001 - answer, never kill the server
                    log.exception("api: %s failed", url.path)
                    self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if url.path != "/api/v1/registry/refresh":
                    self._json(404, {"error": f"no such endpoint {url.path}"})
                    return
                try:
                    reg = api.controller.refresh_registry()
                    self._json(200, {"registry": reg.identity, "source": reg.source,
                                     "tags": len(api.controller.tags)})
                except Exception as exc:  # noqa: BLE001
                    self._json(502, {"error": str(exc)})

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]

    def start(self) -> "ApiServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="api", daemon=True)
        self._thread.start()
        log.info("API on http://%s:%d (JSON under /api/v1, Prometheus at /metrics)", *self.address)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
