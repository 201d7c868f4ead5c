#!/usr/bin/env python3
"""Remove what a crashed lab left (processes in its namespaces, switch processes, veths).

    .venv/bin/python lab/clean.py [PREFIX ...] [--force] [--json]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labnet.cleanup import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
