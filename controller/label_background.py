"""How much of a flow-label count is the kernel's random labels, not tags.

Linux gives every unmarked IPv6 flow a hash label (net.ipv6.auto_flowlabels=1). Such a label is
uniform over the 20 bits, so it falls into a registered experiment's pattern with probability
1/512 (9 experiment bits) and onto one experiment/activity pair with 1/32768 (9 + 6 bits); the
rest of the space matches no tag and is counted in the *unregistered* bucket. From that bucket
the total random background is

    N = U / (1 - s),    s = the share of the label space the tag entries cover,

and the part of it counted under a tag is N times that tag's share of the space:
1/32768 for an exact experiment/activity entry, (64 - registered activities)/32768 for an
experiment's wildcard entry (which catches its unregistered activities). Unregistered
experiments' own marked traffic is in U too, and is background as far as the registered tags
are concerned. Packets and bytes are estimated alike (random labels are independent of size).

With a trust scope, untrusted labels never reach the tag cells or U, so the estimate is the
background from inside the scope.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

LABEL_EXPERIMENTS = 512     # 9 bits
LABEL_ACTIVITIES = 64       # 6 bits
PAIRS = LABEL_EXPERIMENTS * LABEL_ACTIVITIES


@dataclasses.dataclass(frozen=True)
class TagCover:
    """One tag entry of scitag_policy: an experiment with one activity, or (activity None) the
    experiment's wildcard entry, behind the exact entries of `registered_activities`."""
    experiment: int
    activity: int | None
    registered_activities: int = 0

    @property
    def share(self) -> float:
        """The fraction of uniformly random labels this entry matches."""
        if not 0 <= self.experiment < LABEL_EXPERIMENTS:
            return 0.0   # ids a label cannot carry: no label ever matches
        if self.activity is not None:
            return 1 / PAIRS
        return (LABEL_ACTIVITIES - self.registered_activities) / PAIRS


def covers(rules: Iterable[tuple[int, int | None]]) -> list[TagCover]:
    """TagCover per (experiment, activity|None) entry the controller installs."""
    rules = list(rules)
    exact = {}
    for exp, act in rules:
        if act is not None:
            exact[exp] = exact.get(exp, 0) + 1
    return [TagCover(exp, act, exact.get(exp, 0) if act is None else 0) for exp, act in rules]


def covered_share(tag_covers: Iterable[TagCover]) -> float:
    return min(1.0, sum(c.share for c in tag_covers))


@dataclasses.dataclass(frozen=True)
class Estimate:
    packets: float
    bytes: float


def background(unregistered_packets: int, unregistered_bytes: int,
               tag_covers: list[TagCover]) -> dict[tuple[int, int | None], Estimate]:
    """Estimated random-label packets and bytes per tag entry (experiment, activity|None)."""
    free = 1.0 - covered_share(tag_covers)
    if free <= 0:
        return {(c.experiment, c.activity): Estimate(0.0, 0.0) for c in tag_covers}
    total_packets = unregistered_packets / free
    total_bytes = unregistered_bytes / free
    return {(c.experiment, c.activity): Estimate(total_packets * c.share, total_bytes * c.share)
            for c in tag_covers}
