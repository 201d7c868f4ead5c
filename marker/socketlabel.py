"""Marking set by the sending socket itself, no nftables: for traffic the marker generates
(`marker send`).

Flow label (Linux flow-label manager): the socket leases the label with
IPV6_FLOWLABEL_MGR (struct in6_flowlabel_req), turns on IPV6_FLOWINFO_SEND and gives the
label in sockaddr_in6.sin6_flowinfo when it connects. The kernel then stamps every packet
of the connection, SYN included.

Extension-header option (flowd-go's `hopbyhop`, `destination`, `hopbyhopdestination`):
IPV6_HOPOPTS / IPV6_DSTOPTS give the kernel an 8-byte options header it puts in every
packet of the socket, before TCP/UDP (Hop-by-Hop first when both). Its one option is type
0x1E, length 3, data = experiment << 8 | activity (24-bit big-endian), then Pad1
(SPEC.md). The kernel fills in the next-header byte. Setting them needs CAP_NET_RAW.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import time
from dataclasses import dataclass

from marker.flows import FlowKey

IPV6_FLOWLABEL_MGR = 32
IPV6_FLOWINFO_SEND = 33
IPV6_FL_A_GET = 0
IPV6_FL_S_EXCL = 1
IPV6_FL_F_CREATE = 1
IPV6_FL_F_EXCL = 2
IPV6_HOPOPTS = getattr(socket, "IPV6_HOPOPTS", 54)
IPV6_DSTOPTS = getattr(socket, "IPV6_DSTOPTS", 59)
SCITAG_OPTION = 0x1E  # RFC 4727 experimental: skip if unknown, not changed en route
EXTHDR_STRATEGIES: dict[str, tuple[int, ...]] = {  # flowd-go's names -> the headers they add
    "hopbyhop": (IPV6_HOPOPTS,), "destination": (IPV6_DSTOPTS,),
    "hopbyhopdestination": (IPV6_HOPOPTS, IPV6_DSTOPTS)}


@dataclass(frozen=True)
class ExtHdrMarking:
    """Which extension header(s) carry the scitag, and the tag they carry."""

    strategy: str
    experiment_id: int
    activity_id: int

    def __post_init__(self) -> None:
        if self.strategy not in EXTHDR_STRATEGIES:
            raise ValueError(f"extension-header strategy {self.strategy!r} unknown "
                             f"({', '.join(EXTHDR_STRATEGIES)})")
        if not 0 <= self.experiment_id <= 0xFFFF or not 0 <= self.activity_id <= 0xFF:
            raise ValueError(f"experiment {self.experiment_id} / activity {self.activity_id} do not fit the "
                             "option (16 and 8 bits)")

    def header(self) -> bytes:
        """The options header as setsockopt takes it: `NH 00 1E 03 E_hi E_lo A 00` (NH 0:
        the kernel writes the real next header)."""
        value = self.experiment_id << 8 | self.activity_id
        return bytes([0, 0, SCITAG_OPTION, 3]) + value.to_bytes(3, "big") + b"\0"

    def apply(self, sock: socket.socket) -> None:
        for optname in EXTHDR_STRATEGIES[self.strategy]:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, optname, self.header())
            except PermissionError as exc:
                raise PermissionError(exc.errno, "setting IPv6 extension-header options on a socket needs "
                                                 "CAP_NET_RAW") from None


def flowlabel_request(dst: str, label: int, *, linger: int = 6, expires: int = 6) -> bytes:
    """in6_flowlabel_req asking for an exclusive lease of `label` toward `dst`."""
    if not 1 <= label <= 0xFFFFF:
        raise ValueError(f"flow label {label} outside 1..0xFFFFF (0 cannot be leased)")
    addr = ipaddress.IPv6Address(dst).packed
    # flr_flags/linger/expires are host-order u16 in the kernel struct: pack them natively.
    head = addr + struct.pack("!I", label) + struct.pack("=BBHHH", IPV6_FL_A_GET, IPV6_FL_S_EXCL,
                                                         IPV6_FL_F_CREATE | IPV6_FL_F_EXCL, expires, linger)
    return head + b"\0" * 4


def labelled_socket(key: FlowKey, label: int, exthdr: ExtHdrMarking | None = None) -> socket.socket:
    """A socket bound to the flow's source and connected to its destination, every packet
    carrying `label` (and the extension-header option, if given). TCP or UDP; IPv6 only."""
    if key.afi != 6:
        raise ValueError(f"flow labels are IPv6 only, not {key}")
    kind = socket.SOCK_STREAM if key.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FLOWLABEL_MGR, flowlabel_request(str(key.dst), label))
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FLOWINFO_SEND, 1)
        if exthdr is not None:
            exthdr.apply(sock)
        sock.bind((str(key.src), key.src_port))
        sock.connect((str(key.dst), key.dst_port, label, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def send_for(sock: socket.socket, seconds: float, rate_bps: float, chunk: int = 1200) -> int:
    """Send for `seconds` at about `rate_bps` (0: as fast as possible); bytes sent."""
    payload = b"\0" * chunk
    sent = 0
    start = time.monotonic()
    end = start + seconds
    while (now := time.monotonic()) < end:
        if rate_bps > 0 and sent * 8 > rate_bps * (now - start):
            time.sleep(min(0.001, end - now))
            continue
        sent += sock.send(payload)
    return sent
