"""Features that plug into `controller start` (firefly relay, IPFIX export, ...): each is an
Extension with its own YAML section and command-line options, attached to the controller's
Hooks once it is built. Listed in EXTENSIONS as "module:Class"; a module that is not there
(not written yet) is skipped.

Order at start: add_arguments (parser built) -> configure (YAML section `name:` overlaid by
the CLI values of options()) -> attach (controller built, before the HTTP API, so its
metrics collectors are served) -> start (after the controller started) ... stop (before the
controller stops).
"""
from __future__ import annotations

import argparse
import importlib
import logging
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from controller.app import Controller

log = logging.getLogger(__name__)

# "module:Class" of each feature; add yours here (one line).
EXTENSIONS: tuple[str, ...] = (
    "controller.relay:RelayExtension",
    "controller.ipfix.feature:IpfixExtension",
    "controller.history:HistoryExtension",
    "controller.placement:PlacementExtension",
)


class Extension:
    """Base class: override what the feature needs."""

    name = ""  # YAML section and the prefix of its options (--NAME-...)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add `controller start` options (their dest should start with NAME_)."""

    def options(self, args: argparse.Namespace) -> dict[str, Any]:
        """This feature's settings given on the command line (omit those not given)."""
        return {}

    def configure(self, section: dict[str, Any]) -> None:
        """Check and keep the settings (YAML section overlaid by options()); raise
        ValueError naming the key on bad input (the CLI exits 2)."""

    def attach(self, controller: "Controller") -> None:
        """Register listeners (controller.hooks.on_flow/on_poll/on_firefly) and status or
        metrics contributions (controller.hooks.add_status/add_collector)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def load(specs: Iterable[str] = EXTENSIONS) -> list[Extension]:
    """One instance of each listed extension whose module exists."""
    found = []
    for spec in specs:
        module, _, cls = spec.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise  # the module exists but one of its imports is missing: say so
            log.debug("extension %s: module not present", spec)
            continue
        found.append(getattr(mod, cls)())
    return found
