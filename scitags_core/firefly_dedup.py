"""Apply a firefly once: the same message seen again within a short window is a duplicate.

Why: a firefly crossing several switches is punted by each of them, and also reaches the
UDP receiver; some senders repeat a message. XRootD's two messages per event (one per
direction of the TCP connection, addresses and ports swapped) are NOT duplicates: the key
holds the flow in its direction, so both are applied and both directions are counted.

The key is the record's content (state, directed 5-tuple, ids, times, usage,
application), never a hash alone: a crafted collision must not make a real firefly look
like a duplicate. Memory is bounded by `max_entries` (oldest forgotten first).
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Hashable

from scitags_core.firefly import FireflyRecord, IPAddress

DEFAULT_WINDOW_S = 2.0
DEFAULT_MAX_ENTRIES = 65_536


def directed_flow(protocol: str, src: IPAddress, src_port: int, dst: IPAddress, dst_port: int) -> tuple:
    """A flow in its direction as a cheap dict key (addresses as integers: ipaddress objects
    hash slowly, and tuples do not keep their hash)."""
    return protocol, src.version, int(src), src_port, int(dst), dst_port


def message_key(record: FireflyRecord) -> Hashable:
    """What makes two fireflies "the same message" (the syslog header is not part of it)."""
    return (record.state, directed_flow(record.protocol, record.src_ip, record.src_port, record.dst_ip,
                                        record.dst_port),
            record.experiment_id, record.activity_id, record.start_time, record.end_time,
            record.current_time, record.usage_received, record.usage_sent, record.application)


class FireflyDeduplicator:
    """`is_duplicate(record)` is True for a message seen within the last `window_s` seconds."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0 or max_entries < 1:
            raise ValueError("dedup window_s and max_entries must be positive")
        self.window_s, self.max_entries, self._clock = window_s, max_entries, clock
        self._seen: collections.OrderedDict[Hashable, float] = collections.OrderedDict()
        self._lock = threading.Lock()  # in-band (worker) and UDP paths may both call
        self.duplicates = 0
        self.forgotten_early = 0  # dropped from the window because max_entries was reached

    def is_duplicate(self, record: FireflyRecord, now: float | None = None) -> bool:
        key = message_key(record)
        now = self._clock() if now is None else now
        with self._lock:
            seen = self._seen
            horizon = now - self.window_s
            while seen:
                oldest = next(iter(seen.values()))
                if oldest >= horizon:
                    break
                seen.popitem(last=False)
            first_seen = seen.get(key)
            if first_seen is not None:
                self.duplicates += 1
                return True  # the window runs from the first copy: repeats cannot extend it
            seen[key] = now
            if len(seen) > self.max_entries:
                seen.popitem(last=False)
                self.forgotten_early += 1
            return False

    def __len__(self) -> int:
        return len(self._seen)

    def snapshot(self) -> dict[str, float | int]:
        return {"window_s": self.window_s, "tracked": len(self._seen), "max_entries": self.max_entries,
                "duplicates": self.duplicates, "forgotten_early": self.forgotten_early}
