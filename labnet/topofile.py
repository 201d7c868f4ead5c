"""Topology file helpers for labs that must not collide with another running lab."""
from __future__ import annotations

from pathlib import Path

import yaml

from controller.topology import Topology, load_topology


def shifted_copy(path: str | Path, dest_dir: str | Path, grpc_offset: int) -> Path:
    """Copy of a topology file with every switch's grpc_port moved by `grpc_offset`
    (the controller reads the same copy, so both sides agree)."""
    doc = yaml.safe_load(Path(path).read_text())
    for spec in (doc.get("switches") or {}).values():
        if isinstance(spec, dict) and isinstance(spec.get("grpc_port"), int):
            spec["grpc_port"] += grpc_offset
    out = Path(dest_dir) / Path(path).name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_topology(out)  # still valid
    return out


def load(path: str | Path) -> Topology:
    return load_topology(path)
