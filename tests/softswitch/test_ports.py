"""SoftSwitch with in-memory ports, and with AF_PACKET ports on veths in a namespace."""
from __future__ import annotations

import os
import threading

import pytest
from conftest import make_engine
from labnet.veth import in_netns
from p4json import l2_program
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw, raw

from softswitch.ports import MemoryPort, RawSocketPort
from softswitch.switch import SoftSwitch

MAC2 = bytes.fromhex("000000000002")
CPU = 255


def l2_switch(ports: dict[int, object], cpu_port: int | None = None) -> SoftSwitch:
    e = make_engine(l2_program(), cpu_port=cpu_port)
    e.table_add("fwd", [("exact", MAC2)], "set_port", [b"\x02"])
    e.table_add("fwd", [("exact", bytes.fromhex("0000000000ff"))], "set_port", [b"\x00\xff"])
    sw = SoftSwitch(e, cpu_port=cpu_port)
    for num, io in ports.items():
        sw.add_port(num, io)
    return sw


def frame(dst: str = "00:00:00:00:00:02", n: int = 60) -> bytes:
    return raw(Ether(dst=dst, src="00:00:00:00:00:01") / IP(dst="10.0.0.2") / UDP() /
               Raw(b"\x55" * n))


def test_inject_sends_to_ports_and_packet_in_handlers():
    p1, p2 = MemoryPort("m1"), MemoryPort("m2")
    sw = l2_switch({1: p1, 2: p2}, cpu_port=CPU)
    punted: list[bytes] = []
    sw.add_packet_in_handler(punted.append)
    f = frame()
    assert sw.inject(1, f) == [(2, f)]
    assert p2.get(0.1) == f and p1.get(0.01) is None
    to_cpu = frame("00:00:00:00:00:ff")
    assert sw.inject(1, to_cpu) == [(CPU, to_cpu)]
    assert punted == [to_cpu]
    # a packet-out is injected on the CPU port like any received frame
    sw.inject(CPU, f)
    assert p2.get(0.1) == f
    sw.close()


def test_failing_packet_in_handler_is_counted_not_raised():
    sw = l2_switch({1: MemoryPort()}, cpu_port=CPU)

    def boom(_: bytes) -> None:
        raise RuntimeError("controller went away")

    sw.add_packet_in_handler(boom)
    sw.inject(1, frame("00:00:00:00:00:ff"))
    assert sw.counters["packet_in_handler_errors"] == 1
    sw.close()


def test_output_to_a_port_without_interface_is_counted():
    sw = l2_switch({1: MemoryPort()})
    sw.inject(1, frame())
    assert sw.counters["tx_no_port"] == 1
    sw.close()


def test_cpu_port_cannot_take_an_interface():
    sw = l2_switch({}, cpu_port=CPU)
    with pytest.raises(ValueError):
        sw.add_port(CPU, MemoryPort())
    sw.add_port(1, MemoryPort())
    with pytest.raises(ValueError):
        sw.add_port(1, MemoryPort())
    sw.close()


def test_reader_thread_forwards_memory_port_frames_in_order():
    p1, p2 = MemoryPort("m1"), MemoryPort("m2")
    sw = l2_switch({1: p1, 2: p2})
    sw.start()
    frames = [frame(n=i) for i in range(200)]
    for f in frames:
        p1.put(f)
    got = [p2.get(2.0) for _ in frames]
    assert got == frames
    assert sw.stats()["ports"][1]["rx"] == 200 and sw.stats()["ports"][2]["tx"] == 200
    sw.close()


def test_concurrent_packet_out_and_port_traffic():
    """Packet-outs from another thread (as the gRPC server sends them) while the reader
    thread forwards: every frame arrives."""
    p1, p2 = MemoryPort("m1"), MemoryPort("m2")
    sw = l2_switch({1: p1, 2: p2}, cpu_port=CPU)
    sw.start()
    outs = threading.Thread(target=lambda: [sw.inject(CPU, frame(n=7)) for _ in range(300)])
    outs.start()
    for _ in range(300):
        p1.put(frame(n=9))
    outs.join()
    got = [p2.get(2.0) for _ in range(600)]
    assert sum(len(g) == len(frame(n=7)) for g in got if g) == 300
    assert sum(len(g) == len(frame(n=9)) for g in got if g) == 300
    sw.close()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


@needs_root
@pytest.mark.netns
def test_veth_frame_in_one_port_out_the_other(lab):
    ports = {p: in_netns(lab.ns, lambda p=p: RawSocketPort(f"s{p}")) for p in (1, 2)}
    sw = l2_switch(ports)
    sw.start()
    try:
        for size in (60, 1400):
            f = frame(n=size)
            lab.send(1, f)
            assert lab.receive(2) == [f]
        # the switch does not read back what it sent out of s2
        assert sw.engine.stats()["rx"] == 2
        assert lab.receive(1, timeout=0.3) == []
        # a VLAN tag the kernel moves to metadata is restored in the frame
        tagged = raw(Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01") / Dot1Q(vlan=7) /
                     IP() / UDP() / Raw(b"v" * 40))
        lab.send(1, tagged)
        assert lab.receive(2) == [tagged]
    finally:
        sw.close()


@needs_root
@pytest.mark.netns
def test_raw_port_counts_send_failures(lab):
    port = in_netns(lab.ns, lambda: RawSocketPort("s1"))
    try:
        assert port.send(frame()) is True
        assert port.send(b"\x00" * 70000) is False  # larger than any MTU
        assert port.tx_errors == 1
    finally:
        port.close()


@needs_root
@pytest.mark.netns
def test_missing_interface_raises_oserror(lab):
    with pytest.raises(OSError):
        in_netns(lab.ns, lambda: RawSocketPort("nosuchif0"))
