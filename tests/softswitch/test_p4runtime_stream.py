"""StreamChannel of the softswitch P4Runtime server: arbitration, packet-in/out, idle-timeout
notifications, stream errors; real gRPC clients (stubs and p4runtime-shell's client)."""
from __future__ import annotations

import queue

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2 as p4r

from softswitch.p4rt import sample_program as sp
from softswitch.p4rt.testkit import (Harness, StreamClient, exact, table_entry, update,
                                     write_request)

INSERT, DELETE = p4r.Update.INSERT, p4r.Update.DELETE
MAC = bytes.fromhex("00000000cafe")


@pytest.fixture
def sw():
    h = Harness(idle_sweep_interval=0.1)
    yield h
    h.close()


def primary_of(msg: p4r.StreamMessageResponse) -> int:
    return (msg.arbitration.election_id.high << 64) | msg.arbitration.election_id.low


def arbitrated(sw: Harness, election_id: int) -> tuple[StreamClient, p4r.StreamMessageResponse]:
    c = sw.stream()
    c.arbitrate(sw.device_id, election_id)
    return c, c.get("arbitration")


def fwd_update(kind: int = INSERT, action: int = sp.A_TO_CPU, **kw) -> p4r.Update:
    return update(kind, "table_entry", table_entry(sp.T_FWD, [exact(1, MAC)], action, **kw))


def write_code(sw: Harness, election_id: int | None) -> grpc.StatusCode:
    try:
        sw.stub.Write(write_request(sw.device_id, [fwd_update()], election_id))
        sw.stub.Write(write_request(sw.device_id, [fwd_update(DELETE, None)], election_id))
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


def test_arbitration_primary_backup_and_failover(sw):
    # nobody connected: writes without an election id pass, with one are refused (PI)
    assert write_code(sw, None) == grpc.StatusCode.OK
    assert write_code(sw, 5) == grpc.StatusCode.PERMISSION_DENIED

    c1, m = arbitrated(sw, 1)
    assert m.arbitration.status.code == code_pb2.OK and primary_of(m) == 1
    c2, m = arbitrated(sw, 2)                      # higher id: new primary, all told
    assert m.arbitration.status.code == code_pb2.OK
    m = c1.get("arbitration")
    assert m.arbitration.status.code == code_pb2.ALREADY_EXISTS and primary_of(m) == 2
    c3, m = arbitrated(sw, 0)                      # lower id: backup, only it is told
    assert m.arbitration.status.code == code_pb2.ALREADY_EXISTS and primary_of(m) == 2
    with pytest.raises(queue.Empty):
        c1.get("arbitration", timeout=0.3)

    assert write_code(sw, 2) == grpc.StatusCode.OK
    assert write_code(sw, 1) == grpc.StatusCode.PERMISSION_DENIED   # backup
    assert write_code(sw, None) == grpc.StatusCode.PERMISSION_DENIED
    assert write_code(sw, 3) == grpc.StatusCode.PERMISSION_DENIED
    # a backup may read
    ent = p4r.Entity()
    ent.table_entry.SetInParent()
    assert sw.read([ent]) == []

    # an election id already in use ends that stream with INVALID_ARGUMENT
    c4 = sw.stream()
    c4.arbitrate(sw.device_id, 2)
    err = c4.ended.get(timeout=5)
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT

    # the primary goes away: the highest remaining becomes primary, everyone is told
    c2.cancel()
    m = c1.get("arbitration")
    assert m.arbitration.status.code == code_pb2.OK and primary_of(m) == 1
    m = c3.get("arbitration")
    assert m.arbitration.status.code == code_pb2.ALREADY_EXISTS and primary_of(m) == 1
    assert write_code(sw, 1) == grpc.StatusCode.OK
    assert write_code(sw, 2) == grpc.StatusCode.PERMISSION_DENIED

    # half-closing a stream ends it with OK
    c3.close()
    assert c3.ended.get(timeout=5) is None
    c1.close()


def test_primary_can_raise_its_election_id(sw):
    c1, _ = arbitrated(sw, 1)
    c2, _ = arbitrated(sw, 2)
    c1.get("arbitration")                          # told it is backup
    c1.arbitrate(sw.device_id, 3)                  # takes over
    m = c1.get("arbitration")
    assert m.arbitration.status.code == code_pb2.OK and primary_of(m) == 3
    m = c2.get("arbitration")
    assert m.arbitration.status.code == code_pb2.ALREADY_EXISTS and primary_of(m) == 3
    c1.close()
    c2.close()


def test_packet_in_and_out_round_trip(sw):
    primary, _ = arbitrated(sw, 10)
    backup, _ = arbitrated(sw, 9)
    sw.write([fwd_update()], election_id=10)
    frame = MAC + bytes.fromhex("000000000001") + b"\x08\x00" + b"payload" * 5
    sw.inject(3, frame)
    pin = primary.get("packet").packet
    assert pin.payload == frame
    md = {m.metadata_id: m.value for m in pin.metadata}
    assert md == {1: b"\x03", 2: b"\x01", 3: b"\x00"}  # ingress_port, reason, pad
    with pytest.raises(queue.Empty):
        backup.get("packet", timeout=0.3)          # packet-in goes to the primary only

    # packet-out: the packet_out header carries the egress port; the program sends it there
    out = bytes.fromhex("0000000000ff") + bytes.fromhex("000000000002") + b"\x86\xdd" + b"o" * 40
    primary.packet_out(out, [(1, b"\x07")])
    primary.packet_out(out, [(1, b"\x07")])
    # a stream error on the same stream proves both packet-outs were processed before it
    primary.packet_out(out, [(9, b"\x01")])        # unknown metadata id
    err = primary.get("error").error
    assert err.canonical_code == code_pb2.INVALID_ARGUMENT
    assert err.packet_out.packet_out.payload == out
    assert sw.ports[7].drain() == [out, out]
    assert sw.server.stats["packet_out"] == 2

    primary.packet_out(out, [(1, b"\x02\x00")])    # 10 bits into a 9-bit field
    assert primary.get("error").error.canonical_code == code_pb2.INVALID_ARGUMENT
    backup.packet_out(out, [(1, b"\x07")])         # only the primary may send
    assert backup.get("error").error.canonical_code == code_pb2.PERMISSION_DENIED
    assert sw.ports[7].drain() == []
    primary.close()
    backup.close()


def test_idle_timeout_notifications_repeat_until_deleted(sw):
    c, _ = arbitrated(sw, 1)
    sw.write([fwd_update(idle_timeout_ns=200_000_000, controller_metadata=42)], election_id=1)
    first = c.get("idle_timeout_notification").idle_timeout_notification
    [te] = first.table_entry
    assert te.table_id == sp.T_FWD and te.match[0].exact.value == MAC[-2:]
    assert te.idle_timeout_ns == 200_000_000 and te.controller_metadata == 42
    assert first.timestamp > 0
    # BMv2 keeps reporting an idle entry (every other sweep) until it is hit or removed
    again = c.get("idle_timeout_notification").idle_timeout_notification
    assert again.table_entry[0].match[0].exact.value == MAC[-2:]
    sw.write([fwd_update(DELETE, None)], election_id=1)
    c.close()


def test_p4runtime_shell_client(sw, tmp_path):
    from google.protobuf import text_format
    from p4runtime_sh.p4runtime import P4RuntimeClient, P4RuntimeWriteException

    p4info = tmp_path / "p4info.txtpb"
    p4info.write_text(text_format.MessageToString(sp.p4info()))
    config = tmp_path / "program.json"
    config.write_bytes(sp.device_config())
    client = P4RuntimeClient(sw.device_id, sw.address, (0, 1))
    try:
        assert client.api_version() == "1.3.0"
        client.set_fwd_pipe_config(str(p4info), str(config))
        assert client.get_p4info().tables[0].preamble.name == "ingress.fwd"
        client.write_update(fwd_update())
        with pytest.raises(P4RuntimeWriteException) as exc:
            client.write_update(fwd_update())
        assert exc.value.errors[0][1].canonical_code == code_pb2.ALREADY_EXISTS
        ent = p4r.Entity()
        ent.table_entry.table_id = sp.T_FWD
        [resp] = list(client.read_one(ent))
        assert resp.entities[0].table_entry.match[0].exact.value == MAC[-2:]
        # a second client with the same election id fails arbitration: the shell exits
        with pytest.raises(SystemExit):
            P4RuntimeClient(sw.device_id, sw.address, (0, 1))
    finally:
        client.tear_down()
