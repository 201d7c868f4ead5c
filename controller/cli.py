"""`controller` console script: one subcommand group per module.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its
subcommands and sets `func(args) -> int` on them. Exit codes: 0 success,
2 bad usage or bad input, 1 runtime failure.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from controller.errors import ExitCode, UsageError

COMMAND_MODULES = [
    "controller.cmd_label",
    "controller.cmd_registry",
    "controller.cmd_firefly",
    "controller.cmd_start",
    "controller.cmd_query",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="controller",
        description="scitags-p4 controller: program switches from the scitags registry "
        "and fireflies, and report per-experiment counters.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module
                raise
            continue  # subcommand group not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on bad usage
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.FAILURE
    except BrokenPipeError:
        return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
