"""The P4Runtime switch driver for p4src/v1model/scitags.p4 (BMv2 or the built-in target).

Every id is resolved through the P4Info (p4schema); schema errors (a name the P4Info lacks,
a value too wide for its field) reach callers as P4InfoError. The driver keeps a cache of
the firefly entries it holds so that install/refresh/remove need one RPC each; the cache is
rebuilt from the switch on connect (installed_flows), so a restarted controller neither
duplicates nor forgets entries.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import struct
import threading
import time
from pathlib import Path
from typing import Callable

import grpc
from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2
from p4runtime_sh.p4runtime import P4RuntimeErrorFormatException, P4RuntimeWriteException

from controller.drivers.base import (
    BUCKETS, ConnectionLost, CounterSnapshot, Counts, DriverError, EventHandler, FireflyPacket,
    FlowIdle, FlowKey, FlowRule, MastershipChanged, SwitchDriver, SwitchReset, SwitchUnreachable,
    TagRule)
from controller.p4runtime_client import (
    ManagedP4RuntimeClient, NotPrimary, P4RuntimeClientError, TLSOptions, default_election_id,
    write_error_codes)
from p4schema import P4Schema, SchemaError, decode, encode, load_p4info

log = logging.getLogger(__name__)

FLOOD_GROUP = 1
CPU_CLONE_SESSION = 100  # p4src/shared/defines.p4 CPU_CLONE_SESSION_ID
MIRROR_SESSION = 200  # ours: tagged traffic copied to the monitor port
PUNT_REASON_FIREFLY = 1
PRIORITY_ACTIVITY = 20  # specific (experiment, activity) beats the experiment wildcard
PRIORITY_WILDCARD = 10
KEY_CACHE_MAX = 300_000

T_L2 = "ScitagsIngress.l2_forward"
T_POLICY = "ScitagsIngress.scitag_policy"
T_FF = {4: "ScitagsIngress.firefly_v4", 6: "ScitagsIngress.firefly_v6"}
A_FF = {4: "ScitagsIngress.firefly_flow_v4", 6: "ScitagsIngress.firefly_flow_v6"}
C_TAG = "ScitagsIngress.tag_counter"
C_BUCKET = "ScitagsIngress.bucket_counter"

Update = p4runtime_pb2.Update


class P4InfoError(LookupError):
    """A name or id the P4Info does not have, or a value that does not fit; names the cause."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _p4info_errors(method: Callable) -> Callable:
    """Re-raise the p4schema errors of a driver method as P4InfoError."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except SchemaError as exc:
            raise P4InfoError(str(exc)) from exc
    return wrapper


def pipeline_cookie(p4info_bytes: bytes, device_config: bytes) -> int:
    return int.from_bytes(hashlib.sha256(p4info_bytes + b"\0" + device_config).digest()[:8], "big")


class P4RuntimeDriver(SwitchDriver):
    def __init__(self, name: str, device_id: int, grpc_addr: str, p4info_path: str | Path,
                 device_config_path: str | Path, cpu_port: int | None = 255,
                 election_id: tuple[int, int] | None = None, tls: TLSOptions | None = None,
                 timeout: float = 5.0) -> None:
        self.name = name
        self.device_id = device_id
        self.grpc_addr = grpc_addr
        self.cpu_port = cpu_port
        self.election_id = election_id or default_election_id()
        self.tls = tls
        self.timeout = timeout
        self.p4info_msg = load_p4info(p4info_path)
        self.device_config = Path(device_config_path).read_bytes()
        try:
            self.index = P4Schema(self.p4info_msg)
        except SchemaError as exc:
            raise P4InfoError(f"{p4info_path}: {exc}") from exc
        self.cookie = pipeline_cookie(self.p4info_msg.SerializeToString(deterministic=True),
                                      self.device_config)
        self.client: ManagedP4RuntimeClient | None = None
        self._handler: EventHandler | None = None
        self._lock = threading.RLock()  # one writer at a time; guards the caches
        self._flows: dict[FlowKey, FlowRule] = {}
        self._idle_reported: set[FlowKey] = set()
        self._key_cache: dict[tuple, FlowKey] = {}
        self.last_zeroed: list[int] = []  # tag cells the last sync_tags zeroed (new to the switch)
        self.stats = {"packet_in": 0, "packet_in_ignored": 0, "idle_notifications": 0,
                      "idle_repeats": 0}

    # ---- connection ----
    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.stream_alive

    @property
    def is_primary(self) -> bool:
        return self.client is not None and self.client.is_primary

    def connect(self) -> None:
        self.close()
        try:
            self.client = ManagedP4RuntimeClient(
                self.device_id, self.grpc_addr, self.election_id, tls=self.tls,
                on_message=self._on_stream_message, on_mastership=self._on_mastership,
                on_stream_closed=self._on_stream_closed, timeout=self.timeout)
        except (P4RuntimeClientError, grpc.RpcError) as exc:
            self.client = None
            raise SwitchUnreachable(self.name, exc) from None
        log.info("switch %s: connected to %s device %d as %s", self.name, self.grpc_addr,
                 self.device_id, "primary" if self.is_primary else "backup")

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.tear_down()

    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    def _emit(self, event: object) -> None:
        if self._handler is not None:
            self._handler(event)

    def _on_mastership(self, primary: bool) -> None:
        self._emit(MastershipChanged(self.name, primary))

    def _on_stream_closed(self, reason: str) -> None:
        self._emit(ConnectionLost(self.name, reason))

    def _require(self) -> ManagedP4RuntimeClient:
        if self.client is None or not self.client.stream_alive:
            raise SwitchUnreachable(self.name, "not connected")
        return self.client

    def _rpc(self, what: str, fn: Callable, *args):
        """Run an RPC; map failures to SwitchUnreachable / DriverError naming the switch."""
        try:
            return fn(*args)
        except NotPrimary as exc:
            raise DriverError(f"switch {self.name}: {exc}") from None
        except P4RuntimeWriteException as exc:
            msg = " ".join(str(exc).split())
            raise _error(f"switch {self.name}: {what}: {msg}", write_error_codes(exc)) from None
        except P4RuntimeErrorFormatException as exc:
            raise _error(f"switch {self.name}: {what}: {exc}", []) from None
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                              grpc.StatusCode.DEADLINE_EXCEEDED):
                raise SwitchUnreachable(self.name, f"{what}: {exc.code().name}") from None
            raise _error(f"switch {self.name}: {what}: {exc.code().name} {exc.details()}",
                         [exc.code().value[0]]) from None

    # ---- pipeline ----
    def running_pipeline(self) -> tuple[int | None, p4info_pb2.P4Info | None]:
        """(cookie, p4info) the switch runs; (None, None) without a pipeline."""
        client = self._require()
        try:
            cfg = client.get_pipeline(
                p4runtime_pb2.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return None, None
            raise SwitchUnreachable(self.name, f"GetForwardingPipelineConfig: {exc.code().name}") from None
        if not cfg.HasField("p4info") or not cfg.p4info.tables:
            return None, None
        return (cfg.cookie.cookie if cfg.HasField("cookie") else None), cfg.p4info

    def pipeline_cookie(self) -> int | None:
        """The cookie of the pipeline the switch runs now (None: none or no cookie)."""
        client = self._require()
        try:
            cfg = client.get_pipeline(p4runtime_pb2.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return None
            raise SwitchUnreachable(self.name, f"GetForwardingPipelineConfig: {exc.code().name}") from None
        return cfg.cookie.cookie if cfg.HasField("cookie") else None

    def ensure_pipeline(self) -> bool:
        client = self._require()
        cookie, p4info = self.running_pipeline()
        if cookie == self.cookie:
            return False
        if p4info is not None and (p4info.SerializeToString(deterministic=True)
                                   == self.p4info_msg.SerializeToString(deterministic=True)):
            log.info("switch %s: runs the same P4Info (cookie %s): not pushed", self.name, cookie)
            return False
        if not client.is_primary:
            raise DriverError(f"switch {self.name}: has no (or another) pipeline and this "
                              f"controller is backup: waiting for the primary to push it")
        config = p4runtime_pb2.ForwardingPipelineConfig()
        config.p4info.CopyFrom(self.p4info_msg)
        config.p4_device_config = self.device_config
        config.cookie.cookie = self.cookie
        self._rpc("SetForwardingPipelineConfig", client.set_pipeline, config)
        with self._lock:
            self._flows.clear()
            self._idle_reported.clear()
        log.info("switch %s: pipeline pushed (cookie %#x, %d bytes of device config)",
                 self.name, self.cookie, len(self.device_config))
        if p4info is not None or cookie is not None:
            self._emit(SwitchReset(self.name, "pipeline replaced"))
        return True

    # ---- entity helpers ----
    @_p4info_errors
    def _table_entry(self, table: str, match: dict[str, object], action: str | None = None,
                     params: dict[str, int] | None = None, priority: int = 0,
                     idle_timeout_ns: int = 0) -> p4runtime_pb2.TableEntry:
        t = self.index.table(table)
        entry = p4runtime_pb2.TableEntry(table_id=t.id, priority=priority,
                                         idle_timeout_ns=idle_timeout_ns)
        for fname, value in match.items():
            f = t.field(fname)
            m = entry.match.add()
            m.field_id = f.id
            if f.kind == "exact":
                m.exact.value = encode(int(value), f.bitwidth)
            elif f.kind == "ternary":
                v, mask = value
                m.ternary.value = encode(v & mask, f.bitwidth)
                m.ternary.mask = encode(mask, f.bitwidth)
            else:
                raise P4InfoError(f"match type {f.kind} not used by this controller")
        if action is not None:
            a = self.index.action(action)
            entry.action.action.action_id = a.id
            for pname, value in (params or {}).items():
                p = a.param(pname)
                ap = entry.action.action.params.add()
                ap.param_id = p.id
                ap.value = encode(int(value), p.bitwidth)
        return entry

    @staticmethod
    def _update(kind: int, entity_field: str, msg) -> p4runtime_pb2.Update:
        u = Update(type=kind)
        getattr(u.entity, entity_field).CopyFrom(msg)
        return u

    @_p4info_errors
    def _read_table(self, table: str, counters: bool = False) -> list[p4runtime_pb2.TableEntry]:
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = self.index.table(table).id
        if counters:
            ent.table_entry.counter_data.SetInParent()
        return [e.table_entry for e in self._rpc(f"read {table}", self._require().read, [ent])]

    @_p4info_errors
    def _params(self, entry: p4runtime_pb2.TableEntry) -> tuple[str, dict[str, int]]:
        a = self.index.by_id(entry.action.action.action_id)
        by_id = {p.id: p.name for p in a.params}
        return a.name, {by_id[p.param_id]: decode(p.value) for p in entry.action.action.params}

    def _write(self, what: str, updates: list[p4runtime_pb2.Update]) -> None:
        if updates:
            self._rpc(what, self._require().write_updates, updates)

    # ---- forwarding ----
    @_p4info_errors
    def set_forwarding(self, mac_ports: dict[str, int], flood_ports: list[int],
                       cpu_port: int | None, monitor_port: int | None) -> None:
        with self._lock:
            want = {int(mac.replace(":", ""), 16): port for mac, port in mac_ports.items()}
            have: dict[int, tuple[p4runtime_pb2.TableEntry, str, dict]] = {}
            for e in self._read_table(T_L2):
                have[decode(e.match[0].exact.value)] = (e, *self._params(e))
            updates = []
            for mac, (e, action, params) in have.items():
                if mac not in want:
                    updates.append(self._update(Update.DELETE, "table_entry", e))
            for mac, port in want.items():
                entry = self._table_entry(T_L2, {"dst_mac": mac}, "ScitagsIngress.set_egress_port",
                                          {"port": port})
                if mac not in have:
                    updates.append(self._update(Update.INSERT, "table_entry", entry))
                elif have[mac][1:] != (self.index.action("set_egress_port").name, {"port": port}):
                    updates.append(self._update(Update.MODIFY, "table_entry", entry))
            self._write("l2_forward", updates)

            pre = []
            pre.append(("multicast", FLOOD_GROUP, [(p, 1) for p in sorted(set(flood_ports))]))
            if cpu_port is not None:
                pre.append(("clone", CPU_CLONE_SESSION, [(cpu_port, 1)]))
            pre.append(("clone", MIRROR_SESSION, [(monitor_port, 1)] if monitor_port is not None else None))
            for kind, sid, replicas in pre:
                self._sync_pre(kind, sid, replicas)
        log.info("switch %s: forwarding written: %d MAC entries, flood ports %s, cpu port %s, "
                 "mirror session %d -> port %s", self.name, len(want), sorted(set(flood_ports)),
                 cpu_port, MIRROR_SESSION, monitor_port)

    def _pre_entity(self, kind: str, sid: int, replicas: list[tuple[int, int]] | None):
        ent = p4runtime_pb2.Entity()
        pre = ent.packet_replication_engine_entry
        if kind == "multicast":
            msg = pre.multicast_group_entry
            msg.multicast_group_id = sid
        else:
            msg = pre.clone_session_entry
            msg.session_id = sid
        for port, instance in replicas or []:
            r = msg.replicas.add()
            r.egress_port = port
            r.instance = instance
        return ent

    def _sync_pre(self, kind: str, sid: int, replicas: list[tuple[int, int]] | None) -> None:
        client = self._require()
        try:
            found = client.read([self._pre_entity(kind, sid, None)])
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise SwitchUnreachable(self.name, f"read {kind} {sid}: {exc.code().name}") from None
            found = []  # servers answer NOT_FOUND for a missing group/session
        current = None
        for ent in found:
            pre = ent.packet_replication_engine_entry
            msg = pre.multicast_group_entry if kind == "multicast" else pre.clone_session_entry
            if (msg.multicast_group_id if kind == "multicast" else msg.session_id) == sid:
                current = sorted((r.egress_port, r.instance) for r in msg.replicas)
        want = sorted(replicas) if replicas is not None else None
        if current == want:
            return
        if want is None:
            op = Update.DELETE
        else:
            op = Update.INSERT if current is None else Update.MODIFY
        ent = self._pre_entity(kind, sid, replicas if op != Update.DELETE else None)
        u = Update(type=op)
        u.entity.CopyFrom(ent)
        self._write(f"{kind} {sid}", [u])

    # ---- tags ----
    @_p4info_errors
    def sync_tags(self, rules: list[TagRule]) -> None:
        """Make the policy table hold exactly `rules`; a rule new to the switch (or moved to
        another counter cell) starts from a zeroed cell."""
        with self._lock:
            want: dict[tuple[int, int | None], TagRule] = {}
            for r in rules:
                if not 1 <= r.experiment <= 511 or (r.activity is not None and not 0 <= r.activity <= 63):
                    raise DriverError(f"switch {self.name}: tag {r} cannot be carried in a flow label")
                if not 0 <= r.tag_id < self.index.counter(C_TAG).size:
                    raise DriverError(f"switch {self.name}: tag id {r.tag_id} outside the tag counter")
                want[(r.experiment, r.activity)] = r
            t = self.index.table(T_POLICY)
            f_exp, f_act = t.field("experiment"), t.field("activity")
            have: dict[tuple[int, int | None], tuple[p4runtime_pb2.TableEntry, str, dict]] = {}
            for e in self._read_table(T_POLICY):
                exp, act = None, None
                for m in e.match:
                    if m.field_id == f_exp.id:
                        exp = decode(m.exact.value)
                    elif m.field_id == f_act.id:
                        act = decode(m.ternary.value) if decode(m.ternary.mask) else None
                have[(exp, act)] = (e, *self._params(e))
            updates, zero = [], []
            for key, (e, _, _) in have.items():
                if key not in want:
                    updates.append(self._update(Update.DELETE, "table_entry", e))
            for key, r in want.items():
                entry = self._policy_entry(r)
                action, params = self._params(entry)
                if key not in have:
                    updates.append(self._update(Update.INSERT, "table_entry", entry))
                    zero.append(r.tag_id)
                elif have[key][1:] != (action, params):
                    updates.append(self._update(Update.MODIFY, "table_entry", entry))
                    if have[key][2].get("tag_id") != r.tag_id:
                        zero.append(r.tag_id)
            # Deletes first, so a key re-added with another action cannot collide.
            updates.sort(key=lambda u: u.type != Update.DELETE)
            self._write("scitag_policy", updates)
            self.last_zeroed = list(zero)
            if zero:
                c = self.index.counter(C_TAG)
                zeroes = []
                for tag_id in zero:
                    ce = p4runtime_pb2.CounterEntry(counter_id=c.id)
                    ce.index.index = tag_id
                    ce.data.byte_count = 0
                    ce.data.packet_count = 0
                    zeroes.append(self._update(Update.MODIFY, "counter_entry", ce))
                self._write("zero tag counter cells", zeroes)
        if updates:
            log.info("switch %s: scitag_policy synced: %d rules (%d changes)", self.name,
                     len(want), len(updates))

    def _policy_entry(self, r: TagRule) -> p4runtime_pb2.TableEntry:
        match: dict[str, object] = {"experiment": r.experiment}
        if r.activity is not None:
            match["activity"] = (r.activity, 0x3F)
        if r.mirror:
            return self._table_entry(T_POLICY, match, "ScitagsIngress.count_tag_and_mirror",
                                     {"tag_id": r.tag_id, "mirror_session": MIRROR_SESSION},
                                     PRIORITY_ACTIVITY if r.activity is not None else PRIORITY_WILDCARD)
        return self._table_entry(T_POLICY, match, "ScitagsIngress.count_tag", {"tag_id": r.tag_id},
                                 PRIORITY_ACTIVITY if r.activity is not None else PRIORITY_WILDCARD)

    # ---- firefly flows ----
    def _flow_entry(self, key: FlowKey, rule: FlowRule | None = None) -> p4runtime_pb2.TableEntry:
        match = {"src_addr": int(key.src), "dst_addr": int(key.dst), "protocol": key.protocol,
                 "src_port": key.src_port, "dst_port": key.dst_port}
        if rule is None:
            return self._table_entry(T_FF[key.afi], match)
        if not 0 <= rule.experiment <= 0xFFFF or not 0 <= rule.activity <= 0xFF:
            raise DriverError(f"switch {self.name}: flow {key}: experiment {rule.experiment} / "
                              f"activity {rule.activity} do not fit the firefly table (16/8 bits)")
        return self._table_entry(T_FF[key.afi], match, A_FF[key.afi],
                                 {"experiment": rule.experiment, "activity": rule.activity},
                                 idle_timeout_ns=int(rule.idle_timeout_s * 1e9))

    def install_flow(self, rule: FlowRule) -> None:
        with self._lock:
            entry = self._flow_entry(rule.key, rule)
            first = Update.MODIFY if rule.key in self._flows else Update.INSERT
            try:
                self._write("install flow", [self._update(first, "table_entry", entry)])
            except DriverError as exc:
                codes = getattr(exc, "codes", [])
                if first == Update.INSERT and code_pb2.ALREADY_EXISTS in codes:
                    self._write("refresh flow", [self._update(Update.MODIFY, "table_entry", entry)])
                elif first == Update.MODIFY and code_pb2.NOT_FOUND in codes:
                    self._write("install flow", [self._update(Update.INSERT, "table_entry", entry)])
                else:
                    raise
            self._flows[rule.key] = rule
            self._idle_reported.discard(rule.key)

    def flow_counts(self, key: FlowKey) -> Counts | None:
        ent = p4runtime_pb2.Entity()
        ent.direct_counter_entry.table_entry.CopyFrom(self._flow_entry(key))
        try:
            got = self._require().read([ent])
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise SwitchUnreachable(self.name, f"read flow counter: {exc.code().name}") from None
            return None
        for e in got:
            d = e.direct_counter_entry.data
            return Counts(d.packet_count, d.byte_count)
        return None

    def remove_flow(self, key: FlowKey) -> Counts:
        with self._lock:
            counts = self.flow_counts(key) or Counts()
            try:
                self._write("remove flow", [self._update(Update.DELETE, "table_entry",
                                                         self._flow_entry(key))])
            except DriverError as exc:
                if code_pb2.NOT_FOUND not in getattr(exc, "codes", []):
                    raise
            self._flows.pop(key, None)
            self._idle_reported.discard(key)
            return counts

    def _decode_key(self, afi: int, e: p4runtime_pb2.TableEntry) -> FlowKey:
        # Reading 65536 entries is dominated by decoding: remember keys by their match bytes.
        raw = (afi, *[m.exact.value for m in e.match])  # server field order is stable per table
        key = self._key_cache.get(raw)
        if key is None:
            try:
                t = self.index.table(T_FF[afi])
                vals = {t.field_with_id(m.field_id).name: decode(m.exact.value) for m in e.match}
            except SchemaError as exc:
                raise P4InfoError(str(exc)) from exc
            addr = ipaddress.IPv4Address if afi == 4 else ipaddress.IPv6Address
            key = FlowKey(addr(vals["src_addr"]), addr(vals["dst_addr"]), vals["protocol"],
                          vals["src_port"], vals["dst_port"])
            if len(self._key_cache) >= KEY_CACHE_MAX:
                self._key_cache.clear()
            self._key_cache[raw] = key
        return key

    def _decode_flow(self, afi: int, e: p4runtime_pb2.TableEntry) -> FlowRule:
        key = self._decode_key(afi, e)
        _, params = self._params(e)
        return FlowRule(key, params.get("experiment", 0), params.get("activity", 0),
                        e.idle_timeout_ns / 1e9)

    def installed_flows(self) -> dict[FlowKey, FlowRule]:
        with self._lock:
            flows: dict[FlowKey, FlowRule] = {}
            for afi in (4, 6):
                for e in self._read_table(T_FF[afi]):
                    rule = self._decode_flow(afi, e)
                    flows[rule.key] = rule
            self._flows = dict(flows)
            return flows

    def cached_flows(self) -> dict[FlowKey, FlowRule]:
        with self._lock:
            return dict(self._flows)

    # ---- counters ----
    @_p4info_errors
    def read_counters(self) -> CounterSnapshot:
        client = self._require()
        tag_c, bucket_c = self.index.counter(C_TAG), self.index.counter(C_BUCKET)
        entities = []
        for c in (tag_c, bucket_c):
            ent = p4runtime_pb2.Entity()
            ent.counter_entry.counter_id = c.id
            entities.append(ent)
        got = self._rpc("read counters", client.read, entities)
        snap = CounterSnapshot(self.name, time.time())
        for e in got:
            ce = e.counter_entry
            counts = Counts(ce.data.packet_count, ce.data.byte_count)
            if ce.counter_id == tag_c.id:
                if counts.packets or counts.bytes:
                    snap.tags[ce.index.index] = counts
            elif ce.counter_id == bucket_c.id and ce.index.index < len(BUCKETS):
                snap.buckets[BUCKETS[ce.index.index]] = counts
        for name in BUCKETS:
            snap.buckets.setdefault(name, Counts())
        for afi in (4, 6):
            for e in self._read_table(T_FF[afi], counters=True):
                c = e.counter_data
                snap.flows[self._decode_key(afi, e)] = Counts(c.packet_count, c.byte_count)
        return snap

    # ---- stream messages ----
    def _on_stream_message(self, msg: p4runtime_pb2.StreamMessageResponse) -> None:
        if msg.HasField("packet"):
            self._on_packet_in(msg.packet)
        elif msg.HasField("idle_timeout_notification"):
            for e in msg.idle_timeout_notification.table_entry:
                self._on_idle(e)

    def _on_packet_in(self, pkt: p4runtime_pb2.PacketIn) -> None:
        self.stats["packet_in"] += 1
        try:
            header = self.index.packet_in
            by_id = {f.id: f.name for f in header.fields} if header else {}
            meta = {by_id.get(m.metadata_id, str(m.metadata_id)): decode(m.value) for m in pkt.metadata}
            if meta.get("reason") != PUNT_REASON_FIREFLY:
                self.stats["packet_in_ignored"] += 1
                return
            parsed = parse_udp_frame(pkt.payload)
        except (ValueError, struct.error, IndexError) as exc:
            self.stats["packet_in_ignored"] += 1
            log.debug("switch %s: packet-in not understood: %s", self.name, exc)
            return
        if parsed is None:
            self.stats["packet_in_ignored"] += 1
            return
        src, payload = parsed
        self._emit(FireflyPacket(self.name, meta.get("ingress_port", 0), payload, src))

    @_p4info_errors
    def _on_idle(self, e: p4runtime_pb2.TableEntry) -> None:
        self.stats["idle_notifications"] += 1
        afi = next((a for a, t in T_FF.items() if self.index.table(t).id == e.table_id), None)
        if afi is None:
            return
        try:
            key = self._decode_key(afi, e)
        except (P4InfoError, KeyError, ValueError):
            return
        with self._lock:
            if key in self._idle_reported or key not in self._flows:
                self.stats["idle_repeats"] += 1  # BMv2 repeats notifications until removal
                return
            self._idle_reported.add(key)
        self._emit(FlowIdle(self.name, key))


def _error(message: str, codes: list[int]) -> DriverError:
    err = DriverError(message)
    err.codes = codes  # canonical codes of the failed updates (ALREADY_EXISTS, NOT_FOUND...)
    return err


def parse_udp_frame(frame: bytes) -> tuple[tuple[str, int], bytes] | None:
    """((src ip, src port), UDP payload) of an Ethernet frame carrying UDP, else None."""
    off = 14
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x8100:
        ethertype = struct.unpack_from("!H", frame, 16)[0]
        off = 18
    if ethertype == 0x0800:
        ihl = (frame[off] & 0x0F) * 4
        if frame[off + 9] != 17 or ihl < 20:
            return None
        src = str(ipaddress.IPv4Address(frame[off + 12:off + 16]))
        total = struct.unpack_from("!H", frame, off + 2)[0]
        end = min(len(frame), off + total)
        off += ihl
    elif ethertype == 0x86DD:
        if frame[off + 6] != 17:
            return None
        src = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
        end = min(len(frame), off + 40 + struct.unpack_from("!H", frame, off + 4)[0])
        off += 40
    else:
        return None
    sport, _, ulen = struct.unpack_from("!HHH", frame, off)
    if ulen < 8:
        raise ValueError("UDP length below 8")
    end = min(end, off + ulen)
    return (src, sport), frame[off + 8:end]
