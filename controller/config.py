"""Controller settings: YAML file (--config) overlaid by command-line options.

Example (every key optional):
```yaml
switch: soft                 # bmv2 | soft: which target to launch when a switch is not running;
                             # ovs: the one switch (no topology) is Open vSwitch, over OpenFlow
                             # tofino: the one switch is a Tofino running Stratum (docs/tofino.md)
tofino_chip: tofino          # switch tofino: tofino (p4src/build/tna) or tofino2 (p4src/build/t2na)
grpc_addr: 127.0.0.1:9559    # without a topology: the one switch to manage
openflow: tcp:127.0.0.1:6653 # switch: ovs: tcp:HOST:PORT (OVS listens: set-controller BR ptcp:PORT)
                             # or ptcp:PORT[:HOST] (we listen; OVS: set-controller BR tcp:HOST:PORT)
device_id: 1
cpu_port: 255
topology: topologies/line.yaml
registry: /path/api.json     # or https://www.scitags.org/api.json; default: the persisted active one
registry_refresh_s: 0        # refresh from `registry` every N s (0 = only at start / on request)
launch: auto                 # auto (start a switch that is not listening) | never | always
p4info: p4src/build/v1model/scitags.p4info.txtpb
device_config: p4src/build/v1model/scitags.json
device_config_format: bmv2   # how the device config is made (runtime.DEVICE_CONFIG_FORMATS); a
                             # topology switch may set its own `device_config_format:`
state_dir: /var/lib/scitags-p4     # SQLite database and switch logs
api: 127.0.0.1:9180           # HTTP API and dashboard; a non-loopback address needs api_token_file
api_token_file: /etc/scitags-p4/api.token   # bearer token clients must send (controller/api_auth.py)
api_tls_cert: api.pem        # with api_tls_key: serve the API over HTTPS
api_tls_key: api.key
poll_interval_s: 2
reconcile_interval_s: 10     # read back what the controller owns and repair drift (0 = only on reconnect)
election_id: null            # default: earlier-started controllers win (primary/backup)
tls: {cacert: ca.pem, cert: client.pem, key: client.key}
mirror: ["cms", "atlas/perfSONAR"]   # tags whose traffic is copied to the monitor port
trust_labels_from: ["2001:db8:1::/48"]  # flow labels are tags only from these IPv6 sources
                             # (controller/label_trust.py; a topology switch may set its own)
experiment_wildcard: on      # also count an experiment's unregistered activities (~8x the
                             # random-label background of the exact pairs; README "Background")
firefly:
  listen: "[::]:10514"       # UDP receiver (dual-stack); null = only fireflies seen in band (packet-ins)
  accept_sources: ["10.0.0.0/8", "2001:db8::/32"]   # empty = any sender
  require_endpoint: true
  rate_per_source: 50
  burst: 100
  max_flows: 60000
  when_full: refuse-new      # or evict-oldest
  idle_timeout_s: 120
relay: {...}                 # a section per extension (controller/extensions.py), by its name
```
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import yaml

from controller.api_auth import check_settings as check_api_settings
from controller.firefly_policy import PolicyConfig
from controller.label_trust import parse_scope

REPO = Path(__file__).resolve().parent.parent
DEFAULT_P4INFO = REPO / "p4src/build/v1model/scitags.p4info.txtpb"
DEFAULT_DEVICE_CONFIG = REPO / "p4src/build/v1model/scitags.json"
SWITCH_KINDS = ("bmv2", "soft", "ovs", "tofino")
LAUNCH_MODES = ("auto", "never", "always")


class ConfigError(ValueError):
    """Unusable settings; the message names the file/option and the cause."""


@dataclass
class TLSConfig:
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass
class ControllerConfig:
    switch: str = "soft"
    grpc_addr: str = "127.0.0.1:9559"
    openflow: str | None = None  # switch ovs: where to reach it (openflow_wire.parse_target)
    device_id: int = 1
    cpu_port: int = 255
    topology: str | None = None
    registry: str | None = None
    registry_refresh_s: float = 0.0
    launch: str = "auto"
    p4info: str = str(DEFAULT_P4INFO)
    device_config: str = str(DEFAULT_DEVICE_CONFIG)
    device_config_format: str = "bmv2"
    tofino_chip: str = "tofino"  # switch tofino: which build (docs/tofino.md)
    state_dir: str | None = None
    api: str = "127.0.0.1:9180"
    api_token_file: str | None = None  # required off loopback (controller/api_auth.py)
    api_tls_cert: str | None = None
    api_tls_key: str | None = None
    poll_interval_s: float = 2.0
    reconcile_interval_s: float = 10.0
    election_id: int | None = None
    tls: TLSConfig | None = None
    mirror: list[str] = field(default_factory=list)
    trust_labels_from: list[str] | None = None  # None: no trust scope (label_trust.py)
    experiment_wildcard: bool = True  # per-experiment rule for unregistered activities
    firefly_listen: str | None = "[::]:10514"  # dual-stack: IPv4 and IPv6 senders
    firefly: PolicyConfig = field(default_factory=PolicyConfig)
    switch_binary: str | None = None  # override the launched executable
    extensions: dict[str, dict] = field(default_factory=dict)  # extension name -> its section

    def validate(self) -> None:
        if self.switch not in SWITCH_KINDS:
            raise ConfigError(f"switch {self.switch!r} is not one of {', '.join(SWITCH_KINDS)}")
        if self.launch not in LAUNCH_MODES:
            raise ConfigError(f"launch {self.launch!r} is not one of {', '.join(LAUNCH_MODES)}")
        if self.switch == "ovs":
            self._validate_ovs()
        elif self.openflow:
            raise ConfigError(f"openflow {self.openflow!r} is for switch ovs (--switch ovs); "
                              "a topology's OVS switches take `openflow:` in their entry")
        if self.switch == "tofino" and (self.topology or self.launch == "always"):
            raise ConfigError("switch tofino is the single-switch form, attached to, never launched: "
                              "in a topology, give the switch `kind: tofino`; launch auto or never")
        for what, addr in (("grpc_addr", self.grpc_addr), ("api", self.api)):
            split_addr(addr, what)
        check_api_settings(split_addr(self.api, "api")[0], self.api_token_file,
                           self.api_tls_cert, self.api_tls_key)  # ValueError -> ConfigError
        if self.firefly_listen:
            split_addr(self.firefly_listen, "firefly.listen")
        if self.poll_interval_s <= 0:
            raise ConfigError("poll_interval_s must be positive")
        scope = parse_scope(self.trust_labels_from, "trust_labels_from")  # ValueError -> caller
        self.trust_labels_from = None if scope is None else list(scope)
        if isinstance(self.experiment_wildcard, str) and self.experiment_wildcard in ("on", "off"):
            self.experiment_wildcard = self.experiment_wildcard == "on"
        if not isinstance(self.experiment_wildcard, bool):
            raise ConfigError(f"experiment_wildcard {self.experiment_wildcard!r} is not on or off")
        if not isinstance(self.reconcile_interval_s, (int, float)) or self.reconcile_interval_s < 0:
            raise ConfigError("reconcile_interval_s must be a number of seconds >= 0 (0: only on reconnect)")
        try:
            self.firefly.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def _validate_ovs(self) -> None:
        from controller.drivers.openflow_wire import parse_target  # stdlib only
        if self.topology:
            raise ConfigError("switch ovs is the single-switch form: in a topology, give the "
                              "switch `kind: ovs` and `openflow: TARGET` instead")
        if self.launch == "always":
            raise ConfigError("launch always with switch ovs: the controller does not start "
                              "Open vSwitch, it attaches to it (use launch auto or never)")
        if not self.openflow:
            raise ConfigError("switch ovs needs openflow (--openflow): tcp:HOST:PORT when OVS "
                              "listens (ovs-vsctl set-controller BR ptcp:PORT), or ptcp:PORT[:HOST] "
                              "when OVS connects to us (set-controller BR tcp:HOST:PORT)")
        try:
            parse_target(str(self.openflow))
        except ValueError as exc:
            raise ConfigError(f"openflow: {exc}") from None


def split_addr(addr: str, what: str = "address") -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {addr!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def load_config(path: str | None, overrides: dict[str, Any],
                extension_names: Iterable[str] = ()) -> ControllerConfig:
    """Settings from the YAML file at `path` (if any), then non-None `overrides`.
    extension_names: top-level keys that are extension sections (kept in cfg.extensions)."""
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data = dict(loaded or {})
    where = path or "command line"
    cfg = ControllerConfig()
    ff = data.pop("firefly", None) or {}
    if not isinstance(ff, dict):
        raise ConfigError(f"{where}: firefly must be a mapping")
    if "listen" in ff:
        cfg.firefly_listen = ff.pop("listen")
    names = {f.name for f in fields(PolicyConfig)}
    unknown = set(ff) - names
    if unknown:
        raise ConfigError(f"{where}: unknown firefly key(s): {', '.join(sorted(unknown))}")
    cfg.firefly = PolicyConfig(**ff)
    tls = data.pop("tls", None)
    if tls is not None:
        if not isinstance(tls, dict) or set(tls) - {"cacert", "cert", "key"}:
            raise ConfigError(f"{where}: tls must be a mapping with cacert, cert, key")
        cfg.tls = TLSConfig(**tls)
    for name in extension_names:
        section = data.pop(name, None)
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{where}: {name} must be a mapping")
        cfg.extensions[name] = dict(section or {})
    top = {f.name for f in fields(ControllerConfig)} - {"firefly", "tls", "firefly_listen",
                                                        "extensions"}
    unknown = set(data) - top
    if unknown:
        raise ConfigError(f"{where}: unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    for key, value in data.items():
        setattr(cfg, key, value)
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith("firefly."):
            setattr(cfg.firefly, key.split(".", 1)[1], value)
        elif key == "firefly_listen":
            cfg.firefly_listen = None if value in ("", "none", "off") else value
        else:
            setattr(cfg, key, value)
    if path:
        base = Path(path).resolve().parent
        for key in ("topology", "p4info", "device_config", "state_dir", "api_token_file",
                    "api_tls_cert", "api_tls_key"):
            value = getattr(cfg, key)
            if key in data and value and not Path(value).is_absolute() and (base / value).exists():
                setattr(cfg, key, str(base / value))
    try:
        cfg.validate()
    except ConfigError:
        raise
    except ValueError as exc:  # trust_labels_from: say where the value came from
        given_here = "trust_labels_from" in overrides and overrides["trust_labels_from"] is not None
        raise ConfigError(f"{'command line' if given_here else where}: {exc}") from None
    return cfg
