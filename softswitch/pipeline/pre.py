"""Packet replication engine: multicast groups and clone (mirror) sessions.

Replicas are emitted as BMv2's PRE emits them once PI has configured it: one
node per replication id (in the order the ids first appear), and within a node
the ports in ascending order.
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_MIRROR_SESSION = (1 << 15) - 1
MAX_MGID = (1 << 16) - 1


def _order(replicas: list[tuple[int, int]], what: str) -> tuple[tuple[int, int], ...]:
    nodes: dict[int, set[int]] = {}
    for item in replicas:
        try:
            port, rid = int(item[0]), int(item[1])
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"{what}: replica {item!r} is not (port, id)") from None
        if not 0 <= port < (1 << 16):
            raise ValueError(f"{what}: port {port} out of range")
        if not 0 <= rid < (1 << 16):
            raise ValueError(f"{what}: replication id {rid} out of range")
        nodes.setdefault(rid, set()).add(port)
    return tuple((port, rid) for rid, ports in nodes.items() for port in sorted(ports))


@dataclass(frozen=True)
class CloneSession:
    replicas: tuple[tuple[int, int], ...]  # (egress port, instance -> egress_rid)
    truncate: int  # bytes kept of each copy; 0 keeps the whole packet


class ReplicationEngine:
    def __init__(self) -> None:
        self.groups: dict[int, tuple[tuple[int, int], ...]] = {}
        self.sessions: dict[int, CloneSession] = {}

    def mc_group_set(self, group_id: int, replicas: list[tuple[int, int]]) -> None:
        if not 1 <= group_id <= MAX_MGID:
            raise ValueError(f"multicast group id {group_id} outside 1..{MAX_MGID}")
        self.groups[group_id] = _order(replicas, f"multicast group {group_id}")

    def mc_group_delete(self, group_id: int) -> None:
        if self.groups.pop(group_id, None) is None:
            raise KeyError(f"no multicast group {group_id}")

    def clone_session_set(self, session_id: int, replicas: list[tuple[int, int]],
                          packet_length_bytes: int = 0) -> None:
        if not 0 <= session_id <= MAX_MIRROR_SESSION:
            raise ValueError(f"clone session id {session_id} outside 0..{MAX_MIRROR_SESSION}")
        if packet_length_bytes < 0:
            raise ValueError("packet_length_bytes must be >= 0")
        self.sessions[session_id] = CloneSession(
            _order(replicas, f"clone session {session_id}"), int(packet_length_bytes))

    def clone_session_delete(self, session_id: int) -> None:
        if self.sessions.pop(session_id, None) is None:
            raise KeyError(f"no clone session {session_id}")

    def reset(self) -> None:
        self.groups.clear()
        self.sessions.clear()
