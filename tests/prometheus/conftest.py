"""The history tests' lab (one built-in-target switch and a controller), and where the
Prometheus binaries are (Debian package `prometheus`, scripts/setup.sh)."""
from __future__ import annotations

import shutil

from tests.history.conftest import clock, lab  # noqa: F401 - fixtures

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
