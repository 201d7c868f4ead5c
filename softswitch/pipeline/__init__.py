"""Compile BMv2 JSON (v1model) into Python and hold the runtime state it works on.

program      JSON loading, checks, the flat per-packet slot layout (the PHV list F)
codegen      source buffers, the shared namespace, which graph nodes get functions
expressions  JSON expressions -> Python expressions (bm::Data semantics)
primitives   action primitives (core and simple_switch) -> Python statements
parser       parse states -> functions; parser errors; checksum verification
deparser     checksum update, emission of valid headers
checksum     hash algorithms and named calculations
control      pipelines (tables, conditionals) -> functions
tables       match-action tables: lookup structures and control-plane operations
externs      counter and register arrays
pre          packet replication engine: multicast groups, clone sessions
compiled     assembles all of the above for one program
errors       UnsupportedProgram, TableFull, ImmutableTable

softswitch.engine.Engine runs the compiled program with simple_switch's semantics.
"""
