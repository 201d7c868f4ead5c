"""The P4Info of every target names the same tables, keys, actions, counters and packet-in/out
fields as v1model's, so the controller drives all of them with one schema. Every difference is
listed; the only ones allowed are those p4src/README.md documents (section "Differences between
the targets' P4Info"), each with its reason."""
from __future__ import annotations

import re

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from tests.conftest import ROOT

BUILD = ROOT / "p4src" / "build"
README = ROOT / "p4src" / "README.md"
OTHER_TARGETS = ["tna", "t2na"]


def load(target: str) -> p4info_pb2.P4Info:
    path = BUILD / target / "scitags.p4info.txtpb"
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} not built (make p4 with bf-p4c installed)")
    return text_format.Parse(path.read_text(), p4info_pb2.P4Info())


def describe(info: p4info_pb2.P4Info) -> dict[str, object]:
    """Every property the controller relies on, keyed by a path such as
    `table ScitagsIngress.scitag_policy/key flow_label/bitwidth`."""
    actions = {a.preamble.id: a.preamble.name for a in info.actions}
    props: dict[str, object] = {}
    for t in info.tables:
        base = f"table {t.preamble.name}"
        props[f"{base}/size"] = t.size
        props[f"{base}/idle_timeout"] = p4info_pb2.Table.IdleTimeoutBehavior.Name(t.idle_timeout_behavior)
        props[f"{base}/actions"] = sorted(
            (actions[r.id], p4info_pb2.ActionRef.Scope.Name(r.scope)) for r in t.action_refs)
        props[f"{base}/const_default_action"] = actions.get(t.const_default_action_id, "")
        props[f"{base}/direct_counters"] = sorted(
            d.preamble.name for d in info.direct_counters if d.direct_table_id == t.preamble.id)
        for m in t.match_fields:
            props[f"{base}/key {m.id} {m.name}"] = (
                m.bitwidth, p4info_pb2.MatchField.MatchType.Name(m.match_type))
    for a in info.actions:
        props[f"action {a.preamble.name}/params"] = [(p.id, p.name, p.bitwidth) for p in a.params]
    for c in info.counters:
        props[f"counter {c.preamble.name}/size"] = c.size
        props[f"counter {c.preamble.name}/unit"] = p4info_pb2.CounterSpec.Unit.Name(c.spec.unit)
    for d in info.direct_counters:
        props[f"direct_counter {d.preamble.name}/unit"] = p4info_pb2.CounterSpec.Unit.Name(d.spec.unit)
    for m in info.controller_packet_metadata:
        props[f"packet_metadata {m.preamble.name}/fields"] = [
            (f.id, f.name, f.bitwidth) for f in m.metadata]
    return props


def differences(a: p4info_pb2.P4Info, b: p4info_pb2.P4Info) -> dict[str, tuple[object, object]]:
    pa, pb = describe(a), describe(b)
    return {k: (pa.get(k), pb.get(k)) for k in sorted(pa.keys() | pb.keys()) if pa.get(k) != pb.get(k)}


def allowed_differences() -> set[tuple[str, str]]:
    """(target, property path) pairs from the README's list: lines `- tna: <path> -- reason`."""
    text = README.read_text()
    section = text.split("## Differences between the targets' P4Info", 1)[1].split("\n## ", 1)[0]
    pairs = set()
    for line in section.splitlines():
        m = re.match(r"- `(\w+)`: `([^`]+)` -- \S", line.strip())
        if m:
            pairs.add((m.group(1), m.group(2)))
    return pairs


def test_readme_lists_differences_with_reasons():
    assert allowed_differences(), "p4src/README.md lists no allowed P4Info differences"


@pytest.mark.parametrize("target", OTHER_TARGETS)
def test_p4info_matches_v1model(target):
    diff = differences(load("v1model"), load(target))
    allowed = {path for t, path in allowed_differences() if t == target}
    unexplained = {k: v for k, v in diff.items() if k not in allowed}
    assert not unexplained, "P4Info differences not documented in p4src/README.md:\n" + "\n".join(
        f"  {k}: v1model={va!r} {target}={vb!r}" for k, (va, vb) in unexplained.items())
    # A documented difference that no longer exists is stale documentation.
    assert allowed <= set(diff), f"README lists differences that are gone: {sorted(allowed - set(diff))}"


def test_names_the_controller_uses_exist_on_every_target():
    built = [t for t in OTHER_TARGETS if (BUILD / t / "scitags.p4info.txtpb").exists()]
    if not built:
        pytest.skip("no Tofino P4Info built (make p4 with bf-p4c installed)")
    for target in ["v1model", *built]:
        info = load(target)
        tables = {t.preamble.name for t in info.tables}
        assert {"ScitagsIngress.l2_forward", "ScitagsIngress.scitag_policy", "ScitagsIngress.exthdr_policy",
                "ScitagsIngress.label_trust", "ScitagsIngress.firefly_v4",
                "ScitagsIngress.firefly_v6"} <= tables, (target, tables)
        counters = {c.preamble.name for c in info.counters}
        assert {"ScitagsIngress.tag_counter", "ScitagsIngress.untrusted_tag_counter",
                "ScitagsIngress.exthdr_tag_counter", "ScitagsIngress.bucket_counter",
                "ScitagsIngress.firefly_bucket_counter",
                "ScitagsIngress.confirmed_tag_counter"} <= counters, (target, counters)
        assert {m.preamble.name for m in info.controller_packet_metadata} == {"packet_in", "packet_out"}
