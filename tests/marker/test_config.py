"""`marker run` configuration: YAML settings, refused with the setting named."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from marker.config import from_mapping, load
from marker.fireflies import Collector
from marker.flows import MarkerInputError

MARKER = str(Path(sys.executable).with_name("marker"))


def test_full_configuration(tmp_path):
    path = tmp_path / "marker.yaml"
    path.write_text("""
table: scitags_marker_lab
control_socket: /tmp/x.sock
np_api: null
collectors: ["[2001:db8::f]:9999", "10.0.0.9"]
fireflies_to_destination: false
ongoing_interval: 5
allow_unregistered: true
poller: {experiment: cms, activity: Cache, ports: [5201, "443"], interval: 1}
""")
    cfg = load(path)
    assert cfg.table == "scitags_marker_lab" and cfg.np_api is None
    assert cfg.collectors == [Collector("2001:db8::f", 9999), Collector("10.0.0.9", 10514)]
    assert cfg.ongoing_interval == 5.0 and cfg.allow_unregistered and not cfg.fireflies_to_destination
    assert cfg.poller is not None and cfg.poller.ports == [5201, 443] and cfg.poller.interval == 1.0


@pytest.mark.parametrize("doc, words", [
    ({"tabel": "x"}, "unknown setting(s) tabel"),
    ({"ongoing_interval": -1}, "ongoing_interval must be"),
    ({"collectors": ["host:0"]}, "port 0 outside"),
    ({"poller": {"experiment": "cms"}}, "activity (a name or an id) is required"),
    ({"poller": {"experiment": "cms", "activity": 3, "ports": [70000]}}, "port 70000 outside"),
    ({"allow_unregistered": "yes"}, "must be true or false"),
    ([1, 2], "must be a mapping"),
])
def test_bad_settings_are_named(doc, words):
    with pytest.raises(MarkerInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        from_mapping(doc, "cfg.yaml")


def test_run_refuses_bad_config_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("poller: {experiment: nosuch, activity: Cache}\n")
    proc = subprocess.run([MARKER, "run", "--config", str(bad), "--socket", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown experiment 'nosuch'" in proc.stderr
    proc = subprocess.run([MARKER, "run", "--config", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "cannot read configuration" in proc.stderr
