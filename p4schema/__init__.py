"""The P4Info schema and P4Runtime canonical bytestrings, shared by the controller and the
softswitch's P4Runtime server.

Lookups and value checks raise the neutral errors of p4schema.errors; each side maps them
(the controller to P4InfoError, the server to P4Runtime status codes).
"""
from .bytestrings import canonical, canonical_bytes, decode, encode, nbytes, value_of
from .entities import (EXACT, LPM, MATCH_KIND, OPTIONAL, RANGE, SCOPE_DEFAULT_ONLY,
                       SCOPE_TABLE_AND_DEFAULT, SCOPE_TABLE_ONLY, TERNARY, UNIT_BOTH, UNIT_BYTES,
                       UNIT_PACKETS, UNIT_UNSPECIFIED, Action, CloneSession, ControllerHeader,
                       Counter, CounterEntry, Lpm, MatchField, MulticastGroup, Param, Plan, Register,
                       Table, TableEntry, Ternary, diff)
from .errors import InvalidP4Info, SchemaError, UnknownName, ValueTooWide
from .schema import P4Schema, load_p4info
from .codec import EntityCodec  # noqa: E402 - needs the schema

__all__ = [
    "Action", "CloneSession", "ControllerHeader", "Counter", "CounterEntry", "EXACT",
    "EntityCodec", "Lpm", "MulticastGroup", "Plan", "TableEntry", "Ternary", "diff", "InvalidP4Info", "LPM", "MATCH_KIND",
    "MatchField", "OPTIONAL", "P4Schema", "Param", "RANGE", "Register", "SCOPE_DEFAULT_ONLY",
    "SCOPE_TABLE_AND_DEFAULT", "SCOPE_TABLE_ONLY", "SchemaError", "TERNARY", "Table",
    "UNIT_BOTH", "UNIT_BYTES", "UNIT_PACKETS", "UNIT_UNSPECIFIED", "UnknownName",
    "ValueTooWide", "canonical", "canonical_bytes", "decode", "encode", "load_p4info",
    "nbytes", "value_of",
]
