"""Lab fixtures: Mininet labs with P4 target switches, on gRPC ports no other lab uses."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import HAVE_BMV2, IS_ROOT, ROOT

TOPOLOGIES = ROOT / "topologies"
from labnet.controller_proc import program_dir  # noqa: E402

P4_BUILD = program_dir()
HAVE_PROGRAM = (P4_BUILD / "scitags.json").exists() and (P4_BUILD / "scitags.p4info.txtpb").exists()


def _mininet_ok() -> str | None:
    if not IS_ROOT:
        return "needs root (Mininet, network namespaces)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "Mininet not installed"
    return None


SKIP_REASON = _mininet_ok()
needs_mininet = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")
needs_program = pytest.mark.skipif(not HAVE_PROGRAM, reason=f"compiled P4 program missing in {P4_BUILD} (make p4)")

SWITCHES = [
    pytest.param("soft", id="softswitch"),
    pytest.param("bmv2", id="bmv2", marks=pytest.mark.skipif(
        not HAVE_BMV2, reason="BMv2 simple_switch_grpc not installed (/opt/p4/bin/simple_switch_grpc absent)")),
]


def grpc_offset() -> int:
    """Ports away from the topology files' 50001.. (the demo) and from other test runs."""
    return 1000 + secrets.randbelow(680) * 20  # 51001..65000: below the ephemeral range


@pytest.fixture
def topo_copy(tmp_path) -> Callable[[str], Path]:
    from labnet.topofile import shifted_copy

    offset = grpc_offset()

    def make(name: str) -> Path:
        return shifted_copy(TOPOLOGIES / name, tmp_path / "topo", offset)

    return make


@pytest.fixture
def lab_factory(topo_copy) -> Iterator[Callable]:
    from controller.topology import load_topology
    from labnet.network import Lab

    labs: list[Lab] = []

    def make(name: str, switch: str) -> Lab:
        lab = Lab(load_topology(topo_copy(name)), switch=switch)
        labs.append(lab)
        return lab.start()

    yield make
    for lab in labs:
        lab.stop()
