"""Errors of the schema, neutral about who reports them.

The controller turns them into P4InfoError; the P4Runtime server into status codes
(softswitch/p4rt/status.py: from_schema_error). Every message names the cause.
"""
from __future__ import annotations


class SchemaError(Exception):
    """Base of every p4schema error."""


class InvalidP4Info(SchemaError):
    """The P4Info itself is inconsistent: a zero or duplicate id, an unknown action
    reference, an unsupported match type."""


class UnknownName(SchemaError, LookupError):
    """A name or id the P4Info does not have (or an ambiguous short name)."""

    def __str__(self) -> str:   # LookupError would repr() a single argument
        return str(self.args[0]) if self.args else ""


class ValueTooWide(SchemaError):
    """A value or bytestring that does not fit its bitwidth."""
