#!/usr/bin/env python3
"""Generate modern P4Runtime Python bindings into the active environment.

PyPI's `p4runtime` wheels hold old-style generated code that needs protobuf<=3.20,
which is pure Python on 3.11 and too slow for bulk table writes. finsy's wheel ships
the P4Runtime .proto files; we compile them with grpcio-tools against the installed
protobuf, into a top-level `p4` package in site-packages (the import path every
P4Runtime tool, p4runtime-shell included, expects). google.rpc comes from
googleapis-common-protos.
"""
from __future__ import annotations

import pathlib
import shutil
import sys
import sysconfig
import tempfile


def main() -> int:
    import importlib.util

    from grpc_tools import protoc
    import grpc_tools

    # Locate finsy without importing it: its own generated modules would register
    # google/rpc/status.proto a second time in the default descriptor pool.
    spec = importlib.util.find_spec("finsy")
    if spec is None or not spec.submodule_search_locations:
        print("finsy is not installed; it ships the P4Runtime .proto files", file=sys.stderr)
        return 1
    proto_root = pathlib.Path(list(spec.submodule_search_locations)[0]) / "proto"
    protos = sorted(str(p.relative_to(proto_root)) for p in (proto_root / "p4").rglob("*.proto"))
    if not protos:
        print(f"no P4Runtime .proto files under {proto_root}", file=sys.stderr)
        return 1
    site = pathlib.Path(sysconfig.get_paths()["purelib"])
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{proto_root}", f"-I{include}",
                f"--python_out={tmp}", f"--grpc_python_out={tmp}", *protos]
        if protoc.main(args) != 0:
            print("protoc failed", file=sys.stderr)
            return 1
        target = site / "p4"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(pathlib.Path(tmp) / "p4", target)
    for pkg in [target, *[d for d in target.rglob("*") if d.is_dir()]]:
        (pkg / "__init__.py").touch()
    from p4.v1 import p4runtime_pb2  # noqa: F401  (import check)
    from google.protobuf.internal import api_implementation
    print(f"P4Runtime bindings in {target} (protobuf backend: {api_implementation.Type()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
