"""Switch ports: AF_PACKET raw sockets on Linux interfaces, and in-memory ports for tests.

Every port is non-blocking and has a file descriptor, so one reader thread can
wait on all of them with epoll (see softswitch.switch).
"""
from __future__ import annotations

import errno
import logging
import queue
import socket
import struct
from typing import Protocol, runtime_checkable

log = logging.getLogger("softswitch.ports")

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
MAX_FRAME = 65535 + 4
_AUXDATA = struct.Struct("IIIHHHH")


@runtime_checkable
class PortIO(Protocol):
    """What a switch port offers. recv() never blocks: it returns None when idle."""

    name: str

    def fileno(self) -> int: ...
    def recv(self) -> bytes | None: ...
    def send(self, frame: bytes) -> bool: ...
    def close(self) -> None: ...


class RawSocketPort:
    """A Linux network interface through an AF_PACKET raw socket.

    The interface is put in promiscuous mode (undone when the socket closes), the
    switch's own transmissions are not read back (PACKET_IGNORE_OUTGOING, or by
    packet type on kernels without it), and VLAN tags the kernel moved into packet
    metadata are put back in the frame, as libpcap does for BMv2.
    """

    def __init__(self, iface: str, promiscuous: bool = True) -> None:
        self.name = iface
        self.tx_errors = 0
        # protocol 0 until bound, so no frame from another interface slips in
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.bind((iface, ETH_P_ALL))
            ifindex = socket.if_nametoindex(iface)
            self._filter_outgoing = True
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                self._filter_outgoing = False
            except OSError:
                pass
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            if promiscuous:
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._anc = socket.CMSG_SPACE(_AUXDATA.size)

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self) -> bytes | None:
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(MAX_FRAME, self._anc)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if exc.errno in (errno.ENETDOWN, errno.ENXIO):
                    return None
                raise
            if self._filter_outgoing and addr[2] == PACKET_OUTGOING:
                continue
            for level, kind, cdata in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= _AUXDATA.size:
                    status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(cdata)
                    if status & TP_STATUS_VLAN_VALID and len(data) >= 12:
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            return data

    def send(self, frame: bytes) -> bool:
        try:
            self.sock.send(frame)
            return True
        except OSError as exc:  # too big, too short, interface down: count and go on
            self.tx_errors += 1
            log.debug("port %s: send of %d bytes failed: %s", self.name, len(frame), exc)
            return False

    def close(self) -> None:
        self.sock.close()


class MemoryPort:
    """An in-process port: put() feeds the switch, get() returns what it sent.

    A datagram socketpair carries frames into the switch so that the switch's
    reader thread waits on it like on any interface.
    """

    def __init__(self, name: str = "mem") -> None:
        self.name = name
        self._inside, self._outside = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self._inside, self._outside):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._inside.setblocking(False)
        self.sent: queue.Queue[bytes] = queue.Queue()

    # switch side
    def fileno(self) -> int:
        return self._inside.fileno()

    def recv(self) -> bytes | None:
        try:
            return self._inside.recv(MAX_FRAME)
        except (BlockingIOError, InterruptedError):
            return None

    def send(self, frame: bytes) -> bool:
        self.sent.put(bytes(frame))
        return True

    def close(self) -> None:
        self._inside.close()
        self._outside.close()

    # test side
    def put(self, frame: bytes) -> None:
        """Deliver a frame to the switch as if it arrived on this port."""
        self._outside.send(frame)

    def get(self, timeout: float = 1.0) -> bytes | None:
        """The next frame the switch sent out of this port, or None after timeout."""
        try:
            return self.sent.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sent.get_nowait())
            except queue.Empty:
                return out
