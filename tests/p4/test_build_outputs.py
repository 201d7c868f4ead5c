"""The committed compiler outputs must match the P4 sources, and the program must compile
cleanly (no warnings) where p4c is installed."""
from __future__ import annotations

import json
import subprocess
import sys

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from tests.conftest import P4_BUILD, ROOT, needs_p4c

sys.path.insert(0, str(ROOT / "tools"))
import p4build  # noqa: E402


def test_committed_outputs_are_fresh():
    stamp = P4_BUILD / "sources.sha256"
    assert stamp.exists(), "p4src/build/v1model/sources.sha256 missing: run `make p4`"
    recorded = stamp.read_text().split()[0]
    assert recorded == p4build.sources_hash(), (
        "p4src/ changed since the committed outputs were compiled: run `make p4` and commit "
        "p4src/build/")


def test_outputs_load():
    program = json.loads((P4_BUILD / "scitags.json").read_text())
    assert program["program"].endswith("scitags.p4")
    info = text_format.Parse((P4_BUILD / "scitags.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    tables = {t.preamble.name for t in info.tables}
    assert {"ScitagsIngress.l2_forward", "ScitagsIngress.scitag_policy",
            "ScitagsIngress.firefly_v4", "ScitagsIngress.firefly_v6"} <= tables
    sizes = {t.preamble.name: t.size for t in info.tables}
    assert sizes["ScitagsIngress.firefly_v4"] >= 65536
    assert sizes["ScitagsIngress.firefly_v6"] >= 65536
    counters = {c.preamble.name: c.size for c in info.counters}
    assert counters["ScitagsIngress.tag_counter"] >= 4096
    metadata = {m.preamble.name for m in info.controller_packet_metadata}
    assert metadata == {"packet_in", "packet_out"}


@needs_p4c
def test_compiles_without_warnings(tmp_path):
    result = p4build.compile_v1model(p4build.find_p4c(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stderr
    ours = json.loads((tmp_path / "scitags.json").read_text())
    committed = json.loads((P4_BUILD / "scitags.json").read_text())
    ours.pop("program", None), committed.pop("program", None)
    assert ours == committed, "committed BMv2 JSON differs from a fresh compile: run `make p4`"
