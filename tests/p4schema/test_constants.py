"""p4schema.constants agrees with p4src/shared/defines.p4: every constant defined in both
(same name) has the same value; every bucket cell of the program has a name in Python."""
from __future__ import annotations

import re

from p4schema import constants
from tests.conftest import ROOT

DEFINES = ROOT / "p4src" / "shared" / "defines.p4"
_CONST = re.compile(r"^\s*const\s+(?:bit<\d+>|int|\w+_t)\s+(\w+)\s*=\s*(0x[0-9A-Fa-f]+|\d+)\s*;", re.M)
_DEFINE = re.compile(r"^\s*#define\s+(\w+)\s+(0x[0-9A-Fa-f]+|\d+)\s*$", re.M)
_TYPEDEF = re.compile(r"^\s*typedef\s+bit<(\d+)>\s+(\w+)_t\s*;", re.M)
# typedef names whose width Python keeps as <NAME>_BITS
_WIDTHS = {"experiment": "EXPERIMENT_BITS", "activity": "ACTIVITY_BITS", "port_id": "PORT_BITS",
           "tag_id": "TAG_ID_BITS", "flow_label": "FLOW_LABEL_BITS"}


def p4_constants(text: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for rx in (_DEFINE, _CONST):
        for name, value in rx.findall(text):
            found[name] = int(value, 0)
    for width, name in _TYPEDEF.findall(text):
        if name in _WIDTHS:
            found[_WIDTHS[name]] = int(width)
    return found


def test_parser_reads_the_forms_defines_p4_uses():
    text = ("#define CPU_PORT 255\nconst bit<32> A_B = 0x10;\nconst int C = 7;\n"
            "typedef bit<9>  experiment_t;\n// const bit<8> COMMENTED = 1;\n")
    assert p4_constants(text) == {"CPU_PORT": 255, "A_B": 16, "C": 7, "EXPERIMENT_BITS": 9}


def test_every_shared_constant_agrees():
    p4 = p4_constants(DEFINES.read_text())
    py = {k: v for k, v in vars(constants).items() if k.isupper() and isinstance(v, int)}
    shared = sorted(set(p4) & set(py))
    # the ones the controller depends on must be among them (the test cannot pass vacuously)
    assert {"CPU_PORT", "CPU_CLONE_SESSION_ID", "PUNT_REASON_FIREFLY", "BUCKET_UNMARKED",
            "BUCKET_PARSER_ERROR", "BUCKET_COUNT"} <= set(shared)
    differ = {k: (p4[k], py[k]) for k in shared if p4[k] != py[k]}
    assert not differ, f"defines.p4 vs p4schema/constants.py (p4, python): {differ}"


def test_every_bucket_cell_has_a_name():
    p4 = p4_constants(DEFINES.read_text())
    cells = {k: v for k, v in p4.items() if k.startswith("BUCKET_") and k != "BUCKET_COUNT"}
    missing = sorted(set(cells) - set(vars(constants)))
    assert not missing, (f"bucket cells of defines.p4 unknown to p4schema/constants.py: {missing} "
                         "(add them there under the same name)")
    assert len(constants.BUCKETS) == len(cells) <= constants.BUCKET_COUNT
    for name, cell in cells.items():
        assert constants.BUCKETS[cell] == name.removeprefix("BUCKET_").lower()


def test_bucket_names_keep_their_order():
    # metrics labels and the SQLite totals use these names: the first six never change
    assert constants.BUCKETS[:6] == ("unmarked", "unregistered", "consistent", "mismatch",
                                     "firefly_only", "parser_error")
    assert len(set(constants.BUCKETS)) == len(constants.BUCKETS)
    assert (constants.EXPERIMENT_MAX, constants.ACTIVITY_MAX) == (511, 63)


def test_firefly_action_widths_match_the_p4info():
    from p4schema import P4Schema
    from tests.conftest import P4_BUILD
    schema = P4Schema.from_file(P4_BUILD / "scitags.p4info.txtpb")
    for afi in (4, 6):
        action = schema.action(f"firefly_flow_v{afi}")
        assert action.param("experiment").bitwidth == constants.FIREFLY_EXPERIMENT_BITS
        assert action.param("activity").bitwidth == constants.FIREFLY_ACTIVITY_BITS
    assert constants.DROP_PORT == 511
