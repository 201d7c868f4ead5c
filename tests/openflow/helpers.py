"""Packets, event recording and polling shared by the OpenFlow tests and the benchmark."""
from __future__ import annotations

import threading
from typing import TypeVar

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

T = TypeVar("T")

A1, A2, A3 = "2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"
V4_1, V4_2 = "10.0.1.1", "10.0.1.2"


def v6_frame(src_mac: str, dst_mac: str, label: int, sport: int = 5000, dport: int = 6000,
             proto: str = "udp", src: str = A1, dst: str = A2, payload: bytes = b"x" * 32) -> bytes:
    l4 = UDP(sport=sport, dport=dport) if proto == "udp" else TCP(sport=sport, dport=dport)
    return bytes(Ether(src=src_mac, dst=dst_mac) / IPv6(src=src, dst=dst, fl=label) / l4 / Raw(payload))


def v4_frame(src_mac: str, dst_mac: str, sport: int = 5000, dport: int = 6000,
             proto: str = "udp", src: str = V4_1, dst: str = V4_2,
             payload: bytes = b"x" * 32) -> bytes:
    l4 = UDP(sport=sport, dport=dport) if proto == "udp" else TCP(sport=sport, dport=dport)
    return bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst) / l4 / Raw(payload))


class Recorder:
    """Collects driver events from the driver's threads."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self._cond = threading.Condition()

    def __call__(self, event: object) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of_type(self, cls: type[T]) -> list[T]:
        with self._cond:
            return [e for e in self.events if isinstance(e, cls)]

    def wait_for(self, cls: type[T], count: int = 1, timeout: float = 15.0) -> list[T]:
        with self._cond:
            self._cond.wait_for(lambda: len([e for e in self.events if isinstance(e, cls)]) >= count,
                                timeout=timeout)
        return self.of_type(cls)
