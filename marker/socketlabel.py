"""Flow labels set by the sending socket itself (Linux flow-label manager), no nftables.

For traffic the marker generates itself (`marker send`): the socket leases the label with
IPV6_FLOWLABEL_MGR (struct in6_flowlabel_req), turns on IPV6_FLOWINFO_SEND and gives the
label in sockaddr_in6.sin6_flowinfo when it connects. The kernel then stamps every packet
of the connection, SYN included.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import time

from marker.flows import FlowKey

IPV6_FLOWLABEL_MGR = 32
IPV6_FLOWINFO_SEND = 33
IPV6_FL_A_GET = 0
IPV6_FL_S_EXCL = 1
IPV6_FL_F_CREATE = 1
IPV6_FL_F_EXCL = 2


def flowlabel_request(dst: str, label: int, *, linger: int = 6, expires: int = 6) -> bytes:
    """in6_flowlabel_req asking for an exclusive lease of `label` toward `dst`."""
    if not 1 <= label <= 0xFFFFF:
        raise ValueError(f"flow label {label} outside 1..0xFFFFF (0 cannot be leased)")
    addr = ipaddress.IPv6Address(dst).packed
    # flr_flags/linger/expires are host-order u16 in the kernel struct: pack them natively.
    head = addr + struct.pack("!I", label) + struct.pack("=BBHHH", IPV6_FL_A_GET, IPV6_FL_S_EXCL,
                                                         IPV6_FL_F_CREATE | IPV6_FL_F_EXCL, expires, linger)
    return head + b"\0" * 4


def labelled_socket(key: FlowKey, label: int) -> socket.socket:
    """A socket bound to the flow's source and connected to its destination, every packet
    carrying `label`. TCP or UDP; IPv6 only."""
    if key.afi != 6:
        raise ValueError(f"flow labels are IPv6 only, not {key}")
    kind = socket.SOCK_STREAM if key.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FLOWLABEL_MGR, flowlabel_request(str(key.dst), label))
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FLOWINFO_SEND, 1)
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
