"""Loading programs: unsupported constructs are refused by name, malformed JSON gives a
ValueError, a load clears all state; expression semantics (bm::Data arithmetic)."""
from __future__ import annotations

import json

import pytest
from conftest import make_engine
from p4json import ETHERNET, C, E, F, P, Program, X, assign, extract, l2_program, prim, set_egress
from scapy.layers.l2 import Ether
from scapy.packet import raw

from softswitch.engine import Engine, UnsupportedProgram


def _with(mutate) -> dict:
    doc = l2_program().build()
    mutate(doc)
    return doc


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["meter_arrays"].append({"name": "m1", "id": 0}), "meters: 'm1'"),
    (lambda d: d["extern_instances"].append({"name": "x", "type": "Hash", "id": 0}),
     "extern 'Hash' instance 'x'"),
    (lambda d: d["learn_lists"].append({"name": "dig", "id": 1}), "digests"),
    (lambda d: d["header_unions"].append({"name": "u", "id": 0}), "header unions"),
    (lambda d: d["pipelines"][0]["tables"][0].update(type="indirect"), "type 'indirect'"),
    (lambda d: d["pipelines"][0]["action_profiles"].append({"name": "ap"}), "action profile 'ap'"),
    (lambda d: d["header_types"].append({"name": "vl", "id": 9, "fields": [["v", "*"]]}),
     "variable-length field 'v'"),
    (lambda d: d["actions"][1]["primitives"].append(prim("execute_meter")), "execute_meter"),
    (lambda d: d["actions"][1]["primitives"].append(prim("_Foo_bar")), "extern method '_Foo_bar'"),
    (lambda d: d["actions"][1]["primitives"].append(prim("frobnicate")), "primitive 'frobnicate'"),
    (lambda d: d["actions"][1]["primitives"].append(
        assign(F("ethernet", "dst"), X(E("frob", C(1), C(2))))), "expression op 'frob'"),
    (lambda d: d["pipelines"][0]["tables"][0]["key"][0].update(match_type="selector"),
     "match kind 'selector'"),
    (lambda d: d["__meta__"].update(version=[3, 0]), "format version"),
])
def test_unsupported_constructs_are_named(mutate, needle):
    with pytest.raises(UnsupportedProgram, match=needle.replace("(", r"\(").replace(")", r"\)")):
        Engine().load(_with(mutate))


def test_unsupported_hash_algorithm_is_named():
    p = l2_program()
    p.calculation("h", "crc32_custom", [F("ethernet", "dst")])
    p.action("hash_it", [], [prim("modify_field_with_hash_based_offset", F("ethernet", "src"),
                                  C(0), {"type": "calculation", "value": "h"}, C(16))])
    with pytest.raises(UnsupportedProgram, match="crc32_custom"):
        Engine().load(p.build())


@pytest.mark.parametrize("config", [
    b"{not json", "[]", "{}", json.dumps({"headers": [], "header_types": []}),
    b"\xff\xfe", 42,
])
def test_malformed_configs_raise_value_error(config):
    with pytest.raises(ValueError):
        Engine().load(config)


def test_broken_references_raise_value_error():
    doc = l2_program().build()
    doc["pipelines"][0]["tables"][0]["key"][0]["target"] = ["ethernet", "nope"]
    with pytest.raises(ValueError, match="unknown field 'ethernet.nope'"):
        Engine().load(doc)
    doc = l2_program().build()
    doc["pipelines"][0]["init_table"] = "missing"
    with pytest.raises(ValueError):
        Engine().load(doc)


def test_load_accepts_bytes_str_dict_and_clears_state():
    doc = l2_program().build()
    e = Engine()
    e.load(json.dumps(doc).encode())
    e.table_add("fwd", [("exact", b"\x00" * 5 + b"\x01")], "set_port", [b"\x02"])
    e.mc_group_set(1, [(1, 1)])
    e.clone_session_set(1, [(1, 0)])
    e.load(json.dumps(doc))
    assert e.table_entries("fwd") == []
    assert e.pre.groups == {} and e.pre.sessions == {}
    e.load(doc)
    assert e.program_loaded


def test_failed_load_keeps_the_running_program():
    e = make_engine(l2_program())
    e.table_add("fwd", [("exact", b"\x00" * 5 + b"\x01")], "set_port", [b"\x02"])
    with pytest.raises(ValueError):
        e.load(b"{broken")
    assert len(e.table_entries("fwd")) == 1


def _expr_program(exprs: list[tuple[str, int, dict]], signed: set[str] = frozenset()) -> Program:
    """Metadata fields r_<name> of the given widths, assigned from the given expressions in
    one action; the egress emits them in a header so the test can read them back."""
    p = Program()
    p.header("ethernet", ETHERNET)
    p.metadata("m", [("a", 16), ("b", 16), ("s", 8, True), ("sh", 8)])
    fields = [(f"r_{n}", w, n in signed) for n, w, _ in exprs]
    p.header("out", fields)
    p.state("start", [extract("ethernet")])
    prims = [assign(F("m", "a"), C(0xFFF0, 16)), assign(F("m", "b"), C(0x0020, 16)),
             assign(F("m", "s"), C(-3)), assign(F("m", "sh"), C(70, 8)),
             prim("add_header", {"type": "header", "value": "out"})]
    prims += [assign(F("out", f"r_{n}"), X(e)) for n, _, e in exprs]
    prims.append(set_egress(C(1, 9)))
    p.action("compute", [], prims)
    p.call("ingress", "tbl", "compute")
    p.deparse("out", "ethernet")
    return p


def test_expression_semantics():
    a, b, s, sh = F("m", "a"), F("m", "b"), F("m", "s"), F("m", "sh")
    exprs = [
        ("add_wrap", 16, E("&", E("+", a, b), C(0xFFFF))),       # 0xFFF0 + 0x20 wraps
        ("add_trunc", 16, E("+", a, b)),                          # truncated on write
        ("sub_neg", 16, E("-", b, a)),                            # negative -> two's complement
        ("neg", 16, E("&", E("~", None, a), C(0xFFFF))),
        ("shl_rt", 16, E("&", E("<<", C(1), sh), C(0xFFFF))),   # shift by 70 at runtime
        ("shr", 16, E(">>", a, C(4))),
        ("mul", 32, E("*", a, b)),
        ("div", 16, E("/", a, b)), ("mod", 16, E("%", a, b)),
        ("div0", 16, E("/", a, C(0))),
        ("cond", 8, E("?", C(1), C(2), E(">", a, b))),
        ("b2d", 8, E("b2d", None, E("and", E("d2b", None, a), E("not", None, E("==", a, b))))),
        ("signed", 8, s),
        ("sadd", 16, E("+", s, C(1))),
        ("tcm", 8, E("two_comp_mod", C(-129), C(8))),
        ("usat", 8, E("usat_cast", C(300), C(8))),
        ("sat", 8, E("sat_cast", C(-300), C(8))),
        ("cmp", 8, E("b2d", None, E("<", s, C(0)))),
    ]
    e = make_engine(_expr_program(exprs, signed={"signed", "sat", "tcm"}))
    (_, out), = e.process(0, raw(Ether()))
    got, shift = {}, sum(w for _, w, _ in exprs)
    v = int.from_bytes(out[:shift // 8], "big")
    for name, w, _ in exprs:
        shift -= w
        got[name] = (v >> shift) & ((1 << w) - 1)
    assert got == {
        "add_wrap": 0x0010, "add_trunc": 0x0010, "sub_neg": (0x20 - 0xFFF0) & 0xFFFF,
        "neg": 0x000F, "shl_rt": 0, "shr": 0x0FFF, "mul": 0xFFF0 * 0x20,
        "div": 0xFFF0 // 0x20, "mod": 0xFFF0 % 0x20, "div0": 0, "cond": 1, "b2d": 1,
        "signed": 0xFD, "sadd": 0xFFFE, "tcm": 127, "usat": 255, "sat": 0x80, "cmp": 1,
    }


def test_runtime_data_and_hash_calculation():
    """modify_field_with_hash_based_offset with crc16 / csum16 / identity, as hash()."""
    from softswitch.pipeline.checksum import crc16, csum16
    p = Program()
    p.header("ethernet", ETHERNET)
    p.header("out", [("crc", 16), ("sum", 16), ("ident", 16)])
    p.state("start", [extract("ethernet")])
    inputs = [F("ethernet", "dst"), F("ethernet", "etype")]
    for algo in ("crc16", "csum16", "identity"):
        p.calculation(f"c_{algo}", algo, inputs)
    p.action("hash_it", [("base", 16)], [
        prim("add_header", {"type": "header", "value": "out"}),
        prim("modify_field_with_hash_based_offset", F("out", "crc"), C(0),
             {"type": "calculation", "value": "c_crc16"}, C(65536)),
        prim("modify_field_with_hash_based_offset", F("out", "sum"), P(0),
             {"type": "calculation", "value": "c_csum16"}, C(100)),
        prim("modify_field_with_hash_based_offset", F("out", "ident"), C(0),
             {"type": "calculation", "value": "c_identity"}, C(0)),
        set_egress(C(1, 9))])
    p.table("ingress", "t", [], ["hash_it"], default=("hash_it", [1000]))
    p.deparse("out", "ethernet")
    e = make_engine(p)
    eth = Ether(dst="01:02:03:04:05:06", type=0x0800)
    (_, out), = e.process(0, raw(eth))
    buf = bytes.fromhex("010203040506") + b"\x08\x00"
    assert int.from_bytes(out[0:2], "big") == crc16(buf)
    assert int.from_bytes(out[2:4], "big") == 1000 + csum16(buf) % 100
    assert int.from_bytes(out[4:6], "big") == 0  # size 0 is treated as 1 (BMv2)
    assert crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value


def test_log_msg_and_assert_do_not_stop_the_packet(caplog):
    p = l2_program()
    p.action("noisy", [], [
        prim("log_msg", {"type": "string", "value": "etype={} port={}"},
             {"type": "parameters_vector", "value": [F("ethernet", "etype"),
                                                     F("standard_metadata", "ingress_port")]}),
        prim("assert", E("==", C(1), C(2))), set_egress(C(3, 9))])
    p.call("ingress", "tbl_noisy", "noisy")
    p.init("ingress", "tbl_noisy")
    e = make_engine(p)
    with caplog.at_level("INFO", logger="softswitch.p4"):
        (port, _), = e.process(7, raw(Ether(type=0x1234)))
    assert port == 3
    assert "etype=4660 port=7" in caplog.text
    assert "Assert error" in caplog.text
