"""`controller registry show|refresh`: the active scitags registry.

Also the `--registry FILE` option and its loader used by the other subcommands.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.errors import ExitCode, UsageError
from controller.output import print_json, print_table
from scitags_core.registry import DEFAULT_REGISTRY_URL, Registry, RegistryError
from scitags_core.registry_store import RegistryStore


def add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", metavar="FILE",
                        help="registry file to use (default: the active registry in the state "
                             "directory, else the copy shipped with scitags-p4)")


def load_registry(args: argparse.Namespace) -> Registry:
    """The registry named by --registry, else the active one; bad file -> UsageError."""
    if getattr(args, "registry", None):
        try:
            return Registry.from_file(args.registry)
        except RegistryError as exc:
            raise UsageError(f"--registry: {exc}") from None
    return RegistryStore().current  # logs a warning if the persisted one is unusable


def registry_summary(registry: Registry) -> dict[str, Any]:
    return {
        "identity": registry.identity, "source": registry.source, "version": registry.version,
        "modified": registry.modified_text, "sha256": registry.digest,
        "warnings": list(registry.warnings),
        "experiments": [
            {"id": e.id, "name": e.name, "markable": e.markable,
             "activities": [{"id": a.id, "name": a.name, "markable": a.markable}
                            for a in e.activities]}
            for e in registry.experiments],
    }


def _show(args: argparse.Namespace) -> int:
    registry = load_registry(args)
    if args.json:
        print_json(registry_summary(registry))
        return ExitCode.OK
    print(f"registry  {registry.identity}")
    print(f"source    {registry.source}")
    print(f"sha256    {registry.digest}")
    for warning in registry.warnings:
        print(f"warning   {warning}")
    print()
    rows = []
    for exp in registry.experiments:
        for act in exp.activities:
            markable = "yes" if exp.markable and act.markable else "no"
            rows.append((exp.id, exp.name, act.id, act.name, markable))
    print_table(["EXP", "EXPERIMENT", "ACT", "ACTIVITY", "MARKABLE"], rows)
    return ExitCode.OK


def _refresh(args: argparse.Namespace) -> int:
    store = RegistryStore()
    result = store.refresh(url=args.url, file=args.file, timeout=args.timeout)
    if args.json:
        print_json({"ok": result.ok, "error": result.error, "message": result.message,
                    "state_file": str(store.active_path),
                    "active": {"identity": result.registry.identity,
                               "source": result.registry.source,
                               "sha256": result.registry.digest}})
    else:
        print(result.message, file=sys.stdout if result.ok else sys.stderr)
    if result.ok:
        return ExitCode.OK
    # Unreachable source: runtime failure; a source that answered with a bad registry: bad input.
    return ExitCode.FAILURE if result.fetch_failed else ExitCode.USAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "registry", help="show or refresh the scitags registry",
        description="The scitags registry maps experiment and activity names to ids. The active "
                    "registry is kept in the state directory so a restart uses the same one.")
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    show = sub.add_parser("show", help="print the active registry",
                          description="Print the active registry (experiments and activities).")
    add_registry_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)

    refresh = sub.add_parser(
        "refresh", help="fetch a new registry and make it active",
        description="Fetch the registry from a URL (default %s) or a file, validate it and make "
                    "it the active one. On any failure the previous registry stays active." %
                    DEFAULT_REGISTRY_URL)
    source = refresh.add_mutually_exclusive_group()
    source.add_argument("--url", help=f"registry URL (default {DEFAULT_REGISTRY_URL})")
    source.add_argument("--file", help="registry file instead of a URL")
    refresh.add_argument("--timeout", type=float, default=10.0, help="network timeout, s (10)")
    refresh.add_argument("--json", action="store_true", help="print JSON")
    refresh.set_defaults(func=_refresh)
