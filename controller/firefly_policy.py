"""Which fireflies may become switch state: protection against floods and spoofing.

Fireflies are unauthenticated UDP (SPEC.md), so before one turns into a table entry:
- its sender must be inside an accepted prefix (config `firefly.accept_sources`; empty
  list = any sender),
- its sender must be one of the flow's two endpoints (config `firefly.require_endpoint`,
  default on: hosts announce their own flows; a third party cannot plant entries),
- each sender gets a token bucket (`rate_per_source` per second, `burst`),
- installed flows are capped at `max_flows`. Policy when full (`when_full`):
  "refuse-new" (default: entries already installed keep being refreshed, new flows are
  refused until some end or time out) or "evict-oldest" (the flow refreshed longest ago
  is removed to make room).
Every refusal is counted under its reason and the last few are kept for display.
"""
from __future__ import annotations

import collections
import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

REASONS = ("source-not-accepted", "sender-not-endpoint", "rate-limited", "table-full",
           "malformed", "not-markable", "queue-full", "switch-error")
WHEN_FULL = ("refuse-new", "evict-oldest")
MAX_TRACKED_SOURCES = 100_000  # spoofed senders must not grow memory without bound


@dataclass
class PolicyConfig:
    accept_sources: list[str] = field(default_factory=list)
    require_endpoint: bool = True
    rate_per_source: float = 50.0
    burst: float = 100.0
    max_flows: int = 60000
    when_full: str = "refuse-new"
    idle_timeout_s: float = 120.0

    def validate(self) -> None:
        for p in self.accept_sources:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError as exc:
                raise ValueError(f"firefly.accept_sources: {exc}") from None
        if self.when_full not in WHEN_FULL:
            raise ValueError(f"firefly.when_full {self.when_full!r} is not one of {', '.join(WHEN_FULL)}")
        if self.rate_per_source <= 0 or self.burst < 1 or self.max_flows < 1 or self.idle_timeout_s <= 0:
            raise ValueError("firefly rate_per_source, burst, max_flows and idle_timeout_s must be positive")


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str | None = None  # one of REASONS when refused
    evict: object | None = None  # key of a flow to remove first (evict-oldest)


class FireflyPolicy:
    def __init__(self, config: PolicyConfig) -> None:
        config.validate()
        self.config = config
        self.networks = [ipaddress.ip_network(p, strict=False) for p in config.accept_sources]
        self._buckets: collections.OrderedDict[str, list[float]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.refused: collections.Counter[str] = collections.Counter({r: 0 for r in REASONS})
        self.accepted = 0
        self.recent_refusals: collections.deque[dict] = collections.deque(maxlen=50)

    def refuse(self, reason: str, sender: str | None = None, detail: str = "") -> Decision:
        with self._lock:
            self.refused[reason] += 1
            self.recent_refusals.append({"time": time.time(), "reason": reason,
                                         "sender": sender, "detail": detail})
        return Decision(False, reason)

    def source_allowed(self, sender: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(sender)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in n for n in self.networks)

    def _take_token(self, sender: str, now: float) -> bool:
        with self._lock:
            bucket = self._buckets.get(sender)
            if bucket is None:
                bucket = [self.config.burst, now]
                self._buckets[sender] = bucket
                if len(self._buckets) > MAX_TRACKED_SOURCES:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(sender)
            tokens = min(self.config.burst, bucket[0] + (now - bucket[1]) * self.config.rate_per_source)
            bucket[1] = now
            if tokens < 1:
                bucket[0] = tokens
                return False
            bucket[0] = tokens - 1
            return True

    def check_sender(self, sender: str, endpoints: Iterable[str]) -> Decision:
        """Source prefix and endpoint checks only (an `end` firefly creates no state)."""
        if not self.source_allowed(sender):
            return self.refuse("source-not-accepted", sender)
        if self.config.require_endpoint and _norm(sender) not in {_norm(e) for e in endpoints}:
            return self.refuse("sender-not-endpoint", sender,
                               f"sender is neither endpoint {' / '.join(map(str, endpoints))}")
        return Decision(True)

    def check(self, sender: str, endpoints: Iterable[str], is_new_flow: bool,
              installed: int, oldest: object | None = None, now: float | None = None) -> Decision:
        """Decide on one parsed firefly from `sender` about a flow between `endpoints`."""
        now = time.monotonic() if now is None else now
        first = self.check_sender(sender, endpoints)
        if not first.accepted:
            return first
        if not self._take_token(sender, now):
            return self.refuse("rate-limited", sender)
        if is_new_flow and installed >= self.config.max_flows:
            if self.config.when_full == "evict-oldest" and oldest is not None:
                with self._lock:
                    self.accepted += 1
                return Decision(True, None, oldest)
            return self.refuse("table-full", sender, f"{installed} flows installed (max {self.config.max_flows})")
        with self._lock:
            self.accepted += 1
        return Decision(True)

    def snapshot(self) -> dict:
        with self._lock:
            return {"accepted": self.accepted, "refused": dict(self.refused),
                    "recent_refusals": list(self.recent_refusals),
                    "policy": {"accept_sources": self.config.accept_sources,
                               "require_endpoint": self.config.require_endpoint,
                               "rate_per_source": self.config.rate_per_source,
                               "burst": self.config.burst, "max_flows": self.config.max_flows,
                               "when_full": self.config.when_full}}


def _norm(addr: object) -> str:
    try:
        ip = ipaddress.ip_address(str(addr))
    except ValueError:
        return str(addr)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)
