"""Exit codes and the exceptions that map onto them."""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1  # runtime failure: unreachable switch, I/O error
    USAGE = 2  # bad usage or bad input


class UsageError(Exception):
    """Bad command-line usage or bad input; the message names the cause (exit 2)."""
