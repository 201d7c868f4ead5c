"""`controller label|registry|firefly` subcommands through the real CLI entry point."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from controller.cli import main
from scitags_core.firefly_build import build_firefly
from scitags_core.schemas import DEFAULT_REGISTRY_PATH

from labnet.waiting import poll as wait_until


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _isolated_state(state_dir: Path) -> Path:
    return state_dir


# -- label ------------------------------------------------------------------------------

def test_label_encode_worked_example(capsys) -> None:
    code, out, _ = run(capsys, "label", "encode", "--experiment", "cms", "--activity",
                       "Analysis Input", "--no-entropy")
    assert (code, out) == (0, "0x30038\n")


def test_label_encode_by_id_and_entropy(capsys) -> None:
    assert run(capsys, "label", "encode", "-e", "3", "-a", "14", "--entropy", "0")[1] == "0x30038\n"
    code, out, _ = run(capsys, "label", "encode", "-e", "CMS", "-a", "analysis input", "--entropy",
                       "31", "--json")
    data = json.loads(out)
    assert code == 0 and data["label"] == 0x30038 | 0xC0103 and data["entropy"] == 31
    assert data["experiment_name"] == "cms" and data["activity_name"] == "Analysis Input"
    assert data["scitag"] == 206 and data["registered"]


def test_label_encode_random_entropy_keeps_tag(capsys) -> None:
    code, out, _ = run(capsys, "label", "encode", "-e", "cms", "-a", "14")
    assert code == 0 and int(out, 16) & 0x3FEFC == 0x30038


@pytest.mark.parametrize("argv, message", [
    (["-e", "nope", "-a", "1"], "unknown experiment 'nope'"),
    (["-e", "cms", "-a", "nope"], "unknown activity 'nope'"),
    (["-e", "512", "-a", "1"], "experiment id 512 out of range 0..511"),
    (["-e", "3", "-a", "64"], "activity id 64 out of range 0..63"),
])
def test_label_encode_errors_exit_2(capsys, argv: list[str], message: str) -> None:
    code, _, err = run(capsys, "label", "encode", *argv)
    assert code == 2 and message in err


def test_label_encode_bad_entropy_is_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["label", "encode", "-e", "cms", "-a", "1", "--entropy", "32"])
    assert info.value.code == 2
    assert "out of range 0..31" in capsys.readouterr().err


def test_label_decode_worked_example(capsys) -> None:
    code, out, _ = run(capsys, "label", "decode", "0x30038")
    assert code == 0
    assert "experiment  3 (cms)" in out and "activity    14 (Analysis Input)" in out
    assert "scitag      206" in out and "registered" in out
    data = json.loads(run(capsys, "label", "decode", "196664", "--json")[1])
    assert (data["experiment_id"], data["activity_id"], data["entropy"]) == (3, 14, 0)
    assert data["experiment_name"] == "cms" and data["registered"] is True


def test_label_decode_unknown_ids_are_unregistered_not_errors(capsys) -> None:
    code, out, _ = run(capsys, "label", "decode", "0xfffff")
    assert code == 0
    assert "experiment  511 (unregistered)" in out and "activity    63 (unregistered)" in out
    assert "tag         unregistered" in out
    data = json.loads(run(capsys, "label", "decode", "0x30038", "--json")[1].replace("\n", ""))
    assert data["registered"]
    unknown_activity = json.loads(run(capsys, "label", "decode", str(0x30000 | 60 << 2), "--json")[1])
    assert unknown_activity["experiment_name"] == "cms" and unknown_activity["activity_name"] is None


def test_label_decode_scitag_value(capsys) -> None:
    code, out, _ = run(capsys, "label", "decode", "--scitag", "206")
    assert code == 0 and "label       0x30038 (without entropy)" in out and "3 (cms)" in out


@pytest.mark.parametrize("value", ["0x100000", "-1", "cms", "0x"])
def test_label_decode_bad_values_exit_2(capsys, value: str) -> None:
    assert run(capsys, "label", "decode", "--", value)[0] == 2


# -- registry ---------------------------------------------------------------------------

def test_registry_show(capsys) -> None:
    code, out, _ = run(capsys, "registry", "show")
    assert code == 0 and "2025-09-04T12:01:55.844133+00:00" in out
    assert "Analysis Input" in out and "Data Challenge" in out
    data = json.loads(run(capsys, "registry", "show", "--json")[1])
    assert data["modified"].startswith("2025-09-04") and len(data["experiments"]) == 14
    cms = next(e for e in data["experiments"] if e["name"] == "cms")
    assert cms["id"] == 3 and {"id": 14, "name": "Analysis Input", "markable": True} in cms["activities"]


def test_registry_show_bad_file_exit_2(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, _, err = run(capsys, "registry", "show", "--registry", str(bad))
    assert code == 2 and "bad JSON" in err


def test_registry_refresh_from_url_persists(capsys, http_dir, state_dir: Path) -> None:
    base, root = http_dir
    doc = json.loads(DEFAULT_REGISTRY_PATH.read_text())
    doc["modified"] = "2026-03-03T00:00:00+00:00"
    doc["experiments"][2]["expName"] = "CMS-renamed"
    (root / "api.json").write_text(json.dumps(doc))
    code, out, _ = run(capsys, "registry", "refresh", "--url", f"{base}/api.json")
    assert code == 0 and "2026-03-03" in out
    assert (state_dir / "registry" / "active.json").exists()
    # A later command (a "restart") uses the refreshed registry.
    code, out, _ = run(capsys, "label", "decode", "0x30038")
    assert "3 (CMS-renamed)" in out


def test_registry_refresh_failures_keep_registry(capsys, http_dir, tmp_path: Path) -> None:
    base, root = http_dir
    (root / "bad.json").write_text('{"version": 1, "experiments": "x"}')
    code, _, err = run(capsys, "registry", "refresh", "--url", f"{base}/bad.json")
    assert code == 2 and "refresh failed" in err and "keeping registry 2025-09-04" in err
    code, _, err = run(capsys, "registry", "refresh", "--url", f"{base}/absent.json")
    assert code == 1 and "HTTP 404" in err
    code, _, err = run(capsys, "registry", "refresh", "--file", str(tmp_path / "absent.json"))
    assert code == 1 and "cannot read" in err
    code, out, _ = run(capsys, "registry", "refresh", "--file", str(root / "bad.json"), "--json")
    data = json.loads(out)
    assert code == 2 and data["ok"] is False and data["active"]["identity"].startswith("2025-09-04")


# -- firefly ----------------------------------------------------------------------------

def _fireflies(path: Path) -> Path:
    good = build_firefly(state="start", src_ip="2001:db8::1", dst_ip="2001:db8::2", src_port=40000,
                         dst_port=1094, experiment_id=3, activity_id=14)
    nil_ts = re.sub(rb"^<134>1 \S+ ", b"<134>1 - ", good)  # XRootD style
    path.write_bytes(good + b"\r\n\n" + nil_ts + b"\n")
    return path


def test_firefly_parse_file_ok(capsys, tmp_path: Path) -> None:
    path = _fireflies(tmp_path / "ff.log")
    code, out, _ = run(capsys, "firefly", "parse", str(path))
    assert code == 0, out
    assert "1: ok start tcp [2001:db8::1]:40000 -> [2001:db8::2]:1094 experiment 3 (cms) " \
           "activity 14 (Analysis Input)" in out
    assert "3: ok" in out and "deviations: syslog-timestamp-nil" in out
    assert out.rstrip().endswith("2 fireflies: 2 accepted, 0 rejected")
    data = json.loads(run(capsys, "firefly", "parse", str(path), "--json")[1])
    assert data["accepted"] == 2 and data["results"][0]["record"]["tag"]["experiment_name"] == "cms"


def test_firefly_parse_rejections_exit_2(capsys, tmp_path: Path) -> None:
    path = _fireflies(tmp_path / "ff.log")
    path.write_bytes(path.read_bytes() + b"not a firefly\n" +
                     path.read_bytes().split(b"\r")[0].replace(b'"dst-port":1094', b'"dst-port":0') + b"\n")
    code, out, _ = run(capsys, "firefly", "parse", str(path))
    assert code == 2
    assert "4: rejected no-syslog-header" in out and "5: rejected bad-port: dst-port 0" in out
    data = json.loads(run(capsys, "firefly", "parse", str(path), "--json")[1])
    assert data["rejected"] == 2
    assert {"line": 5, "accepted": False, "reason": "bad-port",
            "detail": "dst-port 0 out of range 1..65535"} in data["results"]


def test_firefly_parse_stdin_datagram_and_strict(tmp_path: Path) -> None:
    path = _fireflies(tmp_path / "ff.log")
    cmd = [sys.executable, "-m", "controller.cli", "firefly", "parse", "-"]
    first = path.read_bytes().split(b"\r")[0]
    done = subprocess.run(cmd + ["--datagram"], input=first, capture_output=True, timeout=60)
    assert done.returncode == 0 and b"1 fireflies: 1 accepted" in done.stdout
    ongoing = re.sub(rb'"state":"start","start-time":"[^"]*",', b'"state":"ongoing",', first)
    assert subprocess.run(cmd, input=ongoing, capture_output=True, timeout=60).returncode == 0
    strict = subprocess.run(cmd + ["--strict"], input=ongoing, capture_output=True, timeout=60)
    assert strict.returncode == 2 and b"no 'start-time' (ongoing)" in strict.stdout


def test_firefly_parse_unreadable_or_empty_exit_2(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "firefly", "parse", str(tmp_path / "absent"))
    assert code == 2 and "cannot read" in err
    (tmp_path / "empty").write_text("\n\n")
    code, _, err = run(capsys, "firefly", "parse", str(tmp_path / "empty"))
    assert code == 2 and "no fireflies" in err


def test_firefly_listen_prints_received(capsys) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", main(
        ["firefly", "listen", "--host", "127.0.0.1", "--port", str(port), "--count", "1",
         "--timeout", "30"])))
    thread.start()
    data = build_firefly(state="start", src_ip="192.0.2.1", dst_ip="192.0.2.2", src_port=5,
                         dst_port=6, experiment_id=2, activity_id=2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # Resend until the listener (started in the thread) has bound and counted one.
        wait_until(lambda: (s.sendto(data, ("127.0.0.1", port)), not thread.is_alive())[1], 30)
    thread.join(30)
    out, err = capsys.readouterr()
    assert result["code"] == 0
    assert "192.0.2.1:5 -> 192.0.2.2:6 experiment 2 (atlas) activity 2 (perfSONAR)" in out
    assert "accepted" in err


@pytest.mark.parametrize("argv", [["label", "--help"], ["label", "encode", "--help"],
                                  ["label", "decode", "--help"], ["registry", "--help"],
                                  ["registry", "show", "--help"], ["registry", "refresh", "--help"],
                                  ["firefly", "--help"], ["firefly", "parse", "--help"],
                                  ["firefly", "listen", "--help"]])
def test_help_everywhere(capsys, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0 and "usage:" in capsys.readouterr().out


def test_firefly_parse_shows_deviations_of_real_senders(capsys, tmp_path: Path) -> None:
    import datetime as dt
    from tests.core.real_senders import flowd_go, xrootd_pair
    t0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
    lines = [flowd_go("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, start=t0),
             flowd_go("end", "192.0.2.1", 40000, "192.0.2.2", 1094, 3, 14, end=t0),
             *xrootd_pair("start", "192.0.2.1", 40000, "192.0.2.2", 1094, 2, 3, start=t0, now=t0)]
    path = tmp_path / "real.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, out, _ = run(capsys, "firefly", "parse", str(path))
    assert code == 0, out
    assert "1: ok start tcp 192.0.2.1:40000 -> 192.0.2.2:1094 experiment 3 (cms) activity 14 " \
           "(Analysis Input) deviations: no-syslog-header\n" in out
    assert "2: ok end " in out and "deviations: no-syslog-header,end-without-start-time\n" in out
    assert "deviations: syslog-timestamp-nil,context-before-flow-id\n" in out
    assert ("application flowd-go-v2.4.2: 2 accepted, deviations: end-without-start-time 1, "
            "no-syslog-header 2\n") in out
    assert out.rstrip().endswith("4 fireflies: 4 accepted, 0 rejected")
    data = json.loads(run(capsys, "firefly", "parse", str(path), "--json")[1])
    assert [r["deviations"] for r in data["results"]] == [
        ["no-syslog-header"], ["no-syslog-header", "end-without-start-time"],
        ["syslog-timestamp-nil", "context-before-flow-id"],
        ["syslog-timestamp-nil", "context-before-flow-id"]]
    assert data["deviations"] == {"context-before-flow-id": 2, "end-without-start-time": 1,
                                  "no-syslog-header": 2, "syslog-timestamp-nil": 2}
    assert data["applications"]["xrootd 5.8.1"]["accepted"] == 2
    assert data["results"][1]["record"]["start_time"] is None
    strict = run(capsys, "firefly", "parse", str(path), "--strict", "--json")
    assert strict[0] == 2
    assert [r.get("reason") for r in json.loads(strict[1])["results"]] == [
        "no-syslog-header", "no-syslog-header", None, None]
