"""Control socket of a running `marker run`: one JSON request per line, one JSON reply.

Requests: {"op": "flow", "state", "protocol", "src", "src_port", "dst", "dst_port",
"experiment", "activity"} (names or ids), {"op": "list"}, {"op": "status"}.
Replies: {"ok": bool, "message": str, ...}. Bad requests get ok=false, never a dropped daemon.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import stat
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/scitags-marker.sock"
MAX_REQUEST = 64 * 1024

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(RuntimeError):
    """No daemon answering on the socket, or a broken reply."""


class _RequestHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST + 1)
        try:
            if len(line) > MAX_REQUEST:
                raise ValueError(f"request longer than {MAX_REQUEST} bytes")
            request = json.loads(line.decode("utf-8"))
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            reply = self.server.handler(request)  # type: ignore[attr-defined]
        except (ValueError, UnicodeDecodeError) as exc:
            reply = {"ok": False, "message": f"bad control request: {exc}"}
        except Exception as exc:  # noqa: BLE001 - a bug must not take the daemon down
            log.exception("control request failed")
            reply = {"ok": False, "message": f"internal error: {exc}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class ControlServer:
    def __init__(self, path: str | Path, handler: Handler) -> None:
        self.path = Path(path)
        self.handler = handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.path.exists():
            if daemon_alive(self.path):
                raise ControlError(f"another marker daemon is answering on {self.path}")
            if not stat.S_ISSOCK(self.path.stat().st_mode):
                raise ControlError(f"{self.path} exists and is not a socket")
            self.path.unlink()  # stale socket left by a crashed daemon
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._server = _Server(str(self.path), _RequestHandler)
        self._server.handler = self.handler  # type: ignore[attr-defined]
        os.chmod(self.path, 0o660)
        self._thread = threading.Thread(target=self._server.serve_forever, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)


def request(path: str | Path, payload: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(payload).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ControlError(f"no marker daemon on {path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"broken reply from the daemon on {path}: {data[:80]!r}") from None
    if not isinstance(reply, dict):
        raise ControlError(f"broken reply from the daemon on {path}: not an object")
    return reply


def daemon_alive(path: str | Path) -> bool:
    try:
        return bool(request(path, {"op": "status"}, timeout=2.0).get("ok"))
    except ControlError:
        return False
