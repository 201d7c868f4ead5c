"""Helpers shared by the scitags_core tests."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Callable

REFERENCE_DIR = Path(importlib.util.find_spec("scitags").origin).parent


def load_reference_function(relative: str, name: str, namespace: dict) -> Callable:
    """One function from the installed reference package (scitags 1.1.7), run unchanged.

    Importing its module needs its runtime (bcc, /etc/flowd/flowd.cfg); the function
    itself only needs `namespace` (e.g. random, log).
    """
    path = REFERENCE_DIR / relative
    tree = ast.parse(path.read_text())
    func = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def go_gen_flow_tag(experiment_id: int, activity_id: int, r_num: int) -> int:
    """flowd-go backends/marker/utils.go genFlowTag, transcribed line by line.

    Go's & and >> share one precedence level (left to right), so
    `experimentId & (0x1 << i) >> i` is bit i of experimentId.
    """
    experiment_id_rev = 0
    for i in range(9):
        experiment_id_rev |= ((experiment_id & (0x1 << i)) >> i) << ((9 - 1) - i)
    return ((r_num & (0x3 << 18)) | ((experiment_id_rev & 0x1FF) << 9) | (r_num & (0x1 << 8))
            | ((activity_id & 0x3F) << 2) | (r_num & 0x3))
