"""np_api lines: the reference's syntax and rejections, our own checks, the real pipe."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from marker.flows import MarkerInputError
from marker.npapi import NamedPipeSource, NpApiSyntaxError, format_line, parse_line, to_request

HERE = Path(__file__).resolve().parent

GOOD = "start tcp 2001:db8::1 2345 2001:db8::2 5777 3 14"

# Lines the reference np_api plugin rejects (it logs and skips them).
REFERENCE_REJECTS = [
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 cms 14",     # experiment name
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 3 Cache",    # activity name
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 3",          # 7 fields
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 3 14 extra",  # 9 fields
    "start  tcp 2001:db8::1 2345 2001:db8::2 5777 3 14",      # double space: an empty field
    "start tcp 2001:db8::zz 2345 2001:db8::2 5777 3 14",      # bad address
    "start tcp 2001:db8::1 2345 host.example 5777 3 14",      # a host name is not an address
    "start tcp 2001:db8::1 http 2001:db8::2 5777 3 14",       # port name
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 0x3 14",     # hex id
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 3.0 14",     # float id
]
# Lines the reference accepts (syntax), including ones our own checks refuse later.
REFERENCE_ACCEPTS = [
    GOOD,
    "end tcp 2001:db8::1 2345 2001:db8::2 5777 3 14",
    "start udp 10.0.1.1 5000 10.0.1.2 6000 4 3",
    "  start tcp 2001:db8::1 2345 2001:db8::2 5777 3 14  ",   # outer whitespace stripped
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 +3 14",      # int() accepts a sign
    "restart tcp 2001:db8::1 2345 2001:db8::2 5777 3 14",     # reference: substring 'start'
    "start icmp 2001:db8::1 2345 2001:db8::2 5777 3 14",      # protocol not checked
    "start tcp 2001:db8::1 0 2001:db8::2 5777 3 14",          # port 0 not checked
    "start tcp 2001:db8::1 2345 2001:db8::2 5777 999 14",     # id range not checked
]


@pytest.mark.parametrize("line", REFERENCE_REJECTS)
def test_syntax_rejections_match_the_reference(line):
    with pytest.raises(NpApiSyntaxError, match="np_api"):
        parse_line(line)


def test_names_are_refused_with_a_hint():
    with pytest.raises(NpApiSyntaxError, match="numeric ids, not names"):
        parse_line(REFERENCE_REJECTS[0])


@pytest.mark.parametrize("line", REFERENCE_ACCEPTS)
def test_reference_syntax_accepted(line):
    parsed = parse_line(line)
    assert isinstance(parsed.experiment, int) and isinstance(parsed.src_port, int)


def test_parsed_line_becomes_a_request(registry):
    req = to_request(parse_line(GOOD), registry)
    assert req.state == "start" and req.source == "np_api"
    assert (req.tag.experiment_name, req.tag.activity_name) == ("cms", "Analysis Input")
    assert format_line(req).strip() == GOOD


@pytest.mark.parametrize("line, words", [
    ("restart tcp 2001:db8::1 2345 2001:db8::2 5777 3 14", "invalid flow state 'restart'"),
    ("start icmp 2001:db8::1 2345 2001:db8::2 5777 3 14", "invalid protocol 'icmp'"),
    ("start tcp 2001:db8::1 0 2001:db8::2 5777 3 14", "invalid source port 0"),
    ("start tcp 2001:db8::1 2345 2001:db8::2 5777 999 14", "experiment id 999 outside"),
    ("start tcp 2001:db8::1 2345 10.0.0.1 5777 3 14", "different address families"),
])
def test_marker_checks_after_the_reference_syntax(registry, line, words):
    with pytest.raises(MarkerInputError, match=words):
        to_request(parse_line(line), registry)


def test_differential_against_the_reference_plugin(tmp_path):
    """Feed every line to the installed reference np_api plugin: same accept/reject split."""
    pytest.importorskip("scitags", reason="reference scitags package (flowd) not installed")
    lines = REFERENCE_REJECTS + REFERENCE_ACCEPTS
    proc = subprocess.run([sys.executable, str(HERE / "reference_np_api.py"), str(tmp_path)],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    accepted = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(accepted) == len(REFERENCE_ACCEPTS)
    ours = []
    for line in lines:
        try:
            p = parse_line(line)
        except NpApiSyntaxError:
            continue
        ours.append([p.state, p.protocol, p.src, p.src_port, p.dst, p.dst_port, p.experiment, p.activity])
    assert ours == accepted


def test_named_pipe_source_reads_lines_across_writes(tmp_path):
    pipe = tmp_path / "np_api"
    got: list[str] = []
    done = threading.Event()

    def on_line(line: str) -> None:
        got.append(line)
        if len(got) == 3:
            done.set()

    source = NamedPipeSource(pipe, on_line)
    source.start()
    try:
        fd = os.open(pipe, os.O_WRONLY)
        os.write(fd, (GOOD + "\nend tcp 2001:db8::1 2345 ").encode())  # a line split over writes
        time.sleep(0.3)
        os.write(fd, b"2001:db8::2 5777 3 14\n\n\xff\xfe bad bytes\n")
        os.close(fd)
        assert done.wait(5), got
    finally:
        source.stop()
    assert got[0] == GOOD
    assert got[1] == "end tcp 2001:db8::1 2345 2001:db8::2 5777 3 14"
    assert "bad bytes" in got[2]
    assert not pipe.exists()  # removed on stop
