"""Framing between the OpenFlow driver and its os-ken agent process.

Each message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
Stdlib only: the agent imports this after eventlet monkey-patching, the driver without it.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import struct
from typing import Any

MAX_FRAME = 64 * 1024 * 1024  # a flow-stats reply for 64k flows fits comfortably
_HEADER = struct.Struct("!I")


class WireError(ConnectionError):
    """The peer closed the channel or sent a frame that is not a JSON object."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise WireError("channel closed by peer")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_read_exact(sock, _HEADER.size))
    if size > MAX_FRAME:
        raise WireError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
    try:
        message = json.loads(_read_exact(sock, size))
    except ValueError as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError(f"frame is a JSON {type(message).__name__}, not an object")
    return message


def parse_target(text: str) -> tuple[str, str, int]:
    """'tcp:HOST:PORT' (connect to a switch that listens) or 'ptcp:PORT[:HOST]' (listen).

    HOST is an IP literal (os-ken connects to addresses, not names); IPv6 may be bracketed.
    """
    usage = f"OpenFlow target {text!r}: use tcp:HOST:PORT or ptcp:PORT[:HOST] with an IP HOST"
    kind, _, rest = text.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        mode = "connect"
    elif kind == "ptcp":
        port, _, host = rest.partition(":")
        host, mode = host or "0.0.0.0", "listen"
    else:
        raise ValueError(usage)
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(usage) from None
    if not 1 <= number <= 65535:
        raise ValueError(f"{usage} (port {number} out of range)")
    return mode, host, number
