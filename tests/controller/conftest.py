"""Fixtures of the controller tests: the target parameter and a one-switch lab."""
from __future__ import annotations

import pytest

from tests.controller.harness import one_switch_lab, target_params


@pytest.fixture(params=target_params())
def kind(request) -> str:
    return request.param


@pytest.fixture
def one_switch(kind, tmp_path):
    with one_switch_lab(kind, tmp_path) as lab:
        yield lab
