"""Pipeline config, Capabilities, TLS and robustness of the softswitch P4Runtime server."""
from __future__ import annotations

import json
import subprocess

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2 as p4r
from p4.v1 import p4runtime_pb2_grpc

from softswitch.p4rt import sample_program as sp
from softswitch.p4runtime_server import TlsFiles
from softswitch.p4rt.testkit import (Harness, exact, pipeline_request, table_entry, update,
                                     write_errors, write_request)

SetAction = p4r.SetForwardingPipelineConfigRequest
GetType = p4r.GetForwardingPipelineConfigRequest
MAC = bytes.fromhex("0000000000aa")


@pytest.fixture
def sw():
    h = Harness(load=False)
    yield h
    h.close()


def set_pipeline(sw: Harness, action: int, *, p4info=None, config: bytes | None = None,
                 cookie: int | None = None) -> None:
    sw.stub.SetForwardingPipelineConfig(pipeline_request(
        sw.device_id, p4info or sp.p4info(),
        sp.device_config() if config is None else config, action, cookie))


def get_pipeline(sw: Harness, kind: int = GetType.ALL) -> p4r.ForwardingPipelineConfig:
    return sw.stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(
        device_id=sw.device_id, response_type=kind)).config


def insert_fwd(sw: Harness) -> None:
    sw.write([update(p4r.Update.INSERT, "table_entry", table_entry(
        sp.T_FWD, [exact(1, MAC)], sp.A_SET_PORT, [(1, b"\x01")]))])


def fwd_entries(sw: Harness) -> int:
    ent = p4r.Entity()
    ent.table_entry.table_id = sp.T_FWD
    return len(sw.read([ent]))


def rpc_code(fn, *args) -> grpc.StatusCode:
    try:
        fn(*args)
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


def test_capabilities(sw):
    assert sw.stub.Capabilities(p4r.CapabilitiesRequest()).p4runtime_api_version == "1.3.0"


def test_set_and_get_pipeline(sw):
    assert rpc_code(get_pipeline, sw) == grpc.StatusCode.FAILED_PRECONDITION
    set_pipeline(sw, SetAction.VERIFY)                     # checks only, installs nothing
    assert rpc_code(get_pipeline, sw) == grpc.StatusCode.FAILED_PRECONDITION
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT, cookie=0xC0FFEE)
    cfg = get_pipeline(sw, GetType.ALL)
    assert cfg.p4info == sp.p4info() and cfg.p4_device_config == sp.device_config()
    assert cfg.cookie.cookie == 0xC0FFEE
    cfg = get_pipeline(sw, GetType.COOKIE_ONLY)
    assert not cfg.HasField("p4info") and not cfg.p4_device_config
    assert cfg.cookie.cookie == 0xC0FFEE
    cfg = get_pipeline(sw, GetType.P4INFO_AND_COOKIE)
    assert cfg.p4info == sp.p4info() and not cfg.p4_device_config
    cfg = get_pipeline(sw, GetType.DEVICE_CONFIG_AND_COOKIE)
    assert not cfg.HasField("p4info") and cfg.p4_device_config == sp.device_config()
    assert rpc_code(get_pipeline, sw, 17) == grpc.StatusCode.INVALID_ARGUMENT


def test_commit_replaces_state_reconcile_keeps_it(sw):
    # without indirect counters in the P4Info, RECONCILE_AND_COMMIT replays the entries
    no_counters = sp.p4info()
    del no_counters.counters[:]
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT, p4info=no_counters)
    insert_fwd(sw)
    set_pipeline(sw, SetAction.RECONCILE_AND_COMMIT, p4info=no_counters, cookie=2)
    assert fwd_entries(sw) == 1 and get_pipeline(sw).cookie.cookie == 2
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT)
    assert fwd_entries(sw) == 0
    assert not get_pipeline(sw).HasField("cookie")


def test_reconcile_with_indirect_counters_fails_as_in_pi(sw):
    # PI replays indirect counter cells as INSERTs, which it refuses: the reconcile fails
    # after the entries were replayed, and the swap stays pending until COMMIT
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT, cookie=1)
    insert_fwd(sw)
    assert rpc_code(set_pipeline, sw, SetAction.RECONCILE_AND_COMMIT) \
        == grpc.StatusCode.UNKNOWN
    assert fwd_entries(sw) == 1
    assert rpc_code(set_pipeline, sw, SetAction.VERIFY_AND_COMMIT) == grpc.StatusCode.UNKNOWN
    set_pipeline(sw, SetAction.COMMIT)
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT)
    assert fwd_entries(sw) == 0


def test_save_then_commit(sw):
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT, cookie=1)
    insert_fwd(sw)
    # as in PI, the server switches to the saved pipeline at once
    set_pipeline(sw, SetAction.VERIFY_AND_SAVE, cookie=2)
    assert get_pipeline(sw).cookie.cookie == 2 and fwd_entries(sw) == 0
    insert_fwd(sw)
    # until COMMIT, no other update is possible
    assert rpc_code(set_pipeline, sw, SetAction.VERIFY_AND_SAVE) == grpc.StatusCode.UNKNOWN
    assert rpc_code(set_pipeline, sw, SetAction.VERIFY_AND_COMMIT) == grpc.StatusCode.UNKNOWN
    set_pipeline(sw, SetAction.COMMIT)
    assert get_pipeline(sw).cookie.cookie == 2 and fwd_entries(sw) == 1
    # nothing saved any more
    assert rpc_code(set_pipeline, sw, SetAction.COMMIT) == grpc.StatusCode.UNKNOWN


def test_bad_configs_are_refused_and_keep_the_running_pipeline(sw):
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT, cookie=1)
    insert_fwd(sw)
    assert rpc_code(set_pipeline, sw, SetAction.UNSPECIFIED) == grpc.StatusCode.INVALID_ARGUMENT
    # not JSON / not a program the engine runs
    assert rpc_code(lambda: set_pipeline(sw, SetAction.VERIFY_AND_COMMIT, config=b"{nope")) \
        == grpc.StatusCode.UNKNOWN
    # P4Info naming a table the JSON does not have
    doc = sp.bmv2_json()
    doc["pipelines"][0]["tables"][0]["name"] = "ingress.other"
    doc["pipelines"][0]["conditionals"][0]["false_next"] = "tbl_count_port"
    doc["pipelines"][0]["tables"][5]["base_default_next"] = "ingress.other"
    doc["pipelines"][0]["tables"][5]["next_tables"] = {"ingress.count_port": "ingress.other"}
    doc["counter_arrays"][0]["binding"] = "ingress.other"
    with pytest.raises(grpc.RpcError) as exc:
        set_pipeline(sw, SetAction.VERIFY_AND_COMMIT, config=json.dumps(doc).encode())
    assert exc.value.code() == grpc.StatusCode.UNKNOWN and "ingress.fwd" in exc.value.details()
    # a P4Info with duplicate ids
    bad = sp.p4info()
    bad.actions[1].preamble.id = bad.actions[0].preamble.id
    assert rpc_code(lambda: set_pipeline(sw, SetAction.VERIFY, p4info=bad)) \
        == grpc.StatusCode.UNKNOWN
    assert get_pipeline(sw).cookie.cookie == 1 and fwd_entries(sw) == 1


def test_other_device_ids(sw):
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT)
    req = p4r.ReadRequest(device_id=99)
    req.entities.add().table_entry.SetInParent()
    assert rpc_code(lambda: list(sw.stub.Read(req))) == grpc.StatusCode.FAILED_PRECONDITION
    req = p4r.WriteRequest(device_id=99)
    assert rpc_code(sw.stub.Write, req) == grpc.StatusCode.FAILED_PRECONDITION


def make_cert(tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_tls(tmp_path):
    cert, key = make_cert(tmp_path)
    h = Harness(credentials=TlsFiles(cert, key))
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=open(cert, "rb").read())
        with grpc.secure_channel(h.address, creds) as ch:
            stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
            assert stub.Capabilities(p4r.CapabilitiesRequest(), timeout=10) \
                .p4runtime_api_version == "1.3.0"
            stub.SetForwardingPipelineConfig(pipeline_request(
                h.device_id, sp.p4info(), sp.device_config()), timeout=10)
        with grpc.insecure_channel(h.address) as ch:     # plaintext client: no service
            stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
            assert rpc_code(lambda: stub.Capabilities(p4r.CapabilitiesRequest(), timeout=5)) \
                == grpc.StatusCode.UNAVAILABLE
    finally:
        h.close()


def test_handler_bugs_become_internal_and_the_server_keeps_serving(sw, monkeypatch):
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT)

    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded")
    monkeypatch.setattr(sw.engine, "table_add", broken)
    with pytest.raises(grpc.RpcError) as exc:
        insert_fwd(sw)
    [(code, message)] = write_errors(exc.value)
    assert code == code_pb2.INTERNAL and "engine exploded" in message
    monkeypatch.setattr(sw.server.device, "get_pipeline", broken)
    with pytest.raises(grpc.RpcError) as exc:
        get_pipeline(sw)
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    assert "engine exploded" in exc.value.details()
    monkeypatch.undo()
    insert_fwd(sw)
    assert fwd_entries(sw) == 1 and sw.server.stats["GetForwardingPipelineConfig_error_INTERNAL"]


def test_malformed_stream_message_gets_a_stream_error(sw):
    call = sw.channel.stream_stream("/p4.v1.P4Runtime/StreamChannel")
    replies = call(iter([b"\xff\xff\xff"]))
    reply = p4r.StreamMessageResponse.FromString(next(replies))
    assert reply.error.canonical_code == code_pb2.INVALID_ARGUMENT


def test_roles_are_arbitrated_separately(sw):
    set_pipeline(sw, SetAction.VERIFY_AND_COMMIT)
    a, b = sw.stream(), sw.stream()
    a.arbitrate(sw.device_id, 1, role="ctrl-a")
    b.arbitrate(sw.device_id, 1, role="ctrl-b")
    for c, role in ((a, "ctrl-a"), (b, "ctrl-b")):
        m = c.get("arbitration").arbitration
        assert m.status.code == code_pb2.OK and m.role.name == role
    req = write_request(sw.device_id, [], election_id=1)
    req.role = "ctrl-b"
    sw.stub.Write(req)
    req.role = "ctrl-c"
    assert rpc_code(sw.stub.Write, req) == grpc.StatusCode.PERMISSION_DENIED
    a.close()
    b.close()
