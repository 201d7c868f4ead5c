"""The P4Runtime switch driver for p4src/v1model/scitags.p4 (BMv2 or the built-in target).

Entries are the typed entities of p4schema (TableEntry, CloneSession, MulticastGroup,
CounterEntry), encoded and decoded by p4schema.EntityCodec against the P4Info; schema errors
(a name the P4Info lacks, a value too wide for its field) reach callers as P4InfoError.
reconcile() is the one read-diff-write: one batched Read of every table and replication
entry the controller owns, p4schema.diff against the desired state, one Write. The driver
keeps a cache of the firefly entries it holds so that install/refresh/remove need one RPC
each; reconcile() and installed_flows() rebuild it from the switch.

The device config pushed with the P4Info comes from a DeviceConfigBuilder: the BMv2 JSON
file by default (bmv2_json), another one for other targets (Tofino: Stratum's
BfPipelineConfig, controller/drivers/tofino_pipeline.py).
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import grpc
from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2
from p4runtime_sh.p4runtime import P4RuntimeErrorFormatException, P4RuntimeWriteException

from controller.drivers.base import (
    BUCKETS, PortEntry, ConnectionLost, CounterSnapshot, Counts, DesiredState, DriverError, EventHandler,
    FireflyPacket, FlowIdle, FlowKey, FlowRule, Forwarding, MastershipChanged, ReconcileResult,
    SwitchDriver, SwitchReset, SwitchUnreachable, TagRule)
from controller.p4runtime_client import (
    ManagedP4RuntimeClient, NotPrimary, P4RuntimeClientError, TLSOptions, default_election_id,
    write_error_codes)
from p4schema import (CloneSession, CounterEntry, EntityCodec, Lpm, MulticastGroup, P4Schema,
                      SchemaError, TableEntry, Ternary, UnknownName, decode, diff, load_p4info)
from p4schema.constants import (ACTIVITY_MASK, ACTIVITY_MAX, CPU_CLONE_SESSION_ID, EXPERIMENT_MAX,
                                FLOOD_GROUP_ID, MONITOR_MIRROR_SESSION_ID, PRIORITY_ACTIVITY,
                                PRIORITY_WILDCARD, PUNT_REASON_FIREFLY, PUNT_REASON_LEARN)
from scitags_core import flowlabel

log = logging.getLogger(__name__)

KEY_CACHE_MAX = 300_000

T_L2 = "ScitagsIngress.l2_forward"
T_POLICY = "ScitagsIngress.scitag_policy"
T_EXTHDR = "ScitagsIngress.exthdr_policy"  # the same tags on the IPv6 option's data
T_TRUST = "ScitagsIngress.label_trust"  # source prefixes whose flow labels are tags
A_TRUST, A_DISTRUST = "ScitagsIngress.trust_label", "ScitagsIngress.distrust_label"
EXTHDR_EXPERIMENT_MAX = 0xFFFF  # the option carries 16 experiment bits
T_FF = {4: "ScitagsIngress.firefly_v4", 6: "ScitagsIngress.firefly_v6"}
A_FF = {4: "ScitagsIngress.firefly_flow_v4", 6: "ScitagsIngress.firefly_flow_v6"}
C_TAG = "ScitagsIngress.tag_counter"
# the other per-tag counters (same cells) -> the CounterSnapshot field they fill
C_TAG_FIELDS = {C_TAG: "tags", "ScitagsIngress.exthdr_tag_counter": "exthdr_tags",
                "ScitagsIngress.untrusted_tag_counter": "untrusted_tags",
                "ScitagsIngress.confirmed_tag_counter": "confirmed_tags"}
C_BUCKETS = ("ScitagsIngress.bucket_counter", "ScitagsIngress.firefly_bucket_counter")
T_PORT_MODE = "ScitagsIngress.port_mode"  # placement mode per ingress port (issue 15)
T_LEARNED = "ScitagsIngress.learned_src"  # learned (source MAC, port) pairs, idle-timed
A_PORT_MODE = {a: f"ScitagsIngress.{a}" for a in ("wire_to", "wire_down", "tap_port", "learn_port",
                                                 "static_port")}
PORT_ACTION = {"wire": "wire_to", "wire_down": "wire_down", "tap": "tap_port",
               "learn": "learn_port", "static": "static_port"}
C_DIRECTION = "ScitagsIngress.direction_tag_counter"  # cell = tag_id * 2 + direction - 1
C_WIRE_DOWN = "ScitagsIngress.wire_down_counter"  # cell = ingress port
# repair kinds (ReconcileResult.repairs, metrics label `kind`) per owned table
KIND_OF_TABLE = {T_L2: "l2", T_POLICY: "tag", T_EXTHDR: "tag", T_TRUST: "trust",
                 T_FF[4]: "flow", T_FF[6]: "flow", T_PORT_MODE: "port_mode", T_LEARNED: "learned"}

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


class DeviceConfigBuilder(Protocol):
    """Makes ForwardingPipelineConfig.p4_device_config for one target from the P4Info."""

    def __call__(self, p4info: p4info_pb2.P4Info) -> bytes: ...


def bmv2_json(path: str | Path) -> DeviceConfigBuilder:
    """BMv2 (and the built-in target): the device config is the compiler's JSON file."""
    def build(_p4info: p4info_pb2.P4Info) -> bytes:
        return Path(path).read_bytes()
    return build


class P4RuntimeDriver(SwitchDriver):
    reconciles_cheaply = True
    enforces_label_trust = True  # when the program has label_trust (see has_table)
    def __init__(self, name: str, device_id: int, grpc_addr: str, p4info_path: str | Path,
                 device_config_path: str | Path | None, cpu_port: int | None = 255,
                 election_id: tuple[int, int] | None = None, tls: TLSOptions | None = None,
                 timeout: float = 5.0,
                 device_config_builder: DeviceConfigBuilder | None = None) -> None:
        """device_config_builder: how the device config is made (default: bmv2_json of
        device_config_path)."""
        self.name = name
        self.device_id = device_id
        self.grpc_addr = grpc_addr
        self.cpu_port = cpu_port
        self.election_id = election_id or default_election_id()
        self.tls = tls
        self.timeout = timeout
        self.p4info_msg = load_p4info(p4info_path)
        if device_config_builder is None:
            if device_config_path is None:
                raise ValueError("give device_config_path or device_config_builder")
            device_config_builder = bmv2_json(device_config_path)
        self.device_config = device_config_builder(self.p4info_msg)
        try:
            self.index = P4Schema(self.p4info_msg)
        except SchemaError as exc:
            raise P4InfoError(f"{p4info_path}: {exc}") from exc
        self.codec = EntityCodec(self.index)
        self.cookie = pipeline_cookie(self.p4info_msg.SerializeToString(deterministic=True),
                                      self.device_config)
        self.client: ManagedP4RuntimeClient | None = None
        self._handler: EventHandler | None = None
        self._lock = threading.RLock()  # one writer at a time; guards the caches
        # flows installed/removed since the running read_back() started (None: no read running)
        self._touched: set[FlowKey] | None = None
        self._flows: dict[FlowKey, FlowRule] = {}
        self._idle_reported: set[FlowKey] = set()
        self._key_cache: dict[tuple, FlowKey] = {}  # firefly match bytes -> key (counter poll)
        self._flow_entries: dict[FlowRule, TableEntry] = {}  # desired entries, built once
        self._tag_entries: dict[TagRule, TableEntry] = {}
        self._exthdr_entries: dict[TagRule, TableEntry] = {}
        self.last_zeroed: list[int] = []  # tag cells the last sync_tags zeroed (new to the switch)
        self.stats = {"packet_in": 0, "packet_in_ignored": 0, "idle_notifications": 0,
                      "idle_repeats": 0, "learn_packet_in": 0}
        # MAC learning (controller/learning.py sets these): fn(switch, mac, port) for each
        # source seen in a packet-in; fn(switch, mac, port) when a learned pair idled out
        self.on_source_mac: Callable[[str, str, int], None] | None = None
        self.on_mac_aged: Callable[[str, str, int], None] | None = None
        # learned MACs written since the running read_back() started (None: no read running)
        self._touched_macs: set[str] | None = None

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
    # ---- entities ----
    @_p4info_errors
    def _table_entry(self, table: str, match: dict[str, object], action: str | None = None,
                     params: dict[str, int] | None = None, priority: int = 0,
                     idle_timeout_ns: int = 0) -> p4runtime_pb2.TableEntry:
        """The wire form of one entry (for tests and tools; the driver writes entities)."""
        m = {k: Ternary(*v) if isinstance(v, tuple) else v for k, v in match.items()}
        e = self.codec.table_entry(table, m, action, params, priority, idle_timeout_ns)
        return self.codec.encode(e).table_entry

    def _tag_entry(self, r: TagRule) -> TableEntry:
        e = self._tag_entries.get(r)
        if e is None:
            e = self._tag_entries[r] = self._build_tag_entry(r)
        return e

    def _build_tag_entry(self, r: TagRule) -> TableEntry:
        if not 1 <= r.experiment <= EXPERIMENT_MAX or (
                r.activity is not None and not 0 <= r.activity <= ACTIVITY_MAX):
            raise DriverError(f"switch {self.name}: tag {r} cannot be carried in a flow label")
        if not 0 <= r.tag_id < self.index.counter(C_TAG).size:
            raise DriverError(f"switch {self.name}: tag id {r.tag_id} outside the tag counter")
        t = self.index.table(T_POLICY)
        names = {f.name for f in t.match_fields}
        if "experiment" in names:  # key: the label's experiment and activity fields
            match: dict[str, object] = {"experiment": r.experiment}
            if r.activity is not None:
                match["activity"] = Ternary(r.activity, ACTIVITY_MASK)
        else:  # key: the raw 20-bit flow label, ternary on the tag bits
            label_field = next(f.name for f in t.match_fields if "label" in f.name)
            act = r.activity or 0
            mask = flowlabel.TAG_MASK if r.activity is not None else \
                flowlabel.encode_label(EXPERIMENT_MAX, 0, 0)
            match = {label_field: Ternary(flowlabel.encode_label(r.experiment, act, 0) & mask, mask)}
        return self._counting_entry(T_POLICY, match, r)

    def _counting_entry(self, table: str, match: dict, r: TagRule) -> TableEntry:
        """A tag rule's entry in one of the policy tables: count_tag (and mirror) its cell;
        exthdr_policy has the same actions under its own names (exthdr_count_tag...)."""
        prio = PRIORITY_ACTIVITY if r.activity is not None else PRIORITY_WILDCARD
        prefix = "exthdr_" if table == T_EXTHDR and self.has_action("ScitagsIngress.exthdr_count_tag") else ""
        if r.mirror:
            return self.codec.table_entry(table, match, f"ScitagsIngress.{prefix}count_tag_and_mirror",
                                          {"tag_id": r.tag_id,
                                           "mirror_session": MONITOR_MIRROR_SESSION_ID}, prio)
        return self.codec.table_entry(table, match, f"ScitagsIngress.{prefix}count_tag",
                                      {"tag_id": r.tag_id}, prio)

    def _tag_rule(self, e: TableEntry) -> TagRule:
        """The tag rule of a scitag_policy entry (the inverse of _tag_entry)."""
        exp = e.field("experiment")
        if exp is not None:
            act = e.field("activity")
            activity = act.value if act is not None else None
        else:
            label = next(v for k, v in e.match if "label" in k)
            fields = flowlabel.decode_label(label.value)
            exp, activity = fields.experiment, (fields.activity if label.mask == flowlabel.TAG_MASK else None)
        return TagRule(e.param("tag_id"), exp, activity, e.action.endswith("count_tag_and_mirror"))

    def has_action(self, action: str) -> bool:
        """The program has this action (an older one shares count_tag between the policies)."""
        return self._names(self.index.action, action)

    def has_table(self, table: str) -> bool:
        """The program has this table (an older one lacks exthdr_policy and label_trust)."""
        return self._names(self.index.table, table)

    @staticmethod
    def _names(lookup, name: str) -> bool:
        try:
            lookup(name)
            return True
        except UnknownName:
            return False

    def _exthdr_entry(self, r: TagRule) -> TableEntry:
        """The exthdr_policy entry of a tag: the option's 24-bit data experiment << 8 |
        activity, exact (mask 0xFFFFFF) or the whole experiment (0xFFFF00)."""
        e = self._exthdr_entries.get(r)
        if e is not None:
            return e
        if not 1 <= r.experiment <= EXTHDR_EXPERIMENT_MAX or (
                r.activity is not None and not 0 <= r.activity <= 0xFF):
            raise DriverError(f"switch {self.name}: tag {r} cannot be carried in the IPv6 option")
        key = self.index.table(T_EXTHDR).match_fields[0].name
        value, mask = (r.experiment << 8 | (r.activity or 0),
                       0xFFFFFF if r.activity is not None else 0xFFFF00)
        e = self._exthdr_entries[r] = self._counting_entry(T_EXTHDR, {key: Ternary(value, mask)}, r)
        return e

    def _tag_tables(self) -> list[str]:
        return [T_POLICY] + ([T_EXTHDR] if self.has_table(T_EXTHDR) else [])

    def _tag_entries_for(self, rules: list[TagRule]) -> list[TableEntry]:
        """scitag_policy and (where the program has it) exthdr_policy entries of the rules."""
        want = [self._tag_entry(r) for r in rules]
        if self.has_table(T_EXTHDR):
            want += [self._exthdr_entry(r) for r in rules]
        return want

    def _trust_entries(self, prefixes: tuple[str, ...] | None) -> tuple[list[TableEntry], str]:
        """label_trust entries and default action for a scope (None: no entry, every label
        trusted). A /0 prefix trusts every source: the same as no scope."""
        nets = [ipaddress.ip_network(p, strict=False) for p in prefixes or ()]
        if not nets or any(n.prefixlen == 0 and n.version == 6 for n in nets):
            return [], A_TRUST
        key = self.index.table(T_TRUST).match_fields[0].name
        entries = {n: self.codec.table_entry(T_TRUST, {key: Lpm(int(n.network_address), n.prefixlen)},
                                             A_TRUST) for n in nets if n.version == 6}
        return list(entries.values()), A_DISTRUST

    def _default_update(self, table: str, action: str) -> p4runtime_pb2.Update:
        u = Update(type=Update.MODIFY)
        u.entity.CopyFrom(self.codec.encode(self.codec.table_entry(table, {}, action)))
        u.entity.table_entry.is_default_action = True
        return u

    def _read_default(self, table: str) -> str | None:
        """The full name of the table's default action as the switch holds it (None: the
        server does not say)."""
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = self.index.table(table).id
        ent.table_entry.is_default_action = True
        try:
            got_all = self._require().read([ent])
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise SwitchUnreachable(self.name, f"read {table} default: {exc.code().name}") from None
            return None  # a server that cannot read default entries: rewrite it
        for got in got_all:
            a = got.table_entry.action
            if a.HasField("action"):
                return self.index.by_id(a.action.action_id).name
        return None

    def _flow_match(self, key: FlowKey) -> TableEntry:
        return self.codec.table_entry(T_FF[key.afi], {
            "src_addr": int(key.src), "dst_addr": int(key.dst), "protocol": key.protocol,
            "src_port": key.src_port, "dst_port": key.dst_port})

    def _flow_entry(self, key: FlowKey, rule: FlowRule | None = None) -> TableEntry:
        """The firefly entry of a flow (rule None: its match only, to delete or read it)."""
        if rule is None:
            return self._flow_match(key)
        e = self._flow_entries.get(rule)
        if e is not None:
            return e
        if not 0 <= rule.experiment <= 0xFFFF or not 0 <= rule.activity <= 0xFF:
            raise DriverError(f"switch {self.name}: flow {key}: experiment {rule.experiment} / "
                              f"activity {rule.activity} do not fit the firefly table (16/8 bits)")
        m = self._flow_match(key)
        e = TableEntry(m.table, m.match, self.index.action(A_FF[key.afi]).name,
                       (("activity", rule.activity), ("experiment", rule.experiment)),
                       0, int(rule.idle_timeout_s * 1e9))
        if len(self._flow_entries) >= KEY_CACHE_MAX:
            self._flow_entries.clear()
        self._flow_entries[rule] = e
        return e

    def _flow_key(self, e: TableEntry) -> FlowKey:
        afi = 4 if e.table == T_FF[4] else 6
        addr = ipaddress.IPv4Address if afi == 4 else ipaddress.IPv6Address
        return FlowKey(addr(e.field("src_addr")), addr(e.field("dst_addr")), e.field("protocol"),
                       e.field("src_port"), e.field("dst_port"))

    def _flow_rule(self, e: TableEntry) -> FlowRule:
        return FlowRule(self._flow_key(e), e.param("experiment", 0), e.param("activity", 0),
                        e.idle_timeout_ns / 1e9)

    @staticmethod
    def _forwarding_entities(f: Forwarding) -> list:
        pre = [MulticastGroup.of(FLOOD_GROUP_ID, [(p, 1) for p in sorted(set(f.flood_ports))])]
        if f.cpu_port is not None:
            pre.append(CloneSession.of(CPU_CLONE_SESSION_ID, [(f.cpu_port, 1)]))
        if f.monitor_port is not None:
            pre.append(CloneSession.of(MONITOR_MIRROR_SESSION_ID, [(f.monitor_port, 1)]))
        return pre

    def _l2_entries(self, f: Forwarding) -> list[TableEntry]:
        return [self._l2_entry(mac, port) for mac, port in f.mac_ports.items()]

    def _port_mode_entries(self, f: Forwarding) -> list[TableEntry]:
        out = []
        for m in f.port_modes:
            params = {"direction": m.direction}
            if m.action == "wire":
                params["port"] = m.partner
            out.append(self.codec.table_entry(T_PORT_MODE, {"ingress_port": m.port},
                                              A_PORT_MODE[PORT_ACTION[m.action]], params))
        return out

    def _learned_entry(self, mac: str, port: int, ageing_s: float) -> TableEntry:
        return self.codec.table_entry(T_LEARNED, {"src_mac": _mac_int(mac), "ingress_port": port},
                                      "ScitagsIngress.source_known", {}, 0, int(ageing_s * 1e9))

    def _l2_entry(self, mac: str, port: int) -> TableEntry:
        return self.codec.table_entry(T_L2, {"dst_mac": _mac_int(mac)},
                                      "ScitagsIngress.set_egress_port", {"port": port})

    def _write(self, what: str, updates: list[p4runtime_pb2.Update]) -> None:
        if updates:
            self._rpc(what, self._require().write_updates, updates)

    # ---- reading back what the controller owns ----
    @_p4info_errors
    def _read_table(self, table: str, counters: bool = False) -> list[p4runtime_pb2.TableEntry]:
        ent = self.codec.read_table(table, counters)
        return [e.table_entry for e in self._rpc(f"read {table}", self._require().read, [ent])]

    def _read_tables(self, tables: list[str]) -> dict[str, list[TableEntry]]:
        """Every entry of these tables, in one Read RPC."""
        got = self._rpc("read tables", self._require().read,
                        [self.codec.read_table(t) for t in tables])
        out: dict[str, list[TableEntry]] = {self.index.table(t).name: [] for t in tables}
        for ent in got:
            e = self.codec.decode_table_entry(ent.table_entry)
            out.setdefault(e.table, []).append(e)
        return out

    @staticmethod
    def _pre_owned(f: Forwarding) -> set[tuple]:
        """Keys of the replication entries the controller owns (the CPU session only when
        the switch has a CPU port: otherwise it is left as it is)."""
        owned = {("multicast_group", FLOOD_GROUP_ID), ("clone_session", MONITOR_MIRROR_SESSION_ID)}
        if f.cpu_port is not None:
            owned.add(("clone_session", CPU_CLONE_SESSION_ID))
        return owned

    def _read_pre(self, owned: set[tuple]) -> list:
        """The owned multicast groups and clone sessions as the switch holds them."""
        client = self._require()
        try:  # wildcard reads: every group and session in one RPC
            got = client.read([self.codec.read_multicast_groups(), self.codec.read_clone_sessions()])
            return [e for e in self.codec.decode_all(got) if e.key in owned]
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise SwitchUnreachable(self.name, f"read PRE: {exc.code().name}") from None
        found = []  # a server without wildcard PRE reads: one id at a time, NOT_FOUND = absent
        for kind, sid in sorted(owned):
            req = (self.codec.read_multicast_groups(sid) if kind == "multicast_group"
                   else self.codec.read_clone_sessions(sid))
            try:
                found += self.codec.decode_all(client.read([req]))
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise SwitchUnreachable(self.name, f"read {kind} {sid}: {exc.code().name}") from None
        return found

    # ---- the one read-diff-write ----
    @_p4info_errors
    def read_back(self) -> "_ReadBack":
        """Every owned table and replication entry, in one batched Read (plus one for the
        replication entries); flow installs and removals go on meanwhile and are noted."""
        with self._lock:
            self._touched = set()
            self._touched_macs = set()
        t0 = time.perf_counter()
        trust = self.has_table(T_TRUST)
        tag_tables = self._tag_tables()
        placement = [n for n in (T_PORT_MODE, T_LEARNED) if self.has_table(n)]
        tables = self._read_tables([T_L2, *tag_tables, T_FF[4], T_FF[6]]
                                   + ([T_TRUST] if trust else []) + placement)
        pre = self._read_pre({("multicast_group", FLOOD_GROUP_ID), ("clone_session", CPU_CLONE_SESSION_ID),
                              ("clone_session", MONITOR_MIRROR_SESSION_ID)})
        default = self._read_default(T_TRUST) if trust else None
        return _ReadBack(trust, tag_tables, tables, pre, default, time.perf_counter() - t0)

    @_p4info_errors
    def reconcile(self, desired: DesiredState, read: "_ReadBack | None" = None) -> ReconcileResult:
        """Make the switch hold exactly `desired`: one batched read of the four owned tables
        and the owned replication entries (`read`, or now), one diff, one write (deletes
        first). Flows installed or removed since the read started are left as they are."""
        result = ReconcileResult()
        if read is None:
            read = self.read_back()
        with self._lock:
            touched, self._touched = self._touched or set(), None
            touched_macs, self._touched_macs = self._touched_macs or set(), None
            trust, tag_tables, tables = read.trust, read.tag_tables, read.tables
            f = desired.forwarding
            owned = self._pre_owned(f)
            have_pre = [e for e in read.pre if e.key in owned]
            have_default = read.default
            result.read_s = read.seconds
            have_tags = [e for t in tag_tables for e in tables[t]]
            want_tags = self._tag_entries_for(desired.tags)
            want_flows = [self._flow_entry(k, r) for k, r in desired.flows.items()
                          if k not in touched]
            have_flows = tables[T_FF[4]] + tables[T_FF[6]]
            if touched:  # changed by the flow service during the read: not ours to judge
                moved = {self._flow_match(k).key for k in touched}
                have_flows = [e for e in have_flows if e.key not in moved]
            want_pre = self._forwarding_entities(f)
            want_l2, have_l2 = self._l2_entries(f), tables[T_L2]
            if touched_macs:  # learned during the read: the learner's, not ours to judge
                moved_l2 = {self._l2_entry(m, 0).key for m in touched_macs}
                want_l2 = [e for e in want_l2 if e.key not in moved_l2]
                have_l2 = [e for e in have_l2 if e.key not in moved_l2]
            plans = {"l2": diff(want_l2, have_l2),
                     "tag": diff(want_tags, have_tags),
                     "flow": diff(want_flows, have_flows),
                     "pre": diff(want_pre, have_pre)}
            if T_PORT_MODE in tables:
                plans["port_mode"] = diff(self._port_mode_entries(f), tables[T_PORT_MODE])
            elif f.port_modes:
                raise DriverError(f"switch {self.name}: the program has no {T_PORT_MODE}: "
                                  "wire/tap/learn modes need a newer pipeline")
            if T_LEARNED in tables:
                want_learned = [self._learned_entry(m, p, f.learn_ageing_s) for m, p in f.learned
                                if m not in touched_macs]
                have_learned = [e for e in tables[T_LEARNED]
                                if _mac_str(e.field("src_mac")) not in touched_macs]
                plans["learned"] = diff(want_learned, have_learned)
            default_update = None
            if trust:
                want_trust, want_default = self._trust_entries(desired.label_trust)
                plans["trust"] = diff(want_trust, tables[T_TRUST])
                if have_default != want_default:
                    default_update = self._default_update(T_TRUST, want_default)
                    if have_default is not None:  # None: the switch cannot say; rewritten
                        result.repairs["trust_default", "modified"] += 1
            elif desired.label_trust is not None:
                log.warning("switch %s: the program has no %s: the label trust scope is not "
                            "enforced", self.name, T_TRUST)
            updates: dict[int, list] = {Update.DELETE: [], Update.MODIFY: [], Update.INSERT: []}
            for kind, plan in plans.items():
                for op, change, items in ((Update.DELETE, "extra", plan.delete),
                                          (Update.MODIFY, "modified", plan.modify),
                                          (Update.INSERT, "missing", plan.insert)):
                    for e in items:
                        result.repairs[(e.key[0] if kind == "pre" else kind), change] += 1
                        updates[op].append(self.codec.update(op, e))
            t0 = time.perf_counter()
            # deletes of every kind first (a key re-added elsewhere cannot collide)
            # a scope's default (distrust) after its trust entries; trust-all before they go
            if default_update is not None and not desired.label_trust:
                self._write("label_trust default", [default_update])
            self._write("reconcile", updates[Update.DELETE] + updates[Update.MODIFY]
                        + updates[Update.INSERT])
            if default_update is not None and desired.label_trust:
                self._write("label_trust default", [default_update])
            tags = plans["tag"]
            old_cells = {e.key: e.param("tag_id") for e in have_tags}
            zero = [e.param("tag_id") for e in tags.insert]
            zero += [e.param("tag_id") for e in tags.modify if old_cells.get(e.key) != e.param("tag_id")]
            self._zero_tag_cells(zero)
            result.write_s = time.perf_counter() - t0
            result.zeroed_tags = zero
            self.last_zeroed = list(zero)
            result.flows_inserted = {self._flow_key(e) for e in plans["flow"].insert}
            result.flows_removed = {self._flow_key(e) for e in plans["flow"].delete}
            self._flows = dict(desired.flows)
            self._idle_reported &= set(self._flows)
        if result.total:
            log.info("switch %s: reconciled: %s", self.name,
                     ", ".join(f"{k} {c} {n}" for (k, c), n in sorted(result.repairs.items())))
        return result

    def _zero_tag_cells(self, cells: list[int]) -> None:
        """A tag new to its cell starts from zero in every per-tag counter."""
        cells = sorted(set(cells))
        if cells:
            self._write("zero tag counter cells", [
                self.codec.update(Update.MODIFY, CounterEntry(name, c))
                for name in self._tag_counters() for c in cells])

    def _tag_counters(self) -> list[str]:
        names = []
        for name in C_TAG_FIELDS:
            try:
                self.index.counter(name)
                names.append(name)
            except UnknownName:
                continue  # an older program without this counter
        return names

    def _sync_part(self, what: str, want: list, have: list):
        plan = diff(want, have)
        self._write(what, self.codec.updates(plan))
        return plan

    # ---- forwarding ----
    @_p4info_errors
    def set_forwarding(self, mac_ports: dict[str, int], flood_ports: list[int],
                       cpu_port: int | None, monitor_port: int | None) -> None:
        f = Forwarding(dict(mac_ports), tuple(flood_ports), cpu_port, monitor_port)
        with self._lock:
            have = self._read_tables([T_L2])[T_L2]
            self._sync_part("l2_forward", self._l2_entries(f), have)
            have_pre = self._read_pre(self._pre_owned(f))
            self._sync_part("replication", self._forwarding_entities(f), have_pre)
        log.info("switch %s: forwarding written: %d MAC entries, flood ports %s, cpu port %s, "
                 "mirror session %d -> port %s", self.name, len(mac_ports), sorted(set(flood_ports)),
                 cpu_port, MONITOR_MIRROR_SESSION_ID, monitor_port)

    # ---- MAC learning (controller/learning.py) ----
    @_p4info_errors
    def learn(self, mac: str, port: int, ageing_s: float, old_port: int | None = None) -> None:
        """Forward to `mac` by `port` and stop punting its frames from there (an entry aged
        by idle timeout); a host that moved from old_port loses its old pair."""
        self.learn_batch([(mac, port, old_port)], ageing_s)

    @_p4info_errors
    def learn_batch(self, items: list[tuple[str, int, int | None]], ageing_s: float) -> None:
        """learn() for many (mac, port, old_port) in one Write."""
        with self._lock:
            if self._touched_macs is not None:
                self._touched_macs.update(mac for mac, _, _ in items)
            ups = []
            for mac, port, old_port in items:
                if old_port is not None:
                    ups.append(self.codec.update(Update.DELETE,
                                                 self._learned_entry(mac, old_port, ageing_s)))
                ups.append(self.codec.update(Update.MODIFY if old_port is not None else Update.INSERT,
                                             self._l2_entry(mac, port)))
                ups.append(self.codec.update(Update.INSERT, self._learned_entry(mac, port, ageing_s)))
            self._write(f"learn {len(items)} MAC(s)", ups)

    @_p4info_errors
    def unlearn(self, mac: str, port: int) -> None:
        """Forget a learned MAC (aged out): flood toward it again, punt its next frame."""
        with self._lock:
            if self._touched_macs is not None:
                self._touched_macs.add(mac)
            self._write(f"unlearn {mac}", [
                self.codec.update(Update.DELETE, self._learned_entry(mac, port, 0)),
                self.codec.update(Update.DELETE, self._l2_entry(mac, port))])

    # ---- tags ----
    @_p4info_errors
    def sync_tags(self, rules: list[TagRule]) -> None:
        """Make the policy table hold exactly `rules`; a rule new to the switch (or moved to
        another counter cell) starts from a zeroed cell."""
        with self._lock:
            want = self._tag_entries_for(rules)
            tables = self._read_tables(self._tag_tables())
            have = [e for entries in tables.values() for e in entries]
            plan = self._sync_part("tag tables", want, have)
            old_cells = {e.key: e.param("tag_id") for e in have}
            zero = [e.param("tag_id") for e in plan.insert]
            zero += [e.param("tag_id") for e in plan.modify if old_cells.get(e.key) != e.param("tag_id")]
            self._zero_tag_cells(zero)
            self.last_zeroed = zero
        if plan:
            log.info("switch %s: tag tables synced: %d rules (%d changes)", self.name,
                     len(rules), len(plan))

    # ---- label trust ----
    @_p4info_errors
    def set_label_trust(self, prefixes: list[str] | tuple[str, ...] | None) -> None:
        """Count flow labels as tags only from these source prefixes (None: from anywhere)."""
        if not self.has_table(T_TRUST):
            if prefixes is None:
                return
            raise DriverError(f"switch {self.name}: the program has no {T_TRUST}: "
                              f"a label trust scope cannot be enforced")
        with self._lock:
            want, default = self._trust_entries(tuple(prefixes) if prefixes is not None else None)
            have = self._read_tables([T_TRUST])[T_TRUST]
            have_default = self._read_default(T_TRUST)
            if default != have_default and prefixes is None:
                self._write("label_trust default", [self._default_update(T_TRUST, default)])
            self._sync_part("label_trust", want, have)
            if default != have_default and prefixes is not None:
                self._write("label_trust default", [self._default_update(T_TRUST, default)])
        log.info("switch %s: label trust %s", self.name,
                 "everywhere" if prefixes is None else ", ".join(prefixes))

    # ---- firefly flows ----
    @_p4info_errors
    def install_flow(self, rule: FlowRule) -> None:
        with self._lock:
            entry = self._flow_entry(rule.key, rule)
            first = Update.MODIFY if rule.key in self._flows else Update.INSERT
            try:
                self._write("install flow", [self.codec.update(first, entry)])
            except DriverError as exc:
                codes = getattr(exc, "codes", [])
                if first == Update.INSERT and code_pb2.ALREADY_EXISTS in codes:
                    self._write("refresh flow", [self.codec.update(Update.MODIFY, entry)])
                elif first == Update.MODIFY and code_pb2.NOT_FOUND in codes:
                    self._write("install flow", [self.codec.update(Update.INSERT, entry)])
                else:
                    raise
            self._flows[rule.key] = rule
            self._idle_reported.discard(rule.key)
            if self._touched is not None:
                self._touched.add(rule.key)

    @_p4info_errors
    def flow_counts(self, key: FlowKey) -> Counts | None:
        ent = p4runtime_pb2.Entity()
        ent.direct_counter_entry.table_entry.CopyFrom(self.codec.encode(self._flow_entry(key)).table_entry)
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

    @_p4info_errors
    def remove_flow(self, key: FlowKey) -> Counts:
        with self._lock:
            counts = self.flow_counts(key) or Counts()
            try:
                self._write("remove flow", [self.codec.update(Update.DELETE, self._flow_entry(key))])
            except DriverError as exc:
                if code_pb2.NOT_FOUND not in getattr(exc, "codes", []):
                    raise
            self._flows.pop(key, None)
            self._idle_reported.discard(key)
            if self._touched is not None:
                self._touched.add(key)
            return counts

    def _decode_key(self, e: p4runtime_pb2.TableEntry) -> FlowKey:
        """The flow of a firefly entry as read (with its counter data): cached by its match
        bytes, the hot path of the counter poll."""
        raw = (e.table_id, *[m.exact.value for m in e.match])
        key = self._key_cache.get(raw)
        if key is None:
            plain = p4runtime_pb2.TableEntry()
            plain.CopyFrom(e)
            key = self._flow_key(self.codec.decode_table_entry(plain))
            if len(self._key_cache) >= KEY_CACHE_MAX:
                self._key_cache.clear()
            self._key_cache[raw] = key
        return key

    @_p4info_errors
    def installed_flows(self) -> dict[FlowKey, FlowRule]:
        with self._lock:
            tables = self._read_tables([T_FF[4], T_FF[6]])
            flows = {}
            for e in tables[T_FF[4]] + tables[T_FF[6]]:
                rule = self._flow_rule(e)
                flows[rule.key] = rule
            self._flows = dict(flows)
            return flows

    def cached_flows(self) -> dict[FlowKey, FlowRule]:
        with self._lock:
            return dict(self._flows)

    # ---- counters ----
    @_p4info_errors
    def read_counters(self) -> CounterSnapshot:
        """Tag cells, bucket cells and every firefly entry's direct counter, in one Read."""
        client = self._require()
        present = self._tag_counters()
        tag_fields = {self.index.counter(n).id: C_TAG_FIELDS[n] for n in present}
        bucket_ids = set()
        entities = [self.codec.read_counter(n) for n in present]
        for name in C_BUCKETS:
            try:
                bucket_ids.add(self.index.counter(name).id)
            except UnknownName:
                continue  # a program without a separate firefly bucket counter
            entities.append(self.codec.read_counter(name))
        placement_ids = {}
        for name in (C_DIRECTION, C_WIRE_DOWN):
            try:
                placement_ids[self.index.counter(name).id] = name
            except UnknownName:
                continue  # a program without placement modes
            entities.append(self.codec.read_counter(name))
        ff_ids = {self.index.table(T_FF[afi]).id for afi in (4, 6)}
        entities += [self.codec.read_table(T_FF[afi], counters=True) for afi in (4, 6)]
        got = self._rpc("read counters", client.read, entities)
        snap = CounterSnapshot(self.name, time.time())
        for e in got:
            if e.HasField("counter_entry"):
                ce = e.counter_entry
                counts = Counts(ce.data.packet_count, ce.data.byte_count)
                cells = tag_fields.get(ce.counter_id)
                if cells is not None:
                    if counts.packets or counts.bytes:
                        getattr(snap, cells)[ce.index.index] = counts
                elif ce.counter_id in placement_ids:
                    if counts.packets or counts.bytes:
                        i = ce.index.index
                        if placement_ids[ce.counter_id] == C_DIRECTION:
                            snap.direction_tags[(i >> 1, (i & 1) + 1)] = counts
                        else:
                            snap.wire_down[i] = counts
                elif ce.counter_id in bucket_ids and ce.index.index < len(BUCKETS):
                    name = BUCKETS[ce.index.index]
                    snap.buckets[name] = snap.buckets.get(name, Counts()) + counts
            elif e.table_entry.table_id in ff_ids:
                te = e.table_entry
                c = te.counter_data
                snap.flows[self._decode_key(te)] = Counts(c.packet_count, c.byte_count)
        for name in BUCKETS:
            snap.buckets.setdefault(name, Counts())
        return snap

    @_p4info_errors
    def read_placement_counters(self) -> CounterSnapshot:
        """Only the per-direction tag cells and the wire-down drops (one Read; empty on a
        program without placement modes)."""
        snap = CounterSnapshot(self.name, time.time())
        names = {}
        for name in (C_DIRECTION, C_WIRE_DOWN):
            try:
                names[self.index.counter(name).id] = name
            except UnknownName:
                continue
        if not names:
            return snap
        got = self._rpc("read placement counters", self._require().read,
                        [self.codec.read_counter(n) for n in names.values()])
        for e in got:
            ce = e.counter_entry
            counts = Counts(ce.data.packet_count, ce.data.byte_count)
            if counts.packets or counts.bytes:
                i = ce.index.index
                if names.get(ce.counter_id) == C_DIRECTION:
                    snap.direction_tags[(i >> 1, (i & 1) + 1)] = counts
                else:
                    snap.wire_down[i] = counts
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
            listener = self.on_source_mac
            if listener is not None and len(pkt.payload) >= 12 and meta.get("reason") in (
                    PUNT_REASON_LEARN, PUNT_REASON_FIREFLY):
                # a firefly copy teaches its source too (it wins the one clone per packet)
                listener(self.name, _mac_str(int.from_bytes(pkt.payload[6:12], "big")),
                         meta.get("ingress_port", 0))
            if meta.get("reason") == PUNT_REASON_LEARN:
                self.stats["learn_packet_in"] += 1
                return
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
        if self.has_table(T_LEARNED) and e.table_id == self.index.table(T_LEARNED).id:
            aged = self.on_mac_aged
            if aged is not None:
                te = self.codec.decode_table_entry(e)
                aged(self.name, _mac_str(te.field("src_mac")), te.field("ingress_port"))
            return
        if e.table_id not in {self.index.table(t).id for t in T_FF.values()}:
            return
        try:
            key = self._decode_key(e)
        except (P4InfoError, SchemaError, KeyError, ValueError):
            return
        with self._lock:
            if key in self._idle_reported or key not in self._flows:
                self.stats["idle_repeats"] += 1  # BMv2 repeats notifications until removal
                return
            self._idle_reported.add(key)
        self._emit(FlowIdle(self.name, key))


@dataclass(frozen=True)
class _ReadBack:
    """What read_back() found (the input of reconcile)."""
    trust: bool
    tag_tables: list[str]
    tables: dict[str, list[TableEntry]]
    pre: list
    default: object
    seconds: float


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _mac_str(value: int) -> str:
    return ":".join(f"{b:02x}" for b in int(value).to_bytes(6, "big"))


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
        nh = frame[off + 6]
        src = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
        end = min(len(frame), off + 40 + struct.unpack_from("!H", frame, off + 4)[0])
        off += 40
        # Hop-by-Hop then Destination Options (extension-header tags): the P4 parser punts
        # fireflies behind them, so the UDP header is found the same way here.
        for options_header in (0, 60):
            if nh == options_header:
                nh, units = frame[off], frame[off + 1]
                off += 8 + 8 * units
        if nh != 17:
            return None
    else:
        return None
    sport, _, ulen = struct.unpack_from("!HHH", frame, off)
    if ulen < 8:
        raise ValueError("UDP length below 8")
    end = min(end, off + ulen)
    return (src, sport), frame[off + 8:end]
