"""MAC learning for switches in `mode: learn` (issue 15).

The data plane punts a frame whose (source MAC, ingress port) pair misses `learned_src`
(packet-in reason 2; a firefly copy teaches its source too). The driver hands each such source
to MacLearning.seen() on its stream thread; a bounded queue and one worker thread write the
switch (l2_forward toward the MAC + the learned_src pair with the ageing as idle timeout;
what queued meanwhile in one Write),
so a burst of new hosts never blocks packet-ins. A full queue drops the sighting (counted:
the punts repeat until the pair is installed, so nothing is lost but time). An idle
notification of a learned pair (no frame from that MAC on that port for `learn_ageing_s`)
forgets it: frames toward it flood again, its next frame is punted and learned again.

State: the learned table per switch is owned here; the reconciler puts it into the desired
state (so a periodic pass neither deletes learned entries nor misses lost ones).
Flooding on a learn switch follows the topology's spanning tree (Topology.flood_ports):
inter-switch ports off the tree are never flooded, so learning never loops.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass

from controller.drivers.base import DriverError
from controller.topology import Topology

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 4096
BATCH_MAX = 512  # sightings written in one P4Runtime Write


@dataclass
class Learned:
    port: int
    installed_at: float  # time.monotonic() when written to the switch
    first_seen: float  # time.monotonic() of the sighting that taught it


class MacLearning:
    def __init__(self, topology: Topology, max_queue: int = DEFAULT_QUEUE) -> None:
        self.topology = topology
        self._drivers: dict[str, object] = {}
        self._tables: dict[str, dict[str, Learned]] = {
            s: {} for s, spec in topology.switches.items() if spec.mode == "learn"}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._pending: set[tuple[str, str, int]] = set()  # queued sightings (one per pair)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.stats = collections.Counter()
        # seconds from a sighting's arrival to its entries' write completing (bench, status)
        self.install_latencies: collections.deque = collections.deque(maxlen=10000)

    # ---- wiring ----
    def learns(self, switch: str) -> bool:
        return switch in self._tables

    def attach(self, switch: str, driver: object) -> None:
        """Receive the driver's sightings and ageing notices (drivers that have them)."""
        if not self.learns(switch) or not hasattr(driver, "learn"):
            return
        self._drivers[switch] = driver
        driver.on_source_mac = self.seen
        driver.on_mac_aged = self.aged
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mac-learning", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def table(self, switch: str) -> dict[str, int]:
        """MAC -> port learned on a switch."""
        with self._lock:
            return {mac: e.port for mac, e in self._tables.get(switch, {}).items()}

    def forget_switch(self, switch: str) -> None:
        """The switch lost its state (pipeline pushed): learn again from scratch."""
        with self._lock:
            if switch in self._tables:
                self._tables[switch] = {}

    def status(self) -> dict:
        with self._lock:
            learned = {s: len(t) for s, t in self._tables.items()}
        return {"learned_macs": learned, "queue_depth": self._queue.qsize(), **dict(self.stats)}

    # ---- driver callbacks (stream threads: quick, never block) ----
    def seen(self, switch: str, mac: str, port: int) -> None:
        if not self.learns(switch) or int(mac[:2], 16) & 1:
            return
        self.stats["sightings"] += 1
        with self._lock:
            entry = self._tables[switch].get(mac)
            if entry is not None and entry.port == port:
                self.stats["already_learned"] += 1  # a punt racing the install
                return
            item = (switch, mac, port)
            if item in self._pending:
                self.stats["already_queued"] += 1
                return
            try:
                self._queue.put_nowait((item, time.monotonic()))
            except queue.Full:
                self.stats["dropped_queue_full"] += 1
                return
            self._pending.add(item)

    def aged(self, switch: str, mac: str, port: int) -> None:
        if not self.learns(switch):
            return
        try:
            self._queue.put_nowait((("aged", switch, mac, port), time.monotonic()))
        except queue.Full:
            self.stats["dropped_queue_full"] += 1  # BMv2 repeats the notification

    # ---- the worker ----
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(batch) < BATCH_MAX:  # what queued meanwhile goes in the same Write
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                learns = [(item, at) for item, at in batch if item[0] != "aged"]
                for item, _ in batch:
                    if item[0] == "aged":
                        self._age(*item[1:])
                by_switch: dict[str, list] = collections.defaultdict(list)
                for item, at in learns:
                    by_switch[item[0]].append((item, at))
                for switch, items in by_switch.items():
                    self._learn(switch, items)
            except Exception:  # noqa: BLE001 - the worker must survive anything
                self.stats["worker_errors"] += 1
                log.exception("mac learning failed")

    def _learn(self, switch: str, items: list[tuple[tuple[str, str, int], float]]) -> None:
        """Write the new (or moved) MACs of one switch in one Write; on a refused batch, one
        by one (the error names the MAC)."""
        driver = self._drivers.get(switch)
        todo: dict[str, tuple[int, int | None, float]] = {}
        with self._lock:
            table = self._tables[switch]
            for item, at in items:
                self._pending.discard(item)
                _, mac, port = item
                old = table.get(mac)
                if old is None or old.port != port:
                    todo[mac] = (port, old.port if old else None, at)  # the latest sighting wins
        if driver is None or not todo:
            return
        ageing = self.topology.switches[switch].placement.learn_ageing_s
        try:
            driver.learn_batch([(m, p, o) for m, (p, o, _) in todo.items()], ageing)
            written = list(todo)
        except DriverError:
            written = []
            for mac, (port, old_port, _) in todo.items():
                try:
                    driver.learn(mac, port, ageing, old_port=old_port)
                    written.append(mac)
                except DriverError as exc:
                    self.stats["write_errors"] += 1
                    log.warning("mac learning: switch %s: %s: %s", switch, mac, exc)
        now = time.monotonic()
        with self._lock:
            for mac in written:
                port, old_port, at = todo[mac]
                self._tables[switch][mac] = Learned(port, now, at)
                self.install_latencies.append(now - at)
                self.stats["moved" if old_port is not None else "learned"] += 1
        self.stats["writes"] += 1

    def _age(self, switch: str, mac: str, port: int) -> None:
        with self._lock:
            entry = self._tables[switch].get(mac)
            if entry is None or entry.port != port:
                self.stats["aged_repeats"] += 1
                return
            del self._tables[switch][mac]
        driver = self._drivers.get(switch)
        if driver is not None:
            driver.unlearn(mac, port)
        self.stats["aged"] += 1
