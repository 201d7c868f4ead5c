"""The scitags program on the engine: the compiled p4src JSON when it exists, and the
hand-built mirror of it (scitags_like) always. Names are matched by suffix, since p4c
prefixes them with the control's name."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

import scitags_like
from softswitch.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "p4src" / "build" / "v1model" / "scitags.json"
CPU = 255
MAC = {p: bytes.fromhex(f"0000000000{p:02x}") for p in (1, 2, 3)}


def encode_label(experiment: int, activity: int) -> int:
    """scitags flow label: experiment bits reversed into label bits 17..9, activity 7..2."""
    rev = int(f"{experiment:09b}"[::-1], 2)
    return (rev << 9) | (activity << 2)


class Sw:
    def __init__(self, doc: dict) -> None:
        self.e = Engine(cpu_port=CPU)
        self.e.load(doc)

    def table(self, suffix: str) -> str:
        names = [n for n in self.e.table_names() if n == suffix or n.endswith("." + suffix)]
        assert len(names) == 1, (suffix, self.e.table_names())
        return names[0]

    def action(self, table: str, suffix: str) -> str:
        acts = [a for a in self.e.table_info(table).actions
                if a == suffix or a.endswith("." + suffix)]
        assert len(acts) == 1, (suffix, self.e.table_info(table).actions)
        return acts[0]

    def counter(self, suffix: str) -> str:
        names = [n for n in self.e.counter_names() if n == suffix or n.endswith("." + suffix)]
        assert len(names) == 1, (suffix, self.e.counter_names())
        return names[0]

    def add(self, table: str, match: list, action: str, args: list[bytes], prio: int = 0) -> int:
        t = self.table(table)
        return self.e.table_add(t, match, self.action(t, action), args, prio)

    def policy_match(self, experiment: int, activity: int | None) -> list:
        """scitag_policy's key for a tag, whichever program this is: the compiled one matches
        the raw flow label (ternary), the hand-built mirror experiment/activity fields."""
        return policy_match(self.e.table_info(self.table("scitag_policy")).keys, experiment, activity)

    def bucket(self, cell: int) -> tuple[int, int]:
        """A bucket cell: the compiled program keeps the firefly buckets in their own counter."""
        names = [n for n in self.e.counter_names() if n.endswith("bucket_counter")]
        return tuple(sum(v) for v in zip(*(self.e.counter_read(n, cell) for n in names)))


def policy_match(keys: list, experiment: int, activity: int | None) -> list:
    if len(keys) == 1:  # flow_label, ternary
        mask = 0x3FEFC if activity is not None else 0x3FE00
        return [("ternary", (encode_label(experiment, activity or 0) & mask).to_bytes(3, "big"),
                 mask.to_bytes(3, "big"))]
    act, act_mask = (activity, 0x3F) if activity is not None else (0, 0)
    return [("exact", experiment.to_bytes(2, "big")), ("ternary", bytes([act]), bytes([act_mask]))]


def sources() -> list:
    return [pytest.param(scitags_like.program, id="hand-built"),
            pytest.param(lambda: json.loads(COMPILED.read_text()), id="compiled",
                         marks=pytest.mark.skipif(not COMPILED.exists(),
                                                  reason=f"{COMPILED} not built (needs p4c)"))]


@pytest.fixture(params=sources())
def sw(request) -> Sw:
    s = Sw(request.param())
    for port, mac in MAC.items():
        s.add("l2_forward", [("exact", mac)], "set_egress_port", [bytes([0, port])])
    s.e.clone_session_set(100, [(CPU, 0)])
    s.e.mc_group_set(1, [(1, 0), (2, 0), (3, 0)])
    return s


def v6(label: int, dst_mac: int = 2, l4=None, payload: bytes = b"p" * 64) -> bytes:
    l4 = l4 if l4 is not None else TCP(sport=1000, dport=2000)
    return raw(Ether(dst=MAC[dst_mac], src=MAC[1]) /
               IPv6(src="2001:db8::1", dst="2001:db8::2", fl=label) / l4 / Raw(payload))


def test_registered_tag_is_counted_and_forwarded(sw):
    sw.add("scitag_policy", sw.policy_match(37, 5), "count_tag", [(42).to_bytes(2, "big")], prio=10)
    f = v6(encode_label(37, 5))
    assert sw.e.process(1, f) == [(2, f)]
    assert sw.e.counter_read(sw.counter("tag_counter"), 42) == (1, len(f))


def test_whole_experiment_entry_matches_any_activity(sw):
    sw.add("scitag_policy", sw.policy_match(300, None), "count_tag", [(7).to_bytes(2, "big")], prio=1)
    for act in (0, 9, 63):
        sw.e.process(1, v6(encode_label(300, act)))
    assert sw.e.counter_read(sw.counter("tag_counter"), 7)[0] == 3


def test_unmarked_and_unregistered_buckets(sw):
    f0, f1 = v6(0), v6(encode_label(5, 1))
    sw.e.process(1, f0)
    sw.e.process(1, f1)
    assert sw.bucket(scitags_like.BUCKET_UNMARKED) == (1, len(f0))
    assert sw.bucket(scitags_like.BUCKET_UNREGISTERED) == (1, len(f1))


def test_firefly_is_punted_with_packet_in_and_forwarded(sw):
    f = v6(0, l4=UDP(sport=5555, dport=10514), payload=b'<134>1 - - - - - {"flow-lifecycle":{}}')
    out = sw.e.process(3, f)
    assert sorted(p for p, _ in out) == [2, CPU]
    punt = dict(out)[CPU]
    # packet_in: pad (7 bits), ingress_port (9), reason (8), then the frame as received
    hdr = int.from_bytes(punt[:3], "big")
    assert hdr >> 17 == 0 and (hdr >> 8) & 0x1FF == 3 and hdr & 0xFF == 1
    assert punt[3:] == f
    assert dict(out)[2] == f


def test_mirror_session_from_policy(sw):
    sw.e.clone_session_set(7, [(3, 0)])
    session_width = 2 if len(sw.e.table_info(sw.table("scitag_policy")).keys) == 1 else 4
    sw.add("scitag_policy", sw.policy_match(1, None), "count_tag_and_mirror",
           [b"\x00\x01", (7).to_bytes(session_width, "big")], prio=1)
    f = v6(encode_label(1, 2))
    assert sorted(sw.e.process(1, f)) == [(2, f), (3, f)]


def test_firefly_table_direct_counter(sw):
    t = sw.table("firefly_v6")
    info = sw.e.table_info(t)
    assert info.supports_idle_timeout and info.with_direct_counters
    src = bytes.fromhex("20010db8" + "0" * 23 + "1")
    dst = bytes.fromhex("20010db8" + "0" * 23 + "2")
    h = sw.add("firefly_v6", [("exact", src), ("exact", dst), ("exact", b"\x06"),
                              ("exact", (1000).to_bytes(2, "big")),
                              ("exact", (2000).to_bytes(2, "big"))],
               "firefly_flow_v6", [(37).to_bytes(2, "big"), b"\x05"])
    f = v6(encode_label(37, 5))
    sw.e.process(1, f)
    assert sw.e.direct_counter_read(t, h) == (1, len(f))
    # registered label (none here) vs firefly: counted as firefly-only
    assert sw.bucket(scitags_like.BUCKET_FIREFLY_ONLY)[0] == 1


def test_packet_out_leaves_by_the_named_port_untouched(sw):
    inner = raw(Ether(dst=MAC[2]) / IP() / UDP())
    po = (3 << 7).to_bytes(2, "big") + inner  # egress_port 3, pad
    assert sw.e.process(CPU, po) == [(3, inner)]


def test_unknown_destination_floods_without_hairpin(sw):
    f = raw(Ether(dst="00:00:00:00:00:99", src=MAC[1]) / IP() / UDP())
    assert sorted(p for p, _ in sw.e.process(2, f)) == [1, 3]


def test_known_destination_on_ingress_port_is_not_hairpinned(sw):
    assert sw.e.process(2, v6(0, dst_mac=2)) == []


def test_truncated_headers_are_dropped(sw):
    f = v6(encode_label(37, 5))[:30]
    assert sw.e.process(1, f) == []
