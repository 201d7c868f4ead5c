"""Tests of the P4Info index and the entity layer."""
from pathlib import Path

# The schema and codec are tested on a P4Info with every kind of key and a 32-bit parameter:
# the v1model program's before its policy table matched the raw flow label (exact experiment,
# ternary activity, 32-bit mirror session), kept here so these tests do not follow the program.
EXACT_ACTIVITY_P4INFO = Path(__file__).parent / "data" / "scitags-exact-activity.p4info.txtpb"
