"""Shared pytest setup: repository paths and the skips for optional real components."""
from __future__ import annotations

import os
import pathlib

import pytest

from controller import launcher

ROOT = pathlib.Path(__file__).resolve().parent.parent
P4_BUILD = ROOT / "p4src" / "build" / "v1model"
BMV2_BIN = launcher.bmv2_binary()  # $BMV2_BIN, PATH, /opt/p4/bin
P4C_BIN = launcher.p4_tool("p4c-bm2-ss", "P4C_BIN") or str(launcher.P4_TOOLS_DIR / "p4c-bm2-ss")

HAVE_BMV2 = launcher.bmv2_installed()
HAVE_P4C = os.access(P4C_BIN, os.X_OK)
IS_ROOT = os.geteuid() == 0

needs_bmv2 = pytest.mark.skipif(
    not HAVE_BMV2, reason=f"BMv2 simple_switch_grpc not installed ({BMV2_BIN} absent)")
needs_p4c = pytest.mark.skipif(
    not HAVE_P4C, reason=f"p4c-bm2-ss not installed ({P4C_BIN} absent)")
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root for network namespaces")
