"""Traffic in a lab: iperf3 servers/clients on Mininet hosts, the marker around a flow.

iperf3's data connection gets a fixed client port (`--cport`), so the marker knows the
flow's 5-tuple before it starts (the control connection uses another, unmarked port).
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mininet.node import Host

MARKER = str(Path(sys.executable).with_name("marker"))


class TrafficError(RuntimeError):
    """A transfer or marker command failed; the message carries its output."""


@dataclass(frozen=True)
class Transfer:
    src: Host
    dst: Host
    src_addr: str
    dst_addr: str
    dst_port: int
    src_port: int
    protocol: str = "tcp"

    @property
    def afi(self) -> int:
        return 6 if ":" in self.dst_addr else 4


def host_addr(host: Host, afi: int) -> str:
    spec = host.spec  # set by ScitagsHost.configure
    iface = spec.ipv6 if afi == 6 else spec.ipv4
    if iface is None:
        raise TrafficError(f"{host.name} has no IPv{afi} address")
    return str(iface.ip)


def transfer(src: Host, dst: Host, afi: int, dst_port: int, src_port: int, protocol: str = "tcp") -> Transfer:
    return Transfer(src, dst, host_addr(src, afi), host_addr(dst, afi), dst_port, src_port, protocol)


def start_server(t: Transfer) -> Any:
    """One-shot iperf3 server on the destination (exits after one test)."""
    return t.dst.popen(["iperf3", "-s", "-1", "-p", str(t.dst_port), "-B", t.dst_addr],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_client(t: Transfer, seconds: float, rate: str) -> Any:
    """Start iperf3 on the source (JSON on stdout); pair with finish_client()."""
    argv = ["iperf3", "-c", t.dst_addr, "-p", str(t.dst_port), "--cport", str(t.src_port),
            "-B", t.src_addr, "-t", str(seconds), "-b", rate, "-J", "--connect-timeout", "5000"]
    if t.protocol == "udp":
        argv += ["-u", "-l", "1200"]
    return t.src.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish_client(t: Transfer, proc: Any, timeout: float = 60.0) -> dict[str, Any]:
    """{'sent_bytes', 'received_bytes', 'bps'} of a finished iperf3 client."""
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode(errors="replace") if isinstance(out, bytes) else out
    where = f"iperf3 {t.src.name} -> {t.dst_addr}:{t.dst_port}"
    try:
        doc = json.loads(text[text.index("{"):])
    except ValueError:
        raise TrafficError(f"{where}: no JSON: {text[-500:]}") from None
    if doc.get("error"):
        raise TrafficError(f"{where}: {doc['error']}")
    end = doc["end"]
    if t.protocol == "udp":
        summary = end["sum"]
        return {"sent_bytes": summary["bytes"], "bps": summary["bits_per_second"],
                "received_bytes": int(summary["bytes"] * (1 - summary.get("lost_percent", 0) / 100))}
    return {"sent_bytes": end["sum_sent"]["bytes"], "received_bytes": end["sum_received"]["bytes"],
            "bps": end["sum_received"]["bits_per_second"]}


def run_client(t: Transfer, seconds: float, rate: str) -> dict[str, Any]:
    return finish_client(t, start_client(t, seconds, rate), timeout=seconds + 30)


def marker_cmd(host: Host, *args: str) -> str:
    """Run `marker ...` on a host; raises TrafficError with its output on failure."""
    out = host.cmd(shlex.join([MARKER, *args]) + " 2>&1; echo rc=$?")
    text, _, rc = out.rpartition("rc=")
    if rc.strip() != "0":
        raise TrafficError(f"{host.name}: marker {' '.join(args)} failed: {text.strip()}")
    return text.strip()


def flow_args(t: Transfer) -> list[str]:
    return [t.protocol, t.src_addr, str(t.src_port), t.dst_addr, str(t.dst_port)]
