"""Run a differential-test scenario on BMv2 simple_switch_grpc and report what it did.

    python bmv2_driver.py SCENARIO.json RESULT.json   (inside the namespace of the veths)
    python bmv2_driver.py --serve SCENARIO.json       (configure, then run until stdin closes)

The scenario (see diffkit.py) holds a BMv2 JSON program, control-plane operations in
the engine's terms, frames to send and state to read back. This script starts
simple_switch_grpc on veths s<N>, configures it over P4Runtime with a P4Info generated
from the JSON, sends each frame on t<port>, collects every frame that comes out (and
packet-ins on the stream) until the wire is quiet, then reads counters and registers.
"""
from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import grpc  # noqa: E402
from p4.v1 import p4runtime_pb2 as p4r  # noqa: E402
from p4.v1 import p4runtime_pb2_grpc  # noqa: E402

from p4info_gen import generate  # noqa: E402
from softswitch.p4rt.testkit import (StreamClient, clone_session, exact, lpm,  # noqa: E402
                                     multicast_group, pipeline_request, range_,
                                     table_entry, ternary, update, write_errors,
                                     write_request)
from softswitch.ports import RawSocketPort  # noqa: E402
from controller.launcher import bmv2_binary, stop_process  # noqa: E402

BMV2 = bmv2_binary()
CPU_PORT = 255
DEVICE = 0
ELECTION = 10
QUIET = 0.2       # seconds without output after which a frame is done
NONE_WAIT = 0.5   # how long a frame expected to vanish is watched
LONG_WAIT = 5.0   # how long to wait for outputs that are expected (a loaded machine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bmv2:
    def __init__(self, scenario: dict, workdir: str) -> None:
        self.sc = scenario
        self.doc = scenario["program"]
        self.p4info, self.ids = generate(self.doc)
        self.widths = self._key_widths()
        prog = Path(workdir) / "program.json"
        prog.write_text(json.dumps(self.doc))
        self.grpc_port = free_port()
        cmd = [BMV2]
        for p in scenario["ports"]:
            cmd += ["-i", f"{p}@s{p}"]
        level = os.environ.get("BMV2_LOG_LEVEL", "debug")
        cmd += ["--no-p4"]
        if level != "off":
            cmd += ["--log-file", str(Path(workdir) / "bmv2"), "--log-level", level, "--log-flush"]
        cmd += ["--", "--grpc-server-addr", f"127.0.0.1:{self.grpc_port}",
                "--cpu-port", str(CPU_PORT)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_listening()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self.stream = StreamClient(self.stub)
        self.stream.arbitrate(DEVICE, ELECTION)
        self.stream.get("arbitration", timeout=10)
        self.stub.SetForwardingPipelineConfig(pipeline_request(
            DEVICE, self.p4info, json.dumps(self.doc).encode(), election_id=ELECTION))
        self.entries: list[p4r.TableEntry | None] = []

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simple_switch_grpc exited with {self.proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.grpc_port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("simple_switch_grpc did not listen")

    def _key_widths(self) -> dict[str, list[int]]:
        return {t.preamble.name: [mf.bitwidth for mf in t.match_fields]
                for t in self.p4info.tables}

    def write(self, updates: list[p4r.Update]) -> None:
        try:
            self.stub.Write(write_request(DEVICE, updates, election_id=ELECTION))
        except grpc.RpcError as err:
            raise RuntimeError(f"Write refused: {write_errors(err)} {updates}") from None

    # ---- setup operations (engine terms -> P4Runtime) ----
    def _entry(self, op: dict) -> p4r.TableEntry:
        table = op["table"]
        match = []
        for i, (m, w) in enumerate(zip(op["match"], self.widths[table])):
            if m is None:
                continue
            nb = (w + 7) // 8
            vals = [bytes.fromhex(x).rjust(nb, b"\0")[-nb:] if isinstance(x, str) else x
                    for x in m[1:]]
            kind = m[0]
            if kind == "exact":
                match.append(exact(i + 1, vals[0]))
            elif kind == "lpm":
                match.append(lpm(i + 1, vals[0], m[2]))
            elif kind == "ternary":
                if any(vals[1]):  # P4Runtime: a zero mask is written as an absent field
                    match.append(ternary(i + 1, vals[0], vals[1]))
            elif kind == "range":
                match.append(range_(i + 1, vals[0], vals[1]))
            elif kind == "optional":  # p4c emits optional keys as ternary in BMv2 JSON
                match.append(ternary(i + 1, vals[0], b"\xff" * nb))
        action = op["action"]
        params = [(pid, bytes.fromhex(a)) for pid, a in zip(self.ids.params[action], op["args"])]
        return table_entry(self.ids.tables[table], match, self.ids.actions[action], params,
                           priority=op.get("priority", 0))

    def setup(self, op: dict) -> None:
        kind = op["op"]
        if kind == "table_add":
            te = self._entry(op)
            self.write([update(p4r.Update.INSERT, "table_entry", te)])
            self.entries.append(te)
            return
        self.entries.append(None)
        if kind == "table_set_default":
            te = table_entry(self.ids.tables[op["table"]], [], self.ids.actions[op["action"]],
                             [(pid, bytes.fromhex(a)) for pid, a in
                              zip(self.ids.params[op["action"]], op["args"])],
                             is_default_action=True)
            self.write([update(p4r.Update.MODIFY, "table_entry", te)])
        elif kind == "mc_group_set":
            self.write([update(p4r.Update.INSERT, "packet_replication_engine_entry",
                               multicast_group(op["group"], op["replicas"]))])
        elif kind == "clone_session_set":
            self.write([update(p4r.Update.INSERT, "packet_replication_engine_entry",
                               clone_session(op["session"], op["replicas"]))])
        else:
            raise ValueError(f"unknown setup op {kind}")

    # ---- reads ----
    def _read(self, entity: p4r.Entity) -> list[p4r.Entity]:
        req = p4r.ReadRequest(device_id=DEVICE)
        req.entities.append(entity)
        return [e for resp in self.stub.Read(req) for e in resp.entities]

    def counter(self, name: str, index: int) -> list[int]:
        ent = p4r.Entity()
        ent.counter_entry.counter_id = self.ids.counters[name]
        ent.counter_entry.index.index = index
        d = self._read(ent)[0].counter_entry.data
        return [d.packet_count, d.byte_count]

    def direct_counter(self, entry_no: int) -> list[int]:
        ent = p4r.Entity()
        ent.direct_counter_entry.table_entry.CopyFrom(self.entries[entry_no])
        d = self._read(ent)[0].direct_counter_entry.data
        return [d.packet_count, d.byte_count]

    def register(self, name: str, index: int) -> int:
        ent = p4r.Entity()
        ent.register_entry.register_id = self.ids.registers[name]
        ent.register_entry.index.index = index
        data = self._read(ent)[0].register_entry.data
        return int.from_bytes(data.bitstring, "big")

    def close(self) -> None:
        self.stream.cancel()
        self.channel.close()
        stop_process(self.proc, timeout=10)


def collect(socks: dict[int, RawSocketPort], stream: StreamClient, expect: int) -> list[list]:
    """Frames out of any port (and packet-ins): until `expect` (the count the engine gave)
    arrived and nothing more came for QUIET seconds, or the wait ran out. The expectation
    only sets how long to wait; what arrives is compared afterwards."""
    got: list[list] = []
    start = last = time.monotonic()
    fds = {s.fileno(): p for p, s in socks.items()}
    while True:
        now = time.monotonic()
        if len(got) >= expect:
            limit = max(last + QUIET, start + (NONE_WAIT if expect == 0 else 0))
        else:
            limit = start + LONG_WAIT
        if now >= limit:
            return got
        ready = select.select(list(fds), [], [], min(0.02, limit - now))[0]
        for fd in ready:
            port = fds[fd]
            while (frame := socks[port].recv()) is not None:
                got.append([port, frame.hex()])
                last = time.monotonic()
        while not stream.queues["packet"].empty():
            msg = stream.queues["packet"].get()
            got.append([CPU_PORT, msg.packet.payload.hex()])
            last = time.monotonic()


def serve(scenario_path: str) -> int:
    """--serve: configure BMv2, print 'ready', keep it running until stdin closes."""
    scenario = json.loads(Path(scenario_path).read_text())
    tmp = str(Path(scenario_path).resolve().parent)
    sw = Bmv2(scenario, tmp)
    try:
        for op in scenario.get("setup", []):
            sw.setup(op)
        print("ready", flush=True)
        sys.stdin.read()
    finally:
        sw.close()
    return 0


def main() -> int:
    if sys.argv[1] == "--serve":
        return serve(sys.argv[2])
    scenario = json.loads(Path(sys.argv[1]).read_text())
    result: dict = {"outputs": [], "counters": [], "direct_counters": [], "registers": []}
    tmp = str(Path(sys.argv[2]).resolve().parent)  # the log stays beside the result
    if True:
        sw = Bmv2(scenario, tmp)
        try:
            for op in scenario.get("setup", []):
                sw.setup(op)
            socks = {p: RawSocketPort(f"t{p}") for p in scenario["ports"]}
            time.sleep(0.2)
            for s in socks.values():  # nothing from before the first frame counts
                while s.recv() is not None:
                    pass
            expect = scenario.get("expect") or [0] * len(scenario["packets"])
            for (port, frame), n in zip(scenario["packets"], expect):
                socks[port].send(bytes.fromhex(frame))
                result["outputs"].append(sorted(collect(socks, sw.stream, n)))
            result["counters"] = [sw.counter(n, i) for n, i in scenario.get("counters", [])]
            result["direct_counters"] = [sw.direct_counter(k)
                                         for k in scenario.get("direct_counters", [])]
            result["registers"] = [sw.register(n, i) for n, i in scenario.get("registers", [])]
        finally:
            sw.close()
            log = Path(tmp) / "bmv2.txt"  # bmv2 appends .txt to --log-file
            result["log_tail"] = log.read_text()[-4000:] if log.exists() else ""
    Path(sys.argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
