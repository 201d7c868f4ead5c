"""Exceptions raised by the built-in v1model target."""
from __future__ import annotations


class UnsupportedProgram(Exception):
    """The BMv2 JSON uses a construct this target does not implement.

    The message always names the construct (e.g. "extern 'Meter' ...") so the
    operator knows what to remove or to implement.
    """


class TableFull(Exception):
    """table_add on a table that already holds max_size entries."""


class ImmutableTable(ValueError):
    """The program made this table (or its default action) const."""
