#!/usr/bin/env python3
"""The scitags-p4 Mininet demo (`make mininet-demo`, `make mininet-demo ARGS=--interactive`).

Starts the default topology (topologies/single.yaml) with BMv2 when installed, else the
built-in softswitch ($SWITCH=soft|bmv2 or --switch to choose), starts the controller, runs a
marked IPv6 transfer for two experiments, an IPv4 transfer described only by fireflies and
unmarked traffic, prints the operator's counters table and exits 0. Everything is removed
on exit, also after Ctrl-C; after a crash run lab/clean.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labnet/ before a reinstall

from labnet.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], demo=True))
