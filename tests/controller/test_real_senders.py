"""Interoperability with the real firefly producers, end to end over real UDP.

A `controller start --switch soft` process (it launches the built-in switch) receives:
- what the installed reference flowd 1.1.7 (PyPI scitags) actually sends: its np_api plugin
  reads flow events from its named pipe, its udp_firefly backend sends them (start, then an
  end with "start-time": null);
- flowd-go 2.4 fireflies built byte for byte as its source builds them (bare JSON, the
  header with an empty TIMESTAMP, "start-time": "" on end, skOps), XRootD's pair of
  messages per event and dCache's shape (tests/core/real_senders.py).
Each flow must be installed on start (queried through /api/v1/flows) and removed on end.
The controller runs with `--relay` to a raw UDP collector: what it relays is checked
against firefly.schema.json; the relay with switch counters and idle timeouts, into the
reference's own listener, runs on the veth lab (tests/controller/conftest.py one_switch).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from controller.launcher import free_tcp_port
from controller.relay import RelayExtension
from labnet.waiting import poll
from scitags_core.schemas import firefly_validator
from tests.controller.harness import DEVICE_JSON, H1, H2, HAVE_SOFT_CLI, P4INFO, ROOT, api, send_all, v4
from tests.core.real_senders import dcache, flowd_go, xrootd_pair
from tests.relay.receivers import RawCollector, ReferenceListener, reference_config

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not HAVE_SOFT_CLI, reason="softswitch/cli.py not built yet")]
UTC = dt.timezone.utc


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]


def send_from(sender: str, data: bytes, address: tuple[str, int]) -> None:
    """One datagram from `sender` (one end of the flow: the policy's rule) to `address`."""
    family = socket.AF_INET6 if ":" in sender else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((sender, 0))
        s.sendto(data, address)


@dataclass
class Controller:
    api: str
    firefly_port: int
    proc: subprocess.Popen
    relayed: RawCollector

    def relayed_for(self, key: tuple) -> list[dict]:
        """Relayed documents about one flow (src, sport, dst, dport), in arrival order."""
        return [d for d in self.relayed.documents()
                if (d["flow-id"]["src-ip"], d["flow-id"]["src-port"], d["flow-id"]["dst-ip"],
                    d["flow-id"]["dst-port"]) == key]

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://{self.api}{path}", timeout=10) as r:
            return json.loads(r.read())

    def live(self) -> dict[tuple, dict]:
        return {(f["src"], f["src_port"], f["dst"], f["dst_port"]): f
                for f in self.get("/api/v1/flows?recent=200")["live"]}

    def ended(self) -> dict[tuple, dict]:
        return {(f["src"], f["src_port"], f["dst"], f["dst_port"]): f
                for f in self.get("/api/v1/flows?recent=200")["recent"]}

    def send(self, data: bytes, sender: str) -> None:
        send_from(sender, data, (sender, self.firefly_port))

    def wait_installed(self, *keys: tuple) -> dict[tuple, dict]:
        def installed() -> dict | None:
            live = self.live()
            return live if all(k in live and live[k]["installed_on"] == ["s1"] for k in keys) else None
        live = poll(installed, timeout=15)
        assert live, f"flows {keys} not installed: {self.live()}\n{self.get('/api/v1/fireflies')}"
        return live

    def wait_removed(self, *keys: tuple) -> dict[tuple, dict]:
        def removed() -> dict | None:
            ended = self.ended()
            return ended if all(k in ended for k in keys) and not set(keys) & set(self.live()) else None
        ended = poll(removed, timeout=15)
        assert ended, f"flows {keys} not removed: {self.live()}\n{self.get('/api/v1/fireflies')}"
        return ended


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    state = tmp_path_factory.mktemp("ctl")
    api_at = f"127.0.0.1:{free_tcp_port()}"
    port = free_udp_port()
    relayed = RawCollector()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "start", "--switch", "soft",
         "--grpc-addr", f"127.0.0.1:{free_tcp_port()}", "--device-id", "1", "--state-dir", str(state),
         "--api", api_at, "--firefly-listen", f"[::]:{port}", "--p4info", str(P4INFO),
         "--device-config", str(DEVICE_JSON), "--poll-interval", "0.5",
         "--relay", f"127.0.0.1:{relayed.port}"],
        cwd=ROOT, stdout=open(state / "controller.log", "wb"), stderr=subprocess.STDOUT)
    ctl = Controller(api_at, port, proc, relayed)
    try:
        def ready() -> bool:
            try:
                return ctl.get("/api/v1/status")["switches"]["s1"]["ready"]
            except OSError:
                return False
        assert poll(ready, timeout=60), (state / "controller.log").read_text()[-3000:]
        yield ctl
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        relayed.close()


# -- the reference flowd 1.1.7, run for real ------------------------------------------------

@pytest.fixture
def reference_flowd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, controller: Controller):
    """flowd's np_api plugin and udp_firefly backend in threads, joined by a queue as flowd
    joins them; fireflies go to the flow's destination on the controller's port."""
    import scitags.settings
    config = reference_config(tmp_path)
    from scitags.backends import udp_firefly
    from scitags.plugins import np_api
    config.pop("UDP_FIREFLY_DST", None)
    pipe = tmp_path / "flowd.np"
    monkeypatch.setattr(scitags.settings, "NP_API_FILE", str(pipe))
    monkeypatch.setattr(scitags.settings, "UDP_FIREFLY_PORT", controller.firefly_port)
    flows: queue.Queue = queue.Queue()
    term = threading.Event()
    np_api.init()
    threads = [threading.Thread(target=np_api.run, args=(flows, term, None), daemon=True),
               threading.Thread(target=udp_firefly.run,
                                args=(flows, term, {"experiments": {}, "activities": {}}, None), daemon=True)]
    for t in threads:
        t.start()

    def event(line: str) -> None:  # what a storage system writes into flowd's pipe
        fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    try:
        yield event
    finally:
        term.set()
        for t in threads:
            t.join(10)


@pytest.mark.parametrize("src, dst", [("127.0.0.1", "127.0.1.2"), ("::1", "::1")], ids=["ipv4", "ipv6"])
def test_reference_flowd_np_api_start_and_end(controller: Controller, reference_flowd, src: str,
                                              dst: str) -> None:
    sport = 45001 if ":" not in src else 45002
    key = (src, sport, dst, 1094)
    reference_flowd(f"start tcp {src} {sport} {dst} 1094 3 14")
    live = controller.wait_installed(key)
    assert (live[key]["experiment_id"], live[key]["activity_id"]) == (3, 14)
    assert live[key]["experiment_name"] == "cms" and live[key]["state"] == "start"
    reference_flowd(f"end tcp {src} {sport} {dst} 1094 3 14")  # "start-time": null
    ended = controller.wait_removed(key)
    assert ended[key]["end_reason"] == "end"
    # relayed once each, schema-valid, the end repaired with the flow's start
    assert poll(lambda: len(controller.relayed_for(key)) == 2, timeout=10), controller.relayed_for(key)
    docs = controller.relayed_for(key)
    for doc in docs:
        errors = list(firefly_validator().iter_errors(doc))
        assert not errors, (doc, errors[0].message)
        assert doc["context"]["application"] == "flowd v1.1.7"
    start, end = docs
    assert [start["flow-lifecycle"]["state"], end["flow-lifecycle"]["state"]] == ["start", "end"]
    assert end["flow-lifecycle"]["start-time"]  # was null
    assert end["scitags-p4"]["repaired"] == ["end-without-start-time"]
    assert end["usage"] == {"received": 0, "sent": 0}  # no traffic crossed the switch


# -- flowd-go, XRootD, dCache, byte for byte ---------------------------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


@pytest.mark.parametrize("prepend_syslog", [False, True], ids=["bare-json", "syslog-empty-timestamp"])
def test_flowd_go_start_and_end(controller: Controller, prepend_syslog: bool) -> None:
    sport = 46001 if prepend_syslog else 46002
    key = ("127.0.0.1", sport, "127.0.1.2", 2811)
    start = flowd_go("start", "127.0.0.1", sport, "127.0.1.2", 2811, 2, 3, start=_now(),
                     prepend_syslog=prepend_syslog)
    assert start.startswith(b"<134>1  " if prepend_syslog else b'{"version":1,')
    controller.send(start, "127.0.0.1")
    live = controller.wait_installed(key)
    assert (live[key]["experiment_id"], live[key]["activity_id"]) == (2, 3)
    end = flowd_go("end", "127.0.0.1", sport, "127.0.1.2", 2811, 2, 3, end=_now(),
                   prepend_syslog=prepend_syslog)
    assert b'"start-time":""' in end
    controller.send(end, "127.0.0.1")
    assert controller.wait_removed(key)[key]["end_reason"] == "end"


def test_flowd_go_ongoing_with_skops_then_end(controller: Controller) -> None:
    key = ("::1", 46003, "::1", 443)
    t0 = _now()
    controller.send(flowd_go("ongoing", "::1", 46003, "::1", 443, 3, 1, start=t0, now=_now(),
                             prepend_syslog=True, skops={"tcpInfo": {"rtt": 800, "bytesAcked": 1}}), "::1")
    assert controller.wait_installed(key)[key]["state"] == "ongoing"
    controller.send(flowd_go("end", "::1", 46003, "::1", 443, 3, 1, start=t0, end=_now()), "::1")
    controller.wait_removed(key)


def test_xrootd_both_directions_installed_and_removed(controller: Controller) -> None:
    client, server = "127.0.1.1", "127.0.1.2"
    keys = [(client, 46010, server, 1094), (server, 1094, client, 46010)]
    t0 = _now()
    before = controller.get("/api/v1/status")["stats"]["fireflies_duplicate"]
    pair = xrootd_pair("start", client, 46010, server, 1094, 3, 14, start=t0, now=t0)
    for data in pair + pair:  # the same two messages again: applied once
        controller.send(data, server)
    live = controller.wait_installed(*keys)
    assert all(live[k]["fireflies"] == 1 for k in keys), [live[k] for k in keys]
    assert poll(lambda: controller.get("/api/v1/status")["stats"]["fireflies_duplicate"] - before == 2)
    for data in xrootd_pair("end", client, 46010, server, 1094, 3, 14, start=t0, now=_now()):
        controller.send(data, server)
    ended = controller.wait_removed(*keys)
    assert [ended[k]["end_reason"] for k in keys] == ["end", "end"]


def test_dcache_start_and_end(controller: Controller) -> None:
    key = ("127.0.0.1", 46020, "127.0.1.3", 1094)
    t0 = _now()
    controller.send(dcache("start", "127.0.0.1", 46020, "127.0.1.3", 1094, 2, 2, start=t0, now=t0,
                           sender_ip="127.0.0.1"), "127.0.0.1")
    assert controller.wait_installed(key)[key]["activity_id"] == 2
    controller.send(dcache("end", "127.0.0.1", 46020, "127.0.1.3", 1094, 2, 2, start=t0, now=_now(),
                           sender_ip="127.0.0.1"), "127.0.0.1")
    controller.wait_removed(key)


def test_refused_fireflies_are_counted_by_reason_and_change_nothing(controller: Controller) -> None:
    key = ("127.0.0.1", 46030, "127.0.1.2", 1094)
    before = controller.get("/api/v1/fireflies")["udp"]["rejected"]
    good = flowd_go("start", "127.0.0.1", 46030, "127.0.1.2", 1094, 3, 14, start=_now())
    controller.send(good[:-7], "127.0.0.1")  # truncated
    controller.send(good.replace(b'"dst-ip":"127.0.1.2"', b'"dst-ip":"127.0.1.256"'), "127.0.0.1")
    controller.send(flowd_go("end", "127.0.0.1", 46030, "127.0.1.2", 1094, 3, 14), "127.0.0.1")  # no end-time

    def delta() -> dict:
        now = controller.get("/api/v1/fireflies")["udp"]["rejected"]
        return {k: now[k] - before.get(k, 0) for k in now if now[k] != before.get(k, 0)}
    assert poll(lambda: delta() == {"json-syntax": 1, "bad-ip": 1, "missing-member": 1}), delta()
    assert key not in controller.live()


def test_deviations_counted_per_application(controller: Controller) -> None:
    def apps() -> dict:
        return controller.get("/api/v1/fireflies")["applications"]
    before = apps()
    t0 = _now()
    controller.send(flowd_go("end", "127.0.0.1", 46040, "127.0.1.2", 1094, 3, 14, end=t0), "127.0.0.1")
    for data in xrootd_pair("start", "127.0.1.1", 46041, "127.0.1.2", 1094, 3, 14, start=t0, now=t0):
        controller.send(data, "127.0.1.2")

    def delta(app: str) -> dict:
        now, was = apps().get(app, {}), before.get(app, {"accepted": 0, "deviations": {}})
        return {"accepted": now.get("accepted", 0) - was["accepted"],
                **{d: n - was["deviations"].get(d, 0) for d, n in now.get("deviations", {}).items()
                   if n != was["deviations"].get(d, 0)}}
    assert poll(lambda: delta("flowd-go-v2.4.2") == {"accepted": 1, "no-syslog-header": 1,
                                                      "end-without-start-time": 1}), delta("flowd-go-v2.4.2")
    assert poll(lambda: delta("xrootd 5.8.1") == {"accepted": 2, "syslog-timestamp-nil": 2,
                                                   "context-before-flow-id": 2}), delta("xrootd 5.8.1")
    status = controller.get("/api/v1/fireflies")
    assert status["deviations"]["no-syslog-header"] >= 1 and status["dedup"]["window_s"] == 2.0
    with urllib.request.urlopen(f"http://{controller.api}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert 'scitags_fireflies_deviations_total{application="xrootd 5.8.1",deviation="context-before-flow-id"}' \
        in metrics
    assert 'scitags_fireflies_by_application_total{application="flowd-go-v2.4.2"}' in metrics
    assert "scitags_relay_fireflies_sent_total{target=" in metrics
    relay = controller.get("/api/v1/status")["relay"]
    assert relay["dropped_total"] == 0 and relay["targets"] == [f"127.0.0.1:{controller.relayed.port}"]


# -- the relay on the veth lab: switch counters in `usage`, synthesized ends ---------------------

def test_relay_usage_from_switch_counters_and_idle_end(one_switch, tmp_path: Path) -> None:
    sw, start = one_switch
    listener = ReferenceListener(reference_config(tmp_path))
    raw = RawCollector()
    try:
        rt = start(extensions=[RelayExtension()],
                   sections={"relay": {"targets": [f"127.0.0.1:{listener.port}", f"127.0.0.1:{raw.port}"]}},
                   **{"firefly.idle_timeout_s": 1.0})
        t0 = _now()
        udp = rt.controller.udp_receiver.address
        for sport in (47001, 47002):
            send_from(H1["ipv4"], flowd_go("start", H1["ipv4"], sport, H2["ipv4"], 1094, 3, 14, start=t0), udp)
        assert poll(lambda: sorted(k.src_port for k, f in list(rt.controller.flows.items())
                                   if f.installed) == [47001, 47002])
        send_all(sw, 1, [v4(47001)] * 4 + [v4(47002)] * 3)
        send_from(H1["ipv4"], flowd_go("end", H1["ipv4"], 47001, H2["ipv4"], 1094, 3, 14, end=_now()), udp)
        got = listener.take(4, timeout=20)  # 2 starts, the end, the idle end
        assert sorted((f.state, f.src_port) for f in got) == [
            ("end", 47001), ("end", 47002), ("start", 47001), ("start", 47002)], got
        assert all(f.start_time and (f.state == "start" or f.end_time) for f in got)
        assert poll(lambda: len(raw.datagrams) == 4)
        docs = raw.documents()
        for doc in docs:
            errors = list(firefly_validator().iter_errors(doc))
            assert not errors, (doc, errors[0].message)
        frame = len(v4(47001))
        by = {(d["flow-lifecycle"]["state"], d["flow-id"]["src-port"]): d for d in docs}
        end = by[("end", 47001)]
        assert end["usage"] == {"sent": 4 * frame, "received": 4 * frame}
        assert end["scitags-p4"]["network"]["sent-packets"] == 4
        assert end["context"]["application"] == "flowd-go-v2.4.2"
        idle = by[("end", 47002)]
        assert idle["scitags-p4"]["synthesized"] is True and idle["scitags-p4"]["end-reason"] == "idle-timeout"
        assert idle["usage"]["sent"] == 3 * frame and idle["scitags-p4"]["network"]["sent-packets"] == 3
        assert idle["context"]["application"] == "flowd-go-v2.4.2"  # the flow's sender, remembered
        status = api(rt, "/api/v1/status")["relay"]
        assert status["relayed"] == 4 and status["dropped_total"] == 0 and status["with_usage"] == 1
        assert status["synthesized_ends"] == {"idle-timeout": 1}
    finally:
        listener.stop()
        raw.close()


def test_same_message_in_band_and_over_udp_applied_once(one_switch) -> None:
    """XRootD's pair over UDP, then the same two datagrams crossing the switch (punted in band):
    both directions installed, each applied once, the in-band copies counted as duplicates."""
    sw, start = one_switch
    rt = start()
    t0 = _now()
    pair = xrootd_pair("start", H2["ipv4"], 47100, H1["ipv4"], 1094, 3, 14, start=t0, now=t0)
    for data in pair:
        send_from(H1["ipv4"], data, rt.controller.udp_receiver.address)
    keys = [(H2["ipv4"], 47100, H1["ipv4"], 1094), (H1["ipv4"], 1094, H2["ipv4"], 47100)]

    def live() -> dict:
        return {(f["src"], f["src_port"], f["dst"], f["dst_port"]): f for f in api(rt, "/api/v1/flows")["live"]}
    assert poll(lambda: all(k in live() and live()[k]["installed_on"] == ["s1"] for k in keys)), live()
    frames = [bytes(Ether(src=H1["mac"], dst=H2["mac"]) / IP(src=H1["ipv4"], dst=H2["ipv4"])
                    / UDP(sport=33333, dport=10514) / data) for data in pair]
    send_all(sw, 1, frames)  # the originals still reach h2; copies go to the controller
    status = lambda: api(rt, "/api/v1/fireflies")  # noqa: E731
    assert poll(lambda: status()["in_band"]["accepted"] == 2), status()["in_band"]
    assert poll(lambda: rt.controller.stats["fireflies_duplicate"] == 2), rt.controller.stats
    assert [live()[k]["fireflies"] for k in keys] == [1, 1]
    assert [live()[k]["via"] for k in keys] == ["udp", "udp"]
    xrootd = status()["applications"]["xrootd 5.8.1"]
    assert xrootd["accepted"] == 4 and xrootd["duplicates"] == 2  # parsed 4 times, applied twice
    assert xrootd["deviations"] == {"context-before-flow-id": 4, "syslog-timestamp-nil": 4}
