"""Match-action tables: every match kind, priorities, defaults, const entries, direct
counters, idle-timeout timestamps and the control-plane error cases."""
from __future__ import annotations

import time

import pytest
from conftest import make_engine
from p4json import ETHERNET, C, F, P, Program, extract, set_egress
from scapy.layers.l2 import Ether
from scapy.packet import raw

from softswitch.engine import ImmutableTable, TableFull


def keyed_program(keys: list[tuple], size: int = 64, counters: bool = False,
                  timeout: bool = False, entries: list[dict] | None = None,
                  const_default: bool = False) -> Program:
    """Ethernet only; table 't' with the given keys -> set_port(port); default port 0."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.state("start", [extract("ethernet")])
    p.action("set_port", [("port", 9)], [set_egress(P(0))])
    p.action("miss", [], [set_egress(C(0, 9))])
    p.table("ingress", "t", keys, ["set_port", "miss"], default=("miss", []), size=size,
            counters=counters, timeout=timeout, entries=entries, const_default=const_default)
    p.deparse("ethernet")
    return p


def frame(dst: int = 0, src: int = 0, etype: int = 0x0800) -> bytes:
    return raw(Ether(dst=dst.to_bytes(6, "big"), src=src.to_bytes(6, "big"), type=etype))


def port_of(e, f: bytes) -> int:
    (port, _), = e.process(1, f)
    return port


def b(v: int, n: int) -> bytes:
    return v.to_bytes(n, "big")


def test_exact_two_fields():
    e = make_engine(keyed_program([("exact", "ethernet", "dst"), ("exact", "ethernet", "etype")]))
    e.table_add("t", [("exact", b(5, 6)), ("exact", b(0x800, 2))], "set_port", [b"\x07"])
    assert port_of(e, frame(dst=5)) == 7
    assert port_of(e, frame(dst=5, etype=0x86DD)) == 0
    assert port_of(e, frame(dst=6)) == 0


def test_lpm_longest_prefix_wins_with_exact_field():
    e = make_engine(keyed_program([("exact", "ethernet", "etype"), ("lpm", "ethernet", "dst")]))
    e.table_add("t", [("exact", b(0x800, 2)), ("lpm", b(0x0A0000000000, 6), 8)], "set_port", [b"\x01"])
    e.table_add("t", [("exact", b(0x800, 2)), ("lpm", b(0x0A0B00000000, 6), 16)], "set_port", [b"\x02"])
    e.table_add("t", [("exact", b(0x800, 2)), ("lpm", b(0, 6), 0)], "set_port", [b"\x03"])
    assert port_of(e, frame(dst=0x0A0B0C000000)) == 2
    assert port_of(e, frame(dst=0x0A0C00000000)) == 1
    assert port_of(e, frame(dst=0x0B0000000000)) == 3
    assert port_of(e, frame(dst=0x0A0B0C000000, etype=0x86DD)) == 0
    h = e.table_add("t", [("exact", b(0x800, 2)), ("lpm", b(0x0A0B0C000000, 6), 24)], "set_port",
                    [b"\x04"])
    assert port_of(e, frame(dst=0x0A0B0C000000)) == 4
    e.table_delete("t", h)
    assert port_of(e, frame(dst=0x0A0B0C000000)) == 2


def test_ternary_priority_larger_wins_ties_to_lower_handle():
    e = make_engine(keyed_program([("ternary", "ethernet", "dst")]))
    e.table_add("t", [("ternary", b(0x0A0000000000, 6), b(0xFF0000000000, 6))], "set_port",
                [b"\x01"], priority=10)
    e.table_add("t", [("ternary", b(0x0A0B00000000, 6), b(0xFFFF00000000, 6))], "set_port",
                [b"\x02"], priority=5)
    assert port_of(e, frame(dst=0x0A0B00000001)) == 1  # both match: priority 10 beats 5
    e.table_add("t", [("ternary", b(0x0A0B00000000, 6), b(0xFFFF00000000, 6))], "set_port",
                [b"\x03"], priority=20)
    assert port_of(e, frame(dst=0x0A0B00000001)) == 3
    # same priority, different masks: the first added (lowest handle) wins
    e2 = make_engine(keyed_program([("ternary", "ethernet", "dst")]))
    e2.table_add("t", [("ternary", b(0x01, 6), b(0x0F, 6))], "set_port", [b"\x05"], priority=1)
    e2.table_add("t", [("ternary", b(0x11, 6), b(0xFF, 6))], "set_port", [b"\x06"], priority=1)
    assert port_of(e2, frame(dst=0x11)) == 5


def test_ternary_many_masks_and_wildcards():
    e = make_engine(keyed_program([("ternary", "ethernet", "dst"), ("ternary", "ethernet", "etype")]))
    e.table_add("t", [None, ("ternary", b(0x86DD, 2), b(0xFFFF, 2))], "set_port", [b"\x06"], 1)
    e.table_add("t", [("exact", b(9, 6)), None], "set_port", [b"\x09"], 2)
    e.table_add("t", [("lpm", b(0x0A0000000000, 6), 8), None], "set_port", [b"\x0a"], 3)
    e.table_add("t", [("optional", b(7, 6)), ("optional", b(0x0800, 2))], "set_port", [b"\x07"], 4)
    assert port_of(e, frame(dst=9, etype=0x86DD)) == 9
    assert port_of(e, frame(dst=1, etype=0x86DD)) == 6
    assert port_of(e, frame(dst=0x0A0000000009, etype=0x86DD)) == 10
    assert port_of(e, frame(dst=7, etype=0x0800)) == 7
    assert port_of(e, frame(dst=7, etype=0x0801)) == 0


def test_range_with_priorities():
    e = make_engine(keyed_program([("range", "ethernet", "etype"), ("exact", "ethernet", "dst")]))
    e.table_add("t", [("range", b(0x0800, 2), b(0x08FF, 2)), ("exact", b(1, 6))], "set_port",
                [b"\x01"], priority=1)
    e.table_add("t", [("range", b(0x0806, 2), b(0x0806, 2)), ("exact", b(1, 6))], "set_port",
                [b"\x02"], priority=2)
    e.table_add("t", [None, ("exact", b(1, 6))], "set_port", [b"\x03"], priority=0)
    assert port_of(e, frame(dst=1, etype=0x0806)) == 2
    assert port_of(e, frame(dst=1, etype=0x0801)) == 1
    assert port_of(e, frame(dst=1, etype=0x9000)) == 3
    assert port_of(e, frame(dst=2, etype=0x0801)) == 0


def test_static_key_mask_and_valid_key():
    e = make_engine(keyed_program([("exact", "ethernet", "etype", "0xff00"),
                                   ("valid", "ethernet", "$valid$")]))
    e.table_add("t", [("exact", b(0x8600, 2)), ("exact", b"\x01")], "set_port", [b"\x04"])
    assert port_of(e, frame(etype=0x86DD)) == 4
    assert port_of(e, frame(etype=0x0800)) == 0


def test_default_action_set_reset_and_get():
    e = make_engine(keyed_program([("exact", "ethernet", "dst")]))
    assert e.table_get_default("t") == ("miss", [])
    e.table_set_default("t", "set_port", [b"\x05"])
    assert e.table_get_default("t") == ("set_port", [b"\x00\x05"])
    assert port_of(e, frame(dst=1)) == 5
    e.table_reset_default("t")
    assert port_of(e, frame(dst=1)) == 0
    info = e.table_info("t")
    assert info.default_action == ("miss", []) and not info.const_default


def test_const_default_and_const_entries_are_immutable():
    entries = [{"match_key": [{"match_type": "exact", "key": "0x000000000001"}],
                "action_entry": {"action_id": 1, "action_data": ["0x0009"]}, "priority": 1}]
    e = make_engine(keyed_program([("exact", "ethernet", "dst")], entries=entries,
                                  const_default=True))
    info = e.table_info("t")
    assert info.has_const_entries and info.const_default
    assert port_of(e, frame(dst=1)) == 9
    with pytest.raises(ImmutableTable):
        e.table_add("t", [("exact", b(2, 6))], "set_port", [b"\x01"])
    with pytest.raises(ImmutableTable):
        e.table_set_default("t", "set_port", [b"\x01"])
    e.table_set_default("t", "miss", [])  # the same default is accepted


def test_const_ternary_entries_keep_program_priority_order():
    entries = [{"match_key": [{"match_type": "ternary", "key": "0x000000000001",
                               "mask": "0x0000000000ff"}],
                "action_entry": {"action_id": 1, "action_data": ["0x0001"]}, "priority": 1},
               {"match_key": [{"match_type": "ternary", "key": "0x000000000000",
                               "mask": "0x000000000000"}],
                "action_entry": {"action_id": 1, "action_data": ["0x0002"]}, "priority": 2}]
    e = make_engine(keyed_program([("ternary", "ethernet", "dst")], entries=entries))
    assert port_of(e, frame(dst=1)) == 1
    assert port_of(e, frame(dst=3)) == 2


def test_table_full_modify_delete_clear():
    e = make_engine(keyed_program([("exact", "ethernet", "dst")], size=2))
    h1 = e.table_add("t", [("exact", b(1, 6))], "set_port", [b"\x01"])
    e.table_add("t", [("exact", b(2, 6))], "set_port", [b"\x02"])
    with pytest.raises(TableFull):
        e.table_add("t", [("exact", b(3, 6))], "set_port", [b"\x03"])
    e.table_modify("t", h1, "set_port", [b"\x08"])
    assert port_of(e, frame(dst=1)) == 8
    e.table_delete("t", h1)
    assert port_of(e, frame(dst=1)) == 0
    h3 = e.table_add("t", [("exact", b(3, 6))], "set_port", [b"\x03"])
    assert h3 == h1  # handles are reused lowest first, as BMv2 does
    e.table_clear("t")
    assert port_of(e, frame(dst=3)) == 0
    assert e.table_entries("t") == []


@pytest.mark.parametrize("call, exc", [
    (lambda e: e.table_add("nope", [("exact", b"\x01")], "set_port", [b"\x01"]), KeyError),
    (lambda e: e.table_add("t", [("exact", b(1, 6))], "nope", []), KeyError),
    (lambda e: e.table_add("t", [("exact", b(1, 6))], "set_port", []), ValueError),
    (lambda e: e.table_add("t", [("exact", b(1, 6))], "set_port", [b"\x02\x00"]), ValueError),
    (lambda e: e.table_add("t", [("exact", b"\x01" * 7)], "set_port", [b"\x01"]), ValueError),
    (lambda e: e.table_add("t", [None], "set_port", [b"\x01"]), ValueError),
    (lambda e: e.table_add("t", [], "set_port", [b"\x01"]), ValueError),
    (lambda e: e.table_add("t", [("ternary", b(1, 6), b(1, 6))], "set_port", [b"\x01"]),
     ValueError),
    (lambda e: e.table_modify("t", 99, "set_port", [b"\x01"]), KeyError),
    (lambda e: e.table_delete("t", 99), KeyError),
    (lambda e: e.direct_counter_read("t", 0), ValueError),
])
def test_control_plane_errors(call, exc):
    e = make_engine(keyed_program([("exact", "ethernet", "dst")]))
    with pytest.raises(exc):
        call(e)


def test_leading_zero_bytes_are_normalised():
    e = make_engine(keyed_program([("exact", "ethernet", "dst")]))
    e.table_add("t", [("exact", b"\x00" * 4 + b(5, 6))], "set_port", [b"\x00\x00\x07"])
    assert port_of(e, frame(dst=5)) == 7


def test_direct_counters_count_hits_with_frame_length():
    e = make_engine(keyed_program([("exact", "ethernet", "dst")], counters=True))
    info = e.table_info("t")
    assert info.with_direct_counters == ["t_counter"]
    h = e.table_add("t", [("exact", b(1, 6))], "set_port", [b"\x01"])
    f = frame(dst=1) + b"\x00" * 50
    for _ in range(3):
        e.process(1, f)
    e.process(1, frame(dst=2))  # a miss is not counted on any entry
    assert e.direct_counter_read("t", h) == (3, 3 * len(f))
    e.direct_counter_write("t", h, 0, 0)
    assert e.direct_counter_read("t", h) == (0, 0)


def test_entry_last_hit_moves_on_match():
    e = make_engine(keyed_program([("exact", "ethernet", "dst")], timeout=True))
    assert e.table_info("t").supports_idle_timeout
    before = time.monotonic()
    h = e.table_add("t", [("exact", b(1, 6))], "set_port", [b"\x01"])
    t0 = e.entry_last_hit("t", h)
    assert t0 >= before
    e.process(1, frame(dst=2))
    assert e.entry_last_hit("t", h) == t0
    e.process(1, frame(dst=1))
    assert e.entry_last_hit("t", h) >= t0


def test_table_info_describes_keys_and_actions():
    e = make_engine(keyed_program([("exact", "ethernet", "dst"), ("ternary", "ethernet", "etype")],
                                  size=77))
    info = e.table_info("t")
    assert info.name == "t"
    assert info.keys == [("ethernet.dst", "exact", 48), ("ethernet.etype", "ternary", 16)]
    assert info.actions == ["set_port", "miss"]
    assert info.max_size == 77
    assert e.table_names() == ["t"]


def test_hit_miss_next_tables():
    """t.apply().hit: a second table runs only on a hit."""
    p = keyed_program([("exact", "ethernet", "dst")])
    p.action("mark", [], [{"op": "assign", "parameters": [F("ethernet", "src"), C(0xAB, 48)]}])
    p.table("ingress", "t2", [], ["mark"], default=("mark", []))
    t = p.pipes["ingress"]["tables"][0]
    t["next_tables"] = {"__HIT__": "t2", "__MISS__": None}
    e = make_engine(p)
    e.table_add("t", [("exact", b(1, 6))], "set_port", [b"\x01"])
    (_, out), = e.process(0, frame(dst=1))
    assert Ether(out).src == "00:00:00:00:00:ab"
    (_, out), = e.process(0, frame(dst=2))
    assert Ether(out).src == "00:00:00:00:00:00"


def test_switch_on_action_run():
    """switch (t.apply().action_run): next node depends on the action, incl. a new default."""
    p = keyed_program([("exact", "ethernet", "dst")])
    p.action("mark", [], [{"op": "assign", "parameters": [F("ethernet", "src"), C(0xAB, 48)]}])
    p.table("ingress", "t2", [], ["mark"], default=("mark", []))
    p.pipes["ingress"]["tables"][0]["next_tables"] = {"set_port": "t2", "miss": None}
    e = make_engine(p)
    e.table_add("t", [("exact", b(1, 6))], "set_port", [b"\x01"])
    assert Ether(e.process(0, frame(dst=1))[0][1]).src == "00:00:00:00:00:ab"
    assert Ether(e.process(0, frame(dst=2))[0][1]).src == "00:00:00:00:00:00"
    e.table_set_default("t", "set_port", [b"\x02"])
    assert Ether(e.process(0, frame(dst=2))[0][1]).src == "00:00:00:00:00:ab"


def test_concurrent_writes_and_packets_stay_consistent():
    """The gRPC server writes from its threads while the port thread processes packets."""
    import threading
    e = make_engine(keyed_program([("ternary", "ethernet", "dst")], size=4096))
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            n = 0
            while not stop.is_set():
                hs = [e.table_add("t", [("ternary", b(i, 6), b(0xFFFF, 6))], "set_port",
                                  [b(i % 500, 2)], priority=i) for i in range(n % 7, 60)]
                for h in hs:
                    e.table_delete("t", h)
                n += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for i in range(3000):
            e.process(1, frame(dst=i % 70))
    finally:
        stop.set()
        t.join()
    assert not errors
    assert e.stats().get("errors", 0) == 0
    assert e.table_entries("t") == []
