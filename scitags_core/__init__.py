"""scitags core library: flow-label codec, registry, fireflies.

Modules: flowlabel (IPv6 flow-label codec), registry (validated registry + lookups),
registry_store (persisted active registry, refresh), paths (state directory rule),
firefly (record and reasons), firefly_parse, firefly_build, firefly_receiver (UDP),
syslog5424 (the RFC 5424 header), schemas (shipped schemas and registry copy).
"""
