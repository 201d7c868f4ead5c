"""Constants of the P4 program (p4src/shared/defines.p4) that Python needs, in one place.

tests/p4schema/test_constants.py parses defines.p4 and compares every constant defined in
both (same name, same value): to share a new one, add it to defines.p4 and here under the
same name. The few values below marked "controller's choice" exist only on this side.
"""
from __future__ import annotations

# typedef widths (bits): experiment_t, activity_t, port_id_t, tag_id_t
EXPERIMENT_BITS = 9
ACTIVITY_BITS = 6
PORT_BITS = 9
TAG_ID_BITS = 16
FLOW_LABEL_BITS = 20
EXPERIMENT_MAX = (1 << EXPERIMENT_BITS) - 1  # 511: the widest experiment id a label carries
ACTIVITY_MAX = (1 << ACTIVITY_BITS) - 1  # 63
ACTIVITY_MASK = ACTIVITY_MAX  # ternary mask of an exact activity in scitag_policy
# firefly_flow_v4/v6(bit<16> experiment, bit<8> activity): ids a firefly entry can carry
# (checked against the P4Info's action parameters by tests/p4schema/test_constants.py)
FIREFLY_EXPERIMENT_BITS = 16
FIREFLY_ACTIVITY_BITS = 8
FIREFLY_EXPERIMENT_MAX = (1 << FIREFLY_EXPERIMENT_BITS) - 1
FIREFLY_ACTIVITY_MAX = (1 << FIREFLY_ACTIVITY_BITS) - 1

# Ports, sessions and packet-in
CPU_PORT = 255  # #define CPU_PORT (BMv2's --cpu-port must agree)
DROP_PORT = (1 << PORT_BITS) - 1  # 511: v1model's drop port, never a topology port
CPU_CLONE_SESSION_ID = 100  # fireflies copied to the CPU port
MONITOR_MIRROR_SESSION_ID = 200  # tagged traffic copied to the monitor port
FLOOD_GROUP_ID = 1  # multicast group of the flood ports (l2_forward's default action)
PUNT_REASON_FIREFLY = 1
PUNT_REASON_LEARN = 2  # a learn-mode switch's unknown source MAC
# port_mode's direction parameter, by the ingress port's label (wan: from the WAN, lan: to it)
DIRECTION_NONE = 0
DIRECTION_TO_WAN = 1
DIRECTION_FROM_WAN = 2
FIREFLY_UDP_PORT = 10514

# Cells of the buckets (traffic without a tag of its own; one numbering over bucket_counter
# and, where the program has it, firefly_bucket_counter), and their names as the controller
# reports them (metrics label `bucket`, `controller counters`): BUCKET_FIREFLY_ONLY is
# "firefly_only".
BUCKET_UNMARKED = 0
BUCKET_UNREGISTERED = 1
BUCKET_CONSISTENT = 2
BUCKET_MISMATCH = 3
BUCKET_FIREFLY_ONLY = 4
BUCKET_PARSER_ERROR = 5
BUCKET_UNTRUSTED_LABEL = 6
BUCKET_EXTHDR_UNREGISTERED = 7
BUCKET_EXTHDR_MISMATCH = 8
BUCKET_EXTHDR_UNPARSED = 9
BUCKET_COUNT = 16  # cells allocated (some spare)


def _bucket_names() -> tuple[str, ...]:
    cells = {v: k.removeprefix("BUCKET_").lower() for k, v in globals().items()
             if k.startswith("BUCKET_") and k != "BUCKET_COUNT" and isinstance(v, int)}
    return tuple(cells[i] for i in sorted(cells))


BUCKETS = _bucket_names()  # index = counter cell: ("unmarked", "unregistered", ...)

# Table and counter sizes
TAG_COUNTER_SIZE = 4096
FIREFLY_TABLE_SIZE = 65536
POLICY_TABLE_SIZE = 4096
L2_TABLE_SIZE = 4096

# Controller's choice: a specific (experiment, activity) beats the experiment wildcard
PRIORITY_ACTIVITY = 20
PRIORITY_WILDCARD = 10
