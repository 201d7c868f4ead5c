"""Packet replication engine: multicast groups and clone sessions (PI's PreMcMgr and
PreCloneMgr checks and codes), programmed into the engine."""
from __future__ import annotations

from typing import Any, Callable

from p4.v1 import p4runtime_pb2 as p4r

from .status import (ALREADY_EXISTS, INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE, UNIMPLEMENTED,
                     UNKNOWN, P4RTError)
from .tables import DELETE, INSERT, MODIFY

FIRST_RESERVED_GROUP_ID = 1 << 15     # PI keeps [2^15, ...) for clone sessions
MIN_CLONE_SESSION_ID, MAX_CLONE_SESSION_ID = 1, 32768

# A replica as PI keeps it: (instance, port kind field number, port, byte length of `port`).
Replica = tuple[int, int, int, int]
_EGRESS_PORT, _PORT = 1, 3


def _replica_port(r: p4r.Replica) -> tuple[int, int, int]:
    kind = r.WhichOneof("port_kind")
    if kind == "egress_port":
        return _EGRESS_PORT, r.egress_port, 0
    if kind == "port":
        raw = r.port
        if not raw:
            raise P4RTError(INVALID_ARGUMENT, "Port must not be the empty string")
        if len(raw) > 4:
            raise P4RTError(UNIMPLEMENTED,
                            f"Got port of {len(raw)} bytes, but only 4 bytes are supported")
        port = int.from_bytes(raw, "big")
        if port == 0 or port >= 1 << 31:     # PI reads it as a signed 32-bit port
            raise P4RTError(INVALID_ARGUMENT, "Port must be non-negative.")
        return _PORT, port, len(raw)
    raise P4RTError(INVALID_ARGUMENT, "Missing port in multicast group replica")


def _replicas(msgs: Any) -> list[Replica]:
    seen: set[Replica] = set()
    for r in msgs:
        kind, port, nbytes = _replica_port(r)
        rep = (r.instance, kind, port, nbytes)
        if rep in seen:
            raise P4RTError(INVALID_ARGUMENT, "Duplicate replica in multicast group")
        seen.add(rep)
    return sorted(seen)      # PI reads them back ordered by instance, then port


def _fill_replicas(replicas: list[Replica], out: Any) -> None:
    for instance, kind, port, nbytes in replicas:
        r = out.add(instance=instance)
        if kind == _EGRESS_PORT:
            r.egress_port = port
        else:
            r.port = port.to_bytes(nbytes, "big")


def _engine_replicas(replicas: list[Replica]) -> list[tuple[int, int]]:
    return [(port, instance) for instance, _, port, _ in replicas]


class PacketReplication:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.groups: dict[int, list[Replica]] = {}
        self.sessions: dict[int, tuple[int, int, list[Replica]]] = {}   # cos, length, replicas

    def write(self, update_type: int, pre: p4r.PacketReplicationEngineEntry) -> None:
        kind = pre.WhichOneof("type")
        if kind == "multicast_group_entry":
            self._mc_write(update_type, pre.multicast_group_entry)
        elif kind == "clone_session_entry":
            self._clone_write(update_type, pre.clone_session_entry)
        else:
            raise P4RTError(INVALID_ARGUMENT, "Invalid PRE operation")

    def read(self, pre: p4r.PacketReplicationEngineEntry,
             add_entity: Callable[[], p4r.Entity]) -> None:
        kind = pre.WhichOneof("type")
        if kind == "multicast_group_entry":
            gid = pre.multicast_group_entry.multicast_group_id
            if gid >= FIRST_RESERVED_GROUP_ID:
                raise P4RTError(OUT_OF_RANGE, "Group id value is too high")
            if gid == 0:
                ids = sorted(self.groups)
            elif gid in self.groups:
                ids = [gid]
            else:
                raise P4RTError(NOT_FOUND, "Multicast group does not exist")
            for g in ids:
                out = add_entity().packet_replication_engine_entry.multicast_group_entry
                out.multicast_group_id = g
                _fill_replicas(self.groups[g], out.replicas)
        elif kind == "clone_session_entry":
            sid = pre.clone_session_entry.session_id
            if sid == 0:
                ids = sorted(self.sessions)
            elif sid in self.sessions:
                ids = [sid]
            else:
                raise P4RTError(NOT_FOUND, "Clone session id does not exist")
            for s in ids:
                cos, length, replicas = self.sessions[s]
                out = add_entity().packet_replication_engine_entry.clone_session_entry
                out.session_id = s
                out.class_of_service = cos
                out.packet_length_bytes = length
                _fill_replicas(replicas, out.replicas)
        else:
            raise P4RTError(INVALID_ARGUMENT, "Invalid PRE operation")

    def _mc_write(self, update_type: int, mc: p4r.MulticastGroupEntry) -> None:
        gid = mc.multicast_group_id
        if gid == 0:
            raise P4RTError(INVALID_ARGUMENT, "0 is not a valid group id")
        if gid >= FIRST_RESERVED_GROUP_ID:
            raise P4RTError(OUT_OF_RANGE, "Group id value is too high")
        if update_type == INSERT:
            if gid in self.groups:
                raise P4RTError(ALREADY_EXISTS, "Multicast group already exists")
            replicas = _replicas(mc.replicas)
            self.engine.mc_group_set(gid, _engine_replicas(replicas))
            self.groups[gid] = replicas
        elif update_type == MODIFY:
            if gid not in self.groups:
                raise P4RTError(NOT_FOUND, "Multicast group does not exist")
            replicas = _replicas(mc.replicas)
            self.engine.mc_group_set(gid, _engine_replicas(replicas))
            self.groups[gid] = replicas
        elif update_type == DELETE:
            if gid not in self.groups:
                raise P4RTError(NOT_FOUND, "Multicast group does not exist")
            self.engine.mc_group_delete(gid)
            del self.groups[gid]
        elif update_type == p4r.Update.UNSPECIFIED:
            raise P4RTError(INVALID_ARGUMENT, "Update type is not set")
        else:
            raise P4RTError(INVALID_ARGUMENT, "Invalid update type")

    def _clone_write(self, update_type: int, cs: p4r.CloneSessionEntry) -> None:
        sid = cs.session_id
        if sid == 0:
            raise P4RTError(INVALID_ARGUMENT, "0 is not a valid session id")
        if update_type == p4r.Update.UNSPECIFIED:
            raise P4RTError(INVALID_ARGUMENT, "Update type is not set")
        if update_type not in (INSERT, MODIFY, DELETE):
            raise P4RTError(INVALID_ARGUMENT, "Invalid update type")
        if not MIN_CLONE_SESSION_ID <= sid < MAX_CLONE_SESSION_ID:
            raise P4RTError(INVALID_ARGUMENT, "Clone session id out-of-range")
        if update_type == DELETE:
            if sid not in self.sessions:
                raise P4RTError(NOT_FOUND, "Clone session id does not exist")
            self.engine.clone_session_delete(sid)
            del self.sessions[sid]
            return
        if update_type == INSERT and sid in self.sessions:
            raise P4RTError(ALREADY_EXISTS, "Clone session id already exists")
        if update_type == MODIFY and sid not in self.sessions:
            raise P4RTError(NOT_FOUND, "Clone session id does not exist")
        replicas = _replicas(cs.replicas)
        changed = update_type == INSERT or self.sessions[sid][:2] != (cs.class_of_service,
                                                                    cs.packet_length_bytes)
        if update_type == MODIFY:     # PI updates the replicas before the session config
            self.engine.clone_session_set(sid, _engine_replicas(replicas), 0)
            self.sessions[sid] = (0, 0, replicas)
        if changed:
            if cs.class_of_service != 0:
                raise P4RTError(UNIMPLEMENTED, "COS for clone sessions not supported yet")
            if cs.packet_length_bytes != 0:
                # BMv2's PI layer has no truncation for clone sessions: the session is refused
                raise P4RTError(UNKNOWN, "Error when creating clone session in target: "
                                         "packet_length_bytes (truncation) is not supported")
        self.engine.clone_session_set(sid, _engine_replicas(replicas), 0)
        self.sessions[sid] = (0, 0, replicas)
