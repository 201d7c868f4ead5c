"""A P4Runtime client that a long-running controller can live with.

p4runtime-shell's P4RuntimeClient calls sys.exit() when arbitration fails, starts a
non-daemon stream thread and parks every stream message in unbounded queues. This subclass
keeps its RPC helpers (write, read_one, get_p4info, api_version) and replaces the rest:
exceptions instead of exits, a daemon stream thread that hands messages to callbacks,
mastership tracking (primary/backup), and TLS from certificate paths.

Election ids: default_election_id() gives earlier-started controllers higher ids, so a
controller that starts while another runs becomes backup, and the oldest backup becomes
primary when the primary goes away (the server re-arbitrates and tells us).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import grpc
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from p4runtime_sh.p4runtime import P4RuntimeClient, P4RuntimeWriteException

log = logging.getLogger(__name__)

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),  # reading 65536 flows at once
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class P4RuntimeClientError(Exception):
    """Connecting, arbitrating or an RPC failed; the message names the address and cause."""


class NotPrimary(P4RuntimeClientError):
    """A write was attempted while this client is a backup."""


@dataclass(frozen=True)
class TLSOptions:
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as exc:
                raise P4RuntimeClientError(f"cannot read TLS file {path}: {exc.strerror}") from None
        return grpc.ssl_channel_credentials(read(self.cacert), read(self.key), read(self.cert))


def default_election_id() -> tuple[int, int]:
    """(high, low): decreasing with start time (ms), low bits from the pid for uniqueness."""
    now_ms = int(time.time() * 1000)
    return 0, (((1 << 48) - now_ms) << 12) | (os.getpid() & 0xFFF)


def grpc_code(exc: BaseException) -> grpc.StatusCode | None:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code()
    return None


def write_error_codes(exc: BaseException) -> list[int]:
    """Canonical codes of each failed update in a P4Runtime write error."""
    if isinstance(exc, P4RuntimeWriteException):
        return [e.canonical_code for _, e in exc.errors]
    return []


class ManagedP4RuntimeClient(P4RuntimeClient):
    """One connection to one device. Callbacks run on the stream thread: keep them short."""

    def __init__(self, device_id: int, grpc_addr: str, election_id: tuple[int, int],
                 role_name: str | None = None, tls: TLSOptions | None = None,
                 on_message: Callable[[p4runtime_pb2.StreamMessageResponse], None] | None = None,
                 on_mastership: Callable[[bool], None] | None = None,
                 on_stream_closed: Callable[[str], None] | None = None,
                 timeout: float = 5.0) -> None:
        # Deliberately not calling P4RuntimeClient.__init__ (it may sys.exit).
        self.device_id = device_id
        self.grpc_addr = grpc_addr
        self.election_id = election_id
        self.role_name = role_name
        self.ssl_options = None
        self.timeout = timeout
        self.on_message = on_message
        self.on_mastership = on_mastership
        self.on_stream_closed = on_stream_closed
        self.is_primary = False
        self.primary_election_id: tuple[int, int] | None = None
        self.closed = False
        self._arbitration = threading.Condition()
        self._arbitration_seen = False
        self.stream_recv_thread: threading.Thread | None = None
        self.stream_out_q: queue.Queue | None = None
        self.stream_in_q = None
        if tls is not None:
            self.channel = grpc.secure_channel(grpc_addr, tls.credentials(), GRPC_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(grpc_addr, GRPC_OPTIONS)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            self.channel.close()
            raise P4RuntimeClientError(f"{grpc_addr}: no gRPC server answered within {timeout:g}s") from None
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        try:
            self.set_up_stream()
        except BaseException:
            self.tear_down()
            raise

    # ---- stream ----
    def set_up_stream(self) -> None:
        self.stream_out_q = queue.Queue()
        out_q = self.stream_out_q

        def requests() -> Iterable[p4runtime_pb2.StreamMessageRequest]:
            while True:
                msg = out_q.get()
                if msg is None:
                    return
                yield msg

        self.stream = self.stub.StreamChannel(requests())
        self.stream_recv_thread = threading.Thread(
            target=self._receive, name=f"p4rt-stream-{self.grpc_addr}", daemon=True)
        self.stream_recv_thread.start()
        self.handshake()

    def _receive(self) -> None:
        reason = "stream ended by the switch"
        try:
            for msg in self.stream:
                if msg.HasField("arbitration"):
                    self._on_arbitration(msg.arbitration)
                elif self.on_message is not None:
                    try:
                        self.on_message(msg)
                    except Exception:  # a handler bug must not kill the stream
                        log.exception("%s: stream message handler failed", self.grpc_addr)
        except grpc.RpcError as exc:
            reason = f"stream error {exc.code().name}: {exc.details()}"
        except Exception as exc:  # noqa: BLE001 - never let the thread die silently
            reason = f"stream failed: {exc!r}"
        self.is_primary = False
        with self._arbitration:
            self._arbitration.notify_all()
        if not self.closed:
            log.warning("%s: %s", self.grpc_addr, reason)
            if self.on_stream_closed is not None:
                self.on_stream_closed(reason)

    def _on_arbitration(self, arb: p4runtime_pb2.MasterArbitrationUpdate) -> None:
        primary = arb.status.code == code_pb2.OK
        changed = primary != self.is_primary
        self.is_primary = primary
        self.primary_election_id = (arb.election_id.high, arb.election_id.low)
        with self._arbitration:
            initial = not self._arbitration_seen
            self._arbitration_seen = True
            self._arbitration.notify_all()
        if changed and not initial and self.on_mastership is not None:
            self.on_mastership(primary)

    def handshake(self) -> None:
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        req.arbitration.election_id.high = self.election_id[0]
        req.arbitration.election_id.low = self.election_id[1]
        if self.role_name is not None:
            req.arbitration.role.name = self.role_name
        self.stream_out_q.put(req)
        deadline = time.monotonic() + self.timeout
        with self._arbitration:
            while not self._arbitration_seen:
                left = deadline - time.monotonic()
                if left <= 0 or not self.stream_recv_thread.is_alive():
                    raise P4RuntimeClientError(
                        f"{self.grpc_addr}: no arbitration answer for device {self.device_id}")
                self._arbitration.wait(min(left, 0.2))
        log.info("%s: session established as %s (election id %s)", self.grpc_addr,
                 "primary" if self.is_primary else "backup", self.election_id)

    def send_packet_out(self, payload: bytes, metadata: list[tuple[int, bytes]]) -> None:
        req = p4runtime_pb2.StreamMessageRequest()
        req.packet.payload = payload
        for mid, value in metadata:
            m = req.packet.metadata.add()
            m.metadata_id = mid
            m.value = value
        self.stream_out_q.put(req)

    @property
    def stream_alive(self) -> bool:
        return self.stream_recv_thread is not None and self.stream_recv_thread.is_alive()

    # ---- RPCs ----
    def write(self, req: p4runtime_pb2.WriteRequest):
        if not self.is_primary:
            raise NotPrimary(f"{self.grpc_addr}: this controller is backup; writes go to the primary")
        return super().write(req)

    def write_updates(self, updates: list[p4runtime_pb2.Update], batch: int = 2000) -> None:
        for i in range(0, len(updates), batch):
            req = p4runtime_pb2.WriteRequest()
            req.updates.extend(updates[i:i + batch])
            self.write(req)

    def read(self, entities: list[p4runtime_pb2.Entity]) -> list[p4runtime_pb2.Entity]:
        req = p4runtime_pb2.ReadRequest()
        req.device_id = self.device_id
        if self.role_name is not None:
            req.role = self.role_name
        req.entities.extend(entities)
        out: list[p4runtime_pb2.Entity] = []
        for rep in self.stub.Read(req, timeout=max(self.timeout, 60.0)):
            out.extend(rep.entities)
        return out

    def get_pipeline(self, response_type: int) -> p4runtime_pb2.ForwardingPipelineConfig:
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
            device_id=self.device_id, response_type=response_type)
        return self.stub.GetForwardingPipelineConfig(req, timeout=self.timeout).config

    def set_pipeline(self, config: p4runtime_pb2.ForwardingPipelineConfig) -> None:
        if not self.is_primary:
            raise NotPrimary(f"{self.grpc_addr}: this controller is backup; cannot set the pipeline")
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        req.election_id.high, req.election_id.low = self.election_id
        if self.role_name is not None:
            req.role = self.role_name
        req.config.CopyFrom(config)
        self.stub.SetForwardingPipelineConfig(req, timeout=max(self.timeout, 30.0))

    def tear_down(self) -> None:
        self.closed = True
        if self.stream_out_q is not None:
            self.stream_out_q.put(None)
        stream = getattr(self, "stream", None)
        if stream is not None:
            stream.cancel()
        if self.stream_recv_thread is not None and self.stream_recv_thread is not threading.current_thread():
            self.stream_recv_thread.join(timeout=2)
        self.channel.close()
