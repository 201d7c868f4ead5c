"""Fixtures: the reference firefly listener and a raw UDP collector (tests/relay/receivers.py)."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.relay.receivers import RawCollector, ReferenceListener, reference_config as _config


@pytest.fixture(scope="session")
def reference_config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _config(tmp_path_factory.mktemp("flowd"))


@pytest.fixture
def reference_listener(reference_config) -> Iterator[ReferenceListener]:
    listener = ReferenceListener(reference_config)
    try:
        yield listener
    finally:
        listener.stop()


@pytest.fixture
def collector() -> Iterator[RawCollector]:
    c = RawCollector()
    try:
        yield c
    finally:
        c.close()
