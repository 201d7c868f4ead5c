"""The switch under test for the P4 packet tests: one per module and target."""
from __future__ import annotations

import pytest

from tests.p4.dataplane import TARGETS, Switch


@pytest.fixture(scope="module", params=TARGETS)
def sw(request):
    s = Switch(request.param)
    try:
        s.start()
        yield s
    finally:
        s.stop()
