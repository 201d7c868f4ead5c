"""A Mininet network built from a topology file, with P4 target processes as switches.

    with Lab(load_topology("topologies/single.yaml"), switch="soft") as lab:
        lab.host("h1").cmd("ping -6 -c1 2001:db8:1::2")

Everything the lab creates is recorded in a run file under /run/labnet/ before it exists
(switch-side interface names, switch and host-shell pids, host namespace ids), so
`labnet.cleanup` can remove it after a crash. Stopping (also on Ctrl-C / SIGTERM / an
exception) kills every process still running in a host namespace, the switch processes and
the veths. Switch-side interface names carry a per-lab prefix so two labs (a test run and
the demo) never touch each other's interfaces.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import string
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from mininet.log import setLogLevel
from mininet.net import Mininet

from controller.topology import Topology
from labnet import procs
from labnet.cleanup import RUN_DIR, clean_record
from labnet.hosts import ScitagsHost, offloads_off
from labnet.switches import SWITCH_CLASSES, P4ProcessSwitch, pick_switch

LOG_DIR = Path(os.environ.get("LABNET_LOG_DIR", "/tmp/labnet"))
IFNAMSIZ = 15


class LabError(RuntimeError):
    """The lab could not be built or started; the message names the step."""


def new_prefix() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "l" + "".join(secrets.choice(alphabet) for _ in range(3))


def switch_intf_name(prefix: str, switch: str, port: int, device_id: int) -> str:
    name = f"{prefix}{switch}p{port}"
    if len(name) > IFNAMSIZ:
        name = f"{prefix}d{device_id}p{port}"
    if len(name) > IFNAMSIZ:
        raise LabError(f"interface name {name!r} for {switch} port {port} longer than {IFNAMSIZ}")
    return name


def _offloads_off(node: Any, intf: str) -> None:
    """TSO/GSO/GRO off on a host's or a switch's veth (labnet.hosts), or a LabError."""
    problem = offloads_off(node, intf)
    if problem is not None:
        raise LabError(f"{node.name}: {problem}")


class Lab:
    def __init__(self, topology: Topology, *, switch: str = "auto", prefix: str | None = None,
                 log_dir: Path = LOG_DIR, quiet: bool = True) -> None:
        self.topology = topology
        self.switch_kind = pick_switch(switch)
        self.prefix = prefix or os.environ.get("LABNET_PREFIX") or new_prefix()
        self.log_dir = Path(log_dir) / self.prefix
        self.run_file = RUN_DIR / f"{self.prefix}.json"
        self.net: Mininet | None = None
        self.record: dict[str, Any] = {"prefix": self.prefix, "owner_pid": os.getpid(),
                                       "topology": topology.source, "switch": self.switch_kind,
                                       "created": time.time(), "intfs": [], "switch_pids": {},
                                       "host_pids": {}, "host_netns": {}, "extra_pids": {}}
        self._old_handlers: dict[int, Any] = {}
        if quiet:
            setLogLevel("warning")

    # -- run record ----------------------------------------------------------------
    def _save(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record, indent=1))
        tmp.replace(self.run_file)

    def _on_switch_pid(self, name: str, pid: int) -> None:
        self.record["switch_pids"][name] = procs.fingerprint(pid)
        self._save()

    def track(self, name: str, pid: int) -> None:
        """Record a process started for the lab (e.g. the controller) so cleanup can end it."""
        self.record["extra_pids"][name] = procs.fingerprint(pid)
        self._save()

    # -- build -----------------------------------------------------------------------
    def start(self) -> "Lab":
        topo = self.topology
        self._install_signal_handlers()
        self._save()
        net = Mininet(topo=None, controller=None, build=False, autoSetMacs=False,
                      waitConnected=False, cleanup=False)
        self.net = net
        try:
            cls = SWITCH_CLASSES[self.switch_kind]
            for name, spec in topo.switches.items():
                if spec.grpc_port is None:
                    raise LabError(f"switch {name}: no grpc_port in {topo.source}")
                net.addSwitch(name, cls=cls, device_id=spec.device_id, grpc_port=spec.grpc_port,
                              cpu_port=spec.cpu_port, log_dir=str(self.log_dir), on_pid=self._on_switch_pid)
            for name in topo.hosts:
                net.addHost(name, cls=ScitagsHost, ip=None)
            for a, b, data in topo.graph.edges(data=True):
                ports: dict[str, int] = data.get("ports", {})
                kwargs: dict[str, Any] = {}
                for idx, node in (("1", a), ("2", b)):
                    if node in topo.switches:
                        port = ports[node]
                        kwargs[f"port{idx}"] = port
                        intf = switch_intf_name(self.prefix, node, port, topo.switches[node].device_id)
                        kwargs[f"intfName{idx}"] = intf
                        self.record["intfs"].append(intf)
                    else:
                        kwargs[f"intfName{idx}"] = f"{node}-eth0"
                self._save()  # names recorded before the veth exists
                net.addLink(net[a], net[b], **kwargs)
            net.build()
            self._tap_feeds(net)
            for name, spec in topo.hosts.items():
                host: ScitagsHost = net[name]
                self.record["host_pids"][name] = procs.fingerprint(host.pid)
                self.record["host_netns"][name] = procs.netns_of(host.pid)
                host.configure(spec)
                _offloads_off(host, host.defaultIntf().name)
            self._save()
            for sw in net.switches:
                for intf in sw.intfList():
                    if intf.name != "lo":
                        # no IPv6 of the root namespace's own on switch ports (no RS/MLD noise)
                        sw.cmd(f"sysctl -qw net.ipv6.conf.{intf.name}.disable_ipv6=1")
                        _offloads_off(sw, intf.name)
                        sw.cmd(f"ip link set {intf.name} up")
            net.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _tap_feeds(self, net: Mininet) -> None:
        """A tap switch's ports fed with copies of another switch's port (the switch option
        `tap_feeds: {TAP_PORT: {switch: S, port: P, direction: in|out}}`, lab only): a veth
        per tap port, and a tc mirred filter copying what enters (in) or leaves (out) S's
        port P to it, like an optical tap or a router's mirror port."""
        from mininet.link import Intf

        topo = self.topology
        for name, spec in topo.switches.items():
            feeds = spec.options.get("tap_feeds") or {}
            for tap_port, feed in sorted(feeds.items()):
                tap_port = int(tap_port)
                if not isinstance(feed, dict) or feed.get("switch") not in topo.switches \
                        or feed.get("direction") not in ("in", "out") or not isinstance(feed.get("port"), int):
                    raise LabError(f"{topo.source}: switch {name!r}: tap_feeds {tap_port}: want "
                                   f"{{switch: <switch>, port: <port>, direction: in|out}}, got {feed!r}")
                src = feed["switch"]
                src_if = switch_intf_name(self.prefix, src, int(feed["port"]),
                                          topo.switches[src].device_id)
                tap_if = switch_intf_name(self.prefix, name, tap_port, spec.device_id)
                feed_if = f"{self.prefix}f{spec.device_id}p{tap_port}"
                self.record["intfs"] += [tap_if, feed_if]
                self._save()
                for cmd in (f"ip link add {feed_if} type veth peer name {tap_if}",
                            f"ip link set {feed_if} up", f"ip link set {tap_if} up",
                            f"sysctl -qw net.ipv6.conf.{feed_if}.disable_ipv6=1",
                            f"tc qdisc replace dev {src_if} clsact",
                            f"tc filter add dev {src_if} {'ingress' if feed['direction'] == 'in' else 'egress'}"
                            f" protocol all u32 match u32 0 0 action mirred egress mirror dev {feed_if}"):
                    out = net[name].cmd(cmd + " 2>&1; echo rc=$?")
                    if not out.strip().endswith("rc=0"):
                        raise LabError(f"tap feed {name} port {tap_port}: {cmd}: {out.strip()}")
                _offloads_off(net[name], feed_if)
                Intf(tap_if, node=net[name], port=tap_port)

    # -- access ----------------------------------------------------------------------
    def host(self, name: str) -> ScitagsHost:
        assert self.net is not None, "lab not started"
        return self.net[name]

    def switch(self, name: str) -> P4ProcessSwitch:
        assert self.net is not None, "lab not started"
        return self.net[name]

    def switches_alive(self) -> dict[str, bool]:
        assert self.net is not None, "lab not started"
        return {sw.name: sw.connected() for sw in self.net.switches}

    # -- teardown ------------------------------------------------------------------
    def stop(self) -> None:
        net, self.net = self.net, None
        # processes left in host namespaces (iperf3, marker, tcpdump) would keep them alive
        for name, netns in self.record["host_netns"].items():
            shell = self.record["host_pids"].get(name, {}).get("pid")
            procs.kill_in_netns(netns, exclude={shell} if shell else set())
        for name, fp in self.record["extra_pids"].items():
            procs.kill_fingerprint(fp)
        if net is not None:
            try:
                net.stop()
            except Exception as exc:  # noqa: BLE001 - keep cleaning what is left
                print(f"labnet: mininet stop failed ({exc}); cleaning from the run record")

        clean_record(self.record)
        self.run_file.unlink(missing_ok=True)
        self._restore_signal_handlers()

    def _install_signal_handlers(self) -> None:
        def _raise(signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                self._old_handlers[sig] = signal.signal(sig, _raise)
            except ValueError:  # not the main thread: the caller handles signals
                pass

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
