"""What the marker's packets look like on the wire: send from real sockets inside a
namespace, capture the frames leaving its veth (AF_PACKET) and decode them with scapy."""
from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether
from scapy.packet import raw

from labnet.veth import in_netns
from marker.flows import FlowKey, make_key

ETH_P_ALL = 0x0003  # sockets bound to one protocol do not see outgoing frames


@dataclass(frozen=True)
class WirePacket:
    key: FlowKey
    label: int
    ext_headers: tuple[bytes, ...]  # raw Hop-by-Hop / Destination Options headers, in order


def open_capture(ns: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket on `ifname` in `ns` (it sees what the host sends)."""
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((ifname, ETH_P_ALL))
        return sock
    return in_netns(ns, make)


def decode(frame: bytes) -> WirePacket | None:
    """The flow and label of a TCP/UDP-over-IPv6 frame; None for anything else (ND, MLD)."""
    pkt = Ether(frame)
    ip = pkt.getlayer(IPv6)
    if ip is None:
        return None
    ext = tuple(raw(h)[: (h.len + 1) * 8] for h in (pkt.getlayer(IPv6ExtHdrHopByHop),
                                                     pkt.getlayer(IPv6ExtHdrDestOpt)) if h is not None)
    l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
    if l4 is None:
        return None
    proto = "tcp" if isinstance(l4, TCP) else "udp"
    return WirePacket(make_key(proto, ip.src, l4.sport, ip.dst, l4.dport), ip.fl, ext)


def capture(sock: socket.socket, want: Callable[[WirePacket], bool], count: int,
            timeout: float = 10.0) -> list[WirePacket]:
    """Packets accepted by `want`, until `count` of them or `timeout` seconds."""
    got: list[WirePacket] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        pkt = decode(sock.recv(65535))
        if pkt is not None and want(pkt):
            got.append(pkt)
    return got


def send_udp(ns: str, keys: Iterable[FlowKey], payload: bytes = b"probe") -> None:
    """One datagram per flow, each from a socket bound to the flow's source port."""
    def send() -> None:
        for key in keys:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind((str(key.src), key.src_port))
                s.sendto(payload, (str(key.dst), key.dst_port))
    in_netns(ns, send)


def send_tcp_syn(ns: str, keys: Iterable[FlowKey]) -> None:
    """A connection attempt per flow: its SYN is on the wire whether or not anyone answers."""
    def send() -> None:
        for key in keys:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.setblocking(False)
                s.bind((str(key.src), key.src_port))
                s.connect_ex((str(key.dst), key.dst_port))
                time.sleep(0.002)  # the SYN leaves before close() turns it into nothing
    in_netns(ns, send)


def labels_on_wire(ns: str, ifname: str, keys: list[FlowKey]) -> dict[FlowKey, int]:
    """Send one packet per flow (UDP or TCP SYN, as the flow says) and return the flow label
    each carried when it left `ifname`."""
    wanted = set(keys)
    sock = open_capture(ns, ifname)
    with sock:
        send_udp(ns, [k for k in keys if k.protocol == "udp"])
        send_tcp_syn(ns, [k for k in keys if k.protocol == "tcp"])
        seen = capture(sock, lambda p: p.key in wanted, len(keys), timeout=3.0 + len(keys) / 500)
    labels = {pkt.key: pkt.label for pkt in seen}
    assert len(labels) == len(seen), "one packet per flow expected"
    return labels
