"""Tofino device ports, and the settings of a `kind: tofino` switch in a topology file.

P4Runtime on Stratum for Tofino speaks SDK device ports (dev_port), not front-panel numbers
(Stratum's README.run.md, "Port Numbers"): a 9-bit number, pipe in bits 8..7 and the port
within the pipe in bits 6..0, of which 0..71 exist (bf-drivers: MAKE_DEV_PORT(pipe, port) =
pipe << 7 | port, DEV_PORT_VALIDATE: local port < 72). Which dev_port a front-panel port is
depends on the board: the operator reads it on the switch (docs/tofino.md). The PCIe CPU port
depends on the chip: Tofino 1 with 2 pipes 192, with 4 pipes 320; Tofino 2: 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping




@dataclass(frozen=True)
class Chip:
    name: str
    build: str  # folder under p4src/build/ of the committed bf-p4c outputs
    binary: str  # bf-p4c's binary file name in each pipeline folder
    cpu_port: int  # the CPU port p4src/tna/scitags.p4 is compiled with (its CPU_PORT default)


# -DCPU_PORT=N builds for another part (e.g. 320 on a 4-pipe Tofino 1).
CHIPS = {c.name: c for c in (Chip("tofino", "tna", "tofino.bin", 192),
                             Chip("tofino2", "t2na", "tofino2.bin", 0))}


def chip(name: Any) -> Chip:
    try:
        return CHIPS[name]
    except (KeyError, TypeError):  # TypeError: a YAML list or mapping
        raise ValueError(f"chip {name!r} is not one of {', '.join(CHIPS)}") from None


PORT_BITS = 9
MAX_DEV_PORT = (1 << PORT_BITS) - 1
PIPE_SHIFT = 7
PORTS_PER_PIPE = 72  # local ports 0..71: MACs, CPU Ethernet, recirculation
# Keys of a `kind: tofino` switch besides the common ones (device_id, grpc_host/port, cpu_port).
TOFINO_KEYS = {"chip", "pipeline", "pipe_scope", "device_config_format"}


def make_dev_port(pipe: int, local_port: int) -> int:
    return (pipe << PIPE_SHIFT) | local_port


def split_dev_port(dev_port: int) -> tuple[int, int]:
    """(pipe, local port)."""
    return dev_port >> PIPE_SHIFT, dev_port & ((1 << PIPE_SHIFT) - 1)


def port_problem(port: Any) -> str | None:
    """Why port is not a Tofino device port, or None when it is one."""
    if isinstance(port, bool) or not isinstance(port, int):
        return f"{port!r} is not an integer device port"
    if not 0 <= port <= MAX_DEV_PORT:
        return f"{port} is outside the {PORT_BITS}-bit device ports 0..{MAX_DEV_PORT}"
    pipe, local = split_dev_port(port)
    if local >= PORTS_PER_PIPE:
        return (f"{port} is pipe {pipe} local port {local}, and a pipe has local ports "
                f"0..{PORTS_PER_PIPE - 1} (device port = pipe*128 + local port)")
    return None


@dataclass(frozen=True)
class TofinoSwitchSettings:
    chip: str = "tofino"
    pipeline: Path | None = None  # bf-p4c output folder; None: the committed one for the chip
    pipe_scope: tuple[int, ...] | None = None  # None: what the build says (all pipes)


def tofino_settings(options: Mapping[str, Any], base_dir: Path | None = None) -> TofinoSwitchSettings:
    """The Tofino keys of a switch entry (its options beyond the common keys); ValueError
    naming the key and the cause. A relative `pipeline` is taken from base_dir (the
    topology file's folder)."""
    unknown = set(options) - TOFINO_KEYS
    if unknown:
        raise ValueError(f"unknown key(s) for a tofino switch: {', '.join(sorted(map(str, unknown)))} "
                         f"(it takes {', '.join(sorted(TOFINO_KEYS))})")
    chip_name = chip(options.get("chip", "tofino")).name
    if options.get("device_config_format", "tofino") != "tofino":
        raise ValueError(f"device_config_format {options['device_config_format']!r}: a tofino switch "
                         f"takes Stratum's BfPipelineConfig (tofino)")
    pipeline = options.get("pipeline")
    if pipeline is not None:
        if not isinstance(pipeline, str) or not pipeline:
            raise ValueError(f"pipeline must be the path of a bf-p4c output folder, got {pipeline!r}")
        pipeline = Path(pipeline)
        if not pipeline.is_absolute() and base_dir is not None:
            pipeline = base_dir / pipeline
    scope = options.get("pipe_scope")
    if scope is not None:
        if (not isinstance(scope, list) or not scope or len(set(scope)) != len(scope)
                or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 3 for p in scope)):
            raise ValueError(f"pipe_scope {scope!r} must list distinct pipes 0..3")
        scope = tuple(scope)
    return TofinoSwitchSettings(chip_name, pipeline, scope)


def cpu_port_problem(cpu_port: Any) -> str | None:
    """Why cpu_port cannot be a Tofino switch's CPU port, or None."""
    problem = port_problem(cpu_port)
    return f"cpu_port {problem}" if problem else None


def checked_switch(cpu_port: Any, options: Mapping[str, Any],
                   base_dir: Path | None = None) -> tuple[int, dict[str, Any]]:
    """Check a topology's `kind: tofino` switch: (its CPU port, its keys beyond the common ones
    normalized: `pipeline` made absolute from base_dir, the topology file's folder). Without a
    cpu_port, the one the committed program for its chip was compiled with. ValueError naming
    the key and the cause."""
    s = tofino_settings(options, base_dir)
    if cpu_port is None:
        cpu_port = CHIPS[s.chip].cpu_port
    problem = cpu_port_problem(cpu_port)
    if problem:
        raise ValueError(problem)
    # The device config is Stratum's BfPipelineConfig (controller.runtime.DEVICE_CONFIG_FORMATS).
    out: dict[str, Any] = {"chip": s.chip, "device_config_format": "tofino"}
    if s.pipeline is not None:
        out["pipeline"] = str(s.pipeline)
    if s.pipe_scope is not None:
        out["pipe_scope"] = list(s.pipe_scope)
    return cpu_port, out
