"""Shared fixtures for the built-in target's tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from softswitch.engine import Engine  # noqa: E402

from netlab import NetLab  # noqa: E402
from p4json import Program, l2_program  # noqa: E402


def make_engine(program: Program | dict, cpu_port: int | None = None) -> Engine:
    e = Engine(cpu_port=cpu_port)
    e.load(program.build() if isinstance(program, Program) else program)
    return e


@pytest.fixture
def l2() -> Engine:
    return make_engine(l2_program())


@pytest.fixture
def lab():
    """A fresh namespace with veth pairs s1/t1 and s2/t2, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    lab = NetLab([1, 2])
    yield lab
    lab.close()
