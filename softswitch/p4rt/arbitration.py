"""Client arbitration: primary/backup per (device id, role), as PI's pi_server does.

The highest election id is primary. A new connection that becomes primary makes every
client of its group hear the news; a backup only hears about itself. When the primary
leaves, everyone left is told who the new primary is. Writes must carry the primary's
election id; with no client connected, writes without an election id are accepted (PI
allows that, handy for debugging), and writes with one are refused.
"""
from __future__ import annotations

import itertools
import queue
import threading
from typing import Any

from p4.v1 import p4runtime_pb2 as p4r

from .status import (ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, OK,
                     PERMISSION_DENIED, RESOURCE_EXHAUSTED, P4RTError)

MAX_CONNECTIONS = 16        # per device, as PI
CLOSE = object()            # outbox sentinel: end the stream with OK


class StreamAbort(Exception):
    """Ends a StreamChannel with a status (google.rpc code)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def u128(msg: p4r.Uint128) -> int:
    return (msg.high << 64) | msg.low


def role_key(name: str, legacy_id: int = 0) -> str:
    return name if name or not legacy_id else f"id:{legacy_id}"


class Connection:
    """One StreamChannel: its arbitration state and its outgoing queue."""

    _ids = itertools.count(1)

    def __init__(self, packet_in_backlog: int = 4096) -> None:
        self.id = next(self._ids)
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.device_id: int | None = None
        self.role = ""
        self.role_msg: p4r.Role | None = None
        self.election_id = 0
        self.closed = False
        self.backlog_limit = packet_in_backlog
        self.dropped = 0

    def send(self, msg: Any) -> None:
        if not self.closed:
            self.outbox.put(msg)

    def send_droppable(self, msg: Any) -> bool:
        """Queue a packet-in / notification unless the client is too far behind."""
        if self.closed:
            return False
        if self.outbox.qsize() >= self.backlog_limit:
            self.dropped += 1
            return False
        self.outbox.put(msg)
        return True

    def close(self, reason: Any = CLOSE) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put(reason)


class Arbiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (device id, role) -> connections, highest election id first
        self._groups: dict[tuple[int, str], list[Connection]] = {}

    def _notify(self, conn: Connection, group: list[Connection]) -> None:
        primary = group[0]
        msg = p4r.StreamMessageResponse()
        arb = msg.arbitration
        arb.device_id = conn.device_id or 0
        if conn.role_msg is not None:
            arb.role.CopyFrom(conn.role_msg)
        arb.election_id.high = primary.election_id >> 64
        arb.election_id.low = primary.election_id & ((1 << 64) - 1)
        if conn is primary:
            arb.status.code = OK
            arb.status.message = "Is primary"
        else:
            arb.status.code = ALREADY_EXISTS
            arb.status.message = "Is backup"
        conn.send(msg)

    def _insert(self, group: list[Connection], conn: Connection) -> bool:
        """Insert by election id; False when another connection has the same one."""
        for i, other in enumerate(group):
            if other.election_id == conn.election_id:
                return False
            if other.election_id < conn.election_id:
                group.insert(i, conn)
                return True
        group.append(conn)
        return True

    def arbitrate(self, conn: Connection, update: p4r.MasterArbitrationUpdate) -> None:
        device_id = update.device_id
        role = role_key(update.role.name, update.role.id)
        election_id = u128(update.election_id)
        with self._lock:
            if conn.device_id is None:
                if sum(len(g) for (d, _), g in self._groups.items() if d == device_id) \
                        >= MAX_CONNECTIONS:
                    raise StreamAbort(RESOURCE_EXHAUSTED, "Too many connections")
                group = self._groups.setdefault((device_id, role), [])
                conn.election_id = election_id
                if not self._insert(group, conn):
                    raise StreamAbort(INVALID_ARGUMENT, "Election id already exists")
                conn.device_id, conn.role = device_id, role
                if update.HasField("role"):
                    conn.role_msg = p4r.Role()
                    conn.role_msg.CopyFrom(update.role)
                if group[0] is conn:
                    for c in group:
                        self._notify(c, group)
                else:
                    self._notify(conn, group)
                return
            if conn.device_id != device_id:
                raise StreamAbort(FAILED_PRECONDITION, "Invalid device id")
            if role != conn.role:
                raise StreamAbort(FAILED_PRECONDITION, "Role cannot change on a stream")
            if election_id == conn.election_id:
                return          # PI sends nothing when the election id does not change
            group = self._groups[(device_id, role)]
            was_primary = group[0] is conn
            group.remove(conn)
            old = conn.election_id
            conn.election_id = election_id
            if not self._insert(group, conn):
                conn.election_id = old
                self._insert(group, conn)
                raise StreamAbort(INVALID_ARGUMENT, "New election id already exists")
            if (group[0] is conn) != was_primary:
                for c in group:
                    self._notify(c, group)
            else:
                self._notify(conn, group)

    def remove(self, conn: Connection) -> None:
        with self._lock:
            if conn.device_id is None:
                return
            key = (conn.device_id, conn.role)
            group = self._groups.get(key)
            if not group or conn not in group:
                return
            was_primary = group[0] is conn
            group.remove(conn)
            if not group:
                del self._groups[key]
            elif was_primary:
                for c in group:
                    self._notify(c, group)

    def is_primary(self, conn: Connection) -> bool:
        with self._lock:
            if conn.device_id is None:
                return False
            group = self._groups.get((conn.device_id, conn.role))
            return bool(group) and group[0] is conn

    def primaries(self, device_id: int) -> list[Connection]:
        with self._lock:
            return [g[0] for (d, _), g in self._groups.items() if d == device_id and g]

    def check_write(self, device_id: int, role: str, has_election_id: bool,
                    election_id: int) -> None:
        with self._lock:
            group = self._groups.get((device_id, role))
            if not group:
                if has_election_id:
                    raise P4RTError(PERMISSION_DENIED, "Not primary: no client has arbitrated "
                                                       "for this device and role")
                return
            if group[0].election_id != election_id:
                raise P4RTError(PERMISSION_DENIED,
                                f"Not primary: election id {election_id} is not the primary's")

    def connection_count(self, device_id: int) -> int:
        with self._lock:
            return sum(len(g) for (d, _), g in self._groups.items() if d == device_id)
