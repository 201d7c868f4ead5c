"""P4Runtime server for the built-in v1model target, speaking like BMv2's simple_switch_grpc.

    server = P4RuntimeServer(engine, device_id=1, cpu_port=255,
                             send_packet_out=lambda frame: switch.inject(255, frame))
    switch.add_packet_in_handler(server.deliver_packet_in)
    port = server.start("127.0.0.1:0")            # or start(addr, tls_credentials(cert, key))
    ...
    server.stop()

Service: SetForwardingPipelineConfig / GetForwardingPipelineConfig (p4_device_config is the
BMv2 JSON), Write (CONTINUE_ON_ERROR batches, per-update p4.v1.Error details), Read
(wildcards, counters, PRE), StreamChannel (arbitration, packet-in/out, idle-timeout
notifications, stream errors), Capabilities. Status codes follow p4lang/PI, the server
BMv2 runs; softswitch/p4rt/ holds the pieces. A handler never lets an exception escape:
bad input gets the code PI gives it, a bug gets INTERNAL with its message and is logged.
server.stats counts requests refused, by RPC and code, and packet I/O.

PI's answers worth knowing: a full table is UNKNOWN (PI maps every target failure to it),
an unknown table / action id is INVALID_ARGUMENT ("Invalid P4 id"), non-canonical
bytestrings are accepted when the value fits, RECONCILE_AND_COMMIT fails on programs with
indirect counters (PI replays their cells as INSERTs). tests/softswitch/
test_p4runtime_bmv2.py checks these against simple_switch_grpc. Where this server differs:
  - registers are read and written (BMv2: UNIMPLEMENTED); action profiles, meters, digests
    and value sets are UNIMPLEMENTED (the engine has none);
  - a bad or refused packet-out always gets a StreamError (PI: only when enabled through
    its ServerConfig service, and packet-outs from backups are dropped silently);
  - roles are arbitrated separately (PI ignores them);
  - VERIFY_AND_SAVE switches the engine at once (BMv2 forwards with the old program until
    COMMIT; the P4Runtime state switches at once in both);
  - LPM / range don't-care checks follow the spec for fields whose width is not a multiple
    of 8 (PI's byte arithmetic differs there);
  - reads larger than 16384 entities come in several ReadResponse messages.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
import threading
from concurrent import futures
from typing import Any, Callable, Iterator

import grpc
from p4.v1 import p4runtime_pb2 as p4r

from softswitch.p4rt.arbitration import CLOSE, Arbiter, Connection, StreamAbort, role_key, u128
from softswitch.p4rt.device import Device
from softswitch.p4rt.idle_timeout import DEFAULT_SWEEP_INTERVAL, AgeingMonitor
from softswitch.p4rt.status import (ERROR_SPACE, FAILED_PRECONDITION, INTERNAL,
                                    INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED,
                                    UNKNOWN, P4RTError, abort_context, grpc_code,
                                    simple_status)

log = logging.getLogger(__name__)

P4RUNTIME_API_VERSION = "1.3.0"      # what PI (BMv2) reports
SERVICE = "p4.v1.P4Runtime"
MAX_MESSAGE = 256 * 1024 * 1024      # PI accepts requests up to 256 MB


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS listener; with ca_file, client certificates can be checked."""
    cert_file: str
    key_file: str
    ca_file: str | None = None
    require_client_auth: bool = False


def tls_credentials(cert_file: str, key_file: str, ca_file: str | None = None,
                    require_client_auth: bool = False) -> grpc.ServerCredentials:
    key = pathlib.Path(key_file).read_bytes()
    cert = pathlib.Path(cert_file).read_bytes()
    ca = pathlib.Path(ca_file).read_bytes() if ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=require_client_auth)


class _Malformed:
    """Stands for a request that did not parse (the handler answers INVALID_ARGUMENT)."""

    def __init__(self, kind: str, error: Exception) -> None:
        self.kind = kind
        self.error = error


def _safe_parser(cls: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except Exception as exc:
            return _Malformed(cls.__name__, exc)
    return parse


def _unary(response_cls: Any) -> Callable:
    """Run a unary handler so that nothing escapes: P4RTError -> its code, bug -> INTERNAL."""
    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: "P4RuntimeServer", request: Any, context: grpc.ServicerContext) -> Any:
            try:
                if isinstance(request, _Malformed):
                    raise P4RTError(INVALID_ARGUMENT, f"malformed {request.kind}: "
                                                      f"{request.error}")
                return fn(self, request, context)
            except P4RTError as exc:
                self._count_error(fn.__name__, exc.code)
                abort_context(context, simple_status(exc.code, exc.message))
            except Exception as exc:
                self._count_error(fn.__name__, INTERNAL)
                log.exception("%s failed", fn.__name__)
                abort_context(context, simple_status(
                    INTERNAL, f"internal error in {fn.__name__}: {type(exc).__name__}: {exc}"))
            return response_cls()
        return wrapper
    return deco


class P4RuntimeServer:
    def __init__(self, engine: Any, device_id: int, cpu_port: int | None,
                 send_packet_out: Callable[[bytes], Any], *,
                 idle_sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
                 max_workers: int = 48,
                 engine_factory: Callable[[], Any] | None = None) -> None:
        """engine_factory makes a scratch engine to verify a new pipeline before the running
        one is replaced; by default, another instance of the engine's class. Each open
        StreamChannel holds one of the max_workers threads; at most two thirds of them may
        be streams, so unary RPCs always have threads left."""
        self.device_id = device_id
        self.cpu_port = cpu_port
        self._send_packet_out = send_packet_out
        if engine_factory is None:
            def engine_factory() -> Any:
                return type(engine)(cpu_port=cpu_port)
        self.device = Device(engine, device_id, engine_factory)
        self.arbiter = Arbiter()
        self._max_workers = max_workers
        self._max_streams = max(1, max_workers * 2 // 3)
        self._server: grpc.Server | None = None
        self._connections: set[Connection] = set()
        self._conn_lock = threading.Lock()
        self._ageing = AgeingMonitor(self._sweep_idle, idle_sweep_interval)
        self.stats = self.device.stats       # collections.Counter shared with the device

    # ---- lifecycle ----
    def start(self, address: str = "0.0.0.0:9559",
              credentials: grpc.ServerCredentials | TlsFiles | None = None) -> int:
        """Listen on address (port 0: any free port); return the bound port. credentials:
        grpc server credentials or TlsFiles for TLS, None for plaintext."""
        if self._server is not None:
            raise RuntimeError("server already started")
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers,
                                       thread_name_prefix="p4rt"),
            options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                     ("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((self._handlers(),))
        if isinstance(credentials, TlsFiles):
            credentials = tls_credentials(credentials.cert_file, credentials.key_file,
                                          credentials.ca_file, credentials.require_client_auth)
        try:
            if credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from None
        if not port:
            raise OSError(f"cannot listen on {address}")
        server.start()
        self._server = server
        self._ageing.start()
        log.info("P4Runtime server for device %d listening on port %d", self.device_id, port)
        return port

    def stop(self, grace: float | None = 0) -> None:
        self._ageing.stop()
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            conn.close()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def _handlers(self) -> grpc.GenericRpcHandler:
        def uu(fn: Callable, req: Any, resp: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=_safe_parser(req),
                response_serializer=resp.SerializeToString)
        handlers = {
            "Write": uu(self.Write, p4r.WriteRequest, p4r.WriteResponse),
            "Read": grpc.unary_stream_rpc_method_handler(
                self.Read, request_deserializer=_safe_parser(p4r.ReadRequest),
                response_serializer=p4r.ReadResponse.SerializeToString),
            "SetForwardingPipelineConfig": uu(self.SetForwardingPipelineConfig,
                                              p4r.SetForwardingPipelineConfigRequest,
                                              p4r.SetForwardingPipelineConfigResponse),
            "GetForwardingPipelineConfig": uu(self.GetForwardingPipelineConfig,
                                              p4r.GetForwardingPipelineConfigRequest,
                                              p4r.GetForwardingPipelineConfigResponse),
            "StreamChannel": grpc.stream_stream_rpc_method_handler(
                self.StreamChannel,
                request_deserializer=_safe_parser(p4r.StreamMessageRequest),
                response_serializer=p4r.StreamMessageResponse.SerializeToString),
            "Capabilities": uu(self.Capabilities, p4r.CapabilitiesRequest,
                               p4r.CapabilitiesResponse),
        }
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _count_error(self, rpc: str, code: int) -> None:
        self.stats[f"{rpc}_error_{grpc_code(code).name}"] += 1

    def _check_primary(self, device_id: int, role: str, request: Any) -> None:
        self.arbiter.check_write(device_id, role, request.HasField("election_id"),
                                 u128(request.election_id))

    def _check_device(self, device_id: int) -> None:
        if device_id != self.device_id:
            raise P4RTError(FAILED_PRECONDITION,
                            f"No forwarding pipeline config set for device {device_id} "
                            f"(this switch is device {self.device_id})")

    # ---- unary RPCs ----
    @_unary(p4r.WriteResponse)
    def Write(self, request: p4r.WriteRequest, context: grpc.ServicerContext) -> Any:
        self._check_primary(request.device_id, role_key(request.role, request.role_id), request)
        self._check_device(request.device_id)
        status = self.device.write(request)
        if status is not None:
            self._count_error("Write", status.code)
            abort_context(context, status)
        return p4r.WriteResponse()

    @_unary(p4r.SetForwardingPipelineConfigResponse)
    def SetForwardingPipelineConfig(self, request: p4r.SetForwardingPipelineConfigRequest,
                                    context: grpc.ServicerContext) -> Any:
        self._check_primary(request.device_id, role_key(request.role, request.role_id), request)
        self._check_device(request.device_id)
        self.device.set_pipeline(request.action, request.config)
        return p4r.SetForwardingPipelineConfigResponse()

    @_unary(p4r.GetForwardingPipelineConfigResponse)
    def GetForwardingPipelineConfig(self, request: p4r.GetForwardingPipelineConfigRequest,
                                    context: grpc.ServicerContext) -> Any:
        self._check_device(request.device_id)
        if self.device.pipeline is None:
            raise P4RTError(FAILED_PRECONDITION,
                            "No forwarding pipeline config set for this device")
        resp = p4r.GetForwardingPipelineConfigResponse()
        resp.config.CopyFrom(self.device.get_pipeline(request.response_type))
        return resp

    @_unary(p4r.CapabilitiesResponse)
    def Capabilities(self, request: p4r.CapabilitiesRequest,
                     context: grpc.ServicerContext) -> Any:
        return p4r.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

    # ---- Read ----
    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[p4r.ReadResponse]:
        try:
            if isinstance(request, _Malformed):
                raise P4RTError(INVALID_ARGUMENT, f"malformed {request.kind}: {request.error}")
            self._check_device(request.device_id)
            responses, error = self.device.read(request)
        except P4RTError as exc:
            responses, error = [], exc
        except Exception as exc:
            log.exception("Read failed")
            responses, error = [], P4RTError(INTERNAL, f"internal error in Read: "
                                                       f"{type(exc).__name__}: {exc}")
        yield from responses
        if error is not None:
            self._count_error("Read", error.code)
            abort_context(context, simple_status(error.code, error.message))

    # ---- StreamChannel ----
    def StreamChannel(self, request_iterator: Iterator[Any],
                      context: grpc.ServicerContext) -> Iterator[p4r.StreamMessageResponse]:
        conn = Connection()
        with self._conn_lock:
            too_many = len(self._connections) >= self._max_streams
            if not too_many:
                self._connections.add(conn)
        if too_many:
            # each stream holds a worker thread: keep some for the unary RPCs
            self.stats["StreamChannel_error_RESOURCE_EXHAUSTED"] += 1
            abort_context(context, simple_status(RESOURCE_EXHAUSTED, "Too many streams"))
            return
        context.add_callback(conn.close)
        reader = threading.Thread(target=self._stream_reader, args=(conn, request_iterator),
                                  name=f"p4rt-stream-{conn.id}", daemon=True)
        reader.start()
        try:
            while True:
                item = conn.outbox.get()
                if item is CLOSE:
                    return
                if isinstance(item, StreamAbort):
                    abort_context(context, simple_status(item.code, item.message))
                    return
                yield item
        finally:
            conn.closed = True
            self.arbiter.remove(conn)
            with self._conn_lock:
                self._connections.discard(conn)

    def _stream_reader(self, conn: Connection, request_iterator: Iterator[Any]) -> None:
        try:
            for req in request_iterator:
                if conn.closed:
                    break
                try:
                    self._stream_request(conn, req)
                except StreamAbort as exc:
                    self.stats[f"StreamChannel_error_{grpc_code(exc.code).name}"] += 1
                    self.arbiter.remove(conn)
                    conn.close(exc)
                    return
                except Exception as exc:   # a bug: tell the client, keep the stream
                    log.exception("stream message failed")
                    self._stream_error(conn, INTERNAL, f"internal error: "
                                                       f"{type(exc).__name__}: {exc}")
        except grpc.RpcError:
            pass          # the client went away
        except Exception:
            log.exception("stream reader failed")
        finally:
            self.arbiter.remove(conn)
            conn.close()

    def _stream_request(self, conn: Connection, req: Any) -> None:
        if isinstance(req, _Malformed):
            self._stream_error(conn, INVALID_ARGUMENT,
                               f"malformed {req.kind}: {req.error}")
            return
        kind = req.WhichOneof("update")
        if kind == "arbitration":
            self.arbiter.arbitrate(conn, req.arbitration)
        elif kind == "packet":
            self._packet_out(conn, req.packet)
        # digest acks and `other` are ignored, as PI ignores what it does not know

    def _stream_error(self, conn: Connection, code: int, message: str,
                      packet: p4r.PacketOut | None = None) -> None:
        msg = p4r.StreamMessageResponse()
        err = msg.error
        err.canonical_code = code
        err.message = message
        err.space = ERROR_SPACE
        if packet is not None:
            err.packet_out.packet_out.CopyFrom(packet)
        conn.send(msg)

    def _packet_out(self, conn: Connection, packet: p4r.PacketOut) -> None:
        if not self.arbiter.is_primary(conn):
            self.stats["packet_out_refused"] += 1
            self._stream_error(conn, PERMISSION_DENIED,
                               "PacketOut refused: this stream is not the primary client",
                               packet)
            return
        try:
            if conn.device_id != self.device_id:
                raise P4RTError(FAILED_PRECONDITION,
                                f"No forwarding pipeline config set for device {conn.device_id}")
            frame = self.device.packet_out_frame(packet)
        except P4RTError as exc:
            self.stats["packet_out_invalid"] += 1
            self._stream_error(conn, exc.code, exc.message, packet)
            return
        try:
            self._send_packet_out(frame)
        except Exception as exc:
            self.stats["packet_out_failed"] += 1
            log.exception("packet-out failed")
            self._stream_error(conn, UNKNOWN, f"Unknown error when target sending packet-out: "
                                              f"{type(exc).__name__}: {exc}", packet)
            return
        self.stats["packet_out"] += 1

    # ---- data plane -> controller ----
    def deliver_packet_in(self, frame: bytes) -> None:
        """A frame the program sent to the CPU port: strip the packet_in header into
        metadata and send a PacketIn to the primary client(s)."""
        try:
            pkt = self.device.packet_in(frame)
            if pkt is None:
                self.stats["packet_in_dropped_unparsable"] += 1
                return
            msg = p4r.StreamMessageResponse(packet=pkt)
            sent = False
            for conn in self.arbiter.primaries(self.device_id):
                sent = conn.send_droppable(msg) or sent
            self.stats["packet_in" if sent else "packet_in_dropped_no_client"] += 1
        except Exception:
            self.stats["packet_in_failed"] += 1
            log.exception("packet-in delivery failed")

    def _sweep_idle(self) -> None:
        msg = self.device.sweep_idle()
        if msg is None:
            return
        for conn in self.arbiter.primaries(self.device_id):
            conn.send_droppable(msg)
        self.stats["idle_timeout_notifications"] += 1
