"""Typed events: what the worker queue carries, and what the controller tells listeners
(controller.hooks). Driver events (FireflyPacket, FlowIdle, ConnectionLost, ...) are in
drivers/base.py; these are the controller's own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.drivers.base import Counts, FlowKey

if TYPE_CHECKING:
    from scitags_core.firefly import FireflyRecord


# ---- on the worker queue ----

@dataclass(frozen=True)
class FireflyReceived:
    """A parsed firefly from the UDP receiver or a packet-in, to apply in order."""
    record: "FireflyRecord"
    sender: str  # source address of the datagram
    via: str  # "udp" | "in-band:<switch>"


# ---- to listeners ----

@dataclass(frozen=True)
class FireflyAccepted:
    """A firefly the protection policy accepted (before it is applied to the switches)."""
    record: "FireflyRecord"
    sender: str
    via: str
    deviations: tuple[str, ...]  # the record's format deviations (scitags_core.firefly.Deviation values)


@dataclass(frozen=True)
class FlowEvent:
    """A firefly flow's life: kind installed | updated | ended.

    reason: start | ongoing | adopted (installed/updated); end | idle-timeout | eviction
    (ended). counts: per switch, what the flow's entries counted so far (final when ended).
    flow: the flow as /api/v1/flows shows it (a copy)."""
    kind: str
    reason: str
    key: FlowKey
    experiment: int
    activity: int
    counts: dict[str, Counts]
    flow: dict
    at: float  # wall clock


@dataclass(frozen=True)
class PollDeltas:
    """One counter poll of one switch: what is new in each cell since the last poll
    (only cells that moved). tags by tag id (cell), buckets by name, flows by key."""
    switch: str
    taken_at: float  # wall clock of the read
    interval_s: float | None  # since the previous poll of this switch (None: first)
    tags: dict[int, Counts] = field(default_factory=dict)
    buckets: dict[str, Counts] = field(default_factory=dict)
    flows: dict[FlowKey, Counts] = field(default_factory=dict)
    # the other per-tag counters, by tag id (controller.tags.TAG_SOURCES)
    exthdr_tags: dict[int, Counts] = field(default_factory=dict)
    untrusted_tags: dict[int, Counts] = field(default_factory=dict)
    confirmed_tags: dict[int, Counts] = field(default_factory=dict)
