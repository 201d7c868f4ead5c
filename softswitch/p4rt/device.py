"""One device's P4Runtime state: the pipeline (P4Info index + engine program) and the
Write / Read / pipeline-config logic, as PI's DeviceMgr does it for BMv2.

Everything that changes state runs under one lock (PI takes a device-wide lock for reads
and writes too), so a Write batch is applied in order and a Read sees whole batches.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable

from google.rpc import status_pb2
from p4.v1 import p4runtime_pb2 as p4r

from p4schema import P4Schema, SchemaError

from .externs import Externs
from .idle_timeout import AgeingState, notification
from .packet_io import PacketInCodec, PacketOutCodec
from .pre import PacketReplication
from .status import (FAILED_PRECONDITION, INTERNAL, INVALID_ARGUMENT, OK, UNIMPLEMENTED,
                     UNKNOWN, P4RTError, code_name, from_schema_error, invalid_id,
                     simple_status, write_error_status)
from .tables import TableManager

log = logging.getLogger(__name__)

SetAction = p4r.SetForwardingPipelineConfigRequest
GetType = p4r.GetForwardingPipelineConfigRequest
READ_CHUNK = 16384     # entities per ReadResponse: keeps each under gRPC's 4 MB default


class ProgramMismatch(Exception):
    """The P4Info does not describe the BMv2 JSON."""


def check_program(index: P4Schema, engine: Any) -> None:
    """Every P4Info table / action / counter must exist in the loaded program, with the same
    key widths; otherwise writes would fail later in confusing ways."""
    names = set(engine.table_names())
    for t in index.tables.values():
        if t.name not in names:
            raise ProgramMismatch(f"table {t.name!r} of the P4Info is not in the device config")
        info = engine.table_info(t.name)      # TableInfo: keys [(name, kind, width)], actions
        if len(info.keys) != len(t.match_fields):
            raise ProgramMismatch(f"table {t.name!r}: {len(t.match_fields)} match fields in the "
                                  f"P4Info, {len(info.keys)} in the device config")
        for f, (_, _, width) in zip(t.match_fields, info.keys):
            if width != f.bitwidth:
                raise ProgramMismatch(f"table {t.name!r} field {f.name!r}: {f.bitwidth} bits "
                                      f"in the P4Info, {width} in the device config")
        have = set(info.actions)
        for aid in t.actions:
            aname = index.actions[aid].name
            if aname not in have:
                raise ProgramMismatch(f"table {t.name!r}: action {aname!r} of the P4Info is "
                                      f"not in the device config")
    for kind, items, size_of in (("counter", index.counters, engine.counter_size),
                                 ("register", index.registers, engine.register_size)):
        for item in items.values():
            try:
                size = size_of(item.name)
            except KeyError:
                raise ProgramMismatch(f"{kind} {item.name!r} of the P4Info is not in the "
                                      f"device config") from None
            if size != item.size:
                raise ProgramMismatch(f"{kind} {item.name!r}: size {item.size} in the P4Info, "
                                      f"{size} in the device config")


class Pipeline:
    """A committed forwarding pipeline and all state that lives and dies with it."""

    def __init__(self, config: p4r.ForwardingPipelineConfig, index: P4Schema,
                 engine: Any, clock: Callable[[], float]) -> None:
        self.config = config
        self.index = index
        self.tables = TableManager(index, engine, clock)
        self.externs = Externs(index, engine, self.tables)
        self.pre = PacketReplication(engine)
        self.packet_in = PacketInCodec(index.packet_in)
        self.packet_out = PacketOutCodec(index.packet_out)
        self.ageing = AgeingState()


class ReadSink:
    """Collects read entities into as many ReadResponse messages as needed."""

    def __init__(self) -> None:
        self.responses = [p4r.ReadResponse()]
        self._count = 0

    def add(self) -> p4r.Entity:
        if self._count == READ_CHUNK:
            self.responses.append(p4r.ReadResponse())
            self._count = 0
        self._count += 1
        return self.responses[-1].entities.add()


class Device:
    def __init__(self, engine: Any, device_id: int,
                 engine_factory: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.device_id = device_id
        self.engine_factory = engine_factory
        self.clock = clock
        self.lock = threading.RLock()
        self.pipeline: Pipeline | None = None
        self._swap_pending = False
        self.stats: collections.Counter[str] = collections.Counter()

    # ---- pipeline config ----
    def set_pipeline(self, action: int, config: p4r.ForwardingPipelineConfig) -> None:
        """PI's two-phase update, as BMv2 answers it: VERIFY checks the P4Info only;
        VERIFY_AND_SAVE switches to the new pipeline at once (BMv2 keeps forwarding with the
        old program until COMMIT; here the engine switches too) and leaves a swap pending,
        which only COMMIT clears; while a swap is pending every other update fails."""
        if action == SetAction.UNSPECIFIED or action not in SetAction.Action.values():
            raise P4RTError(INVALID_ARGUMENT, "Invalid SetForwardingPipeline action")
        index = None
        if action != SetAction.COMMIT:
            try:
                index = P4Schema(config.p4info)
            except SchemaError as exc:
                raise from_schema_error(exc) from None
        if action == SetAction.VERIFY:
            return
        with self.lock:
            if action == SetAction.COMMIT:
                if not self._swap_pending:
                    raise P4RTError(UNKNOWN, "Error in second phase of device update: no "
                                             "saved pipeline config (VERIFY_AND_SAVE) to commit")
                self._swap_pending = False
                return
            if self._swap_pending:
                raise P4RTError(UNKNOWN, "Error in first phase of device update: a saved "
                                         "pipeline config is waiting for COMMIT")
            assert index is not None
            self._verify_program(config, index)
            state = self._forwarding_state() if action == SetAction.RECONCILE_AND_COMMIT \
                else None
            kept = p4r.ForwardingPipelineConfig()
            kept.CopyFrom(config)
            self._commit(kept, index)
            if action == SetAction.VERIFY_AND_SAVE:
                self._swap_pending = True
            if state is not None and state.updates:
                # PI replays the old state as INSERTs; like PI, indirect counter cells do
                # not replay (INSERT is refused for counters), which fails the reconcile
                # and leaves the swap pending.
                failed = self.write(state)
                if failed is not None:
                    self._swap_pending = True
                    raise P4RTError(UNKNOWN, f"Error when reconciling config: "
                                             f"{failed.message}")

    def _verify_program(self, config: p4r.ForwardingPipelineConfig,
                        index: P4Schema) -> None:
        """Load the BMv2 JSON into a scratch engine and check it against the P4Info, so
        that a bad config is refused before the running pipeline is touched."""
        if self.engine_factory is None:
            return
        scratch = self.engine_factory()
        try:
            scratch.load(config.p4_device_config)
            check_program(index, scratch)
        except ProgramMismatch as exc:
            raise P4RTError(UNKNOWN, f"Error in first phase of device update: P4Info and "
                                     f"device config disagree: {exc}") from None
        except Exception as exc:   # UnsupportedProgram, ValueError, JSON errors...
            raise P4RTError(UNKNOWN, f"Error in first phase of device update: "
                                     f"{type(exc).__name__}: {exc}") from None

    def _commit(self, config: p4r.ForwardingPipelineConfig, index: P4Schema) -> None:
        try:
            self.engine.load(config.p4_device_config)
        except Exception as exc:
            self.pipeline = None
            raise P4RTError(UNKNOWN, f"Error in first phase of device update: "
                                     f"{type(exc).__name__}: {exc}") from None
        self.pipeline = Pipeline(config, index, self.engine, self.clock)

    def _forwarding_state(self) -> p4r.WriteRequest:
        """The state PI saves for RECONCILE_AND_COMMIT: what a wildcard read of table entries
        (without counter data) and of indirect counters returns, as INSERT updates."""
        req = p4r.WriteRequest()
        p = self.pipeline
        if p is None:
            return req

        def add() -> p4r.Entity:
            return req.updates.add(type=p4r.Update.INSERT).entity
        p.tables.read(p4r.TableEntry(), add)
        p.externs.counter_read(p4r.CounterEntry(), add)
        return req

    def get_pipeline(self, response_type: int) -> p4r.ForwardingPipelineConfig:
        out = p4r.ForwardingPipelineConfig()
        with self.lock:
            p = self.pipeline
        if p is None:
            return out
        if response_type == GetType.ALL:
            out.p4info.CopyFrom(p.config.p4info)
            out.p4_device_config = p.config.p4_device_config
        elif response_type == GetType.COOKIE_ONLY:
            pass
        elif response_type == GetType.P4INFO_AND_COOKIE:
            out.p4info.CopyFrom(p.config.p4info)
        elif response_type == GetType.DEVICE_CONFIG_AND_COOKIE:
            out.p4_device_config = p.config.p4_device_config
        else:
            raise P4RTError(INVALID_ARGUMENT,
                            "Invalid response_type in GetForwardingPipelineConfigRequest")
        if p.config.HasField("cookie"):
            out.cookie.CopyFrom(p.config.cookie)
        return out

    # ---- write ----
    def write(self, request: p4r.WriteRequest) -> status_pb2.Status | None:
        """None when every update succeeded, else the google.rpc.Status to return."""
        if request.atomicity != p4r.WriteRequest.CONTINUE_ON_ERROR:
            return simple_status(UNIMPLEMENTED,
                                 "Support for atomic write modes has not been implemented yet")
        results: list[tuple[int, str]] = []
        failed = 0
        ok = (OK, "")
        with self.lock:
            p = self.pipeline
            if p is None:
                return simple_status(FAILED_PRECONDITION,
                                     "No forwarding pipeline config set for this device")
            table_write = p.tables.write
            for update in request.updates:
                entity = update.entity
                try:
                    kind = entity.WhichOneof("entity")
                    if kind == "table_entry":
                        table_write(update.type, entity.table_entry)
                    else:
                        self._write_other(p, kind, update.type, entity)
                    results.append(ok)
                except P4RTError as exc:
                    failed += 1
                    results.append((exc.code, exc.message))
                except SchemaError as exc:     # a bytestring too wide for its field
                    failed += 1
                    err = from_schema_error(exc)
                    results.append((err.code, err.message))
                except Exception as exc:   # a bug: report it, keep serving
                    failed += 1
                    log.exception("Write update failed unexpectedly")
                    results.append((INTERNAL, f"{type(exc).__name__}: {exc}"))
        self.stats["write_updates"] += len(results)
        if not failed:
            return None
        self.stats["write_updates_failed"] += failed
        for code, _ in results:
            if code != OK:
                self.stats[f"write_error_{code_name(code)}"] += 1
        return write_error_status(results)

    def _write_other(self, p: Pipeline, kind: str | None, update_type: int,
                     entity: p4r.Entity) -> None:
        idx = p.index
        if kind == "counter_entry":
            p.externs.counter_write(update_type, entity.counter_entry)
        elif kind == "direct_counter_entry":
            p.externs.direct_counter_write(update_type, entity.direct_counter_entry)
        elif kind == "packet_replication_engine_entry":
            p.pre.write(update_type, entity.packet_replication_engine_entry)
        elif kind == "register_entry":
            p.externs.register_write(update_type, entity.register_entry)
        elif kind in ("action_profile_member", "action_profile_group"):
            ap_id = getattr(entity, kind).action_profile_id
            if ap_id not in idx.action_profiles:
                raise invalid_id("action profile", ap_id)
            raise P4RTError(UNIMPLEMENTED, "Action profiles are not supported by this target")
        elif kind == "meter_entry":
            if entity.meter_entry.meter_id not in idx.meters:
                raise invalid_id("meter", entity.meter_entry.meter_id)
            raise P4RTError(UNIMPLEMENTED, "Meters are not supported by this target")
        elif kind == "direct_meter_entry":
            dme = entity.direct_meter_entry
            if not dme.HasField("table_entry"):
                raise P4RTError(INVALID_ARGUMENT,
                                "Missing table_entry field in DirectMeterEntry")
            ts, _ = p.tables.lookup(dme.table_entry)
            if not ts.meta.direct_meter_id:
                raise P4RTError(INVALID_ARGUMENT, "Table has no direct meters")
            raise P4RTError(UNIMPLEMENTED, "Meters are not supported by this target")
        elif kind == "value_set_entry":
            raise P4RTError(UNIMPLEMENTED, "ValueSet writes are not supported yet")
        elif kind == "digest_entry":
            raise P4RTError(UNIMPLEMENTED, "Digests are not supported by this target")
        elif kind == "extern_entry":
            raise P4RTError(UNIMPLEMENTED, "No extern support yet")
        else:
            raise P4RTError(UNKNOWN, "Incorrect entity type")

    # ---- read ----
    def read(self, request: p4r.ReadRequest) -> tuple[list[p4r.ReadResponse], P4RTError | None]:
        """The responses, and the error that stopped the read (PI stops at the first one
        and still sends what it had read)."""
        sink = ReadSink()
        with self.lock:
            p = self.pipeline
            if p is None:
                return [], P4RTError(FAILED_PRECONDITION,
                                     "No forwarding pipeline config set for this device")
            for entity in request.entities:
                try:
                    self._read_one(p, entity, sink.add)
                except (P4RTError, SchemaError) as exc:
                    err = exc if isinstance(exc, P4RTError) else from_schema_error(exc)
                    self.stats[f"read_error_{code_name(err.code)}"] += 1
                    return sink.responses, err
        return sink.responses, None

    def _read_one(self, p: Pipeline, entity: p4r.Entity, add: Callable[[], p4r.Entity]) -> None:
        kind = entity.WhichOneof("entity")
        idx = p.index
        if kind == "table_entry":
            p.tables.read(entity.table_entry, add)
        elif kind == "counter_entry":
            p.externs.counter_read(entity.counter_entry, add)
        elif kind == "direct_counter_entry":
            p.externs.direct_counter_read(entity.direct_counter_entry, add)
        elif kind == "packet_replication_engine_entry":
            p.pre.read(entity.packet_replication_engine_entry, add)
        elif kind == "register_entry":
            p.externs.register_read(entity.register_entry, add)
        elif kind in ("action_profile_member", "action_profile_group"):
            ap_id = getattr(entity, kind).action_profile_id
            if ap_id == 0 and not idx.action_profiles:
                return
            if ap_id and ap_id not in idx.action_profiles:
                raise invalid_id("action profile", ap_id)
            raise P4RTError(UNIMPLEMENTED, "Action profiles are not supported by this target")
        elif kind == "meter_entry":
            mid = entity.meter_entry.meter_id
            if mid == 0 and not idx.meters:
                return
            if mid in idx.direct_meters:
                raise P4RTError(INVALID_ARGUMENT, "Cannot use MeterEntry with a direct meter")
            if mid and mid not in idx.meters:
                raise invalid_id("meter", mid)
            raise P4RTError(UNIMPLEMENTED, "Meters are not supported by this target")
        elif kind == "direct_meter_entry":
            dme = entity.direct_meter_entry
            if not dme.HasField("table_entry"):
                raise P4RTError(INVALID_ARGUMENT,
                                "Missing table_entry field in DirectMeterEntry")
            if dme.table_entry.table_id == 0:
                raise P4RTError(UNIMPLEMENTED, "Reading all direct meters for ALL tables is "
                                               "not supported yet")
            ts = p.tables.table(dme.table_entry.table_id)
            if not ts.meta.direct_meter_id:
                raise P4RTError(INVALID_ARGUMENT, "Table has no direct meters")
            raise P4RTError(UNIMPLEMENTED, "Meters are not supported by this target")
        elif kind == "value_set_entry":
            raise P4RTError(UNIMPLEMENTED, "ValueSet reads are not supported yet")
        elif kind == "digest_entry":
            raise P4RTError(UNIMPLEMENTED, "Digests are not supported by this target")
        else:
            raise P4RTError(UNKNOWN, "Incorrect entity type")

    # ---- packet I/O and ageing ----
    def packet_out_frame(self, packet: p4r.PacketOut) -> bytes:
        p = self.pipeline
        if p is None:
            raise P4RTError(FAILED_PRECONDITION,
                            "No forwarding pipeline config set for this device")
        try:
            return p.packet_out.encode(packet)
        except SchemaError as exc:
            raise from_schema_error(exc) from None

    def packet_in(self, frame: bytes) -> p4r.PacketIn | None:
        p = self.pipeline
        return p.packet_in.decode(frame) if p is not None else None

    def sweep_idle(self) -> p4r.StreamMessageResponse | None:
        with self.lock:
            p = self.pipeline
            if p is None:
                return None
            expired = p.ageing.sweep(p.tables, self.clock())
            return notification(expired) if expired else None

