"""Placement modes in the controller's API (issue 15): per switch its mode and port entries,
MAC learning figures, tagged traffic per direction (to / from the WAN, on ports labelled
`direction: wan|lan`) and wire drops; `/api/v1/status["placement"]` and /metrics
`scitags_direction_bytes_total` / `_packets_total{switch,experiment,activity,direction}`,
`scitags_wire_down_dropped_packets_total{switch,port}`; live firefly flows per direction by the
ports' prefixes (`flow_direction`: a flow from a WAN port's prefixes, or to a LAN port's, comes
from the WAN).

The figures are the switch's own counters (direction_tag_counter, wire_down_counter) read every
`interval_s` (YAML `placement: {interval_s: 5}`, `--placement-interval`), as they stand since
the pipeline was pushed: not folded into the SQLite totals (a restarted switch starts them
from zero).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client.core import CounterMetricFamily

from controller.extensions import Extension
from p4schema.constants import DIRECTION_FROM_WAN, DIRECTION_TO_WAN

log = logging.getLogger(__name__)

DIRECTION_NAMES = {DIRECTION_TO_WAN: "to_wan", DIRECTION_FROM_WAN: "from_wan"}


class PlacementExtension(Extension):
    name = "placement"

    def __init__(self) -> None:
        self.interval_s = 5.0
        self.ctl = None
        self._lock = threading.Lock()
        self._snaps: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.read_errors = 0

    def add_arguments(self, parser) -> None:
        parser.add_argument("--placement-interval", dest="placement_interval", type=float,
                            metavar="SECONDS", help="read the per-direction counters this often (5)")

    def options(self, args) -> dict[str, Any]:
        v = getattr(args, "placement_interval", None)
        return {"interval_s": v} if v is not None else {}

    def configure(self, section: dict[str, Any]) -> None:
        unknown = set(section) - {"interval_s"}
        if unknown:
            raise ValueError(f"placement: unknown key(s): {', '.join(sorted(unknown))}")
        v = section.get("interval_s", self.interval_s)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ValueError(f"placement.interval_s must be a positive number, got {v!r}")
        self.interval_s = float(v)

    def attach(self, controller) -> None:
        self.ctl = controller
        controller.hooks.add_status("placement", self.status)
        controller.hooks.add_collector(self)

    def start(self) -> None:
        if self._counted_switches():
            self._thread = threading.Thread(target=self._run, name="placement", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.ctl.reconciler.learning.stop()

    # ---- reading ----
    def _counted_switches(self) -> list[str]:
        topo = self.ctl.reconciler.topology
        return [s for s in topo.switches if topo.port_modes(s)]

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> None:
        for name in self._counted_switches():
            session = self.ctl.switches.get(name)
            read = getattr(session.driver, "read_placement_counters", None) if session else None
            if read is None or not session.ready:
                continue
            try:
                snap = read()
            except Exception as exc:  # noqa: BLE001 - a lost switch must not stop the others
                self.read_errors += 1
                log.debug("placement counters of %s: %s", name, exc)
                continue
            with self._lock:
                self._snaps[name] = snap

    # ---- answers ----
    def direction_rows(self) -> list[dict[str, Any]]:
        rows = []
        with self._lock:
            snaps = dict(self._snaps)
        tags = self.ctl.tags
        for switch, snap in sorted(snaps.items()):
            for (tag_id, direction), c in sorted(snap.direction_tags.items()):
                meta = tags.get(tag_id)
                rows.append({"switch": switch, "tag_id": tag_id,
                             "experiment": meta.experiment_name if meta else None,
                             "activity": (meta.activity_name if meta and meta.rule.activity is not None
                                          else "*") if meta else None,
                             "direction": DIRECTION_NAMES.get(direction, str(direction)),
                             "packets": c.packets, "bytes": c.bytes})
        return rows

    def flow_direction_rows(self) -> list[dict[str, Any]]:
        """Live firefly flows summed per (switch, experiment, activity, direction), the
        direction from the switch's port prefixes (Topology.flow_direction); flows whose
        direction the prefixes do not tell are left out."""
        topo = self.ctl.reconciler.topology
        sums: dict[tuple, list[int]] = {}
        for flow in list(self.ctl.flows.values()):
            for switch, c in list(flow.counts.items()):
                if switch not in topo.switches:
                    continue
                direction = topo.flow_direction(switch, flow.key.src, flow.key.dst)
                if direction in DIRECTION_NAMES:
                    key = (switch, flow.experiment_name or f"#{flow.experiment}",
                           flow.activity_name or f"#{flow.activity}", DIRECTION_NAMES[direction])
                    acc = sums.setdefault(key, [0, 0, 0])
                    acc[0] += c.packets
                    acc[1] += c.bytes
                    acc[2] += 1
        return [{"switch": s, "experiment": e, "activity": a, "direction": d, "flows": n,
                 "packets": p, "bytes": b} for (s, e, a, d), (p, b, n) in sorted(sums.items())]

    def status(self) -> dict[str, Any]:
        topo = self.ctl.reconciler.topology
        learning = self.ctl.reconciler.learning
        with self._lock:
            snaps = dict(self._snaps)
        switches = {}
        for name, spec in topo.switches.items():
            modes = topo.port_modes(name)
            entry = {"mode": spec.mode,
                     "ports": {str(p): {"action": m.action, "partner": m.partner,
                                        "direction": DIRECTION_NAMES.get(m.direction)}
                               for p, m in sorted(modes.items())}}
            if learning.learns(name):
                entry["learned_macs"] = len(learning.table(name))
            snap = snaps.get(name)
            if snap is not None and snap.wire_down:
                entry["wire_down_dropped"] = {str(p): {"packets": c.packets, "bytes": c.bytes}
                                              for p, c in sorted(snap.wire_down.items())}
            switches[name] = entry
        return {"switches": switches, "direction": self.direction_rows(),
                "flow_direction": self.flow_direction_rows(),
                "learning": learning.status(), "read_errors": self.read_errors}

    def collect(self):
        labels = ["switch", "experiment", "activity", "direction"]
        b = CounterMetricFamily("scitags_direction_bytes", "Tagged bytes entering labelled ports, "
                                "by direction (to_wan: entered on a LAN port)", labels=labels)
        p = CounterMetricFamily("scitags_direction_packets", "Tagged packets entering labelled "
                                "ports, by direction", labels=labels)
        for r in self.direction_rows():
            values = [r["switch"], str(r["experiment"]), str(r["activity"]), r["direction"]]
            b.add_metric(values, r["bytes"])
            p.add_metric(values, r["packets"])
        w = CounterMetricFamily("scitags_wire_down_dropped_packets", "Packets dropped because "
                                "the wire partner's link is down", labels=["switch", "port"])
        with self._lock:
            snaps = dict(self._snaps)
        for switch, snap in sorted(snaps.items()):
            for port, c in sorted(snap.wire_down.items()):
                w.add_metric([switch, str(port)], c.packets)
        yield b
        yield p
        yield w
