"""Switch drivers against real switches, scapy packets from the hosts.

The tests that apply to any SwitchDriver run on every target: OpenFlowDriver on Open vSwitch
(netdev bridge, hosts in namespaces) and P4RuntimeDriver on the P4 softswitch and on BMv2
(veth ports; tests/controller/harness), so "counted exactly as on the P4 target" is checked
against the P4 targets themselves (same frames, same expected numbers). The
expected numbers are those of p4src/v1model/scitags.p4: one packet counts once per dimension
(label class or tag; firefly flow; cross-check bucket). OVS-only tests use `clean_lab`.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller.drivers.base import (BUCKETS, ConnectionLost, Counts, FireflyPacket, FlowIdle,
                                     FlowKey, FlowRule, SwitchDriver, SwitchUnreachable, TagRule)
from controller.drivers.openflow import OpenFlowDriver
from scitags_core.flowlabel import encode_label
from tests.openflow.conftest import FLOOD_PORTS, H1, H2, H3, MAC_PORTS, MONITOR_PORT
from labnet.waiting import poll as wait_until
from tests.openflow.helpers import A1, A2, V4_1, V4_2, Recorder, v4_frame, v6_frame
from controller.launcher import free_tcp_port
from tests.openflow.ovslab import OvsLab
from tests.openflow.targets import VethNet

pytestmark = [pytest.mark.netns]

CMS, ATLAS = 3, 2
TAGS = [TagRule(1, CMS, 14), TagRule(2, ATLAS, None), TagRule(3, CMS, 2)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


P4_PORTS = {"h1": 1, "h2": 2, "h3": 3, "mon1": 4}


@pytest.fixture(scope="module")
def p4_switches() -> Iterator[dict[str, object]]:
    """P4 switch processes (softswitch, BMv2), started on first use, stopped with the module."""
    switches: dict[str, object] = {}
    yield switches
    for sw in switches.values():
        sw.stop()  # type: ignore[attr-defined]


def p4_switch(kind: str, switches: dict[str, object], tmp: pytest.TempPathFactory) -> object:
    from tests.controller import harness  # the controller engineer's switch harness

    if not harness.IS_ROOT:
        pytest.skip("P4 target needs root for veth ports")
    if kind == "soft" and not harness.HAVE_SOFT_CLI:
        pytest.skip("P4 softswitch not built (softswitch/cli.py absent)")
    if kind == "bmv2" and not harness.HAVE_BMV2:
        pytest.skip(f"BMv2 not installed ({harness.BMV2_BIN} absent)")
    if kind not in switches:
        # Its own device id per kind: the harness names the veths after it.
        device_id = {"soft": 1, "bmv2": 2}[kind]
        sw = harness.SwitchProc(kind, device_id, list(P4_PORTS.values()), tmp.mktemp(f"p4{kind}"))
        try:
            sw.start()
        except RuntimeError as exc:
            sw.stop()
            pytest.skip(f"P4 {kind} switch did not start: {exc}")
        switches[kind] = sw
    return switches[kind]


def _connect(drv: SwitchDriver, recorder: Recorder) -> SwitchDriver:
    drv.set_event_handler(recorder)
    drv.connect()
    assert drv.ensure_pipeline() is True
    drv.set_forwarding(MAC_PORTS, FLOOD_PORTS, 255, MONITOR_PORT)
    drv.sync_tags(TAGS)
    return drv


@dataclass
class Target:
    driver: SwitchDriver
    net: OvsLab | VethNet
    reopen: Callable[[], SwitchDriver]  # another driver instance for the same switch (a restart)

    def __iter__(self) -> Iterator[object]:
        return iter((self.driver, self.net))


@pytest.fixture(params=["ovs", "p4-soft", "p4-bmv2"])
def target(request: pytest.FixtureRequest, recorder: Recorder) -> Iterator[Target]:
    """A driver on a switch with a fresh pipeline and zero counters, and the hosts' net."""
    if request.param == "ovs":
        lab = request.getfixturevalue("clean_lab")
        net: OvsLab | VethNet = lab

        def reopen() -> SwitchDriver:
            return OpenFlowDriver("s1", lab.target)
    else:
        from controller.drivers.p4runtime import P4RuntimeDriver
        from tests.controller import harness

        sw = p4_switch(request.param.removeprefix("p4-"), request.getfixturevalue("p4_switches"),
                       request.getfixturevalue("tmp_path_factory"))
        sw.restart()  # a fresh switch: no pipeline, counters at zero
        net = VethNet(sw.veth, P4_PORTS)
        net.drain()

        def reopen() -> SwitchDriver:
            return P4RuntimeDriver("s1", sw.device_id, f"127.0.0.1:{sw.grpc_port}", harness.P4INFO,
                                   harness.DEVICE_JSON, 255)
    drv = _connect(reopen(), recorder)
    net.sync()
    yield Target(drv, net, reopen)
    drv.close()


@pytest.fixture
def driver(clean_lab: OvsLab, recorder: Recorder) -> Iterator[OpenFlowDriver]:
    drv = OpenFlowDriver("s1", clean_lab.target)
    _connect(drv, recorder)
    clean_lab.sync()
    yield drv
    drv.close()


def counts(frames: list[bytes]) -> Counts:
    return Counts(len(frames), sum(len(f) for f in frames))


def settle(driver: SwitchDriver, expect: dict[str, object]) -> dict[str, object]:
    """The driver's view, once it equals `expect` (or the last one seen, for the assert)."""
    def view() -> dict[str, object]:
        snap = driver.read_counters()
        return {"tags": {t: c for t, c in snap.tags.items() if c.packets},
                "buckets": {b: c for b, c in snap.buckets.items() if c.packets},
                "flows": {k: c for k, c in snap.flows.items() if c.packets}}
    last: dict[str, object] = {}

    def matches() -> bool:
        last.update(view())
        return last == expect
    wait_until(matches)
    return last


def test_labels_counted_like_the_p4_switch(target: Target) -> None:
    driver, net = target
    cms14 = [v6_frame(H1, H2, encode_label(CMS, 14, e)) for e in range(3)]  # entropy ignored
    atlas5 = [v6_frame(H1, H2, encode_label(ATLAS, 5, e)) for e in (1, 30)]  # experiment wildcard
    cms2 = [v6_frame(H1, H2, encode_label(CMS, 2))]
    unmarked = [v6_frame(H1, H2, 0)] * 4
    unregistered = ([v6_frame(H1, H2, encode_label(7, 1))] * 5      # unknown experiment
                    + [v6_frame(H1, H2, 0x00001)]                    # entropy bits only
                    + [v6_frame(H1, H2, encode_label(CMS, 15))])     # known experiment, no rule
    ipv4 = [v4_frame(H1, H2)] * 2                                    # no label at all
    frames = cms14 + atlas5 + cms2 + unmarked + unregistered + ipv4
    for frame in frames:
        net.send("h1", frame)

    got = settle(driver, {"tags": {1: counts(cms14), 2: counts(atlas5), 3: counts(cms2)},
                          "buckets": {"unmarked": counts(unmarked),
                                      "unregistered": counts(unregistered)},
                          "flows": {}})
    assert got == {"tags": {1: counts(cms14), 2: counts(atlas5), 3: counts(cms2)},
                   "buckets": {"unmarked": counts(unmarked), "unregistered": counts(unregistered)},
                   "flows": {}}
    received = net.receive(timeout=1.0)
    assert len(received["h2"]) == len(frames)  # all forwarded by destination MAC
    assert received["h3"] == [] and received["mon1"] == []
    assert set(driver.read_counters().buckets) == set(BUCKETS)


def test_exact_tag_wins_over_its_experiment_wildcard(target: Target) -> None:
    driver, net = target
    driver.sync_tags([TagRule(1, CMS, 14), TagRule(4, CMS, None)])
    exact = [v6_frame(H1, H2, encode_label(CMS, 14, e)) for e in (0, 31)]
    other = [v6_frame(H1, H2, encode_label(CMS, 15))]
    net.sync()
    for frame in exact + other:
        net.send("h1", frame)
    expect = {"tags": {1: counts(exact), 4: counts(other)}, "buckets": {}, "flows": {}}
    assert settle(driver, expect) == expect


def test_firefly_flows_cross_checked_against_labels(target: Target) -> None:
    driver, net = target
    f6 = FlowKey.of(A1, A2, "udp", 5001, 6001)
    f4 = FlowKey.of(V4_1, V4_2, "tcp", 5002, 6002)
    f6b = FlowKey.of(A1, A2, "udp", 5003, 6003)
    driver.install_flow(FlowRule(f6, CMS, 14, 60))
    driver.install_flow(FlowRule(f4, ATLAS, 2, 60))
    driver.install_flow(FlowRule(f6b, 600, 1, 60))  # experiment no label can carry

    consistent = [v6_frame(H1, H2, encode_label(CMS, 14, 5), 5001, 6001)] * 2
    mismatch = [v6_frame(H1, H2, encode_label(ATLAS, 5), 5001, 6001),
                v6_frame(H1, H2, encode_label(CMS, 14), 5003, 6003)]
    only_v6 = [v6_frame(H1, H2, 0, 5001, 6001), v6_frame(H1, H2, encode_label(7, 1), 5001, 6001)]
    only_v4 = [v4_frame(H1, H2, 5002, 6002, proto="tcp")] * 3
    no_firefly = [v6_frame(H1, H2, encode_label(CMS, 14), 5009, 6009)]
    frames = consistent + mismatch + only_v6 + only_v4 + no_firefly
    net.sync()
    for frame in frames:
        net.send("h1", frame)
    assert len(net.receive(timeout=5.0, until=len(frames))["h2"]) == len(frames), \
        "the switch did not forward every frame: nothing to compare counts with"

    expect = {
        "tags": {1: counts(consistent + [mismatch[1]] + no_firefly), 2: counts([mismatch[0]])},
        "buckets": {"consistent": counts(consistent), "mismatch": counts(mismatch),
                    "firefly_only": counts(only_v6 + only_v4),
                    "unmarked": counts(only_v6[:1]), "unregistered": counts(only_v6[1:])},
        "flows": {f6: counts(consistent + mismatch[:1] + only_v6), f4: counts(only_v4),
                  f6b: counts(mismatch[1:])},
    }
    assert settle(driver, expect) == expect


def test_ipv6_extension_headers_are_walked_by_both(target: Target) -> None:
    # OVS skips extension headers to find the ports; since issue 11 the P4 parser walks an
    # 8-byte Hop-by-Hop header too (scapy's default: one PadN), so both count the firefly flow.
    driver, net = target
    key = FlowKey.of(A1, A2, "udp", 5001, 6001)
    driver.install_flow(FlowRule(key, CMS, 14, 60))
    frame = bytes(Ether(src=H1, dst=H2) / IPv6(src=A1, dst=A2, fl=encode_label(CMS, 14))
                  / IPv6ExtHdrHopByHop() / UDP(sport=5001, dport=6001) / Raw(b"x" * 32))
    net.sync()
    net.send("h1", frame)
    expect = {"tags": {1: counts([frame])}, "buckets": {"consistent": counts([frame])},
              "flows": {key: counts([frame])}}
    assert settle(driver, expect) == expect


def test_l2_forwarding_floods_unknown_and_never_hairpins(target: Target) -> None:
    driver, net = target
    net.send("h1", v4_frame(H1, "ff:ff:ff:ff:ff:ff"))
    got = net.receive(timeout=1.0, until=2)
    assert (len(got["h1"]), len(got["h2"]), len(got["h3"]), len(got["mon1"])) == (0, 1, 1, 0)

    net.send("h1", v4_frame(H1, "02:00:00:00:00:99"))  # unknown unicast
    got = net.receive(timeout=1.0, until=2)
    assert (len(got["h1"]), len(got["h2"]), len(got["h3"]), len(got["mon1"])) == (0, 1, 1, 0)

    net.send("h1", v4_frame(H3, H1))  # destination behind the ingress port
    net.send("h2", v4_frame(H2, H3))
    got = net.receive(timeout=1.0)
    assert (len(got["h1"]), len(got["h2"]), len(got["h3"]), len(got["mon1"])) == (0, 0, 1, 0)


def test_fireflies_reach_the_controller_and_the_destination(
        target: Target, recorder: Recorder) -> None:
    driver, net = target
    body = b'<134>1 - h1 flowd - firefly-json - {"version":1}'
    net.send("h1", v6_frame(H1, H2, 0, 40000, 10514, payload=body))
    net.send("h1", v4_frame(H1, H2, 40001, 10514, payload=body))
    events = recorder.wait_for(FireflyPacket, 2)
    assert sorted(events, key=lambda e: e.src[1]) == [
        FireflyPacket("s1", 1, body, (A1, 40000)), FireflyPacket("s1", 1, body, (V4_1, 40001))]
    assert len(net.receive(timeout=1.0, until=2)["h2"]) == 2


def test_mirrored_tag_copies_to_the_monitor_port(target: Target) -> None:
    driver, net = target
    driver.sync_tags([TagRule(1, CMS, 14, mirror=True), TagRule(2, ATLAS, None)])
    tagged = v6_frame(H1, H2, encode_label(CMS, 14))
    net.sync()
    net.send("h1", tagged, count=2)
    net.send("h1", v6_frame(H1, H2, encode_label(ATLAS, 1)))
    net.send("h1", v6_frame(H1, H2, 0))
    got = net.receive(timeout=1.0)
    assert got["mon1"] == [tagged, tagged]
    assert len(got["h2"]) == 4


def test_fireflies_are_not_mirrored(target: Target, recorder: Recorder) -> None:
    # v1model keeps one ingress clone per packet: the copy to the controller wins.
    driver, net = target
    driver.sync_tags([TagRule(1, CMS, 14, mirror=True)])
    firefly = v6_frame(H1, H2, encode_label(CMS, 14), 40000, 10514, payload=b"{}")
    net.sync()
    net.send("h1", firefly)
    assert len(recorder.wait_for(FireflyPacket, 1)) == 1
    got = net.receive(timeout=1.0)
    assert got["h2"] == [firefly] and got["mon1"] == []


def test_idle_flow_reported_with_final_counters(target: Target, recorder: Recorder) -> None:
    driver, net = target
    key = FlowKey.of(A1, A2, "udp", 7000, 7001)
    driver.install_flow(FlowRule(key, CMS, 14, 1))
    frames = [v6_frame(H1, H2, encode_label(CMS, 14), 7000, 7001)] * 2
    net.sync()
    for frame in frames:
        net.send("h1", frame)
    assert recorder.wait_for(FlowIdle, 1, timeout=30) == [FlowIdle("s1", key)]
    assert driver.remove_flow(key) == counts(frames)  # what the controller does on FlowIdle
    assert key not in driver.installed_flows()


def test_remove_flow_returns_final_counters(target: Target) -> None:
    driver, net = target
    key = FlowKey.of(V4_1, V4_2, "udp", 7100, 7101)
    driver.install_flow(FlowRule(key, ATLAS, 3, 300))
    frames = [v4_frame(H1, H2, 7100, 7101)] * 3
    net.sync()
    for frame in frames:
        net.send("h1", frame)
    assert len(net.receive(timeout=2.0, until=3)["h2"]) == 3
    # OVS pushes datapath stats to flow entries every revalidation (<= 500 ms by default);
    # a delete carries what the entry holds at that moment.
    wait_until(lambda: driver.read_counters().flows.get(key) == counts(frames))
    assert driver.remove_flow(key) == counts(frames)
    assert key not in driver.installed_flows()


def test_restarted_controller_adopts_installed_state(target: Target) -> None:
    driver, net = target
    rules = [FlowRule(FlowKey.of(A1, A2, "tcp", 8000, 8001), CMS, 14, 120),
             FlowRule(FlowKey.of(V4_1, V4_2, "udp", 8002, 8003), ATLAS, 4, 30)]
    for rule in rules:
        driver.install_flow(rule)
    frames = [v6_frame(H1, H2, encode_label(CMS, 14), 8000, 8001, proto="tcp")] * 2
    net.sync()
    for frame in frames:
        net.send("h1", frame)
    assert len(net.receive(timeout=2.0, until=2)["h2"]) == 2
    driver.close()

    again = target.reopen()
    again.connect()
    try:
        assert again.ensure_pipeline() is False
        assert again.installed_flows() == {r.key: r for r in rules}
        for rule in rules:                      # the controller replays what it knows
            again.install_flow(rule)
        again.sync_tags(TAGS)
        again.set_forwarding(MAC_PORTS, FLOOD_PORTS, 255, MONITOR_PORT)
        assert again.installed_flows() == {r.key: r for r in rules}
        if isinstance(net, OvsLab):  # no duplicate entries either
            dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", net.bridge],
                                  check=True, capture_output=True, text=True).stdout
            assert dump.count("table=1,") == len(rules) + 1  # + the table-miss entry
            assert dump.count("table=0,") == len(TAGS) + 3   # + unmarked, unregistered, miss
            assert dump.count("table=4,") == len(MAC_PORTS) + 1
        expect = {"tags": {1: counts(frames)}, "buckets": {"consistent": counts(frames)},
                  "flows": {rules[0].key: counts(frames)}}
        assert settle(again, expect) == expect  # refreshing kept the counters
    finally:
        again.close()


def test_removed_tag_keeps_its_counts(target: Target) -> None:
    driver, net = target
    tagged = [v6_frame(H1, H2, encode_label(CMS, 14))] * 3
    for frame in tagged:
        net.send("h1", frame)
    settle(driver, {"tags": {1: counts(tagged)}, "buckets": {}, "flows": {}})
    driver.sync_tags([r for r in TAGS if r.tag_id != 1])
    net.sync()
    net.send("h1", tagged[0])
    expect = {"tags": {1: counts(tagged)}, "buckets": {"unregistered": counts(tagged[:1])},
              "flows": {}}
    assert settle(driver, expect) == expect


def _set_controller(lab: OvsLab, on: bool) -> None:
    cmd = (["set-controller", lab.bridge, f"ptcp:{lab.port}:127.0.0.1"] if on
           else ["del-controller", lab.bridge])
    subprocess.run(["ovs-vsctl", *cmd], check=True, capture_output=True)


def test_lost_session_is_reported_and_reconnected(driver: OpenFlowDriver, clean_lab: OvsLab,
                                                  recorder: Recorder) -> None:
    assert driver.connected
    _set_controller(clean_lab, False)
    try:
        assert recorder.wait_for(ConnectionLost, 1) == [ConnectionLost("s1", "OpenFlow session lost")]
        assert not driver.connected
    finally:
        _set_controller(clean_lab, True)
    driver.connect()  # what the controller's supervisor does
    assert driver.connected and driver.ensure_pipeline() is False  # fail-secure kept the flows
    assert set(driver.read_counters().buckets) == set(BUCKETS)


def test_dead_agent_is_reported_and_replaced(driver: OpenFlowDriver, recorder: Recorder) -> None:
    link = driver._link  # noqa: SLF001 - the agent process this test started through the driver
    assert link is not None
    os.kill(link.pid, signal.SIGKILL)
    assert recorder.wait_for(ConnectionLost, 1) == [ConnectionLost("s1", "os-ken agent exited")]
    assert not driver.connected
    with pytest.raises(SwitchUnreachable):
        driver.read_counters()
    driver.connect()
    assert driver.connected and driver.ensure_pipeline() is False


def test_switch_may_connect_to_the_driver_instead(clean_lab: OvsLab, recorder: Recorder) -> None:
    # ptcp: the agent listens and OVS connects (set-controller BR tcp:HOST:PORT).
    port = free_tcp_port()
    drv = OpenFlowDriver("s1", f"ptcp:{port}:127.0.0.1")
    subprocess.run(["ovs-vsctl", "set-controller", clean_lab.bridge, f"tcp:127.0.0.1:{port}"],
                   check=True, capture_output=True)
    try:
        _connect(drv, recorder)
        clean_lab.sync()
        clean_lab.send("h1", v6_frame(H1, H2, 0, 40000, 10514, payload=b"{}"))
        assert len(recorder.wait_for(FireflyPacket, 1)) == 1
        expect = {"tags": {}, "buckets": {"unmarked": counts([v6_frame(H1, H2, 0, 40000, 10514,
                                                                       payload=b"{}")])},
                  "flows": {}}
        assert settle(drv, expect) == expect
    finally:
        drv.close()
        _set_controller(clean_lab, True)


def test_unreachable_switch_raises() -> None:
    drv = OpenFlowDriver("nowhere", f"tcp:127.0.0.1:{free_tcp_port()}", connect_timeout_s=1)
    with pytest.raises(SwitchUnreachable, match="nowhere"):
        drv.connect()
    drv.close()


def test_eventlet_stays_out_of_the_controller_process(driver: OpenFlowDriver) -> None:
    # grpc and the controller's threads need the real socket and threading modules.
    assert "eventlet" not in sys.modules
    assert socket.socket.__module__ == "socket"
