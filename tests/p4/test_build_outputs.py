"""The committed compiler outputs of every target must match the P4 sources, and the program
must compile cleanly (no warnings) where that target's compiler is installed."""
from __future__ import annotations

import gzip
import json
import sys

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import p4build  # noqa: E402

TOFINO = ["tna", "t2na"]
# Firefly entries (IPv4, IPv6) each chip places: Tofino 1 half of the 262,144 / 131,072 aimed
# at (its stages, not its memory: p4src/README.md, Tofino status)
FIREFLY_ENTRIES = {"tna": (131072, 65536), "t2na": (262144, 131072)}


def compiler_or_skip(target: str) -> str:
    t = p4build.TARGETS[target]
    compiler = t.find_compiler()
    if compiler is None:
        pytest.skip(f"{t.compiler} not installed (PATH, {', '.join(t.compiler_paths)})")
    return compiler


def outputs_or_skip(target: str) -> p4build.Target:
    """A Tofino target whose outputs were never committed is skipped only while its compiler
    is absent too; with the compiler here, missing outputs are a failure (run `make p4`)."""
    t = p4build.TARGETS[target]
    if target in ("tna", "t2na") and not (t.outdir / p4build.STAMP).exists() and t.find_compiler() is None:
        pytest.skip(f"{t.outdir.relative_to(ROOT)} not committed yet and {t.compiler} not installed "
                    f"(PATH, {', '.join(t.compiler_paths)})")
    return t


@pytest.mark.parametrize("target", ["v1model", *TOFINO])
def test_committed_outputs_are_fresh(target):
    t = outputs_or_skip(target)
    recorded = p4build.recorded_hash(t)
    assert recorded is not None, f"{t.outdir.relative_to(ROOT)}/sources.sha256 missing: run `make p4`"
    assert recorded == p4build.sources_hash(t), (
        f"p4src/ changed since the committed {target} outputs were compiled: run `make p4` "
        "(with its compiler installed) and commit p4src/build/")


def test_v1model_outputs_load():
    out = p4build.TARGETS["v1model"].outdir
    program = json.loads((out / "scitags.json").read_text())
    assert program["program"].endswith("scitags.p4")
    info = text_format.Parse((out / "scitags.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    sizes = {t.preamble.name: t.size for t in info.tables}
    assert sizes["ScitagsIngress.firefly_v4"] >= 65536
    assert sizes["ScitagsIngress.firefly_v6"] >= 65536
    counters = {c.preamble.name: c.size for c in info.counters}
    assert counters["ScitagsIngress.tag_counter"] >= 4096


@pytest.mark.parametrize("target", TOFINO)
def test_tofino_outputs_complete(target):
    t = outputs_or_skip(target)
    for rel in (*p4build.TOFINO_KEEP, f"pipe/{t.binary}"):
        path = t.outdir / p4build.stored_name(rel)
        assert path.exists() and path.stat().st_size > 0, f"{path.relative_to(ROOT)} missing"
    bfrt = json.loads((t.outdir / "bfrt.json").read_text())
    names = {tab["name"] for tab in bfrt["tables"]}
    assert any(n.endswith("ScitagsIngress.firefly_v4") for n in names), sorted(names)[:20]
    context = json.loads(gzip.decompress((t.outdir / p4build.stored_name("pipe/context.json")).read_bytes()))
    assert context["program_name"] == "scitags"
    res = json.loads((t.outdir / "resources.json").read_text())
    assert 0 < res["stages_used"] <= res["stages_available"]
    sizes = {tab["name"]: tab["entries"] for tab in res["tables"]}
    v4, v6 = FIREFLY_ENTRIES[target]
    assert sizes["ScitagsIngress.firefly_v4"] >= v4
    assert sizes["ScitagsIngress.firefly_v6"] >= v6


def _compile_clean(target, tmp_path):
    t = p4build.TARGETS[target]
    result = p4build.compile_target(t, compiler_or_skip(target), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
    return t


def test_v1model_compiles_without_warnings_and_matches(tmp_path):
    t = _compile_clean("v1model", tmp_path)
    ours = json.loads((tmp_path / "scitags.json").read_text())
    committed = json.loads((t.outdir / "scitags.json").read_text())
    ours.pop("program", None), committed.pop("program", None)
    assert ours == committed, "committed BMv2 JSON differs from a fresh compile: run `make p4`"


@pytest.mark.parametrize("target", TOFINO)
def test_tofino_compiles_without_warnings_and_matches(target, tmp_path):
    t = _compile_clean(target, tmp_path)
    # bf-p4c does not repeat its binary or the ids of its own snapshot tables byte for byte;
    # the P4Info, the program's BfRt tables and the resource summary it does.
    for rel in ("scitags.p4info.txtpb", "resources.json"):
        assert (tmp_path / rel).read_bytes() == (t.outdir / rel).read_bytes(), (
            f"committed {target} {rel} differs from a fresh compile: run `make p4`")

    def program_tables(folder):
        bfrt = json.loads((folder / "bfrt.json").read_text())
        return sorted(json.dumps(tab, sort_keys=True) for tab in bfrt["tables"] if ".Scitags" in tab["name"])

    assert program_tables(tmp_path) == program_tables(t.outdir), (
        f"committed {target} bfrt.json tables differ from a fresh compile: run `make p4`")
