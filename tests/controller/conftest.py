"""Fixtures of the controller tests: the target parameter and a one-switch lab."""
from __future__ import annotations

import contextlib

import pytest

from tests.controller.harness import H1, H2, MON, SwitchProc, start_controller, target_params, topology_yaml


@pytest.fixture(params=target_params())
def kind(request) -> str:
    return request.param


@pytest.fixture
def one_switch(kind, tmp_path):
    sw = SwitchProc(kind, 1, [1, 2, 3], tmp_path).start()
    topo = topology_yaml({"s1": sw}, {"h1": H1, "h2": H2, "mon1": MON},
                         [{"node1": "h1", "node2": "s1", "port2": 1},
                          {"node1": "h2", "node2": "s1", "port2": 2},
                          {"node1": "mon1", "node2": "s1", "port2": 3}])
    runtimes = []

    def start(wait: bool = True, **kw):
        rt = start_controller(tmp_path, topo, **kw)
        runtimes.append(rt)
        if wait:
            assert rt.controller.wait_ready(30), rt.controller.status()
        return rt

    yield sw, start
    for rt in runtimes:
        with contextlib.suppress(Exception):
            rt.stop()
    sw.stop()
