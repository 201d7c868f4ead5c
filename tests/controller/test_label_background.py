"""The background estimate on a known mix: random (kernel) labels drawn uniformly, mixed with
marked traffic, classified the way scitag_policy does (exact pairs before the experiment's
wildcard), then estimated from the unregistered count alone."""
from __future__ import annotations

import json
import random

from controller.label_background import LABEL_EXPERIMENTS, PAIRS, TagCover, background, covers
from scitags_core import flowlabel
from tests.conftest import ROOT

# The registry copy the project ships as its offline default.
REGISTRY = json.loads(next((ROOT / "scitags_core" / "data").glob("registry-*.json")).read_text())


def registry_rules() -> list[tuple[int, int | None]]:
    """The tag entries the controller installs: each activity, then the experiment's wildcard."""
    rules: list[tuple[int, int | None]] = []
    for e in REGISTRY["experiments"]:
        rules += [(e["expId"], a["activityId"]) for a in e["activities"] if a["activityId"] < 64]
        rules.append((e["expId"], None))
    return rules


def classify(label: int, rules: set) -> tuple[int, int | None] | None:
    f = flowlabel.decode_label(label)
    if (f.experiment, f.activity) in rules:
        return (f.experiment, f.activity)
    if (f.experiment, None) in rules:
        return (f.experiment, None)
    return None


def test_shares_add_up():
    assert TagCover(3, 14).share == 1 / PAIRS
    assert TagCover(3, None, registered_activities=4).share == 60 / PAIRS
    assert TagCover(600, None).share == 0.0
    # one experiment: its exact entries and its wildcard cover exactly 1/512 together
    cs = covers([(3, 1), (3, 2), (3, None)])
    assert abs(sum(c.share for c in cs) - 1 / LABEL_EXPERIMENTS) < 1e-12


def test_estimate_within_20_percent_on_a_real_mix():
    rng = random.Random(20261201)
    rules = registry_rules()
    ruleset = set(rules)
    counted = {r: [0, 0] for r in rules}       # what the switch would count per tag entry
    injected = {r: [0, 0] for r in rules}      # of which random background
    unregistered = [0, 0]
    for flow in range(10_000):                 # 10,000 random-label flows, a few packets each
        label = rng.getrandbits(20) or 1
        for _ in range(rng.randint(1, 5)):
            size = rng.choice((86, 1514, 9014))
            hit = classify(label, ruleset)
            if hit is None:
                unregistered[0] += 1
                unregistered[1] += size
            else:
                counted[hit][0] += 1
                counted[hit][1] += size
                injected[hit][0] += 1
                injected[hit][1] += size
    for exp, act in [(3, 2), (2, 2), (2, None)]:   # marked traffic on top: never background
        if (exp, act) in ruleset:
            counted[(exp, act)][0] += 50_000
    est = background(unregistered[0], unregistered[1], covers(rules))
    by_exp_est: dict[int, float] = {}
    by_exp_true: dict[int, int] = {}
    for (exp, act), e in est.items():
        by_exp_est[exp] = by_exp_est.get(exp, 0.0) + e.bytes
        by_exp_true[exp] = by_exp_true.get(exp, 0) + injected[(exp, act)][1]
    total_est, total_true = sum(by_exp_est.values()), sum(by_exp_true.values())
    assert total_true > 0
    assert abs(total_est - total_true) / total_true < 0.20, (total_est, total_true)
    packets_est = sum(e.packets for e in est.values())
    packets_true = sum(v[0] for v in injected.values())
    assert abs(packets_est - packets_true) / packets_true < 0.20, (packets_est, packets_true)


def test_nothing_unregistered_means_no_background():
    est = background(0, 0, covers([(3, 14), (3, None)]))
    assert all(e.packets == 0 and e.bytes == 0 for e in est.values())
