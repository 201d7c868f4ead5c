"""Differential testing: one scenario, run on our Engine and on BMv2, same results.

A scenario is plain JSON: the BMv2 JSON program, control-plane operations in the
engine's terms (table_add, table_set_default, mc_group_set, clone_session_set), frames
(ingress port, bytes) and the counters/registers to read afterwards. Outputs are compared
per input frame as sorted (port, frame) lists: BMv2's egress threads may interleave
ports, but never change what leaves.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softswitch.engine import Engine
from controller.launcher import bmv2_binary, bmv2_installed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BMV2_BIN = bmv2_binary()
HAVE_BMV2 = bmv2_installed()
CPU_PORT = 255


def _hex(v: bytes | int, nbytes: int | None = None) -> str:
    if isinstance(v, int):
        return v.to_bytes(nbytes or max(1, (v.bit_length() + 7) // 8), "big").hex()
    return bytes(v).hex()


@dataclass
class Scenario:
    program: dict
    ports: list[int]
    setup: list[dict] = field(default_factory=list)
    packets: list[list] = field(default_factory=list)
    counters: list[list] = field(default_factory=list)
    direct_counters: list[int] = field(default_factory=list)
    registers: list[list] = field(default_factory=list)

    # ---- building ----
    def table_add(self, table: str, match: list, action: str, args: list[bytes],
                  priority: int = 0) -> int:
        """Returns the entry's number, for direct_counter()."""
        m = [None if x is None else [x[0], *[_hex(v) if isinstance(v, (bytes, bytearray))
                                              else v for v in x[1:]]] for x in match]
        self.setup.append({"op": "table_add", "table": table, "match": m, "action": action,
                           "args": [_hex(a) for a in args], "priority": priority})
        return len(self.setup) - 1

    def set_default(self, table: str, action: str, args: list[bytes]) -> None:
        self.setup.append({"op": "table_set_default", "table": table, "action": action,
                           "args": [_hex(a) for a in args]})

    def mc_group(self, group: int, replicas: list[tuple[int, int]]) -> None:
        self.setup.append({"op": "mc_group_set", "group": group,
                           "replicas": [list(r) for r in replicas]})

    def clone_session(self, session: int, replicas: list[tuple[int, int]]) -> None:
        self.setup.append({"op": "clone_session_set", "session": session,
                           "replicas": [list(r) for r in replicas]})

    def send(self, port: int, frame: bytes) -> None:
        if len(frame) < 14:
            raise ValueError("AF_PACKET cannot send frames shorter than an Ethernet header")
        self.packets.append([port, frame.hex()])

    def read_counter(self, name: str, index: int) -> None:
        self.counters.append([name, index])

    def read_direct_counter(self, entry_no: int) -> None:
        self.direct_counters.append(entry_no)

    def read_register(self, name: str, index: int) -> None:
        self.registers.append([name, index])

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def _match(m: list | None) -> tuple | None:
    if m is None:
        return None
    return (m[0], *[bytes.fromhex(v) if isinstance(v, str) else v for v in m[1:]])


def apply_setup(e: Engine, sc: Scenario) -> list[int | None]:
    """Carry out the scenario's control-plane operations on an engine; entry handles."""
    handles: list[int | None] = []
    for op in sc.setup:
        kind = op["op"]
        handles.append(None)
        if kind == "table_add":
            handles[-1] = e.table_add(op["table"], [_match(m) for m in op["match"]],
                                      op["action"], [bytes.fromhex(a) for a in op["args"]],
                                      op["priority"])
        elif kind == "table_set_default":
            e.table_set_default(op["table"], op["action"], [bytes.fromhex(a) for a in op["args"]])
        elif kind == "mc_group_set":
            e.mc_group_set(op["group"], [tuple(r) for r in op["replicas"]])
        elif kind == "clone_session_set":
            e.clone_session_set(op["session"], [tuple(r) for r in op["replicas"]])
    return handles


def run_engine(sc: Scenario) -> dict[str, Any]:
    e = Engine(cpu_port=CPU_PORT)
    e.load(sc.program)
    handles = apply_setup(e, sc)
    outputs = []
    for port, frame in sc.packets:
        outputs.append(sorted([p, f.hex()] for p, f in e.process(port, bytes.fromhex(frame))
                              if p in sc.ports or p == CPU_PORT))
    table_of = {i: op["table"] for i, op in enumerate(sc.setup) if op["op"] == "table_add"}
    return {
        "outputs": outputs,
        "counters": [list(e.counter_read(n, i)) for n, i in sc.counters],
        "direct_counters": [list(e.direct_counter_read(table_of[k], handles[k]))
                            for k in sc.direct_counters],
        "registers": [e.register_read(n, i) for n, i in sc.registers],
        "errors": e.stats().get("errors", 0),
    }


def run_bmv2(sc: Scenario, tmp: Path, expect: list[int] | None = None) -> dict[str, Any]:
    """Run the scenario on simple_switch_grpc in a fresh namespace with veths s<N>/t<N>.
    expect: outputs per frame we predict (only tunes how long the driver waits)."""
    from netlab import NetLab
    lab = NetLab(sc.ports)
    try:
        scen, res = tmp / "scenario.json", tmp / "result.json"
        doc = dict(sc.__dict__, expect=expect or [0] * len(sc.packets))
        scen.write_text(json.dumps(doc))
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{HERE}"}
        proc = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable,
                               str(HERE / "bmv2_driver.py"), str(scen), str(res)],
                              capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"BMv2 driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(res.read_text())
    finally:
        lab.close()


def explain(sc: Scenario, ours: dict, ref: dict) -> str:
    """A readable account of the first differences."""
    lines = []
    for i, (a, b) in enumerate(zip(ours["outputs"], ref["outputs"])):
        if a != b:
            port, frame = sc.packets[i]
            lines.append(f"frame {i} (port {port}, {frame[:80]}...):\n  ours: {a}\n  bmv2: {b}")
            if len(lines) > 5:
                break
    for key in ("counters", "direct_counters", "registers"):
        if ours[key] != ref[key]:
            lines.append(f"{key}: ours {ours[key]} bmv2 {ref[key]}")
    return "\n".join(lines) + "\n--- bmv2 log tail ---\n" + ref.get("log_tail", "")[-2000:]
