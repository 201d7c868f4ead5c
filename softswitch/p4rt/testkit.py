"""Helpers for tests and benchmarks of the P4Runtime server: request builders, write-error
decoding, a StreamChannel client, and a harness that runs engine + server on loopback."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import grpc
from google.rpc import status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2 as p4r
from p4.v1 import p4runtime_pb2_grpc

from controller.launcher import bmv2_binary, stop_process  # the one BMv2 locator

from . import sample_program

SetAction = p4r.SetForwardingPipelineConfigRequest


# ---- request builders ----
def exact(fid: int, value: bytes) -> p4r.FieldMatch:
    fm = p4r.FieldMatch(field_id=fid)
    fm.exact.value = value
    return fm


def lpm(fid: int, value: bytes, prefix_len: int) -> p4r.FieldMatch:
    fm = p4r.FieldMatch(field_id=fid)
    fm.lpm.value = value
    fm.lpm.prefix_len = prefix_len
    return fm


def ternary(fid: int, value: bytes, mask: bytes) -> p4r.FieldMatch:
    fm = p4r.FieldMatch(field_id=fid)
    fm.ternary.value = value
    fm.ternary.mask = mask
    return fm


def range_(fid: int, low: bytes, high: bytes) -> p4r.FieldMatch:
    fm = p4r.FieldMatch(field_id=fid)
    fm.range.low = low
    fm.range.high = high
    return fm


def optional(fid: int, value: bytes) -> p4r.FieldMatch:
    fm = p4r.FieldMatch(field_id=fid)
    fm.optional.value = value
    return fm


def table_entry(table_id: int, match: Any = (), action: int | None = None,
                params: Any = (), priority: int = 0, **kw: Any) -> p4r.TableEntry:
    """A TableEntry; params as (param id, value) pairs, kw: other TableEntry fields."""
    te = p4r.TableEntry(table_id=table_id, priority=priority, **kw)
    te.match.extend(match)
    if action is not None:
        te.action.action.action_id = action
        for pid, value in params:
            te.action.action.params.add(param_id=pid, value=value)
    return te


def multicast_group(gid: int, replicas: list[tuple[int, int]]
                    ) -> p4r.PacketReplicationEngineEntry:
    """A multicast group; replicas as (egress port, instance)."""
    pre = p4r.PacketReplicationEngineEntry()
    pre.multicast_group_entry.multicast_group_id = gid
    for port, rid in replicas:
        pre.multicast_group_entry.replicas.add(egress_port=port, instance=rid)
    return pre


def clone_session(sid: int, replicas: list[tuple[int, int]], length: int = 0,
                  cos: int = 0) -> p4r.PacketReplicationEngineEntry:
    pre = p4r.PacketReplicationEngineEntry()
    cs = pre.clone_session_entry
    cs.session_id, cs.packet_length_bytes, cs.class_of_service = sid, length, cos
    for port, rid in replicas:
        cs.replicas.add(egress_port=port, instance=rid)
    return pre


def update(kind: int, entity_field: str, msg: Any) -> p4r.Update:
    u = p4r.Update(type=kind)
    getattr(u.entity, entity_field).CopyFrom(msg)
    return u


def u128(msg: p4r.Uint128, value: int) -> None:
    msg.high, msg.low = value >> 64, value & ((1 << 64) - 1)


def write_request(device_id: int, updates: list[p4r.Update],
                  election_id: int | None = None) -> p4r.WriteRequest:
    req = p4r.WriteRequest(device_id=device_id)
    req.updates.extend(updates)
    if election_id is not None:
        u128(req.election_id, election_id)
    return req


def status_details(err: grpc.RpcError) -> status_pb2.Status | None:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


def write_errors(err: grpc.RpcError) -> list[tuple[int, str]]:
    """(canonical code, message) for every update of a failed batch, OK ones included."""
    status = status_details(err)
    out = []
    for any_msg in status.details if status else ():
        e = p4r.Error()
        any_msg.Unpack(e)
        out.append((e.canonical_code, e.message))
    return out


def pipeline_request(device_id: int, p4info: p4info_pb2.P4Info, device_config: bytes,
                     action: int = SetAction.VERIFY_AND_COMMIT, cookie: int | None = None,
                     election_id: int | None = None) -> p4r.SetForwardingPipelineConfigRequest:
    req = p4r.SetForwardingPipelineConfigRequest(device_id=device_id, action=action)
    req.config.p4info.CopyFrom(p4info)
    req.config.p4_device_config = device_config
    if cookie is not None:
        req.config.cookie.cookie = cookie
    if election_id is not None:
        u128(req.election_id, election_id)
    return req



def _bad_entries() -> list[tuple[str, p4r.TableEntry]]:
    sp = sample_program
    mac = bytes.fromhex("0000000000aa")
    one = [(1, b"\x01")]
    fwd = sp.T_FWD
    return [
        ("exact-exceeds-bitwidth",
         table_entry(fwd, [exact(1, b"\x01" + bytes(6))], sp.A_SET_PORT, one)),
        ("missing-exact-field", table_entry(fwd, [], sp.A_SET_PORT, one)),
        ("wrong-match-kind", table_entry(fwd, [lpm(1, mac, 48)], sp.A_SET_PORT, one)),
        ("extra-unknown-field",
         table_entry(fwd, [exact(1, mac), exact(9, b"\x01")], sp.A_SET_PORT, one)),
        ("unknown-field", table_entry(fwd, [exact(9, mac)], sp.A_SET_PORT, one)),
        ("lpm-bits-beyond-prefix",
         table_entry(sp.T_LPM, [lpm(1, bytes.fromhex("0a0000000001"), 8)], sp.A_NOACTION)),
        ("lpm-prefix-0", table_entry(sp.T_LPM, [lpm(1, bytes(6), 0)], sp.A_NOACTION)),
        ("lpm-prefix-too-long", table_entry(sp.T_LPM, [lpm(1, bytes(6), 49)], sp.A_NOACTION)),
        ("ternary-value-outside-mask",
         table_entry(sp.T_ACL, [ternary(1, b"\x08\x01", b"\xff\x00")], sp.A_DROP,
                     priority=1)),
        ("ternary-zero-mask",
         table_entry(sp.T_ACL, [ternary(1, b"\x00", b"\x00")], sp.A_DROP, priority=1)),
        ("range-low-above-high",
         table_entry(sp.T_ACL, [range_(2, b"\x09", b"\x02")], sp.A_DROP, priority=1)),
        ("range-whole-field",
         table_entry(sp.T_ACL, [range_(2, bytes(6), b"\xff" * 6)], sp.A_DROP, priority=1)),
        ("optional-exceeds-bitwidth",
         table_entry(sp.T_ACL, [optional(3, b"\x02\x00")], sp.A_DROP, priority=1)),
        ("ternary-without-priority",
         table_entry(sp.T_ACL, [ternary(1, b"\x08\x00", b"\xff\xff")], sp.A_DROP)),
        ("priority-in-exact-table",
         table_entry(fwd, [exact(1, mac)], sp.A_SET_PORT, one, priority=5)),
        ("unknown-table-id", table_entry(0x02ffffff, [exact(1, mac)], sp.A_SET_PORT, one)),
        ("unknown-action-id", table_entry(fwd, [exact(1, mac)], 0x01ffffff)),
        ("action-not-in-table", table_entry(sp.T_TINY, [exact(1, b"\x08\x00")], sp.A_DROP)),
        ("too-few-params", table_entry(fwd, [exact(1, mac)], sp.A_SET_PORT, [])),
        ("unknown-param", table_entry(fwd, [exact(1, mac)], sp.A_SET_PORT, [(7, b"\x01")])),
        ("param-exceeds-bitwidth",
         table_entry(fwd, [exact(1, mac)], sp.A_SET_PORT, [(1, b"\x02\x00")])),
        ("no-action", table_entry(fwd, [exact(1, mac)])),
        ("insert-default-entry",
         table_entry(fwd, [], sp.A_NOACTION, is_default_action=True)),
        ("idle-timeout-unsupported",
         table_entry(sp.T_TINY, [exact(1, b"\x08\x00")], sp.A_SET_PORT, one,
                     idle_timeout_ns=10**9)),
        ("counter-data-without-direct-counter",
         table_entry(sp.T_TINY, [exact(1, b"\x08\x00")], sp.A_SET_PORT, one,
                     counter_data=p4r.CounterData(packet_count=1))),
    ]


# Entries every P4Runtime server must refuse with INVALID_ARGUMENT (PI's checks), named.
BAD_ENTRIES = _bad_entries()

# ---- StreamChannel client ----
class StreamClient:
    """A StreamChannel with its responses sorted into queues by kind."""

    def __init__(self, stub: p4runtime_pb2_grpc.P4RuntimeStub) -> None:
        self._out: queue.Queue[p4r.StreamMessageRequest | None] = queue.Queue()
        self.queues: dict[str, queue.Queue[Any]] = {
            k: queue.Queue() for k in ("arbitration", "packet", "digest",
                                       "idle_timeout_notification", "error", "other")}
        self.ended: queue.Queue[grpc.RpcError | None] = queue.Queue()
        self._call = stub.StreamChannel(self._requests())
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator[p4r.StreamMessageRequest]:
        while True:
            msg = self._out.get()
            if msg is None:
                return
            yield msg

    def _receive(self) -> None:
        try:
            for msg in self._call:
                self.queues[msg.WhichOneof("update") or "other"].put(msg)
            self.ended.put(None)
        except grpc.RpcError as exc:
            self.ended.put(exc)

    def send(self, msg: p4r.StreamMessageRequest) -> None:
        self._out.put(msg)

    def arbitrate(self, device_id: int, election_id: int, role: str | None = None) -> None:
        msg = p4r.StreamMessageRequest()
        msg.arbitration.device_id = device_id
        u128(msg.arbitration.election_id, election_id)
        if role is not None:
            msg.arbitration.role.name = role
        self.send(msg)

    def packet_out(self, payload: bytes,
                   metadata: tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]] = ()
                   ) -> None:
        msg = p4r.StreamMessageRequest()
        msg.packet.payload = payload
        for mid, value in metadata:
            msg.packet.metadata.add(metadata_id=mid, value=value)
        self.send(msg)

    def get(self, kind: str, timeout: float = 5.0) -> Any:
        """The next message of that kind; queue.Empty after timeout."""
        return self.queues[kind].get(timeout=timeout)

    def close(self) -> None:
        """Half-close (the server then ends the stream with OK)."""
        self._out.put(None)

    def cancel(self) -> None:
        self._call.cancel()


# ---- engine + server on loopback ----
@dataclass
class Harness:
    """A real SoftSwitch (engine + in-memory ports 1..8) and P4Runtime server on 127.0.0.1
    (ephemeral port), wired as the softswitch CLI wires them, with the sample program
    loaded unless load=False."""

    device_id: int = 1
    cpu_port: int = sample_program.CPU_PORT
    idle_sweep_interval: float = 1.0
    load: bool = True
    credentials: Any = None
    ports: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from softswitch.engine import Engine
        from softswitch.p4runtime_server import P4RuntimeServer
        from softswitch.ports import MemoryPort
        from softswitch.switch import SoftSwitch
        self.engine = Engine(cpu_port=self.cpu_port)
        self.switch = SoftSwitch(self.engine, self.cpu_port)
        for n in range(1, 9):
            self.ports[n] = MemoryPort(f"mem{n}")
            self.switch.add_port(n, self.ports[n])
        self.server = P4RuntimeServer(self.engine, self.device_id, self.cpu_port,
                                      lambda frame: self.switch.inject(self.cpu_port, frame),
                                      idle_sweep_interval=self.idle_sweep_interval)
        self.switch.add_packet_in_handler(self.server.deliver_packet_in)
        self.port = self.server.start("127.0.0.1:0", self.credentials)
        self.address = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.address) if self.credentials is None \
            else None
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel) if self.channel else None
        if self.load and self.stub is not None:
            self.stub.SetForwardingPipelineConfig(pipeline_request(
                self.device_id, sample_program.p4info(), sample_program.device_config()))

    def inject(self, port: int, frame: bytes) -> list[tuple[int, bytes]]:
        """A frame received on a port: outputs go to the memory ports / packet-in."""
        return self.switch.inject(port, frame)

    def write(self, updates: list[p4r.Update], election_id: int | None = None) -> None:
        assert self.stub is not None
        self.stub.Write(write_request(self.device_id, updates, election_id))

    def read(self, entities: list[p4r.Entity]) -> list[p4r.Entity]:
        assert self.stub is not None
        req = p4r.ReadRequest(device_id=self.device_id)
        req.entities.extend(entities)
        return [e for resp in self.stub.Read(req) for e in resp.entities]

    def stream(self) -> StreamClient:
        assert self.stub is not None
        return StreamClient(self.stub)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.server.stop()
        self.switch.close()


# ---- BMv2, the reference target ----
BMV2_BIN = bmv2_binary()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bmv2:
    """simple_switch_grpc on 127.0.0.1 without a program (--no-p4) and without interfaces,
    CPU port 255, for running the same P4Runtime requests against the reference."""

    def __init__(self, device_id: int = 1, binary: str = BMV2_BIN,
                 cpu_port: int = sample_program.CPU_PORT, timeout: float = 15.0) -> None:
        import os
        import subprocess
        self.device_id = device_id
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        ipc = f"ipc:///tmp/bmv2-p4rt-{os.getpid()}-{self.port}.ipc"
        self.proc = subprocess.Popen(
            [binary, "--no-p4", "--device-id", str(device_id), "--notifications-addr", ipc,
             "--",
             "--grpc-server-addr", self.address, "--cpu-port", str(cpu_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.channel = grpc.insecure_channel(self.address)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            self.close()
            raise RuntimeError(f"{binary} did not serve gRPC on {self.address}") from None
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)

    def load_sample(self) -> None:
        self.stub.SetForwardingPipelineConfig(pipeline_request(
            self.device_id, sample_program.p4info(), sample_program.device_config()))

    def close(self) -> None:
        self.channel.close()
        stop_process(self.proc, timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
