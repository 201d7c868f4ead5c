"""Where scitags-p4 keeps persistent state (the one rule every component uses).

Order: env SCITAGS_P4_STATE_DIR, else /var/lib/scitags-p4 when running as root,
else ~/.local/state/scitags-p4.
"""
from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "SCITAGS_P4_STATE_DIR"
SYSTEM_STATE_DIR = Path("/var/lib/scitags-p4")
USER_STATE_SUBDIR = Path(".local/state/scitags-p4")


def state_dir() -> Path:
    """The state directory by the rule above; not created (see ensure_state_dir)."""
    configured = os.environ.get(STATE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    return Path.home() / USER_STATE_SUBDIR


def ensure_state_dir(subdir: str | None = None) -> Path:
    """state_dir() (or a subdirectory of it), created if missing."""
    path = state_dir() if subdir is None else state_dir() / subdir
    path.mkdir(parents=True, exist_ok=True)
    return path
