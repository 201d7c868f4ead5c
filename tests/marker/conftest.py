from __future__ import annotations

from typing import Iterator

import pytest

from scitags_core.registry import Registry
from tests.marker.netns import netns


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.default()


@pytest.fixture
def ns() -> Iterator[str]:
    yield from netns()


@pytest.fixture(autouse=True)
def _state_dir(tmp_path, monkeypatch) -> None:
    # standalone flow records go to a throwaway state directory
    monkeypatch.setenv("SCITAGS_P4_STATE_DIR", str(tmp_path / "state"))
