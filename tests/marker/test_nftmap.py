"""The verdict-map layout: planned scripts (pure), and real nft in namespaces with the
labels checked on packets leaving a veth, for a thousand flows, re-tags and removals."""
from __future__ import annotations

import json
import random
import signal

import pytest

from marker import nftmap
from marker.flows import FlowRequest, Tag, make_key
from marker.manager import FlowManager
from marker.nftables import Nft, NftError
from scitags_core import flowlabel
from tests.marker.netns import VETH, VETH_ADDRS, probe_label, run_in, veth_pair
from tests.marker.wire import labels_on_wire

T, C = "scitags_marker", "output"
A = make_key("tcp", "2001:db8::1", 2345, "2001:db8::2", 5777)
B = make_key("udp", "2001:db8::1", 2346, "2001:db8::2", 5777)
BASE = nftmap.base_script(T, C)


def chain_lines(label: int) -> str:
    name = nftmap.label_chain(label)
    return (f"add chain ip6 {T} {name}\nflush chain ip6 {T} {name}\n"
            f"add rule ip6 {T} {name} ip6 flowlabel set {label}\n")


def test_first_mark_makes_the_table_the_lookup_and_one_label_chain():
    script, state, removed = nftmap.plan(nftmap.MapState(), T, C, mark=[(A, 0x3000C)])
    assert BASE == (f"add table ip6 {T}\n"
                    f"add map ip6 {T} flows {{ type ipv6_addr . ipv6_addr . inet_proto . inet_service . "
                    f"inet_service : verdict; }}\n"
                    f"add chain ip6 {T} output {{ type filter hook output priority mangle; policy accept; }}\n"
                    f"flush chain ip6 {T} output\n"
                    f"add rule ip6 {T} output ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport "
                    f"vmap @flows\n")
    assert script == (BASE + chain_lines(0x3000C)
                      + f'create element ip6 {T} flows {{ 2001:db8::1 . 2001:db8::2 . tcp . 2345 . 5777 '
                        f'comment "scitags-marker tcp 2001:db8::1 sport 2345 2001:db8::2 dport 5777" '
                        f': jump label_3000c }}\n')
    assert removed == 0 and state.ready and state.labels == {A: 0x3000C}
    assert state.chains == {0x3000C} and state.users[0x3000C] == 1


def test_flows_share_a_label_chain_and_the_last_one_deletes_it():
    _, one, _ = nftmap.plan(nftmap.MapState(), T, C, mark=[(A, 7)])
    script, two, _ = nftmap.plan(one, T, C, mark=[(B, 7)])
    assert "add chain" not in script and "jump label_00007" in script and two.users[7] == 2
    script, after_a, removed = nftmap.plan(two, T, C, unmark=[A])
    assert script == f"delete element ip6 {T} flows {{ 2001:db8::1 . 2001:db8::2 . tcp . 2345 . 5777 }}\n"
    assert removed == 1 and after_a.chains == {7}
    script, empty, removed = nftmap.plan(after_a, T, C, unmark=[B, A])  # A is gone already
    assert script == (f"delete element ip6 {T} flows {{ 2001:db8::1 . 2001:db8::2 . udp . 2346 . 5777 }}\n"
                      f"delete chain ip6 {T} label_00007\n")
    assert removed == 1 and empty.labels == {} and empty.chains == set() and not +empty.users
    assert nftmap.plan(empty, T, C, unmark=[A]) == ("", empty, 0)
    assert two.users[7] == 2 and one.labels == {A: 7}  # earlier states are not changed by planning


def test_relabel_is_one_transaction_and_same_label_is_nothing_to_do():
    _, state, _ = nftmap.plan(nftmap.MapState(), T, C, mark=[(A, 7)])
    assert nftmap.plan(state, T, C, mark=[(A, 7)])[0] == ""
    script, after, _ = nftmap.plan(state, T, C, mark=[(A, 8)])
    lines = script.splitlines()
    assert lines[0].startswith("delete element") and lines[-1] == f"delete chain ip6 {T} label_00007"
    assert any(line.startswith("create element") and "jump label_00008" in line for line in lines)
    assert after.labels == {A: 8} and after.chains == {8}
    script, twice, _ = nftmap.plan(nftmap.MapState(), T, C, mark=[(A, 7), (B, 7), (A, 8)])
    assert "delete element" not in script and script.count("jump label_00008") == 1
    assert twice.labels == {A: 8, B: 7} and twice.chains == {7, 8}  # a flow named twice: the last label


def test_bad_input_is_refused_before_anything_is_planned():
    v4 = make_key("tcp", "10.0.0.1", 1, "10.0.0.2", 2)
    with pytest.raises(ValueError, match="IPv6 only"):
        nftmap.plan(nftmap.MapState(), T, C, mark=[(A, 1), (v4, 1)])
    with pytest.raises(ValueError, match="outside 0..0xFFFFF"):
        nftmap.plan(nftmap.MapState(), T, C, mark=[(A, 1 << 20)])
    with pytest.raises(ValueError, match="unknown"):
        Nft(layout="tree")


def test_parse_state_reads_elements_with_and_without_comments():
    doc = {"nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "ip6", "name": T}},
        {"map": {"name": "flows", "table": T, "elem": [
            [{"elem": {"val": {"concat": ["2001:db8::1", "2001:db8::2", "tcp", 2345, 5777]}, "comment": "x"}},
             {"jump": {"target": "label_3000c"}}],
            [{"concat": ["2001:db8::1", "2001:db8::2", "udp", 2346, 5777]}, {"jump": {"target": "label_3000c"}}],
            [{"concat": ["10.0.0.1", "2001:db8::2", "udp", 1, 2]}, {"jump": {"target": "label_00001"}}],
        ]}},
        {"chain": {"name": "output"}}, {"chain": {"name": "label_3000c"}}, {"chain": {"name": "label_00001"}},
        {"chain": {"name": "label_zz"}},
        {"rule": {"chain": "output", "expr": [{"vmap": {"data": "@flows"}}]}},
    ]}
    state = nftmap.parse_state(json.dumps(doc), T, C)
    assert state.ready and state.labels == {A: 0x3000C, B: 0x3000C}
    assert state.users == {0x3000C: 2, 1: 1}  # the foreign key still holds its chain
    assert state.chains == {0x3000C, 1}
    assert not nftmap.parse_state(json.dumps({"nftables": doc["nftables"][:3]}), T, C).ready


# -- real nft ------------------------------------------------------------------------------
@pytest.fixture
def veth():
    yield from veth_pair()


def flows(n: int, first_port: int = 20000) -> list:
    """n flows from the sender to the receiver side of the veth, a few of them TCP."""
    return [make_key("tcp" if i % 100 == 0 else "udp", VETH_ADDRS[0], first_port + i, VETH_ADDRS[1], 5201)
            for i in range(n)]


def label_chains(ns: str) -> set[int]:
    out = json.loads(run_in(ns, "nft", "-j", "list", "chains", "ip6").stdout)
    return {lbl for item in out["nftables"] if "chain" in item
            if (lbl := nftmap.chain_label(item["chain"]["name"])) is not None}


@pytest.mark.netns
def test_a_thousand_flows_carry_their_labels_on_the_wire_and_lose_them_on_removal(veth):
    sender, _ = veth
    rng = random.Random(11)
    keys = flows(1000)
    tags = [(3, 14), (2, 2), (4, 3), (8, 1)]
    want = {k: flowlabel.encode_label(*tags[i % 4], entropy=rng.randrange(32)) for i, k in enumerate(keys)}
    nft = Nft(netns=sender)
    nft.mark_many([(k, want[k]) for k in keys[:900]])  # one transaction
    for k in keys[900:]:  # and one at a time, as flows come
        nft.mark(k, want[k])
    assert nft.stats["nft_failures_total"] == 0
    unmarked = make_key("udp", VETH_ADDRS[0], 30000, VETH_ADDRS[1], 5201)
    assert labels_on_wire(sender, VETH[0], [*keys, unmarked]) == {**want, unmarked: 0}
    assert label_chains(sender) == set(want.values())  # one chain per distinct label value
    assert sorted((m.flow_ident, m.label) for m in Nft(netns=sender).rules()) == \
        sorted((k.ident, v) for k, v in want.items())  # what a fresh process reads back

    for k in keys[:10]:  # re-tag: the new label replaces the old one
        want[k] = flowlabel.encode_label(6, 12, entropy=1)
        nft.mark(k, want[k])
    removed = keys[10:510]
    assert nft.unmark_many(removed) == 500
    assert all(nft.unmark(k) for k in keys[510:560]) and nft.unmark(keys[510]) is False
    gone = set(keys[10:560])
    kept = {k: v for k, v in want.items() if k not in gone}
    assert labels_on_wire(sender, VETH[0], keys) == {**kept, **{k: 0 for k in gone}}
    assert label_chains(sender) == set(kept.values())  # last users gone: their chains too
    assert nft.marked_count() == len(kept) == 450

    assert nft.unmark_many(list(kept)) == 450
    assert label_chains(sender) == set() and nft.rules() == [] and nft.marked_count() == 0
    assert labels_on_wire(sender, VETH[0], keys[:50]) == {k: 0 for k in keys[:50]}
    assert nft.drop_table() is True


@pytest.mark.netns
def test_a_stale_picture_is_read_again_and_the_change_retried(ns):
    key = make_key("udp", "::1", 40101, "::1", 40102)
    daemon_like, other = Nft(netns=ns), Nft(netns=ns)
    daemon_like.mark(key, 5)
    assert other.unmark(key) is True  # behind the first one's back
    daemon_like.mark(key, 6)  # it believes the flow is marked: delete element fails, re-read, retry
    assert daemon_like.stats["nft_failures_total"] == 1 and daemon_like.stats["nft_retries_total"] == 1
    assert probe_label(ns, 40102, 40101) == 6
    assert [(m.flow_ident, m.label) for m in other.rules()] == [(key.ident, 6)]


@pytest.mark.netns
def test_a_failed_nft_call_is_reported_counted_and_changes_nothing(ns):
    run_in(ns, "nft", "-f", "-", input=f"add table ip6 {T}\nadd map ip6 {T} flows {{ type ipv4_addr : verdict; }}\n")
    before = run_in(ns, "nft", "list", "ruleset").stdout
    nft = Nft(netns=ns)
    manager = FlowManager(nft, None)
    key = make_key("udp", "::1", 40201, "::1", 40202)
    out = manager.handle(FlowRequest("start", key, Tag(3, 14)))
    assert not out.ok and "nft -f - failed" in out.message and "flows" in out.message
    assert manager.counters["cli_errors"] == 1 and manager.flows == {}
    assert nft.stats["nft_failures_total"] == 2 and nft.stats["nft_retries_total"] == 1
    assert run_in(ns, "nft", "list", "ruleset").stdout == before  # no chain, no element left behind
    with pytest.raises(NftError, match="failed"):
        nft.mark_many([(key, 1), (make_key("udp", "::1", 40203, "::1", 40202), 2)])
    assert run_in(ns, "nft", "list", "ruleset").stdout == before


@pytest.mark.netns
def test_an_end_that_fails_keeps_the_flow_and_its_marking(ns):
    nft = Nft(netns=ns)
    manager = FlowManager(nft, None)
    key = make_key("udp", "::1", 40301, "::1", 40302)
    started = manager.handle(FlowRequest("start", key, Tag(3, 14)))
    assert started.ok and started.flow is not None and probe_label(ns, 40302, 40301) == started.flow.label
    nft.netns = f"{ns}-gone"  # every nft call now fails for real (no such namespace)
    assert not manager.handle(FlowRequest("end", key, Tag(3, 14))).ok
    assert key in manager.flows and manager.counters["cli_errors"] == 1
    nft.netns = ns
    assert probe_label(ns, 40302, 40301) == started.flow.label  # still marked, as still tracked
    assert manager.handle(FlowRequest("end", key, Tag(3, 14))).ok
    assert probe_label(ns, 40302, 40301) == 0 and manager.flows == {}


@pytest.mark.netns
def test_daemon_marks_flows_from_the_np_api_pipe_and_drops_them_in_one_call(veth, tmp_path):
    from tests.marker.test_daemon import Daemon

    sender, _ = veth
    keys = flows(200, first_port=21000)
    d = Daemon(sender, tmp_path, "--ongoing", "0")
    try:
        with open(d.pipe, "w") as pipe:
            pipe.write("".join(f"start {k.protocol} {k.src} {k.src_port} {k.dst} {k.dst_port} 3 14\n"
                               for k in keys))
        from labnet.waiting import wait_until

        wait_until(lambda: json.loads(d.marker("status", "--json").stdout)["flows"] == 200, 60,
                   what="200 np_api flows")
        status = json.loads(d.marker("status", "--json").stdout)
        assert status["nftables"]["layout"] == "map" and status["nftables"].get("nft_failures_total", 0) == 0
        listed = {f["flow"]: int(f["flow_label"], 16) for f in json.loads(d.marker("flow", "list", "--json").stdout)}
        wire = labels_on_wire(sender, VETH[0], keys)
        assert {str(k): v for k, v in wire.items()} == listed
        assert all(flowlabel.decode_label(v)[:2] == (3, 14) for v in wire.values())
        calls = status["nftables"]["nft_calls_total"]
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
        assert T not in run_in(sender, "nft", "list", "ruleset").stdout
        assert labels_on_wire(sender, VETH[0], keys[:20]) == {k: 0 for k in keys[:20]}
        assert calls == 200 + 2  # one transaction per flow, plus two table checks (start, first use)
    finally:
        d.close()


@pytest.mark.netns
def test_the_rules_layout_the_benchmark_compares_against_still_marks(ns):
    nft = Nft(netns=ns, layout="rules")
    keys = [make_key("udp", "::1", 40400 + i, "::1", 40410) for i in range(3)]
    nft.mark_many([(k, 0x100 + i) for i, k in enumerate(keys)])
    assert [probe_label(ns, 40410, 40400 + i) for i in range(3)] == [0x100, 0x101, 0x102]
    assert sorted((m.flow_ident, m.label) for m in nft.rules()) == [(k.ident, 0x100 + i) for i, k in enumerate(keys)]
    assert nft.unmark_many(keys[:2]) == 2 and nft.marked_count() == 1
    assert [probe_label(ns, 40410, 40400 + i) for i in range(3)] == [0, 0, 0x102]
