"""The active registry, persisted in the state directory so a restart uses the same one.

A refresh that fails for any reason (network, bad JSON, schema, constraints) keeps the
last good registry and says why.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scitags_core.paths import state_dir
from scitags_core.registry import DEFAULT_REGISTRY_URL, Registry, RegistryError, RegistryFetchError

log = logging.getLogger(__name__)

REGISTRY_SUBDIR = "registry"
ACTIVE_FILE = "active.json"
META_FILE = "active.meta.json"


@dataclass(frozen=True)
class RefreshResult:
    ok: bool
    registry: Registry  # the active registry after the attempt (the old one on failure)
    error: str | None = None  # why the refresh failed
    fetch_failed: bool = False  # True: could not read the source; False: content was bad

    @property
    def message(self) -> str:
        if self.ok:
            return f"active registry {self.registry.identity} from {self.registry.source}"
        return (f"refresh failed: {self.error}; keeping registry {self.registry.identity} "
                f"from {self.registry.source}")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # public data; mkstemp's 0600 would hide it from other users
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RegistryStore:
    """Loads, activates and refreshes the registry kept under <state dir>/registry/."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else state_dir() / REGISTRY_SUBDIR
        self.active_path = self.directory / ACTIVE_FILE
        self.meta_path = self.directory / META_FILE
        self.load_warning: str | None = None  # why the persisted registry was not used
        self._current: Registry | None = None

    @property
    def current(self) -> Registry:
        if self._current is None:
            self._current = self.load()
        return self._current

    def load(self) -> Registry:
        """The persisted active registry, else the shipped default (load_warning says why)."""
        self.load_warning = None
        if not self.active_path.exists():
            return Registry.default()
        source = str(self.active_path)
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            source = str(meta.get("source") or source)
        except (OSError, ValueError):
            pass  # the metadata only names the source; the registry file is what matters
        try:
            registry = Registry.from_bytes(self.active_path.read_bytes(), source=source)
        except (OSError, RegistryError) as exc:
            self.load_warning = (f"persisted registry {self.active_path} unusable ({exc}); "
                                 f"using the shipped default")
            log.warning("%s", self.load_warning)
            return Registry.default()
        return registry

    def activate(self, registry: Registry) -> None:
        """Make `registry` the active one, on disk and in memory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.active_path, registry.raw)
        meta = {"source": registry.source, "modified": registry.modified_text,
                "sha256": registry.digest,
                "activated": dt.datetime.now(dt.timezone.utc).isoformat()}
        _atomic_write(self.meta_path, json.dumps(meta, indent=2).encode() + b"\n")
        self._current = registry

    def refresh(self, *, url: str | None = None, file: str | Path | None = None,
                timeout: float = 10.0) -> RefreshResult:
        """Fetch from `file`, else `url` (default www.scitags.org); keep the old one on failure.

        Never raises for a bad source: the result says why (log result.message).
        """
        previous = self.current
        try:
            new = Registry.from_file(file) if file is not None else Registry.from_url(
                url or DEFAULT_REGISTRY_URL, timeout=timeout)
            self.activate(new)
        except RegistryError as exc:
            return RefreshResult(False, previous, str(exc), isinstance(exc, RegistryFetchError))
        except OSError as exc:  # state directory not writable
            return RefreshResult(False, previous,
                                 f"cannot persist registry in {self.directory}: {exc}", True)
        return RefreshResult(True, new)


def active_registry(file: str | Path | None = None) -> Registry:
    """`file` when given, else the persisted active registry, else the shipped default."""
    if file is not None:
        return Registry.from_file(file)
    return RegistryStore().current
