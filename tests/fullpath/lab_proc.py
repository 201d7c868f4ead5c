"""A lab in its own process, for crash and Ctrl-C tests: prints `ready` then waits."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from controller.topology import load_topology  # noqa: E402
from labnet.network import Lab  # noqa: E402

topology, switch, prefix = sys.argv[1:4]
with Lab(load_topology(topology), switch=switch, prefix=prefix) as lab:
    lab.host("h1").popen(["sleep", "600"])  # a process inside a host namespace
    print("ready", flush=True)
    time.sleep(600)
