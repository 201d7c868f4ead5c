"""IPFIX export of firefly flows and scitags aggregates (RFC 7011 over UDP); see README.md."""
