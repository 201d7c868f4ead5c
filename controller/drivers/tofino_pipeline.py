"""The P4 device config a Tofino running Stratum takes: BfPipelineConfig, packed from bf-p4c outputs.

Stratum (stratum_bfrt) reads `ForwardingPipelineConfig.p4_device_config` as a serialized
`stratum.hal.barefoot.BfPipelineConfig` (proto/stratum/hal/lib/barefoot/bf.proto): the P4
program name, bfrt.json, and one profile per pipeline with its context.json, its binary and the
hardware pipes it runs on. This module packs it the way Stratum's own bf_pipeline_builder does,
from a bf-p4c output folder laid out as the compiler writes it:

    <build>/scitags.p4info.txtpb   the P4Info (pushed beside the device config)
    <build>/bfrt.json              BfRt schema
    <build>/<pipe>/context.json    per pipeline (`Pipeline(...) pipe;` in the program)
    <build>/<pipe>/tofino.bin      Tofino 1 (tofino2.bin on Tofino 2)
    <build>/<program>.conf         optional: bf-p4c's device conf; when present, it names the
                                   program and each pipeline's pipe_scope (as Stratum's tool reads it)

Without a .conf, every sub-folder holding a context.json is a profile, and a single profile
runs on all pipes (0..3), the bf-p4c default.
"""
from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import DecodeError
from p4.config.v1 import p4info_pb2
from stratum.hal.lib.barefoot import bf_pb2

from controller.config import ConfigError
from controller.drivers.tofino_ports import CHIPS, Chip, chip, tofino_settings

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PROGRAM_NAME = "scitags"
P4INFO_FILE = f"{PROGRAM_NAME}.p4info.txtpb"
BFRT_FILE = "bfrt.json"
CONTEXT_FILE = "context.json"
ALL_PIPES = (0, 1, 2, 3)  # bf-p4c's default pipe_scope: every pipe the chip has
MAX_PIPES = 4


class TofinoPipelineError(ValueError):
    """A build folder that cannot be packed; the message names the folder or file and the cause."""


@dataclass(frozen=True)
class Profile:
    name: str
    context: bytes
    binary: bytes
    pipe_scope: tuple[int, ...]


@dataclass(frozen=True)
class TofinoBuild:
    """The compiler outputs of one program for one chip, read into memory."""
    chip: Chip
    directory: Path
    p4_name: str
    p4info_path: Path
    bfruntime_info: bytes
    profiles: tuple[Profile, ...]

    def device_config(self) -> bytes:
        """The serialized BfPipelineConfig (deterministic: the same files give the same bytes)."""
        msg = bf_pb2.BfPipelineConfig(p4_name=self.p4_name, bfruntime_info=self.bfruntime_info)
        for p in self.profiles:
            msg.profiles.add(profile_name=p.name, context=p.context, binary=p.binary,
                             pipe_scope=list(p.pipe_scope))
        return msg.SerializeToString(deterministic=True)


def _chip(name: str) -> Chip:
    try:
        return chip(name)
    except ValueError as exc:
        raise TofinoPipelineError(str(exc)) from None


def default_build_dir(chip_name: str = "tofino") -> Path:
    """p4src/build/tna (Tofino 1) or p4src/build/t2na (Tofino 2): the committed outputs."""
    return REPO / "p4src" / "build" / _chip(chip_name).build


def load_build(directory: str | Path | None = None, chip_name: str = "tofino",
               pipe_scope: tuple[int, ...] | None = None) -> TofinoBuild:
    """Read a bf-p4c output folder (default: the committed one for the chip).

    pipe_scope overrides the pipes of a single-profile build (e.g. (0, 1) on a two-pipe part)."""
    target = _chip(chip_name)
    folder = Path(directory) if directory is not None else default_build_dir(chip_name)
    if not folder.is_dir():
        raise TofinoPipelineError(f"Tofino build folder {folder} not found: compile the TNA program "
                                  f"(make p4 with bf-p4c) or give the folder of its outputs")
    conf = _read_conf(folder)
    p4_name = str(conf.get("program-name") or PROGRAM_NAME) if conf else PROGRAM_NAME
    p4info = folder / P4INFO_FILE
    _require(p4info, "P4Info")
    bfrt = _read(folder / BFRT_FILE, "BfRt schema (bfrt.json)")
    scopes = _conf_scopes(conf, folder) if conf else _found_scopes(folder)
    if pipe_scope is not None:
        if len(scopes) != 1:
            raise TofinoPipelineError(f"{folder}: a pipe scope override needs a single-pipeline build, "
                                      f"this one has {', '.join(scopes)}")
        scopes = {next(iter(scopes)): _check_scope(pipe_scope, f"{folder}: pipe scope")}
    profiles = []
    for name, scope in scopes.items():
        context = _read(folder / name / CONTEXT_FILE, f"context.json of pipeline {name!r}")
        binary = _read(folder / name / target.binary, f"{target.name} binary of pipeline {name!r}",
                       _other_chip_hint(folder / name, target))
        profiles.append(Profile(name, context, binary, scope))
    return TofinoBuild(target, folder, p4_name, p4info, bfrt, tuple(profiles))


def switch_build_dir(cfg, spec) -> Path:
    """Where a `kind: tofino` switch's build is: its `pipeline:`, else `--device-config` when
    that is a folder, else the committed outputs for its chip (cfg: ControllerConfig, spec:
    topology.SwitchSpec)."""
    settings = tofino_settings(spec.options)
    if settings.pipeline is not None:
        return settings.pipeline
    if cfg.device_config and Path(cfg.device_config).is_dir():
        return Path(cfg.device_config)
    return default_build_dir(settings.chip)


def switch_p4info(cfg, spec) -> Path:
    """The P4Info a Tofino switch gets: the one compiled with its bfrt.json."""
    return switch_build_dir(cfg, spec) / P4INFO_FILE


def device_config_builder(cfg, spec):
    """controller.runtime.DEVICE_CONFIG_FORMATS["tofino"]: reads the switch's build now (a
    missing file is a ConfigError naming it: exit 2) and returns the builder the P4Runtime
    driver calls with its P4Info, which must be the build's own."""
    try:
        settings = tofino_settings(spec.options)
        build = load_build(switch_build_dir(cfg, spec), settings.chip, settings.pipe_scope)
        own = text_format.Parse(build.p4info_path.read_text(), p4info_pb2.P4Info())
    except (ValueError, OSError, text_format.ParseError) as exc:  # TofinoPipelineError is a ValueError
        raise ConfigError(f"switch {spec.name}: {exc}") from None
    data = build.device_config()
    log.info("switch %s: Tofino pipeline %s", spec.name, describe(build))

    def builder(p4info) -> bytes:
        if p4info != own:
            raise ConfigError(f"switch {spec.name}: the P4Info given is not {build.p4info_path}, "
                              f"the one compiled with {build.directory / BFRT_FILE}")
        return data
    return builder


def parse_device_config(data: bytes):
    """The BfPipelineConfig in p4_device_config bytes (for checks and `describe`)."""
    msg = bf_pb2.BfPipelineConfig()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise TofinoPipelineError(f"p4_device_config is not a BfPipelineConfig: {exc}") from None
    return msg


def describe(build: TofinoBuild) -> dict:
    """Sizes and scopes, for logs and `--json` output."""
    return {"chip": build.chip.name, "directory": str(build.directory), "p4_name": build.p4_name,
            "p4info": str(build.p4info_path), "bfrt_bytes": len(build.bfruntime_info),
            "profiles": [{"name": p.name, "pipe_scope": list(p.pipe_scope),
                          "context_bytes": len(p.context), "binary_bytes": len(p.binary)}
                         for p in build.profiles]}


# ---- internals ----

def _require(path: Path, what: str, hint: str = "") -> None:
    if not path.is_file():
        raise TofinoPipelineError(f"{what} {path} not found{hint}")


def _stored(path: Path) -> Path:
    """The file, or its gzip copy: the repository keeps outputs over 1 MiB gzipped."""
    gz = path.with_name(path.name + ".gz")
    return gz if not path.is_file() and gz.is_file() else path


def read_build_file(path: Path) -> bytes:
    """A file of a build folder as the compiler wrote it (gunzipped if kept as <name>.gz)."""
    return _read(path, "build file")


def _read(path: Path, what: str, hint: str = "") -> bytes:
    path = _stored(path)
    _require(path, what, hint)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise TofinoPipelineError(f"{what} {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if not data:
        raise TofinoPipelineError(f"{what} {path} is empty")
    return data


def _other_chip_hint(folder: Path, target: Chip) -> str:
    others = [c for c in CHIPS.values() if c is not target and _stored(folder / c.binary).is_file()]
    return f" (the folder holds {others[0].binary}: a {others[0].name} build)" if others else ""


def _read_conf(folder: Path) -> dict | None:
    confs = sorted(folder.glob("*.conf"))
    if not confs:
        return None
    if len(confs) > 1:
        raise TofinoPipelineError(f"{folder}: several bf-p4c .conf files ({', '.join(c.name for c in confs)})")
    try:
        conf = json.loads(confs[0].read_text())
        programs = conf["p4_devices"][0]["p4_programs"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise TofinoPipelineError(f"{confs[0]}: not a bf-p4c device conf ({exc!r})") from None
    if not isinstance(programs, list) or len(programs) != 1 or not isinstance(programs[0], dict):
        raise TofinoPipelineError(f"{confs[0]}: BfPipelineConfig holds exactly one P4 program")
    return programs[0] | {"_file": str(confs[0])}


def _conf_scopes(program: dict, folder: Path) -> dict[str, tuple[int, ...]]:
    where = program["_file"]
    pipelines = program.get("p4_pipelines")
    if not isinstance(pipelines, list) or not pipelines:
        raise TofinoPipelineError(f"{where}: no p4_pipelines")
    scopes: dict[str, tuple[int, ...]] = {}
    for p in pipelines:
        name = p.get("p4_pipeline_name") if isinstance(p, dict) else None
        if not isinstance(name, str) or not name or "/" in name:
            raise TofinoPipelineError(f"{where}: pipeline without a usable p4_pipeline_name: {p!r}")
        scopes[name] = _check_scope(p.get("pipe_scope", ALL_PIPES), f"{where}: pipeline {name!r} pipe_scope")
    _check_disjoint(scopes, where)
    return scopes


def _found_scopes(folder: Path) -> dict[str, tuple[int, ...]]:
    names = sorted(d.name for d in folder.iterdir() if _stored(d / CONTEXT_FILE).is_file())
    if not names:
        raise TofinoPipelineError(f"{folder}: no pipeline folder with a {CONTEXT_FILE} "
                                  f"(bf-p4c writes <pipe>/{CONTEXT_FILE}, e.g. pipe/{CONTEXT_FILE})")
    if len(names) > 1:
        raise TofinoPipelineError(f"{folder}: pipelines {', '.join(names)} but no bf-p4c .conf "
                                  f"saying which pipes each runs on")
    return {names[0]: ALL_PIPES}


def _check_scope(scope, what: str) -> tuple[int, ...]:
    if (not isinstance(scope, (list, tuple)) or not scope
            or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < MAX_PIPES for p in scope)
            or len(set(scope)) != len(scope)):
        raise TofinoPipelineError(f"{what} {scope!r} must list distinct pipes 0..{MAX_PIPES - 1}")
    return tuple(scope)


def _check_disjoint(scopes: dict[str, tuple[int, ...]], where: str) -> None:
    owner: dict[int, str] = {}
    for name, scope in scopes.items():
        for pipe in scope:
            if pipe in owner:
                raise TofinoPipelineError(f"{where}: pipe {pipe} is in pipelines {owner[pipe]!r} and {name!r}")
            owner[pipe] = name


def main(argv: list[str] | None = None) -> int:
    """`python -m controller.drivers.tofino_pipeline`: pack a build into a file (what Stratum's
    bf_pipeline_builder writes, for p4runtime-shell or Stratum's p4_pipeline_pusher) or describe it."""
    import argparse
    import sys
    p = argparse.ArgumentParser(prog="python -m controller.drivers.tofino_pipeline",
                                description="Pack bf-p4c outputs into Stratum's BfPipelineConfig.")
    p.add_argument("--chip", choices=sorted(CHIPS), default="tofino")
    p.add_argument("--build", help="bf-p4c output folder (default: p4src/build/tna or t2na for the chip)")
    p.add_argument("--pipe-scope", help="pipes of a single-pipeline build, e.g. 0,1 (default: the build's)")
    p.add_argument("--out", help="write the serialized BfPipelineConfig here (e.g. bf_pipeline_config.pb.bin)")
    p.add_argument("--json", action="store_true", help="describe the build as JSON")
    args = p.parse_args(argv)
    try:
        scope = tuple(int(x) for x in args.pipe_scope.split(",")) if args.pipe_scope else None
        build = load_build(args.build, args.chip, scope)
    except ValueError as exc:  # TofinoPipelineError, or a --pipe-scope that is not numbers
        print(f"tofino_pipeline: {exc}", file=sys.stderr)
        return 2
    if args.out:
        data = build.device_config()
        Path(args.out).write_bytes(data)
    info = describe(build) | ({"out": args.out, "device_config_bytes": len(data)} if args.out else {})
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{info['p4_name']} for {info['chip']} from {info['directory']}: bfrt.json "
              f"{info['bfrt_bytes']} B; " + "; ".join(
                  f"profile {p['name']} pipes {p['pipe_scope']}: context {p['context_bytes']} B, "
                  f"binary {p['binary_bytes']} B" for p in info["profiles"])
              + (f"; wrote {len(data)} B to {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
