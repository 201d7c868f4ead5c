"""Fixtures of the history tests: a controllable clock, and one built-in-target switch
(softswitch) with a controller whose history runs on that clock."""
from __future__ import annotations

import math
import threading
import time

import pytest

from controller.history import HistoryExtension
from tests.controller.harness import one_switch_lab, target_params


class Clock:
    """The history's clock: stands still until the test moves it (the controller's other
    parts keep real time). Starts on an hour boundary five days ago."""

    def __init__(self, start: float | None = None) -> None:
        self.t = start if start is not None else math.floor(time.time() / 3600) * 3600 - 5 * 86400
        self.t0 = self.t
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def set(self, offset_s: float) -> None:
        """Jump to t0 + offset_s."""
        with self._lock:
            self.t = self.t0 + offset_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


SOFT = [p for p in target_params() if p.id == "soft"]


@pytest.fixture(params=SOFT)
def lab(request, tmp_path, clock):
    """(switch, start(history=section, history_clock=None, **kw) -> Runtime with history on
    `clock`, or on history_clock)."""
    with one_switch_lab(request.param, tmp_path) as (sw, start_plain):
        def start(history: dict | None = None, history_clock=None, **kw):
            return start_plain(extensions=[HistoryExtension(history_clock or clock)],
                                    sections={"history": history or {}}, **kw)
        yield sw, start
