"""An Open vSwitch test lab: a netdev bridge, hosts as network namespaces, packets via AF_PACKET.

Each host is a namespace with one veth; the other end is on the bridge with an explicit
OpenFlow port number (ofport_request). Host interfaces carry no addresses and no IPv6, so the
kernel sends nothing of its own and every counted packet is one the test built with scapy.
The bridge listens for its controller on 127.0.0.1 (ptcp), which OpenFlowDriver connects to.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

from controller.launcher import free_tcp_port
from labnet.veth import drain, in_netns, receive_frames
from labnet.veth import run as _run
from softswitch.ports import RawSocketPort

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def ovs_unavailable_reason() -> str | None:
    """None when ovs-vswitchd answers (starting it if needed); otherwise why not."""
    if os.geteuid() != 0:
        return "needs root for network namespaces and Open vSwitch"
    if not shutil.which("ovs-vsctl") or not os.path.exists(OVS_CTL):
        return "Open vSwitch (openvswitch-switch) is not installed"
    if _run("ovs-vsctl", "--timeout=3", "show", check=False).returncode == 0:
        return None
    # The kernel module may be missing; the netdev (userspace) datapath does not need it.
    started = _run(OVS_CTL, "start", "--system-id=random", check=False)
    if _run("ovs-vsctl", "--timeout=3", "show", check=False).returncode != 0:
        return f"Open vSwitch could not be started: {(started.stderr or started.stdout).strip()[-300:]}"
    return None


@dataclass
class Host:
    name: str
    mac: str
    port: int
    namespace: str
    iface: str
    sock: RawSocketPort | None = None


@dataclass
class OvsLab:
    """Bridge `bridge` with hosts {name: (mac, ofport)}; call start() then stop()."""

    hosts_spec: dict[str, tuple[str, int]]
    tag: str = field(default_factory=lambda: f"of{os.getpid() % 100000}")
    port: int = field(default_factory=free_tcp_port)
    hosts: dict[str, Host] = field(default_factory=dict)
    extra_ports: dict[str, int] = field(default_factory=dict)  # existing iface -> ofport (links)

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def target(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def start(self) -> None:
        self.stop()
        _run("ovs-vsctl", "--may-exist", "add-br", self.bridge, "--",
             "set", "bridge", self.bridge, "datapath_type=netdev", "protocols=OpenFlow13",
             "fail-mode=secure", "--",
             "set-controller", self.bridge, f"ptcp:{self.port}:127.0.0.1")
        for name, (mac, ofport) in self.hosts_spec.items():
            ns, outer, inner = f"{self.tag}-{name}", f"{self.tag}{name}", "eth0"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
            # No IPv6 on either end: the kernel would send its own ND/MLD packets.
            _run("sysctl", "-qw", f"net.ipv6.conf.{outer}.disable_ipv6=1")
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{inner}.disable_ipv6=1")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", inner, "address", mac, "up")
            _run("ip", "link", "set", outer, "up")
            _run("ovs-vsctl", "add-port", self.bridge, outer, "--",
                 "set", "interface", outer, f"ofport_request={ofport}")
            sock = in_netns(ns, lambda: RawSocketPort(inner, promiscuous=False))
            self.hosts[name] = Host(name, mac, ofport, ns, inner, sock)
        for iface, ofport in self.extra_ports.items():
            _run("ovs-vsctl", "add-port", self.bridge, iface, "--",
                 "set", "interface", iface, f"ofport_request={ofport}")
        for name, host in self.hosts.items():
            got = _run("ovs-vsctl", "get", "interface", f"{self.tag}{name}", "ofport").stdout.strip()
            if got != str(host.port):
                raise RuntimeError(f"OVS gave {name} ofport {got}, not {host.port}")

    def stop(self) -> None:
        for host in self.hosts.values():
            if host.sock is not None:
                host.sock.close()
        self.hosts.clear()
        _run("ovs-vsctl", "--if-exists", "del-br", self.bridge, check=False)
        for name in self.hosts_spec:
            _run("ip", "link", "del", f"{self.tag}{name}", check=False)
            _run("ip", "netns", "del", f"{self.tag}-{name}", check=False)

    def sync(self) -> None:
        """Wait until the datapath follows the flow tables. OVS applies flow-mods to its
        tables before the barrier reply, but fixes cached datapath flows asynchronously
        (revalidators), so packets sent right after a change may take the old path."""
        done = _run("ovs-appctl", "revalidator/wait", check=False)
        if done.returncode != 0:  # more than one datapath type in use: no single udpif
            time.sleep(1.0)

    # ---- packets ----
    def send(self, host: str, frame: bytes, count: int = 1) -> None:
        sock = self.hosts[host].sock
        assert sock is not None
        for _ in range(count):
            if not sock.send(frame):
                raise OSError(f"could not send {len(frame)} bytes from {host}")

    def drain(self) -> None:
        drain([h.sock for h in self.hosts.values() if h.sock is not None])

    def receive(self, timeout: float = 1.0, until: int | None = None) -> dict[str, list[bytes]]:
        """Frames each host received within `timeout` (early once `until` arrived in total)."""
        socks = {h.sock: name for name, h in self.hosts.items() if h.sock is not None}
        return receive_frames(socks, timeout, until=until)
