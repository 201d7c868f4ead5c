"""Real switches and a real controller for the controller tests.

A switch is a process (the built-in `softswitch` or BMv2 `simple_switch_grpc`, same flags)
on veth pairs (tests/p4/dataplane.py); the controller is the one `controller start` builds
(controller/runtime.py), with its HTTP API and UDP firefly receiver on loopback ports.
Hosts in the test topologies use loopback addresses (127.0.1.x), so the tests can send
fireflies over UDP from the flow's own source address.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

from controller.config import load_config
from controller.drivers.p4runtime import P4RuntimeDriver
from controller.launcher import free_tcp_port
from controller.runtime import Runtime, build
from labnet.veth import VethPorts, wait_for_port
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from controller.drivers.base import FlowKey
from labnet.waiting import wait_until
from scitags_core.firefly_build import build_firefly
from tests.conftest import BMV2_BIN, HAVE_BMV2, IS_ROOT, P4_BUILD, ROOT
from tests.p4.dataplane import switch_command

# The committed compiler outputs (make p4): the real program, everywhere.
P4INFO, DEVICE_JSON = P4_BUILD / "scitags.p4info.txtpb", P4_BUILD / "scitags.json"
HAVE_SOFT_CLI = (ROOT / "softswitch" / "cli.py").is_file()
REGISTRY = ROOT / "scitags_core" / "data" / "registry-2025-09-04.json"

H1 = {"mac": "00:00:00:00:00:01", "ipv4": "127.0.1.1", "ipv6": "2001:db8::1"}
H2 = {"mac": "00:00:00:00:00:02", "ipv4": "127.0.1.2", "ipv6": "2001:db8::2"}
MON = {"mac": "00:00:00:00:00:0f"}


def target_params() -> list:
    """pytest params for the two targets, skipped with the reason when unusable."""
    common = []
    if not IS_ROOT:
        common.append(pytest.mark.skip(reason="needs root for veth ports"))
    soft = [pytest.mark.skipif(not HAVE_SOFT_CLI, reason="softswitch/cli.py not built yet")]
    bmv2 = [pytest.mark.bmv2, pytest.mark.skipif(not HAVE_BMV2, reason=f"BMv2 not installed ({BMV2_BIN} absent)")]
    return [pytest.param("soft", marks=common + soft, id="soft"),
            pytest.param("bmv2", marks=common + bmv2, id="bmv2")]


class SwitchProc:
    """One switch process with veth ports; restartable on the same gRPC port."""

    def __init__(self, kind: str, device_id: int, ports: list[int], log_dir: Path) -> None:
        self.kind, self.device_id = kind, device_id
        self.veth = VethPorts(ports, tag=f"ct{os.getpid() % 1000}d{device_id}")
        self.grpc_port = free_tcp_port()
        self.log_path = log_dir / f"switch{device_id}.log"
        self.proc: subprocess.Popen | None = None
        self.extra_ifaces: dict[int, str] = {}

    def start(self) -> "SwitchProc":
        if self.proc is None and not self.veth._socks:
            self.veth.create()
        cmd = switch_command(self.kind, self.veth, self.grpc_port, self.device_id)
        for port, iface in self.extra_ifaces.items():
            at = cmd.index("--device-id")
            cmd[at:at] = ["-i", f"{port}@{iface}"]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for_port(self.grpc_port, self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        self.veth.destroy()
        for iface in self.extra_ifaces.values():
            subprocess.run(["ip", "link", "del", iface], capture_output=True)


def topology_yaml(switches: dict[str, SwitchProc], hosts: dict[str, dict], links: list[dict]) -> str:
    doc = {"name": "test",
           "switches": {n: {"device_id": s.device_id, "grpc_port": s.grpc_port, "cpu_port": 255}
                        for n, s in switches.items()},
           "hosts": {n: {k: (f"{v}/8" if k == "ipv4" else f"{v}/64" if k == "ipv6" else v)
                         for k, v in h.items()} | ({"monitor": True} if n.startswith("mon") else {})
                     for n, h in hosts.items()},
           "links": links}
    return json.dumps(doc)  # JSON is YAML


def start_controller(tmp: Path, topo_text: str, name: str = "ctl", extensions=(),
                     sections: dict | None = None, **overrides) -> Runtime:
    """A controller as `controller start` builds it; extensions with their YAML sections."""
    state = tmp / name
    state.mkdir(exist_ok=True)
    topo = tmp / "topology.yaml"
    topo.write_text(topo_text)
    registry = overrides.pop("registry", None)
    if registry is None:
        registry = tmp / "registry.json"
        if not registry.exists():
            registry.write_bytes(REGISTRY.read_bytes())
    values = {"topology": str(topo), "launch": "never", "state_dir": str(state),
              "api": "127.0.0.1:0", "firefly_listen": "127.0.0.1:0", "poll_interval_s": 0.3,
              "registry": str(registry), "p4info": str(P4INFO), "device_config": str(DEVICE_JSON)}
    values.update(overrides)
    cfg = load_config(None, values, [e.name for e in extensions])
    for name_, section in (sections or {}).items():
        cfg.extensions.setdefault(name_, {}).update(section)
    rt = build(cfg, extensions=extensions)
    rt.start()
    return rt


@contextlib.contextmanager
def one_switch_lab(kind: str, tmp: Path) -> Iterator[tuple[SwitchProc, Callable[..., Runtime]]]:
    """One switch of `kind` with h1, h2 and mon1 on ports 1, 2, 3; yields (switch,
    start(wait=True, **start_controller kwargs) -> Runtime). Every controller started is
    stopped, then the switch."""
    sw = SwitchProc(kind, 1, [1, 2, 3], tmp).start()
    topo = topology_yaml({"s1": sw}, {"h1": H1, "h2": H2, "mon1": MON},
                         [{"node1": "h1", "node2": "s1", "port2": 1},
                          {"node1": "h2", "node2": "s1", "port2": 2},
                          {"node1": "mon1", "node2": "s1", "port2": 3}])
    runtimes: list[Runtime] = []

    def start(wait: bool = True, **kw) -> Runtime:
        rt = start_controller(tmp, topo, **kw)
        runtimes.append(rt)
        if wait:
            assert rt.controller.wait_ready(30), rt.controller.status()
        return rt

    try:
        yield sw, start
    finally:
        for rt in runtimes:
            with contextlib.suppress(Exception):
                rt.stop()
        sw.stop()


def api(rt: Runtime, path: str, method: str = "GET") -> dict | str:
    host, port = rt.api.address
    req = urllib.request.Request(f"http://{host}:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return body.decode() if path == "/metrics" else json.loads(body)


def api_addr(rt: Runtime) -> str:
    return "%s:%d" % rt.api.address


def observer(sw: SwitchProc, name: str = "s1") -> P4RuntimeDriver:
    """A second, read-only (backup) P4Runtime session to look at what the switch holds."""
    d = P4RuntimeDriver(name, sw.device_id, f"127.0.0.1:{sw.grpc_port}", P4INFO, DEVICE_JSON,
                        election_id=(0, 1))
    d.connect()
    return d


def send_firefly(rt: Runtime, state: str, src: str, dst: str, sport: int, dport: int,
                 exp: int, act: int, proto: str = "tcp", sender: str | None = None,
                 payload: bytes | None = None) -> None:
    data = payload if payload is not None else build_firefly(
        state=state, src_ip=src, dst_ip=dst, src_port=sport, dst_port=dport, experiment_id=exp,
        activity_id=act, protocol=proto,
        start_time=None if state == "start" else _ago(), end_time=_now() if state == "end" else None)
    host, port = rt.controller.udp_receiver.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((sender or src, 0))
        s.sendto(data, (host, port))


def _now():
    import datetime as dt
    return dt.datetime.now(dt.timezone.utc)


def _ago():
    import datetime as dt
    return _now() - dt.timedelta(seconds=5)




# ---- traffic and queries shared by the controller tests ----

CMS, PERFSONAR, CACHE = 3, 2, 3


def v6(label: int, sport: int = 5000, payload: bytes = b"x" * 40) -> bytes:
    return bytes(Ether(src=H1["mac"], dst=H2["mac"]) / IPv6(src=H1["ipv6"], dst=H2["ipv6"], fl=label)
                 / TCP(sport=sport, dport=1094) / payload)


def v4(sport: int, dport: int = 1094, payload: bytes = b"y" * 60) -> bytes:
    return bytes(Ether(src=H1["mac"], dst=H2["mac"]) / IP(src=H1["ipv4"], dst=H2["ipv4"])
                 / TCP(sport=sport, dport=dport) / payload)


def send_all(sw: SwitchProc, port: int, frames: list[bytes], expect_port: int = 2,
             window: int = 25) -> None:
    """Send `frames` a window at a time, each window forwarded before the next (a burst of
    hundreds overflows BMv2's input queue on a loaded machine, and a lost frame is no test)."""
    sw.veth.drain()
    received = 0
    for start in range(0, len(frames), window):
        chunk = frames[start:start + window]
        for f in chunk:
            sw.veth.send(port, f)
        got = sw.veth.receive(timeout=5, ports=[expect_port], until=len(chunk))
        received += len(got[expect_port])
    assert received == len(frames), "switch did not forward every frame"


def row(rows, **want):
    found = [r for r in rows if all(r.get(k) == v for k, v in want.items())]
    return found[0] if len(found) == 1 else None


def counters(rt, **params) -> list[dict]:
    rt.controller.poll_all()
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return api(rt, "/api/v1/counters" + (f"?{q}" if q else ""))["counters"]


def flow_on_switch(obs, key: FlowKey) -> bool:
    return key in obs.installed_flows()


def start_flow(rt, sport: int, act: int = PERFSONAR) -> FlowKey:
    """A `start` firefly h1 -> h2 over UDP; returns its key once installed somewhere."""
    key = FlowKey.of(H1["ipv4"], H2["ipv4"], "tcp", sport, 1094)
    send_firefly(rt, "start", H1["ipv4"], H2["ipv4"], sport, 1094, CMS, act)
    wait_until(lambda: key in rt.controller.flows and rt.controller.flows[key].installed, what="installed")
    return key
