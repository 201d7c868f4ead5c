"""P4Runtime server internals for the built-in v1model target (softswitch).

The public entry point is softswitch.p4runtime_server.P4RuntimeServer; the modules here
split its work: status codes, table-entry translation, externs, packet replication,
arbitration, packet I/O, idle-timeout ageing and the per-device state. The P4Info index and
the bytestring checks are the shared p4schema package.
Behaviour follows p4lang/PI's DeviceMgr (what BMv2's simple_switch_grpc runs), so the same
requests get the same answers and status codes.
"""
