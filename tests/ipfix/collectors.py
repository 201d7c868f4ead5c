"""Real IPFIX collectors for the tests and the benchmark: pmacct's nfacctd, run with the
operator configuration shipped in deploy/pmacct/ (only its listen address, port, file paths
and refresh time changed), and nfdump's nfcapd read back with `nfdump -r`. Loopback only."""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from labnet.waiting import poll, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "pmacct"
NFACCTD = shutil.which("nfacctd") or "/usr/sbin/nfacctd"
NFCAPD = shutil.which("nfcapd") or "/usr/bin/nfcapd"
NFDUMP = shutil.which("nfdump") or "/usr/bin/nfdump"
HAVE_NFACCTD = Path(NFACCTD).is_file()
HAVE_NFDUMP = Path(NFCAPD).is_file() and Path(NFDUMP).is_file()
MISSING_NFACCTD = f"pmacct's nfacctd not installed ({NFACCTD} absent; Debian package pmacct)"
MISSING_NFDUMP = f"nfdump's nfcapd/nfdump not installed ({NFCAPD} absent; Debian package nfdump)"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_port_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class _Daemon:
    proc: subprocess.Popen | None = None
    port: int
    stop_signal = signal.SIGTERM

    def _started(self, cmd: list[str], log: Path) -> None:
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        if not poll(lambda: udp_port_bound(self.port) or self.proc.poll() is not None, 10):
            raise RuntimeError(f"{cmd[0]} did not bind UDP {self.port}: {log.read_text()[-2000:]}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited {self.proc.returncode}: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Nfacctd(_Daemon):
    """nfacctd with deploy/pmacct/nfacctd.conf; records() = the JSON objects it wrote."""

    stop_signal = signal.SIGINT  # pmacct's graceful end (docs/SIGNALS); SIGTERM is not it

    def __init__(self, workdir: Path, port: int | None = None, refresh_s: int = 1) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_udp_port()
        self.output = self.dir / "scitags-flows.json"
        self.log = self.dir / "nfacctd.log"
        self.config = self.dir / "nfacctd.conf"
        self.config.write_text(self.operator_config(refresh_s))

    def operator_config(self, refresh_s: int) -> str:
        """The shipped config; only where it listens and writes, and how often, differ."""
        text = (DEPLOY / "nfacctd.conf").read_text()
        subs = {r"^nfacctd_ip: .*$": "nfacctd_ip: 127.0.0.1",
                r"^nfacctd_port: .*$": f"nfacctd_port: {self.port}",
                r"/var/lib/pmacct/": f"{self.dir}/",
                r"/etc/pmacct/scitags-primitives.lst": str(DEPLOY / "scitags-primitives.lst"),
                r"^(print_refresh_time\[\w+\]): .*$": rf"\1: {refresh_s}"}
        for pattern, repl in subs.items():
            text, n = re.subn(pattern, repl, text, flags=re.M)
            if not n:
                raise AssertionError(f"deploy/pmacct/nfacctd.conf: no line matches {pattern!r}")
        return text

    def start(self) -> "Nfacctd":
        self._started([NFACCTD, "-f", str(self.config)], self.log)
        ready = ("waiting for NetFlow/IPFIX data", "JSON: setting object handlers")  # core, plugin
        wait_until(lambda: all(r in self.log.read_text() for r in ready), 10,
                   "nfacctd's core and print plugin to start")
        return self

    def records(self) -> list[dict]:
        if not self.output.exists():
            return []
        return [json.loads(line) for line in self.output.read_text().splitlines() if line.strip()]

    def wait_bytes(self, total: int, timeout: float = 20.0) -> list[dict]:
        """Records once their bytes add up to `total`, and one refresh later (nothing more)."""
        poll(lambda: sum(r["bytes"] for r in self.records()) >= total, timeout, 0.2)
        poll(lambda: False, 1.5)  # one more print refresh: catches extra records too
        return self.records()


class Nfcapd(_Daemon):
    """nfcapd writing to a directory; flows() = `nfdump -r` of what it wrote (after stop)."""

    def __init__(self, workdir: Path, port: int | None = None, socket_buffer: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_udp_port()
        self.log = self.dir / "collector.log"  # not nfcapd.*: that is its files
        self.socket_buffer = socket_buffer  # -B: receive buffer (bytes), as a busy collector sets it

    def start(self) -> "Nfcapd":
        cmd = [NFCAPD, "-w", str(self.dir), "-p", str(self.port), "-b", "127.0.0.1", "-t", "3600"]
        if self.socket_buffer:
            cmd += ["-B", str(self.socket_buffer)]
        self._started(cmd, self.log)
        return self

    def files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("nfcapd.[0-9]*"))  # closed files only

    def flows(self) -> list[dict]:
        """Stop the collector (it closes its file) and list every flow record with nfdump."""
        self.stop()
        out: list[dict] = []
        for path in self.files():
            done = subprocess.run([NFDUMP, "-r", str(path), "-o", "json"], capture_output=True,
                                  text=True, timeout=30, check=True)
            out.extend(json.loads(done.stdout or "[]"))
        return out

    def summary(self) -> str:
        """nfcapd's closing statistics line (flows, bytes, sequence errors)."""
        return next((ln for ln in self.log.read_text().splitlines() if "Sequence Errors" in ln), "")
