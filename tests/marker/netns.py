"""Throwaway network namespaces for marker tests (nft and sockets run inside them)."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_in(ns: str, *argv: str, input: str | None = None, check: bool = True,
           env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], input=input, capture_output=True,
                          text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} in {ns} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return proc


def python_in(ns: str, code: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run_in(ns, sys.executable, "-c", code, env=env, **kw)  # type: ignore[arg-type]


def netns() -> Iterator[str]:
    """Yield a fresh namespace with lo up; removed afterwards (its nft ruleset with it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    name = f"mkt-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        run_in(name, "ip", "link", "set", "lo", "up")
        run_in(name, "sysctl", "-qw", "net.ipv6.auto_flowlabels=0")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


# Receives one UDP datagram on [::1]:PORT with IPV6_FLOWINFO and prints its flow label,
# after sending one from [::1]:SPORT: a real kernel path through the nft output hook.
LABEL_PROBE = r"""
import socket, struct, sys
port, sport = int(sys.argv[1]), int(sys.argv[2])
IPV6_FLOWINFO = 11
rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
rx.setsockopt(socket.IPPROTO_IPV6, IPV6_FLOWINFO, 1)
rx.bind(("::1", port))
rx.settimeout(5)
tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
tx.bind(("::1", sport))
tx.sendto(b"probe", ("::1", port))
data, anc, flags, addr = rx.recvmsg(100, 256)
label = 0
for level, kind, value in anc:
    if level == socket.IPPROTO_IPV6 and kind == IPV6_FLOWINFO:
        label = struct.unpack("!I", value[:4])[0] & 0xFFFFF
print(label)
"""


def probe_label(ns: str, port: int, sport: int) -> int:
    env = {**os.environ}
    out = run_in(ns, sys.executable, "-c", LABEL_PROBE, str(port), str(sport), env=env).stdout
    return int(out.strip())


def veth_pair() -> Iterator[tuple[str, str]]:
    """Two fresh namespaces joined by a veth (`mkv0` in the first, 2001:db8:77::1, and `mkv1` in
    the second, 2001:db8:77::2), auto flow labels off: yields (sender ns, receiver ns)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    tag = secrets.token_hex(3)
    names = (f"mkt-{tag}a", f"mkt-{tag}b")
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "link", "add", VETH[0], "netns", names[0], "type", "veth",
                        "peer", "name", VETH[1], "netns", names[1]], check=True)
        for name, intf, addr in zip(names, VETH, VETH_ADDRS):
            run_in(name, "sysctl", "-qw", "net.ipv6.auto_flowlabels=0")
            run_in(name, "ip", "link", "set", "lo", "up")
            run_in(name, "ip", "-6", "addr", "add", f"{addr}/64", "dev", intf, "nodad")
            run_in(name, "ip", "link", "set", intf, "up")
        for name, intf, peer, peer_addr in ((names[0], VETH[0], names[1], VETH_ADDRS[1]),
                                            (names[1], VETH[1], names[0], VETH_ADDRS[0])):
            mac = json.loads(run_in(peer, "ip", "-j", "link", "show", VETH[VETH.index(intf) ^ 1]).stdout)[0]["address"]
            # no neighbour discovery: a burst of first packets is not queued (and dropped) behind it
            run_in(name, "ip", "-6", "neigh", "replace", peer_addr, "lladdr", mac, "dev", intf, "nud", "permanent")
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


VETH = ("mkv0", "mkv1")
VETH_ADDRS = ("2001:db8:77::1", "2001:db8:77::2")
