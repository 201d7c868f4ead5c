"""Fixtures for the scitags_core tests: state directory, local HTTP server, reference sender."""
from __future__ import annotations

import functools
import http.server
import sys
import threading
import types
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("SCITAGS_P4_STATE_DIR", str(path))
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, directory): a real http.server on 127.0.0.1 serving the directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def reference_sender(tmp_path_factory: pytest.TempPathFactory) -> types.ModuleType:
    """The reference sender module (scitags.backends.udp_firefly), imported for real.

    scitags.config exec()s /etc/flowd/flowd.cfg at import: point it at an empty file. Its
    optional netlink module needs pyroute2 (it calls sys.exit() without it), so it is
    made to fail the way udp_firefly's `except ImportError` expects.
    """
    import scitags.settings
    config = tmp_path_factory.mktemp("flowd") / "flowd.cfg"
    config.write_text("BACKEND = 'udp_firefly'\n")
    scitags.settings.CONFIG_PATH = str(config)
    sys.modules.setdefault("scitags.netlink.cache", None)  # type: ignore[arg-type]
    from scitags.backends import udp_firefly
    return udp_firefly
