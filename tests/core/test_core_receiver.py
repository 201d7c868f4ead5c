"""FireflyReceiver over real UDP sockets on 127.0.0.1 and ::1."""
from __future__ import annotations

import json
import socket
import threading
from typing import Iterator

import pytest

from scitags_core.firefly import Deviation, FireflyRecord, RejectReason
from scitags_core.firefly_build import build_firefly
from scitags_core.firefly_receiver import FireflyReceiver

from labnet.waiting import poll as wait_until

R = RejectReason


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")


def firefly(src_port: int = 40000, **changes) -> bytes:
    kwargs = dict(state="start", src_ip="2001:db8::1", dst_ip="2001:db8::2", src_port=src_port,
                  dst_port=1094, experiment_id=3, activity_id=14)
    kwargs.update(changes)
    return build_firefly(**kwargs)


def send(data: bytes, port: int, host: str = "127.0.0.1") -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(data, (host, port))


class Collector:
    def __init__(self) -> None:
        self.items: list[tuple[FireflyRecord, tuple[str, int]]] = []
        self.lock = threading.Lock()

    def __call__(self, record: FireflyRecord, peer: tuple[str, int]) -> None:
        with self.lock:
            self.items.append((record, peer))

    def __len__(self) -> int:
        return len(self.items)


@pytest.fixture
def receiver() -> Iterator[FireflyReceiver]:
    rx = FireflyReceiver(port=0)  # dual-stack [::], kernel-chosen port
    rx.start()
    try:
        yield rx
    finally:
        rx.stop()


@needs_ipv6
def test_dual_stack_delivers_ipv4_and_ipv6_with_sender_address(receiver: FireflyReceiver) -> None:
    got = Collector()
    receiver.subscribe(got)
    port = receiver.address[1]
    send(firefly(1111), port, "127.0.0.1")
    send(firefly(2222, src_ip="192.0.2.1", dst_ip="192.0.2.2"), port, "::1")
    assert wait_until(lambda: len(got) == 2)
    by_port = {record.src_port: (record, peer) for record, peer in got.items}
    assert by_port[1111][1][0] == "127.0.0.1"  # v4-mapped address shown as IPv4
    assert by_port[2222][1][0] == "::1"
    assert str(by_port[2222][0].src_ip) == "192.0.2.1"
    counters = receiver.counters()
    assert (counters.received, counters.accepted, counters.rejected_total) == (2, 2, 0)


def test_bad_input_is_counted_per_reason_and_never_stops_it(receiver: FireflyReceiver) -> None:
    got = Collector()
    receiver.subscribe(got)
    port = receiver.address[1]
    bad = {
        R.NOT_UTF8: b"<134>1 - h a - firefly-json - {\xff}",
        R.NO_SYSLOG_HEADER: b"",
        R.NOT_FIREFLY: b"<134>1 - h a - other - {}",
        R.JSON_SYNTAX: b"<134>1 - h a - firefly-json - {",
        R.TOO_DEEP: b"<134>1 - h a - firefly-json - " + b"[" * 4000 + b"]" * 4000,
        R.BAD_PORT: firefly(dst_port=1).replace(b'"dst-port":1}', b'"dst-port":0}'),
        R.BAD_IP: firefly().replace(b'"afi":"ipv6"', b'"afi":"ipv4"'),
        R.TOO_LARGE: b"<134>1 - h a - firefly-json - " + b" " * 20000,
    }
    for data in bad.values():
        send(data, port)
    send(firefly(7), port)
    assert wait_until(lambda: receiver.counters().received == len(bad) + 1 and len(got) == 1)
    counters = receiver.counters()
    assert counters.accepted == 1 and got.items[0][0].src_port == 7
    assert counters.rejected == {reason: 1 for reason in bad}
    assert counters.rejected_total == len(bad)
    assert "dst-port 0" in counters.last_rejection[R.BAD_PORT]
    assert counters.last_rejection[R.BAD_PORT].startswith("127.0.0.1:")
    assert receiver.running
    as_dict = counters.as_dict()
    assert as_dict["rejected"]["bad-port"] == 1 and as_dict["rejected_total"] == len(bad)


def test_deviations_are_counted(receiver: FireflyReceiver) -> None:
    port = receiver.address[1]
    send(firefly(experiment_id=600), port)
    assert wait_until(lambda: receiver.counters().received == 1)
    counters = receiver.counters()
    assert counters.accepted == 1, counters
    assert counters.deviations == {Deviation.EXPERIMENT_NOT_MARKABLE: 1}


def test_failing_subscriber_is_counted_and_others_still_served(receiver: FireflyReceiver,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    def broken(record: FireflyRecord, peer: tuple[str, int]) -> None:
        raise RuntimeError("subscriber bug")

    good = Collector()
    receiver.subscribe(broken)
    receiver.subscribe(good)
    port = receiver.address[1]
    for n in range(1, 6):
        send(firefly(n), port)
    assert wait_until(lambda: len(good) == 5)
    counters = receiver.counters()
    assert counters.subscriber_errors == 5 and counters.accepted == 5
    assert "subscriber bug" in caplog.text
    assert receiver.running


def test_unsubscribe(receiver: FireflyReceiver) -> None:
    first, second = Collector(), Collector()
    unsubscribe = receiver.subscribe(first)
    receiver.subscribe(second)
    port = receiver.address[1]
    send(firefly(1), port)
    assert wait_until(lambda: len(second) == 1)
    unsubscribe()
    send(firefly(2), port)
    assert wait_until(lambda: len(second) == 2)
    assert len(first) == 1


def test_many_datagrams_none_lost_at_a_gentle_pace(receiver: FireflyReceiver) -> None:
    got = Collector()
    receiver.subscribe(got)
    port = receiver.address[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for n in range(1, 2001):
            s.sendto(firefly(n), ("127.0.0.1", port))
            if n % 200 == 0:  # stay within the socket buffer: this tests delivery, not speed
                wait_until(lambda: len(got) >= n - 100)
    assert wait_until(lambda: len(got) == 2000)
    assert sorted(r.src_port for r, _ in got.items) == list(range(1, 2001))


def test_ipv4_only_receiver() -> None:
    got = Collector()
    with FireflyReceiver(port=0, host="127.0.0.1") as rx:
        rx.subscribe(got)
        assert rx.address[0] == "127.0.0.1"
        send(firefly(5), rx.address[1])
        assert wait_until(lambda: len(got) == 1)
    assert got.items[0][1][0] == "127.0.0.1"
    assert not rx.running


@needs_ipv6
def test_ipv6_only_receiver() -> None:
    got = Collector()
    with FireflyReceiver(port=0, host="::1") as rx:
        rx.subscribe(got)
        send(firefly(6), rx.address[1], "::1")
        assert wait_until(lambda: len(got) == 1)
    assert got.items[0][1][0] == "::1"


def test_port_in_use_fails_at_start() -> None:
    with FireflyReceiver(port=0, host="127.0.0.1") as first:
        second = FireflyReceiver(port=first.address[1], host="127.0.0.1")
        with pytest.raises(OSError):
            second.start()
        assert not second.running


def test_start_stop_restart() -> None:
    rx = FireflyReceiver(port=0, host="127.0.0.1")
    with pytest.raises(RuntimeError):
        rx.address
    rx.start()
    with pytest.raises(RuntimeError):
        rx.start()
    rx.stop()
    rx.stop()  # idempotent
    got = Collector()
    rx.subscribe(got)
    rx.start()
    send(firefly(9), rx.address[1])
    assert wait_until(lambda: len(got) == 1)
    rx.stop()


def test_handle_datagram_directly() -> None:
    rx = FireflyReceiver(port=0)
    record = rx.handle_datagram(firefly(3), ("192.0.2.9", 5000))
    assert record is not None and record.src_port == 3
    assert rx.handle_datagram(b"junk", ("192.0.2.9", 5000)) is None
    assert rx.counters().rejected == {R.NO_SYSLOG_HEADER: 1}


def test_strict_receiver_rejects_deviations() -> None:
    # The Python reference sender's ongoing message: no start-time.
    doc = {"version": 1, "flow-lifecycle": {"state": "ongoing", "current-time": "2026-11-25T10:00:00Z"},
           "flow-id": {"afi": "ipv4", "src-ip": "192.0.2.1", "dst-ip": "192.0.2.2",
                       "protocol": "tcp", "src-port": 1, "dst-port": 2},
           "context": {"experiment-id": 3, "activity-id": 14}}
    data = ("<134>1 2026-11-25T10:00:00Z h flowd - firefly-json - " + json.dumps(doc)).encode()
    lenient, strict = FireflyReceiver(port=0), FireflyReceiver(port=0, strict=True)
    record = lenient.handle_datagram(data, ("127.0.0.1", 1))
    assert record is not None and record.deviations == (Deviation.ONGOING_WITHOUT_START_TIME,)
    assert lenient.counters().deviations == {Deviation.ONGOING_WITHOUT_START_TIME: 1}
    assert strict.handle_datagram(data, ("127.0.0.1", 1)) is None
    assert strict.counters().rejected == {R.MISSING_MEMBER: 1}
