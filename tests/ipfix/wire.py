"""An independent reading of IPFIX messages (RFC 7011 sections 3 and 3.4): headers, set
boundaries and template records; and a UDP socket that collects them. The record contents
are checked by the real collectors."""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field


@dataclass
class Message:
    version: int
    length: int
    export_time: int
    sequence: int
    domain: int
    templates: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)  # id -> (ie, len, pen)
    data_sets: list[tuple[int, bytes]] = field(default_factory=list)


def parse(raw: bytes) -> Message:
    version, length, export_time, sequence, domain = struct.unpack_from("!HHIII", raw)
    assert length == len(raw), f"header length {length} != datagram {len(raw)}"
    msg = Message(version, length, export_time, sequence, domain)
    off = 16
    while off < length:
        set_id, set_len = struct.unpack_from("!HH", raw, off)
        assert set_len >= 4 and off + set_len <= length, f"set at {off}: bad length {set_len}"
        body = raw[off + 4:off + set_len]
        if set_id == 2:
            pos = 0
            while pos + 4 <= len(body):
                tid, count = struct.unpack_from("!HH", body, pos)
                pos += 4
                fields = []
                for _ in range(count):
                    ie, flen = struct.unpack_from("!HH", body, pos)
                    pos += 4
                    pen = 0
                    if ie & 0x8000:
                        (pen,) = struct.unpack_from("!I", body, pos)
                        pos += 4
                    fields.append((ie & 0x7FFF, flen, pen))
                msg.templates[tid] = fields
        else:
            assert set_id >= 256, f"unexpected set id {set_id}"
            msg.data_sets.append((set_id, body))
        off += set_len
    return msg


def data_records(msg: Message, templates: dict[int, list[tuple[int, int, int]]]) -> int:
    """How many data records the message holds (each set's length must be whole records)."""
    n = 0
    for tid, body in msg.data_sets:
        size = sum(flen for _, flen, _ in templates[tid])
        assert len(body) % size == 0, f"set {tid}: {len(body)} bytes is not whole {size}-byte records"
        n += len(body) // size
    return n


class Sink:
    """A UDP socket standing in for a collector: the datagrams, parsed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.addr = self.sock.getsockname()

    def messages(self, quiet_s: float = 0.5) -> list[Message]:
        out = []
        self.sock.settimeout(quiet_s)
        while True:
            try:
                out.append(parse(self.sock.recv(65535)))
            except socket.timeout:
                return out

    def close(self) -> None:
        self.sock.close()
