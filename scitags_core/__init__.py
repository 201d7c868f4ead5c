"""scitags core library: flow-label codec, registry, fireflies.

Modules: flowlabel (IPv6 flow-label codec), registry (validated registry + lookups),
registry_store (persisted active registry, refresh), paths (state directory rule),
firefly (record, reasons and deviations), firefly_parse, firefly_build (and repair),
firefly_receiver (UDP), firefly_dedup (apply a message once), firefly_stats (per
deviation and sender application), syslog5424 (the RFC 5424 header), schemas (shipped
schemas and registry copy).
"""
