"""History without a switch: WHEN parsing (local time zone), settings, retention (fine steps
pruned, answered from coarse ones with widened bounds), gaps from runs, and history saved in
the same transaction as the totals."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from controller.accounting import Accounting
from controller.drivers.base import Counts
from controller.history import HistoryExtension, HistorySettings
from controller.store import Store, TotalKey
from controller.windows import Window, WindowError, parse_duration, parse_when, parse_window
from tests.conftest import ROOT
from tests.history.conftest import Clock

KEY = TotalKey("s1", "flowlabel", 3, 2, "cms", "perfSONAR", "reg-1")
BUCKET = TotalKey("s1", "bucket", -1, -1, "unmarked", "", "reg-1")


def test_when_forms():
    now = dt.datetime(2026, 3, 10, 15, 30, 20).astimezone().timestamp()
    local = lambda *a: dt.datetime(*a).astimezone().timestamp()  # noqa: E731
    assert parse_when("today", now) == local(2026, 3, 10)
    assert parse_when("yesterday", now) == local(2026, 3, 9)
    assert parse_when("now", now) == now
    assert parse_when("1h", now) == now - 3600
    assert parse_when("30m", now) == now - 1800
    assert parse_when("7d", now) == now - 7 * 86400
    assert parse_when("2026-03-01", now) == local(2026, 3, 1)
    assert parse_when("2026-03-01T10:15", now) == local(2026, 3, 1, 10, 15)
    assert parse_when("2026-03-01T10:15:00Z", now) == dt.datetime(2026, 3, 1, 10, 15, tzinfo=dt.timezone.utc).timestamp()
    assert parse_when("2026-03-01T10:15:00+02:00", now) == dt.datetime(2026, 3, 1, 8, 15, tzinfo=dt.timezone.utc).timestamp()
    assert parse_duration("5m") == 300 and parse_duration("300") == 300
    assert parse_when("1767225600", now) == 1767225600
    for bad in ("soon", "5x", "2026-13-01", "", "-1h"):
        with pytest.raises(WindowError):
            parse_when(bad, now)
    with pytest.raises(WindowError, match="backwards"):
        parse_window("1h", "2h", now)
    with pytest.raises(WindowError, match="needs since"):
        parse_window(None, "1h", now)
    with pytest.raises(WindowError, match="backwards or is empty"):
        parse_window("today", "today", now)


def test_today_is_in_the_controller_hosts_time_zone():
    """`today` starts at local midnight: in another zone (TZ), another instant, and stated."""
    code = ("import datetime as dt; from controller.windows import parse_when, zone_name;"
            "now = dt.datetime(2026, 1, 10, 1, 0, tzinfo=dt.timezone.utc).timestamp();"
            "print(int(parse_when('today', now)), zone_name(now))")
    got = {}
    for tz in ("UTC", "Asia/Kolkata", "America/New_York"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "TZ": tz}, check=True)
        got[tz] = out.stdout.split(maxsplit=1)
    day = dt.datetime(2026, 1, 10, tzinfo=dt.timezone.utc).timestamp()
    assert int(got["UTC"][0]) == day and got["UTC"][1].strip() == "UTC"
    assert int(got["Asia/Kolkata"][0]) == day - 5.5 * 3600 and "+05:30" in got["Asia/Kolkata"][1]
    # 01:00 UTC is still the 9th in New York: its midnight of the 9th (EST, -05:00)
    assert int(got["America/New_York"][0]) == day - 86400 + 5 * 3600 and "-05:00" in got["America/New_York"][1]


def test_settings():
    s = HistorySettings.from_section({"fine_step": "30s", "fine_keep": "6h", "coarse_step": "1h",
                                      "coarse_keep": 86400 * 30})
    assert (s.fine_step_s, s.fine_keep_s, s.coarse_step_s, s.coarse_keep_s) == (30, 21600, 3600, 2592000)
    assert HistorySettings.from_section({}) == HistorySettings(60, 2 * 86400, 3600, 400 * 86400)
    for bad, msg in (({"fine_step": "7s", "coarse_step": "1m"}, "multiple"),
                     ({"fine_step": "0s"}, "longer than 0"), ({"fine_step": 1.5}, "whole number"),
                     ({"fine_keep": "30m"}, "at least one coarse step"),
                     ({"coarse_keep": "1d"}, "at least history.fine_keep"), ({"step": "1m"}, "unknown")):
        with pytest.raises(ValueError, match=msg):
            HistorySettings.from_section(bad)
    import argparse
    ext = HistoryExtension()
    p = argparse.ArgumentParser()
    ext.add_arguments(p)
    assert ext.options(p.parse_args(["--history-fine-step", "10s", "--history-coarse-keep", "90d"])) == \
        {"fine_step": "10s", "coarse_keep": "90d"}


def make(tmp_path, settings=None, clock=None):
    store = Store(tmp_path / "controller.sqlite")
    clock = clock or Clock(1_800_000_000.0)
    acc = Accounting(store)
    acc.history.configure(settings or HistorySettings(), clock)
    acc.history.open()
    return store, acc, clock


def add(acc, key, packets, nbytes):
    with acc.lock:
        acc._add_total(key, Counts(packets, nbytes))


def test_retention_prunes_fine_and_answers_from_coarse(tmp_path):
    settings = HistorySettings(60, 2 * 3600, 3600, 24 * 3600)
    store, acc, clock = make(tmp_path, settings)
    for minute in range(0, 6 * 60, 10):  # 6 h, one count every 10 min
        clock.set(minute * 60 + 5)
        add(acc, KEY, 1, 100)
        add(acc, BUCKET, 2, 10)
        acc.save()
    t0 = int(clock.t0)
    h = acc.history
    assert h.fine_from == t0 + 3 * 3600  # now - 2 h, down to the hour: fine steps of 4 h left
    rows = store.history_rows()
    assert rows == {"history_fine": 2 * 18, "history_coarse": 2 * 6}
    # a window reaching into the pruned part is widened to whole hours there
    w = h.window_counts(Window(t0 + 1800, t0 + 4 * 3600 + 600))
    assert (w.since, w.until) == (t0, t0 + 4 * 3600 + 600)
    assert w.counts[KEY] == Counts(4 * 6 + 1, 100 * 25) and w.counts[BUCKET] == Counts(50, 250)
    assert w.gaps == []
    # inside the fine part: minute bounds; steps at :x0:05 cut exactly
    w = h.window_counts(Window(t0 + 4 * 3600 + 1, t0 + 4 * 3600 + 20 * 60))
    assert (w.since, w.until) == (t0 + 4 * 3600, t0 + 4 * 3600 + 20 * 60) and w.counts[KEY] == Counts(2, 200)
    # series at 1 h steps come from the coarse steps; 1 min steps in the pruned part are raised
    s = h.series(Window(t0, t0 + 6 * 3600), 3600)
    assert s.step_s == 3600 and s.points[KEY] == [[t0 + i * 3600, 6, 600] for i in range(6)]
    assert h.choose_step(Window(t0, t0 + 6 * 3600), 60) == 3600
    assert h.choose_step(Window(t0 + 5 * 3600, t0 + 6 * 3600), 60) == 60
    with pytest.raises(WindowError, match="multiple of the fine step"):
        h.choose_step(Window(t0, t0 + 60), 90)
    # a day later the coarse steps are gone too: that part is a gap, not zero
    clock.set(6 * 3600 + 25 * 3600)
    acc.save()
    w = h.window_counts(Window(t0, t0 + 6 * 3600))
    assert KEY not in w.counts and w.gaps == [[t0, t0 + 6 * 3600]]
    store.close()


def test_runs_survive_restarts_and_gaps(tmp_path):
    store, acc, clock = make(tmp_path)
    clock.set(100)
    add(acc, KEY, 1, 10)
    acc.save()
    clock.set(130)
    acc.save()  # heartbeat
    store.close()
    clock.set(400)
    store, acc, clock = make(tmp_path, clock=clock)
    assert acc.history.store.runs()[0][1:] == (clock.t0, clock.t0 + 130)
    clock.set(500)
    t0 = int(clock.t0)
    assert acc.history.gaps(t0 - 60, t0 + 600) == [[t0 - 60, t0], [t0 + 130, t0 + 400]]
    w = acc.history.window_counts(Window(t0, t0 + 600))
    assert w.counts[KEY] == Counts(1, 10)
    store.close()


def test_history_saved_with_totals_or_not_at_all(tmp_path):
    store, acc, clock = make(tmp_path)
    clock.set(10)
    add(acc, KEY, 3, 300)
    real = store._write_history

    def broken(batch):
        real(batch)
        raise OSError("disk full")
    store._write_history = broken
    with pytest.raises(OSError):
        acc.save()
    store._write_history = real
    assert store.load_totals() == {} and store.history_rows()["history_fine"] == 0  # rolled back
    acc.save()
    assert store.load_totals()[KEY] == Counts(3, 300)
    w = acc.history.window_counts(Window(clock.t0, clock.t0 + 60))
    assert w.counts[KEY] == Counts(3, 300)  # put back, saved once, not twice
    assert store.history_sums("history_fine", [(int(clock.t0), int(clock.t0) + 60)])[KEY] == Counts(3, 300)
    store.close()


def test_bad_history_settings_exit_2(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("history: {fine_step: 1m, coarse_step: 90s}\n")
    common = ["--launch", "never", "--grpc-addr", "127.0.0.1:1", "--state-dir", str(tmp_path / "state"),
              "--api", "127.0.0.1:0", "--firefly-listen", "off"]
    for extra, reason in ((["--config", str(conf)], "coarse_step (90 s) must be a multiple"),
                          (["--history-fine-keep", "soon"], "history.fine_keep 'soon'")):
        out = subprocess.run([sys.executable, "-m", "controller.cli", "start", *common, *extra],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 2 and reason in out.stderr, out.stderr
