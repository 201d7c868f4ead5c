"""Tofino over Stratum: the BfPipelineConfig packing (against Stratum's own bf.proto), the
pipeline push over a real gRPC server, and the Tofino port rules.

The gRPC server is a small P4Runtime servicer that checks a SetForwardingPipelineConfig the
way Stratum's BfrtNode::VerifyForwardingPipelineConfig does (P4Info present, device config
present and a BfPipelineConfig) and records it. No Tofino, model or SDE runs here (docs/tofino.md).
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from stratum.hal.lib.barefoot import bf_pb2

from controller.config import ConfigError, ControllerConfig
from controller.drivers import tofino_pipeline as tp
from controller.drivers import tofino_ports as ports
from controller.drivers.p4runtime import P4RuntimeDriver
from controller.launcher import free_tcp_port
from controller.runtime import make_driver, make_topology
from controller.topology import Topology, TopologyError, load_topology
from labnet.waiting import wait_until
from p4schema.constants import CPU_CLONE_SESSION_ID
from tests.conftest import P4_BUILD, ROOT

V1MODEL_P4INFO = P4_BUILD / "scitags.p4info.txtpb"
BF_PROTO = ROOT / "proto" / "stratum" / "hal" / "lib" / "barefoot" / "bf.proto"
# git blob id of stratum/hal/lib/barefoot/bf.proto at stratum/stratum f8f71301 (upstream, unchanged)
UPSTREAM_BF_PROTO_BLOB = "5521c7d65e43911ab1dc3158912b1303dd6663a0"
NOTE_LINES = 5  # the source note our copy adds after upstream's two header lines


# ---- a bf-p4c output folder written by the test (the committed ones are used further down) ----

def write_build(folder: Path, binary_name: str = "tofino.bin", pipes: tuple[str, ...] = ("pipe",),
                conf: dict | None = None, seed: int = 1) -> dict[str, bytes]:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    shutil.copy(V1MODEL_P4INFO, folder / tp.P4INFO_FILE)
    files = {"bfrt.json": json.dumps({"schema_version": "1.0.0", "tables": [{"name": "pipe.x"}]}).encode()}
    (folder / "bfrt.json").write_bytes(files["bfrt.json"])
    for pipe in pipes:
        (folder / pipe).mkdir()
        ctx = json.dumps({"program_name": "scitags.p4", "pipe": pipe, "pad": "x" * 5000}).encode()
        binary = bytes(range(256)) + rng.randbytes(300_000)  # every byte value, incl. 0x00
        (folder / pipe / "context.json").write_bytes(ctx)
        (folder / pipe / binary_name).write_bytes(binary)
        files[f"{pipe}/context.json"], files[f"{pipe}/binary"] = ctx, binary
    if conf is not None:
        (folder / "scitags.conf").write_text(json.dumps(conf))
    return files


def bf_conf(pipelines: list[tuple[str, list[int]]], name: str = "scitags") -> dict:
    """A device conf as bf-p4c writes it (absolute paths of the machine it compiled on)."""
    return {"chip_list": [{"chip_family": "tofino", "instance": 0}],
            "p4_devices": [{"device-id": 0, "p4_programs": [{
                "program-name": name, "bfrt-config": "/elsewhere/out/bfrt.json",
                "p4_pipelines": [{"p4_pipeline_name": p, "context": f"/elsewhere/out/{p}/context.json",
                                  "config": f"/elsewhere/out/{p}/tofino.bin", "pipe_scope": scope,
                                  "path": "/elsewhere/out"} for p, scope in pipelines]}]}]}


def test_our_bf_proto_is_stratums():
    """proto/.../bf.proto is upstream's file byte for byte, apart from the source note."""
    lines = BF_PROTO.read_bytes().splitlines(keepends=True)
    assert b"Apache-2.0" in lines[1] and b"stratum/stratum" in b"".join(lines[2:2 + NOTE_LINES])
    upstream = b"".join(lines[:2] + lines[2 + NOTE_LINES:])
    blob = hashlib.sha1(b"blob %d\0" % len(upstream) + upstream).hexdigest()
    assert blob == UPSTREAM_BF_PROTO_BLOB
    assert bf_pb2.DESCRIPTOR.name == "stratum/hal/lib/barefoot/bf.proto"
    assert bf_pb2.DESCRIPTOR.package == "stratum.hal.barefoot"
    fields = {f.name: (f.number, f.type) for f in bf_pb2.BfPipelineConfig.DESCRIPTOR.fields}
    F = bf_pb2.BfPipelineConfig.DESCRIPTOR.fields[0]
    assert fields == {"p4_name": (1, F.TYPE_STRING), "bfruntime_info": (2, F.TYPE_BYTES),
                      "profiles": (3, F.TYPE_MESSAGE)}
    prof = {f.name: (f.number, f.type) for f in bf_pb2.BfPipelineConfig.Profile.DESCRIPTOR.fields}
    assert prof == {"profile_name": (1, F.TYPE_STRING), "context": (2, F.TYPE_BYTES),
                    "binary": (3, F.TYPE_BYTES), "pipe_scope": (4, F.TYPE_UINT32)}


def assert_packs_files(data: bytes, files: dict[str, bytes], p4_name: str,
                       scopes: dict[str, list[int]]) -> bf_pb2.BfPipelineConfig:
    """data parses with Stratum's message and carries exactly the files."""
    msg = bf_pb2.BfPipelineConfig()
    msg.ParseFromString(data)
    assert msg.p4_name == p4_name
    assert msg.bfruntime_info == files["bfrt.json"]
    assert [p.profile_name for p in msg.profiles] == list(scopes)
    for p in msg.profiles:
        assert p.context == files[f"{p.profile_name}/context.json"]
        assert p.binary == files[f"{p.profile_name}/binary"]
        assert list(p.pipe_scope) == scopes[p.profile_name]
    # Nothing else on the wire (no unknown fields): our bytes are the canonical encoding of these.
    known = bf_pb2.BfPipelineConfig()
    known.CopyFrom(msg)
    known.DiscardUnknownFields()
    assert known.SerializeToString(deterministic=True) == data
    return msg


def test_pack_tofino1_without_conf(tmp_path):
    files = write_build(tmp_path / "tna")
    build = tp.load_build(tmp_path / "tna")
    data = build.device_config()
    assert_packs_files(data, files, "scitags", {"pipe": [0, 1, 2, 3]})
    assert build.p4info_path == tmp_path / "tna" / tp.P4INFO_FILE
    assert data == tp.load_build(tmp_path / "tna").device_config()  # deterministic
    assert tp.parse_device_config(data).profiles[0].binary == files["pipe/binary"]


def test_pack_tofino2_binary_name(tmp_path):
    files = write_build(tmp_path / "t2na", binary_name="tofino2.bin")
    data = tp.load_build(tmp_path / "t2na", "tofino2").device_config()
    assert_packs_files(data, files, "scitags", {"pipe": [0, 1, 2, 3]})


def test_pack_reads_names_and_scopes_from_the_bf_p4c_conf(tmp_path):
    conf = bf_conf([("ingress_pipe0", [0, 2]), ("other", [1, 3])], name="scitags_t1")
    files = write_build(tmp_path / "out", pipes=("ingress_pipe0", "other"), conf=conf)
    data = tp.load_build(tmp_path / "out").device_config()
    assert_packs_files(data, files, "scitags_t1", {"ingress_pipe0": [0, 2], "other": [1, 3]})


def test_pipe_scope_override(tmp_path):
    files = write_build(tmp_path / "tna")
    data = tp.load_build(tmp_path / "tna", pipe_scope=(0, 1)).device_config()
    assert_packs_files(data, files, "scitags", {"pipe": [0, 1]})


@pytest.mark.parametrize("remove, expect", [
    ("bfrt.json", "BfRt schema (bfrt.json) {d}/bfrt.json not found"),
    ("scitags.p4info.txtpb", "P4Info {d}/scitags.p4info.txtpb not found"),
    ("pipe/tofino.bin", "tofino binary of pipeline 'pipe' {d}/pipe/tofino.bin not found"),
    ("pipe/context.json", "no pipeline folder with a context.json"),
])
def test_missing_file_is_named(tmp_path, remove, expect):
    d = tmp_path / "tna"
    write_build(d)
    (d / remove).unlink()
    with pytest.raises(tp.TofinoPipelineError) as err:
        tp.load_build(d)
    assert expect.format(d=d) in str(err.value)


def test_wrong_chip_and_other_bad_builds(tmp_path):
    write_build(tmp_path / "t2", binary_name="tofino2.bin")
    with pytest.raises(tp.TofinoPipelineError, match=r"tofino2\.bin: a tofino2 build"):
        tp.load_build(tmp_path / "t2", "tofino")
    with pytest.raises(tp.TofinoPipelineError, match="not found: compile the TNA program"):
        tp.load_build(tmp_path / "absent")
    with pytest.raises(tp.TofinoPipelineError, match="chip 'tofino3' is not one of tofino, tofino2"):
        tp.load_build(tmp_path / "t2", "tofino3")
    write_build(tmp_path / "two", pipes=("a", "b"))
    with pytest.raises(tp.TofinoPipelineError, match="pipelines a, b but no bf-p4c .conf"):
        tp.load_build(tmp_path / "two")
    write_build(tmp_path / "overlap", pipes=("a", "b"), conf=bf_conf([("a", [0, 1]), ("b", [1])]))
    with pytest.raises(tp.TofinoPipelineError, match="pipe 1 is in pipelines 'a' and 'b'"):
        tp.load_build(tmp_path / "overlap")
    write_build(tmp_path / "badscope", conf=bf_conf([("pipe", [0, 4])]))
    with pytest.raises(tp.TofinoPipelineError, match=r"pipe_scope \[0, 4\] must list distinct pipes 0..3"):
        tp.load_build(tmp_path / "badscope")
    d = tmp_path / "empty"
    write_build(d)
    (d / "bfrt.json").write_bytes(b"")
    with pytest.raises(tp.TofinoPipelineError, match=f"bfrt.json\\) {d}/bfrt.json is empty"):
        tp.load_build(d)
    d = tmp_path / "badconf"
    write_build(d)
    (d / "scitags.conf").write_text("{not json")
    with pytest.raises(tp.TofinoPipelineError, match="scitags.conf: not a bf-p4c device conf"):
        tp.load_build(d)
    with pytest.raises(tp.TofinoPipelineError, match="not a BfPipelineConfig"):
        tp.parse_device_config(b"\x0a\xff")


# ---- a real gRPC P4Runtime server that checks the push the way Stratum does ----

class StratumLikeP4Runtime(p4runtime_pb2_grpc.P4RuntimeServicer):
    """Records SetForwardingPipelineConfig; serves arbitration, Get, Write and empty Reads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.set_requests: list[p4runtime_pb2.SetForwardingPipelineConfigRequest] = []
        self.config: p4runtime_pb2.ForwardingPipelineConfig | None = None
        self.updates: list[p4runtime_pb2.Update] = []
        self.pushed = threading.Event()

    def StreamChannel(self, request_iterator, context):
        for req in request_iterator:
            if req.HasField("arbitration"):
                rep = p4runtime_pb2.StreamMessageResponse()
                rep.arbitration.CopyFrom(req.arbitration)
                rep.arbitration.status.code = 0  # OK: primary
                yield rep

    def SetForwardingPipelineConfig(self, request, context):
        cfg = request.config
        # stratum/hal/lib/barefoot/bfrt_node.cc VerifyForwardingPipelineConfig + ExtractBfPipelineConfig
        if not cfg.HasField("p4info"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing P4 info")
        if not cfg.p4_device_config:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing P4 device config")
        bf = bf_pb2.BfPipelineConfig()
        try:
            bf.ParseFromString(cfg.p4_device_config)
        except Exception:  # noqa: BLE001 - any parse failure is Stratum's ERR_INVALID_PARAM
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Unknown format for p4_device_config.")
        if not bf.p4_name or not bf.profiles:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "BfPipelineConfig without program or profiles")
        with self.lock:
            self.set_requests.append(request)
            self.config = p4runtime_pb2.ForwardingPipelineConfig()
            self.config.CopyFrom(cfg)
        self.pushed.set()
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def _pipeline(self, request, context) -> p4runtime_pb2.ForwardingPipelineConfig:
        # As stratum/hal/lib/common/p4_service.cc: device 0 is invalid; no pipeline yet is
        # FAILED_PRECONDITION for Get and Read.
        if request.device_id == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid device ID.")
        with self.lock:
            cfg = self.config
        if cfg is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "No valid forwarding pipeline config has been pushed for any node so far.")
        return cfg

    def GetForwardingPipelineConfig(self, request, context):
        rep = p4runtime_pb2.GetForwardingPipelineConfigResponse()
        cfg = self._pipeline(request, context)
        R = p4runtime_pb2.GetForwardingPipelineConfigRequest
        rep.config.cookie.CopyFrom(cfg.cookie)
        if request.response_type in (R.ALL, R.P4INFO_AND_COOKIE):
            rep.config.p4info.CopyFrom(cfg.p4info)
        if request.response_type in (R.ALL, R.DEVICE_CONFIG_AND_COOKIE):
            rep.config.p4_device_config = cfg.p4_device_config
        return rep

    def Write(self, request, context):
        with self.lock:
            self.updates.extend(request.updates)
        return p4runtime_pb2.WriteResponse()

    def Read(self, request, context):
        self._pipeline(request, context)
        yield p4runtime_pb2.ReadResponse()

    def Capabilities(self, request, context):
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version="1.3.0")


@pytest.fixture
def stratum_server():
    servicer = StratumLikeP4Runtime()
    # Stratum's default -grpc_max_recv_msg_size (stratum/hal/lib/common/hal.cc): 256 MiB.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    servicer.addr = f"127.0.0.1:{port}"
    yield servicer
    server.stop(grace=None)


def push_through_driver(build: tp.TofinoBuild, server: StratumLikeP4Runtime, tmp_path: Path) -> bytes:
    """The controller's P4Runtime driver pushes the packed pipeline; returns the bytes pushed."""
    data = build.device_config()
    blob = tmp_path / "bf_pipeline_config.pb.bin"
    blob.write_bytes(data)
    driver = P4RuntimeDriver("tofino1", 1, server.addr, build.p4info_path, blob, cpu_port=192)
    try:
        driver.connect()
        assert driver.is_primary
        assert driver.ensure_pipeline() is True
        assert driver.ensure_pipeline() is False  # same cookie: not pushed again
    finally:
        driver.close()
    return data


def assert_pushed(server: StratumLikeP4Runtime, build: tp.TofinoBuild, data: bytes) -> bf_pb2.BfPipelineConfig:
    assert len(server.set_requests) == 1
    req = server.set_requests[0]
    assert req.device_id == 1
    assert req.action == p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT
    assert req.HasField("config") and req.config.HasField("p4info") and req.config.HasField("cookie")
    want_p4info = text_format.Parse(build.p4info_path.read_text(), p4info_pb2.P4Info())
    assert req.config.p4info == want_p4info
    # p4_device_config is a proto3 bytes field (no presence bit): its exact bytes are the check.
    assert req.config.p4_device_config == data
    bf = bf_pb2.BfPipelineConfig()
    bf.ParseFromString(req.config.p4_device_config)
    return bf


def test_driver_pushes_bf_pipeline_config_over_grpc(tmp_path, stratum_server):
    files = write_build(tmp_path / "tna")
    build = tp.load_build(tmp_path / "tna")
    data = push_through_driver(build, stratum_server, tmp_path)
    bf = assert_pushed(stratum_server, build, data)
    assert bf.p4_name == "scitags" and bf.bfruntime_info == files["bfrt.json"]
    assert len(bf.profiles) == 1
    assert bf.profiles[0].profile_name == "pipe" and list(bf.profiles[0].pipe_scope) == [0, 1, 2, 3]
    assert bf.profiles[0].context == files["pipe/context.json"]
    assert bf.profiles[0].binary == files["pipe/binary"]


def test_stratum_like_server_refuses_a_bmv2_json(tmp_path, stratum_server):
    """The checking server is not a yes-man: a BMv2 JSON as device config is refused."""
    driver = P4RuntimeDriver("s", 1, stratum_server.addr, V1MODEL_P4INFO, P4_BUILD / "scitags.json")
    try:
        driver.connect()
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            driver.ensure_pipeline()
    finally:
        driver.close()
    assert stratum_server.set_requests == []


# ---- the committed compiler outputs (p4src/build/tna, t2na) ----

def committed(chip: str) -> Path:
    d = tp.default_build_dir(chip)
    if not (d / "bfrt.json").is_file():
        pytest.skip(f"{d} has no bf-p4c outputs yet (bfrt.json absent): compile the TNA program with bf-p4c")
    return d


def committed_files(d: Path, binary: str) -> dict[str, bytes]:
    return {"bfrt.json": tp.read_build_file(d / "bfrt.json"),
            "pipe/context.json": tp.read_build_file(d / "pipe" / "context.json"),
            "pipe/binary": tp.read_build_file(d / "pipe" / binary)}


@pytest.mark.parametrize("chip", ["tofino", "tofino2"])
def test_committed_outputs_pack_and_push(chip, tmp_path, stratum_server):
    d = committed(chip)
    build = tp.load_build(d, chip)
    files = committed_files(d, ports.CHIPS[chip].binary)
    data = push_through_driver(build, stratum_server, tmp_path)
    assert_packs_files(data, files, build.p4_name, {"pipe": [0, 1, 2, 3]})
    bf = assert_pushed(stratum_server, build, data)
    assert bf.bfruntime_info == files["bfrt.json"] and bf.profiles[0].binary == files["pipe/binary"]
    # Same P4Runtime names as the v1model program (the controller has no target-specific names).
    v1 = text_format.Parse(V1MODEL_P4INFO.read_text(), p4info_pb2.P4Info())
    names = lambda info: sorted(t.preamble.name for t in info.tables)  # noqa: E731
    assert names(stratum_server.set_requests[0].config.p4info) == names(v1)


# ---- ports ----

@pytest.mark.parametrize("port, problem", [
    (0, None), (71, None), (128, None), (192, None), (320, None), (511 - 56, None),
    (72, "72 is pipe 0 local port 72, and a pipe has local ports 0..71"),
    (255, "255 is pipe 1 local port 127"),
    (512, "512 is outside the 9-bit device ports 0..511"),
    (-1, "outside"), ("1/0", "'1/0' is not an integer device port"), (True, "not an integer"),
])
def test_dev_port_rules(port, problem):
    got = ports.port_problem(port)
    if problem is None:
        assert got is None
    else:
        assert problem in got


def test_dev_port_layout_and_cpu_ports():
    assert ports.make_dev_port(1, 64) == 192 and ports.make_dev_port(2, 64) == 320
    assert ports.split_dev_port(320) == (2, 64) and ports.split_dev_port(0) == (0, 0)
    assert ports.cpu_port_problem(192) is None and ports.cpu_port_problem(0) is None
    assert "cpu_port 255 is pipe 1 local port 127" in ports.cpu_port_problem(255)


def test_tofino_switch_settings(tmp_path):
    s = ports.tofino_settings({})
    assert (s.chip, s.pipeline, s.pipe_scope) == ("tofino", None, None)
    s = ports.tofino_settings({"chip": "tofino2", "pipeline": "build/t2", "pipe_scope": [0, 1]}, tmp_path)
    assert (s.chip, s.pipeline, s.pipe_scope) == ("tofino2", tmp_path / "build/t2", (0, 1))
    for bad, msg in [({"chip": "tofino3"}, "chip 'tofino3' is not one of tofino, tofino2"),
                     ({"chip": ["tofino"]}, "chip ['tofino'] is not one of"),
                     ({"interfaces": {1: "veth1"}}, "unknown key(s) for a tofino switch: interfaces"),
                     ({"pipe_scope": [0, 0]}, "must list distinct pipes 0..3"),
                     ({"pipe_scope": [4]}, "must list distinct pipes 0..3"),
                     ({"pipeline": 3}, "pipeline must be the path")]:
        with pytest.raises(ValueError) as err:
            ports.tofino_settings(bad)
        assert msg in str(err.value)


def test_pack_command_writes_what_load_build_packs(tmp_path, capsys):
    files = write_build(tmp_path / "tna")
    out = tmp_path / "bf_pipeline_config.pb.bin"
    assert tp.main(["--build", str(tmp_path / "tna"), "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profiles"] == [{"name": "pipe", "pipe_scope": [0, 1, 2, 3],
                                 "context_bytes": len(files["pipe/context.json"]),
                                 "binary_bytes": len(files["pipe/binary"])}]
    assert info["device_config_bytes"] == out.stat().st_size
    assert_packs_files(out.read_bytes(), files, "scitags", {"pipe": [0, 1, 2, 3]})
    assert tp.main(["--build", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
    assert tp.main(["--build", str(tmp_path / "tna"), "--pipe-scope", "0,x"]) == 2


def test_checked_switch_for_the_topology(tmp_path):
    fmt = {"device_config_format": "tofino"}
    assert ports.checked_switch(320, {}) == (320, {"chip": "tofino"} | fmt)
    assert ports.checked_switch(None, {}) == (192, {"chip": "tofino"} | fmt)
    assert ports.checked_switch(None, {"chip": "tofino2"}) == (0, {"chip": "tofino2"} | fmt)
    got = ports.checked_switch(0, {"chip": "tofino2", "pipeline": "b", "pipe_scope": [1]}, tmp_path)
    assert got == (0, {"chip": "tofino2", "pipeline": str(tmp_path / "b"), "pipe_scope": [1]} | fmt)
    assert ports.tofino_settings(got[1]).pipeline == tmp_path / "b"  # normalized options read back alike
    with pytest.raises(ValueError, match="cpu_port 255 is pipe 1 local port 127"):
        ports.checked_switch(255, {})


def test_default_cpu_ports_are_the_programs():
    """Each chip's cpu_port is what p4src/tna/scitags.p4 defines for each chip."""
    src = (ROOT / "p4src" / "tna" / "scitags.p4").read_text()
    block = src[src.index("#ifndef CPU_PORT"):]
    block = block[:block.index("#endif\n#endif") + 13]
    t2, t1 = block.split("#else")
    assert f"#define CPU_PORT {ports.CHIPS['tofino2'].cpu_port}\n" in t2 and "__TARGET_TOFINO__ == 2" in t2
    assert f"#define CPU_PORT {ports.CHIPS['tofino'].cpu_port}\n" in t1


# ---- wired into the controller: topology files and `controller start --switch tofino` ----

def tofino_topology(tmp_path: Path, switch: dict, port2: int = 128) -> Topology:
    text = yaml.safe_dump({"name": "t", "switches": {"tor1": {"kind": "tofino", "device_id": 1,
                                                              "grpc_port": 9559, **switch}},
                           "hosts": {"h1": {"mac": "00:00:00:00:00:01"}, "h2": {"mac": "00:00:00:00:00:02"}},
                           "links": [{"node1": "h1", "node2": "tor1", "port2": port2},
                                     {"node1": "h2", "node2": "tor1", "port2": 136}]})
    (tmp_path / "t.yaml").write_text(text)
    return load_topology(tmp_path / "t.yaml")


def test_topology_kind_tofino(tmp_path):
    spec = tofino_topology(tmp_path, {"pipeline": "build/tna"}).switches["tor1"]
    assert (spec.kind, spec.cpu_port, spec.grpc_port) == ("tofino", 192, 9559)
    assert spec.options == {"chip": "tofino", "device_config_format": "tofino",
                            "pipeline": str(tmp_path / "build/tna")}
    spec = tofino_topology(tmp_path, {"chip": "tofino2"}).switches["tor1"]
    assert (spec.cpu_port, spec.options["chip"]) == (0, "tofino2")
    for switch, port2, msg in [
            ({}, 72, "link 1 (h1-tor1): port2 on Tofino switch 'tor1': device port 72 is pipe 0 local port 72"),
            ({"cpu_port": 255}, 128, "switch 'tor1': cpu_port 255 is pipe 1 local port 127"),
            ({"cpu_port": 128}, 128, "port 128 on switch 'tor1' is its CPU port"),
            ({"chip": "tofino3"}, 128, "switch 'tor1': chip 'tofino3' is not one of tofino, tofino2"),
            ({"interfaces": {1: "veth1"}}, 128, "unknown key(s) for a tofino switch: interfaces")]:
        with pytest.raises(TopologyError) as err:
            tofino_topology(tmp_path, switch, port2)
        assert msg in str(err.value)


def test_runtime_gives_a_tofino_switch_its_build(tmp_path, stratum_server):
    files = write_build(tmp_path / "tna")
    host, port = stratum_server.addr.split(":")
    topo = tofino_topology(tmp_path, {"pipeline": "tna", "grpc_host": host, "grpc_port": int(port)})
    cfg = ControllerConfig()  # v1model defaults for --p4info / --device-config: not used for a Tofino
    driver = make_driver(topo.switches["tor1"], cfg)
    try:
        driver.connect()
        assert driver.ensure_pipeline() is True
    finally:
        driver.close()
    bf = assert_pushed(stratum_server, tp.load_build(tmp_path / "tna"), stratum_server.set_requests[0]
                       .config.p4_device_config)
    assert_packs_files(stratum_server.set_requests[0].config.p4_device_config, files, "scitags",
                       {"pipe": [0, 1, 2, 3]})
    assert bf.profiles[0].binary == files["pipe/binary"]
    bad = tofino_topology(tmp_path, {"pipeline": "nowhere"})
    with pytest.raises(ConfigError, match="switch tor1: Tofino build folder .*nowhere not found"):
        make_driver(bad.switches["tor1"], cfg)


CONTROLLER = [sys.executable, "-m", "controller.cli"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chip, source", [("tofino", "written"), ("tofino", "committed"),
                                          ("tofino2", "committed")])
def test_controller_start_switch_tofino_end_to_end(tmp_path, stratum_server, chip, source):
    """`controller start --switch tofino` pushes the BfPipelineConfig and runs until SIGTERM:
    from a build the test writes (--device-config DIR), and from the committed outputs (the
    defaults, nothing but --switch, --tofino-chip and --grpc-addr)."""
    if source == "written":
        files = write_build(tmp_path / "tna")
        build_args = ["--device-config", str(tmp_path / "tna")]
    else:
        files = committed_files(committed(chip), ports.CHIPS[chip].binary)
        build_args = []
    api = f"127.0.0.1:{free_tcp_port()}"
    proc = subprocess.Popen(
        [*CONTROLLER, "start", "--switch", "tofino", "--tofino-chip", chip, "--grpc-addr", stratum_server.addr,
         *build_args, "--state-dir", str(tmp_path / "state"),
         "--api", api, "--firefly-listen", "off", "--poll-interval", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert stratum_server.pushed.wait(60), "no SetForwardingPipelineConfig within 60 s"

        def ready_status() -> dict | None:
            r = subprocess.run([*CONTROLLER, "status", "--api", api, "--json"], capture_output=True,
                               text=True, timeout=20, cwd=ROOT)
            status = json.loads(r.stdout) if r.returncode == 0 else None
            return status if status and status["switches"]["s1"]["ready"] else None
        status = wait_until(ready_status, 30, "switch s1 ready in `controller status`", 0.3)
        assert status["switches"]["s1"]["pipeline_pushes"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    req = stratum_server.set_requests[0]
    assert req.HasField("config") and req.config.HasField("p4info")
    bf = assert_packs_files(req.config.p4_device_config, files, tp.PROGRAM_NAME, {"pipe": [0, 1, 2, 3]})
    assert bf.profiles[0].binary == files["pipe/binary"]
    assert len(stratum_server.set_requests) == 1
    # The controller went on to write its tables, with the CPU port the program was compiled
    # with (p4src/tna/scitags.p4: 192 on Tofino 1, 0 on Tofino 2) as clone session 100's replica.
    clones = {u.entity.packet_replication_engine_entry.clone_session_entry.session_id:
              [r.egress_port for r in u.entity.packet_replication_engine_entry.clone_session_entry.replicas]
              for u in stratum_server.updates
              if u.entity.packet_replication_engine_entry.HasField("clone_session_entry")}
    assert clones[CPU_CLONE_SESSION_ID] == [ports.CHIPS[chip].cpu_port]
    # One scitag_policy entry per registry tag rule (the server keeps no entries, so the periodic
    # reconcile may write them again: count distinct keys).
    policy_id = next(t.preamble.id for t in req.config.p4info.tables
                     if t.preamble.name == "ScitagsIngress.scitag_policy")
    policy_keys = {(u.entity.table_entry.priority, u.entity.table_entry.SerializeToString(deterministic=True))
                   for u in stratum_server.updates if u.entity.table_entry.table_id == policy_id
                   and u.type == p4runtime_pb2.Update.INSERT}
    assert len(policy_keys) == 128  # the shipped registry's 128 tag rules


def test_controller_start_switch_tofino_bad_build_exits_2(tmp_path):
    r = subprocess.run([*CONTROLLER, "start", "--switch", "tofino", "--grpc-addr", "127.0.0.1:1",
                        "--device-config", str(tmp_path), "--state-dir", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert f"switch s1: P4Info {tmp_path}/scitags.p4info.txtpb not found" in r.stderr


def test_single_switch_tofino_settings():
    spec = make_topology(ControllerConfig(switch="tofino", grpc_addr="192.0.2.1:9559")).switches["s1"]
    assert (spec.kind, spec.grpc_addr, spec.cpu_port, spec.options["chip"]) == ("tofino", "192.0.2.1:9559", 192, "tofino")
    spec = make_topology(ControllerConfig(switch="tofino", tofino_chip="tofino2")).switches["s1"]
    assert (spec.cpu_port, spec.options["chip"]) == (0, "tofino2")
    spec = make_topology(ControllerConfig(switch="tofino", cpu_port=320)).switches["s1"]
    assert spec.cpu_port == 320
    for cfg, msg in [(ControllerConfig(switch="tofino", topology="t.yaml"), "single-switch form"),
                     (ControllerConfig(switch="tofino", launch="always"), "never launched")]:
        with pytest.raises(ConfigError, match=msg):
            cfg.validate()
