"""Registry -> tag rules: one counting rule per markable (experiment, activity) and per
experiment (wildcard), each on the stable counter cell the store assigns, mirrored when
--mirror names it. The current registry and rules are replaced together under `lock`.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterable

from controller.drivers.base import TagRule
from controller.store import Store, TotalKey
from p4schema.constants import TAG_COUNTER_SIZE
from scitags_core.registry import Registry

log = logging.getLogger(__name__)

WILDCARD_NAME = "*"
# per-tag counter (CounterSnapshot field) -> the source its totals are kept under: the same
# cells for labels, IPv6 options, untrusted labels (what they would have been) and confirmed
# label bytes (firefly flows that agree: a part of flowlabel, the rest is "claimed")
TAG_SOURCES = {"tags": "flowlabel", "exthdr_tags": "exthdr", "untrusted_tags": "untrusted-label",
               "confirmed_tags": "confirmed"}


@dataclass
class TagMeta:
    rule: TagRule
    experiment_name: str
    activity_name: str
    registry: str

    def total_key(self, switch: str, source: str = "flowlabel") -> TotalKey:
        """source: flowlabel | exthdr | untrusted-label | confirmed (TAG_SOURCES)."""
        r = self.rule
        return TotalKey(switch, source, r.experiment, -1 if r.activity is None else r.activity,
                        self.experiment_name, self.activity_name, self.registry)


class TagBook:
    def __init__(self, store: Store, mirror: Iterable[str] = (),
                 experiment_wildcard: bool = True) -> None:
        """experiment_wildcard: also a rule per experiment (its unregistered activities)."""
        self.store = store
        self.experiment_wildcard = experiment_wildcard
        self.mirror_specs = list(mirror)
        self.lock = threading.RLock()
        self.registry: Registry | None = None
        self.tags: dict[int, TagMeta] = {}
        self.epoch = 0  # bumped when the rules change (a counter read spanning it is skipped)

    def _mirror_wanted(self, exp_name: str, exp_id: int, act_name: str | None, act_id: int | None) -> bool:
        for spec in self.mirror_specs:
            e, _, a = spec.partition("/")
            if e.casefold() not in (exp_name.casefold(), str(exp_id)):
                continue
            if not a or a == "*" or (act_name is not None and a.casefold() in (act_name.casefold(), str(act_id))):
                return True
        return False

    def build(self, registry: Registry) -> dict[int, TagMeta]:
        pairs: list[tuple[int, int | None, str, str]] = []
        for exp in registry.experiments:
            if not exp.markable:
                continue
            if self.experiment_wildcard:
                pairs.append((exp.id, None, exp.name, WILDCARD_NAME))
            for act in exp.activities:
                if act.markable:
                    pairs.append((exp.id, act.id, exp.name, act.name))
        ids = self.store.assign_tag_ids([(e, a) for e, a, _, _ in pairs], TAG_COUNTER_SIZE)
        tags = {}
        for e, a, en, an in pairs:
            rule = TagRule(ids[(e, a)], e, a, self._mirror_wanted(en, e, None if a is None else an, a))
            tags[rule.tag_id] = TagMeta(rule, en, an, registry.identity)
        return tags

    def install(self, registry: Registry, tags: dict[int, TagMeta]) -> None:
        with self.lock:
            self.registry, self.tags = registry, tags
            self.epoch += 1
        log.info("registry %s (%s): %d experiments -> %d tag rules", registry.identity,
                 registry.source, len(registry.experiments), len(tags))

    def rules(self) -> list[TagRule]:
        with self.lock:
            return [m.rule for m in self.tags.values()]

    def total_keys(self, switch: str, source: str = "flowlabel") -> dict[int, TotalKey]:
        with self.lock:
            return {tag_id: m.total_key(switch, source) for tag_id, m in self.tags.items()}

    @property
    def identity(self) -> str:
        reg = self.registry
        return reg.identity if reg is not None else ""
