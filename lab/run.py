#!/usr/bin/env python3
"""Run a topology in Mininet with P4 target switches and open the Mininet CLI.

    .venv/bin/python lab/run.py [--topology topologies/single.yaml] [--switch auto|soft|bmv2]
        [--controller] [--no-cli]

The switches are `softswitch` or BMv2 `simple_switch_grpc` processes listening for
P4Runtime on 127.0.0.1:grpc_port; with --controller, `controller start` programs them.
Everything is removed on exit (also Ctrl-C); after a crash run lab/clean.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # labnet/ and the project packages, also before a reinstall

from labnet.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], demo=False))
