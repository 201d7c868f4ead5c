"""Our own P4 test programs (tests/softswitch/programs/*.p4), compiled by p4c-bm2-ss: the
engine runs what p4c really emits, and gives what BMv2 gives. Skipped without p4c."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from diffkit import CPU_PORT, HAVE_BMV2, Scenario, explain, run_bmv2, run_engine
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw, raw

from softswitch.engine import Engine

PROGRAMS = Path(__file__).resolve().parent / "programs"
P4C = shutil.which("p4c-bm2-ss") or "/opt/p4/bin/p4c-bm2-ss"
HAVE_P4C = os.access(P4C, os.X_OK)

pytestmark = [pytest.mark.p4c,
              pytest.mark.skipif(not HAVE_P4C, reason=f"p4c-bm2-ss not installed ({P4C} absent)")]

ETYPES = {name: 0x9000 + i for i, name in enumerate(
    ["fwd", "drop", "mcast", "clone_fwd", "resub", "count_", "reg_", "trunc", "exit_",
     "spec511", "recirc", "hash_", "ttl_dec"])}


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("p4c") / "features.json"
    proc = subprocess.run([P4C, "-o", str(out), str(PROGRAMS / "features.p4")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def name(doc: dict, kind: str, suffix: str) -> str:
    """The full name p4c gave a table / action / counter (it prefixes the control)."""
    pools = {"table": [t["name"] for p in doc["pipelines"] for t in p["tables"]],
             "action": [a["name"] for a in doc["actions"]],
             "counter": [c["name"] for c in doc["counter_arrays"]]}
    hits = sorted({n for n in pools[kind] if n == suffix or n.endswith("." + suffix)})
    assert len(hits) == 1, (kind, suffix, hits)
    return hits[0]


def b(v: int, n: int) -> bytes:
    return v.to_bytes(n, "big")


def pkt(etype: int, pad: int = 40) -> bytes:
    return raw(Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:02", type=etype) /
               Raw(bytes(range(pad))))


def features_scenario(doc: dict) -> Scenario:
    sc = Scenario(doc, list(range(1, 14)))
    act = name(doc, "table", "act")
    args = {"fwd": [b(2, 2)], "mcast": [b(1, 2)], "clone_fwd": [b(5, 4), b(2, 2)],
            "trunc": [b(22, 4)]}
    for a, et in ETYPES.items():
        sc.table_add(act, [("exact", b(et, 2))], name(doc, "action", a), args.get(a, []))
    sc.table_add(act, [("exact", b(0x8847, 2))], name(doc, "action", "mpls_swap"), [])
    sc.table_add(act, [("exact", b(0x0800, 2))], name(doc, "action", "ttl_dec"), [])
    eg, eg_r = name(doc, "table", "eg"), name(doc, "table", "eg_r")
    sc.table_add(eg, [("exact", b(3, 2)), ("exact", b(0, 4))], name(doc, "action", "eg_drop"), [])
    sc.table_add(eg, [("exact", b(4, 2)), ("exact", b(0, 4))], name(doc, "action", "eg_clone"),
                 [b(8, 4)])
    sc.table_add(eg_r, [("exact", b"\x30")], name(doc, "action", "eg_recirc"), [])
    kinds, prefixes = name(doc, "table", "kinds"), name(doc, "table", "prefixes")
    set_port = name(doc, "action", "set_port")
    k1 = sc.table_add(kinds, [("ternary", b(0x0A0000000000, 6), b(0xFF0000000000, 6)), None, None],
                      set_port, [b(6, 2)], 10)
    sc.table_add(kinds, [("ternary", b(0x0A0B00000000, 6), b(0xFFFF00000000, 6)),
                         ("range", b(0x9900, 2), b(0x9910, 2)), None], set_port, [b(7, 2)], 20)
    sc.table_add(kinds, [None, None, ("optional", b(0x02, 6))], set_port, [b(8, 2)], 5)
    sc.table_add(prefixes, [("exact", b(0x9A00, 2)), ("lpm", b(0x0A0000000000, 6), 8)],
                 set_port, [b(9, 2)])
    sc.table_add(prefixes, [("exact", b(0x9A00, 2)), ("lpm", b(0x0A0B00000000, 6), 16)],
                 set_port, [b(10, 2)])
    sc.mc_group(1, [(3, 10), (1, 10), (2, 20), (4, 30)])
    sc.clone_session(5, [(9, 0)])
    sc.clone_session(8, [(6, 7)])
    for a, et in ETYPES.items():
        sc.send(12, pkt(et))
    sc.send(12, pkt(ETYPES["count_"]))
    sc.send(12, pkt(ETYPES["reg_"]))
    sc.send(12, pkt(0x1234))

    def label(value: int, bos: int) -> bytes:
        return ((value << 12) | (bos << 8) | 33).to_bytes(4, "big")

    mpls = raw(Ether(type=0x8847))
    sc.send(1, mpls + label(5, 0) + label(6, 1) + raw(IP(dst="10.0.0.1") / UDP() / Raw(b"m")))
    sc.send(1, mpls + label(1, 0) + label(2, 0) + label(3, 0) + label(4, 1))
    sc.send(1, raw(Ether() / IP(dst="192.0.2.1", ttl=64) / UDP(sport=1, dport=2) / Raw(b"u" * 9)))
    sc.send(1, raw(Ether() / IP(dst="192.0.2.1", ttl=9, chksum=0x1234) / UDP() / Raw(b"x")))
    sc.send(1, raw(Ether() / Dot1Q(vlan=3) / IP(ihl=4) / Raw(b"z" * 20)))
    sc.send(1, raw(Ether() / IP() / UDP())[:30])
    for dst, et, src in [(0x0A0B00000001, 0x9905, 1), (0x0A0B00000001, 0x9920, 1),
                         (0x0A0000000001, 0x99FF, 1), (0x0B0000000000, 0x9901, 2),
                         (0x0B0000000000, 0x9901, 3)]:
        sc.send(1, raw(Ether(dst=b(dst, 6), src=b(src, 6), type=et)))
    for dst in (0x0A0B0C000000, 0x0A0C00000000, 0x0B0000000000):
        sc.send(1, raw(Ether(dst=b(dst, 6), type=0x9A00)))
    sc.read_counter(name(doc, "counter", "etype_counter"), ETYPES["count_"] & 0xF)
    sc.read_direct_counter(k1)
    return sc


def test_features_program_runs_on_the_engine(features):
    e = Engine(cpu_port=CPU_PORT)
    e.load(features)
    ours = run_engine(features_scenario(features))
    assert ours["errors"] == 0
    by_etype = dict(zip(ETYPES, ours["outputs"]))
    assert [p for p, _ in by_etype["fwd"]] == [2]
    assert by_etype["drop"] == [] and by_etype["spec511"] == []
    assert sorted(p for p, _ in by_etype["mcast"]) == [1, 2, 3, 4]
    assert sorted(p for p, _ in by_etype["clone_fwd"]) == [2, 9]
    assert [p for p, _ in by_etype["exit_"]] == [5]
    assert all(len(bytes.fromhex(f)) == 22 for _, f in by_etype["trunc"])
    assert ours["counters"] == [[2, 2 * len(pkt(0))]]


@pytest.mark.bmv2
@pytest.mark.skipif(not HAVE_BMV2, reason="BMv2 simple_switch_grpc not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for veths in a namespace")
def test_features_program_matches_bmv2(features, tmp_path):
    sc = features_scenario(features)
    ours = run_engine(sc)
    ref = run_bmv2(sc, tmp_path, [len(o) for o in ours["outputs"]])
    assert all(ours[k] == ref[k] for k in ("outputs", "counters", "direct_counters")), \
        explain(sc, ours, ref)
