"""The placement-mode tables, actions and counters exist under the same P4Runtime names on
every target: from the compiled v1model P4Info, and (until bf-p4c builds p4src/build/tna, when
tests/p4/test_p4info_parity.py compares the P4Infos) from the TNA source's @name annotations
and action signatures."""
from __future__ import annotations

import re

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from tests.conftest import P4_BUILD, ROOT

NAMES = {"table": {"ScitagsIngress.port_mode", "ScitagsIngress.learned_src"},
         "action": {"ScitagsIngress.static_port", "ScitagsIngress.learn_port",
                    "ScitagsIngress.wire_to", "ScitagsIngress.wire_down", "ScitagsIngress.tap_port",
                    "ScitagsIngress.source_known", "ScitagsIngress.learn_source"},
         "counter": {"ScitagsIngress.direction_tag_counter", "ScitagsIngress.wire_down_counter"}}
SOURCES = {t: ROOT / "p4src" / t / "include" / "control" / "forwarding.p4" for t in ("v1model", "tna")}


def annotated(text: str) -> dict[str, str]:
    """@name(".X") -> the declaration that follows (action signature, table or counter)."""
    out = {}
    for m in re.finditer(r'@name\("\.([\w.]+)"\)\s*(?:\n\s*)?([^{;]*)', text):
        out[m.group(1)] = " ".join(m.group(2).split())
    return out


def signature(decl: str) -> str:
    m = re.match(r"action (\w+)\(([^)]*)\)", decl)
    return f"{m.group(1)}({m.group(2)})" if m else decl.split("(")[0]


def test_v1model_p4info_has_the_placement_names():
    info = text_format.Parse((P4_BUILD / "scitags.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    assert NAMES["table"] <= {t.preamble.name for t in info.tables}
    assert NAMES["action"] <= {a.preamble.name for a in info.actions}
    assert NAMES["counter"] <= {c.preamble.name for c in info.counters}
    learned = next(t for t in info.tables if t.preamble.name == "ScitagsIngress.learned_src")
    assert learned.idle_timeout_behavior == p4info_pb2.Table.NOTIFY_CONTROL
    port_mode = next(t for t in info.tables if t.preamble.name == "ScitagsIngress.port_mode")
    assert [(m.name, m.bitwidth) for m in port_mode.match_fields] == [("ingress_port", 9)]


def test_tna_source_declares_the_same_names_and_signatures():
    v1, tna = (annotated(SOURCES[t].read_text()) for t in ("v1model", "tna"))
    wanted = set().union(*NAMES.values())
    assert wanted <= set(v1) and wanted <= set(tna), (wanted - set(v1), wanted - set(tna))
    for name in wanted:
        assert signature(v1[name]) == signature(tna[name]), name
    for text in (SOURCES[t].read_text() for t in SOURCES):  # the same keys by name
        for key in ('@name("ingress_port")', '@name("src_mac")', '@name("dst_mac")'):
            assert key in text
