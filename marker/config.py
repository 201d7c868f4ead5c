"""`marker run` configuration: a YAML file, then command-line flags on top.

```yaml
registry: /path/to/api.json        # default: the active registry (scitags_core store)
table: scitags_marker              # nftables table (family ip6) the marker owns
control_socket: /var/run/scitags-marker.sock
np_api: /var/run/scitags-marker.np_api    # null: no named pipe
collectors: ["[2001:db8::f]:10514"]       # extra firefly receivers
fireflies_to_destination: true            # firefly to the flow's dst port 10514
ongoing_interval: 30                      # seconds between ongoing fireflies, 0: none
allow_unregistered: false                 # accept in-range ids the registry does not know
poller: {experiment: cms, activity: Cache, ports: [5201], interval: 2}   # optional
```
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from marker.control import DEFAULT_SOCKET
from marker.fireflies import Collector
from marker.flows import MarkerInputError
from marker.nftables import DEFAULT_TABLE
from marker.npapi import DEFAULT_PIPE


@dataclass
class PollerConfig:
    experiment: str | int
    activity: str | int
    ports: list[int] = field(default_factory=list)
    interval: float = 2.0


@dataclass
class MarkerConfig:
    registry: str | None = None
    table: str = DEFAULT_TABLE
    control_socket: str = DEFAULT_SOCKET
    np_api: str | None = DEFAULT_PIPE
    collectors: list[Collector] = field(default_factory=list)
    fireflies_to_destination: bool = True
    ongoing_interval: float = 30.0
    allow_unregistered: bool = False
    poller: PollerConfig | None = None


def _fail(where: str, msg: str) -> MarkerInputError:
    return MarkerInputError(f"{where}: {msg}")


def parse_ports(value: Any, where: str) -> list[int]:
    if isinstance(value, str):
        value = [p for p in value.replace(",", " ").split() if p]
    if not isinstance(value, list):
        raise _fail(where, "ports must be a list of numbers")
    ports = []
    for item in value:
        try:
            port = int(item)
        except (TypeError, ValueError):
            raise _fail(where, f"port {item!r} is not a number") from None
        if not 1 <= port <= 65535:
            raise _fail(where, f"port {port} outside 1..65535")
        ports.append(port)
    return ports


def from_mapping(doc: Any, where: str) -> MarkerConfig:
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise _fail(where, "the configuration must be a mapping")
    known = {f.name for f in fields(MarkerConfig)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise _fail(where, f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    cfg = MarkerConfig()
    for name in ("registry", "table", "control_socket", "np_api"):
        if name in doc:
            value = doc[name]
            if value is not None and not isinstance(value, str):
                raise _fail(where, f"{name} must be a string")
            setattr(cfg, name, value)
    for name in ("fireflies_to_destination", "allow_unregistered"):
        if name in doc:
            if not isinstance(doc[name], bool):
                raise _fail(where, f"{name} must be true or false")
            setattr(cfg, name, doc[name])
    if "ongoing_interval" in doc:
        value = doc["ongoing_interval"]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise _fail(where, "ongoing_interval must be a number of seconds >= 0")
        cfg.ongoing_interval = float(value)
    if "collectors" in doc:
        if not isinstance(doc["collectors"], list):
            raise _fail(where, "collectors must be a list of host[:port]")
        try:
            cfg.collectors = [Collector.parse(str(c)) for c in doc["collectors"]]
        except ValueError as exc:
            raise _fail(where, str(exc)) from None
    if doc.get("poller") is not None:
        cfg.poller = poller_from_mapping(doc["poller"], f"{where}: poller")
    return cfg


def poller_from_mapping(doc: Any, where: str) -> PollerConfig:
    if not isinstance(doc, dict):
        raise _fail(where, "must be a mapping with experiment, activity, ports, interval")
    unknown = sorted(set(doc) - {"experiment", "activity", "ports", "interval"})
    if unknown:
        raise _fail(where, f"unknown setting(s) {', '.join(unknown)}")
    for name in ("experiment", "activity"):
        if name not in doc or not isinstance(doc[name], (str, int)) or isinstance(doc[name], bool):
            raise _fail(where, f"{name} (a name or an id) is required")
    interval = doc.get("interval", 2.0)
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
        raise _fail(where, "interval must be a number of seconds > 0")
    return PollerConfig(doc["experiment"], doc["activity"], parse_ports(doc.get("ports", []), where),
                        float(interval))


def load(path: str | Path) -> MarkerConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MarkerInputError(f"cannot read configuration {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MarkerInputError(f"{path}: bad YAML: {exc}") from None
    return from_mapping(doc, str(path))
