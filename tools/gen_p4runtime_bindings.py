#!/usr/bin/env python3
"""Generate modern P4Runtime Python bindings (and Stratum's bf.proto) into the active environment.

PyPI's `p4runtime` wheels hold old-style generated code that needs protobuf<=3.20,
which is pure Python on 3.11 and too slow for bulk table writes. finsy's wheel ships
the P4Runtime .proto files; we compile them with grpcio-tools against the installed
protobuf, into a top-level `p4` package in site-packages (the import path every
P4Runtime tool, p4runtime-shell included, expects). google.rpc comes from
googleapis-common-protos.

The repository's proto/ folder holds other projects' .proto files under their upstream
paths (proto/README.md): Stratum's bf.proto becomes `stratum.hal.lib.barefoot.bf_pb2`,
the BfPipelineConfig a Tofino running Stratum takes as its P4 device config.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import sys
import sysconfig
import tempfile

REPO_PROTO_ROOT = pathlib.Path(__file__).resolve().parent.parent / "proto"


def finsy_proto_root() -> pathlib.Path | None:
    import importlib.util

    # Locate finsy without importing it: its own generated modules would register
    # google/rpc/status.proto a second time in the default descriptor pool.
    spec = importlib.util.find_spec("finsy")
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "proto"


def compile_package(proto_root: pathlib.Path, package: str, includes: list[pathlib.Path],
                    site: pathlib.Path, grpc: bool) -> pathlib.Path:
    """Compile every .proto under proto_root/package into site/package, swapped in whole
    so that a process importing it meanwhile sees the old or the new tree, never none."""
    from grpc_tools import protoc
    import grpc_tools

    protos = sorted(str(p.relative_to(proto_root)) for p in (proto_root / package).rglob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {proto_root / package}")
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{proto_root}", *(f"-I{i}" for i in includes), f"-I{include}",
                f"--python_out={tmp}", *([f"--grpc_python_out={tmp}"] if grpc else []), *protos]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto_root / package}")
        target = site / package
        staged = site / f".{package}.new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(pathlib.Path(tmp) / package, staged)
    for pkg in [staged, *[d for d in staged.rglob("*") if d.is_dir()]]:
        (pkg / "__init__.py").touch()
    old = site / f".{package}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def main() -> int:
    p4_root = finsy_proto_root()
    if p4_root is None:
        print("finsy is not installed; it ships the P4Runtime .proto files", file=sys.stderr)
        return 1
    site = pathlib.Path(sysconfig.get_paths()["purelib"])
    try:
        target = compile_package(p4_root, "p4", [], site, grpc=True)
        stratum = compile_package(REPO_PROTO_ROOT, "stratum", [p4_root], site, grpc=False)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    from p4.v1 import p4runtime_pb2  # noqa: F401  (import check)
    from stratum.hal.lib.barefoot import bf_pb2  # noqa: F401
    from google.protobuf.internal import api_implementation
    print(f"P4Runtime bindings in {target}, Stratum's bf.proto in {stratum} "
          f"(protobuf backend: {api_implementation.Type()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
