"""Assemble a running controller from settings: topology, switch processes, drivers,
registry, SQLite store, controller threads and the HTTP API (used by `controller start`,
the tests and the benchmark)."""
from __future__ import annotations

import importlib
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from controller import label_trust, launcher
from controller.api import ApiServer
from controller.api_auth import ApiGuard
from controller.app import Controller
from controller.config import ConfigError, ControllerConfig, split_addr
from controller.drivers.base import SwitchDriver
from controller.drivers.p4runtime import DeviceConfigBuilder, P4RuntimeDriver, bmv2_json
from controller.extensions import Extension
from controller.p4runtime_client import TLSOptions
from controller.store import Store
from controller.topology import SwitchSpec, Topology, load_topology
from scitags_core.paths import state_dir as default_state_dir
from scitags_core.registry import Registry
from scitags_core.registry_store import RegistryStore

log = logging.getLogger(__name__)

# device_config_format -> "module:function"; function(cfg, spec) -> DeviceConfigBuilder
DEVICE_CONFIG_FORMATS = {
    "bmv2": "controller.runtime:bmv2_device_config",
    "tofino": "controller.drivers.tofino_pipeline:device_config_builder",
}


@dataclass
class Runtime:
    config: ControllerConfig
    topology: Topology
    controller: Controller
    api: ApiServer | None
    store: Store
    launched: list[subprocess.Popen] = field(default_factory=list)
    extensions: Sequence[Extension] = ()

    def start(self) -> None:
        self.controller.start()
        for ext in self.extensions:
            ext.start()
        if self.api is not None:
            self.api.start()

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        for ext in self.extensions:
            try:
                ext.stop()
            except Exception:  # noqa: BLE001 - the counts must still be saved
                log.exception("extension %s: stop failed", ext.name)
        self.controller.stop()
        self.store.close()
        launcher.terminate(self.launched)


def make_topology(cfg: ControllerConfig) -> Topology:
    if cfg.topology:
        return load_topology(cfg.topology)
    if cfg.switch == "ovs":  # one Open vSwitch, reached over OpenFlow
        return Topology.from_dict({"name": "s1", "description": "single switch",
                                   "switches": {"s1": {"device_id": cfg.device_id, "kind": "ovs",
                                                       "cpu_port": None, "openflow": cfg.openflow}},
                                   "hosts": {}, "links": []}, "<command line>")
    host, port = split_addr(cfg.grpc_addr, "--grpc-addr")
    if cfg.switch == "tofino":  # one Tofino running Stratum, never launched (docs/tofino.md)
        # 255 (BMv2's default) is no Tofino device port: unset, the program's CPU port for the chip.
        cpu_port = None if cfg.cpu_port == 255 else cfg.cpu_port
        return Topology.from_dict({"name": "s1", "description": "single switch",
                                   "switches": {"s1": {"device_id": cfg.device_id, "kind": "tofino",
                                                       "grpc_host": host, "grpc_port": port,
                                                       "cpu_port": cpu_port, "chip": cfg.tofino_chip}},
                                   "hosts": {}, "links": []}, "<command line>")
    return Topology.single_switch(cfg.device_id, port, cfg.cpu_port, host)


def registry_functions(cfg: ControllerConfig, state: Path):
    """(load at start, refresh later). A pinned FILE or URL is fetched and made the active
    registry; without one, the persisted active registry (or the shipped default)."""
    store = RegistryStore(state / "registry")

    def fetch() -> Registry:
        if not cfg.registry:
            return store.load()
        src = cfg.registry
        result = store.refresh(url=src) if src.startswith(("http://", "https://")) else store.refresh(file=src)
        if not result.ok:
            raise RuntimeError(result.message)
        return result.registry

    def load() -> Registry:
        try:
            return fetch()
        except RuntimeError as exc:
            if cfg.registry and not cfg.registry.startswith(("http://", "https://")):
                raise ConfigError(str(exc)) from None
            log.warning("registry %s unavailable (%s): using the persisted one", cfg.registry, exc)
            return store.current

    return load, fetch


def bmv2_device_config(cfg: ControllerConfig, spec: SwitchSpec) -> DeviceConfigBuilder:
    return bmv2_json(spec.options.get("device_config") or cfg.device_config)


def device_config_builder(cfg: ControllerConfig, spec: SwitchSpec) -> DeviceConfigBuilder:
    fmt = spec.options.get("device_config_format") or cfg.device_config_format
    target = DEVICE_CONFIG_FORMATS.get(fmt)
    if target is None:
        raise ConfigError(f"switch {spec.name}: device_config_format {fmt!r} is not one of "
                          f"{', '.join(DEVICE_CONFIG_FORMATS)}")
    module, _, fn = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"switch {spec.name}: device_config_format {fmt}: {exc}") from None
    return factory(cfg, spec)


def make_driver(spec: SwitchSpec, cfg: ControllerConfig) -> SwitchDriver:
    if spec.kind == "ovs":
        from controller.drivers import openflow  # another engineer's driver
        try:
            driver = openflow.make_driver(spec, cfg)
        except ValueError as exc:  # a bad `openflow:` target: bad input, exit 2
            raise ConfigError(str(exc)) from None
        # Never launched: OVS runs on its own (ovs-ctl); the controller attaches to it.
        log.info("switch %s: Open vSwitch over OpenFlow at %s", spec.name, driver.target)
        return driver
    tls = TLSOptions(cfg.tls.cacert, cfg.tls.cert, cfg.tls.key) if cfg.tls else None
    election = (0, cfg.election_id) if cfg.election_id is not None else None
    p4info = cfg.p4info
    if spec.kind == "tofino":  # the P4Info compiled with the switch's bfrt.json
        from controller.drivers.tofino_pipeline import switch_p4info
        p4info = switch_p4info(cfg, spec)
    return P4RuntimeDriver(spec.name, spec.device_id, spec.grpc_addr, p4info, None,
                           spec.cpu_port, election, tls,
                           device_config_builder=device_config_builder(cfg, spec))


def build(cfg: ControllerConfig, with_api: bool = True,
          extensions: Sequence[Extension] = ()) -> Runtime:
    topo = make_topology(cfg)
    try:  # a bad prefix is refused before anything starts (file, switch, cause)
        scopes = label_trust.switch_scopes(label_trust.parse_scope(cfg.trust_labels_from, "trust_labels_from"),
                                           topo.switches, topo.source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if any(spec.kind == "p4" for spec in topo.switches.values()):  # OpenFlow switches need neither
        for what, path in (("P4Info", cfg.p4info), ("device config (BMv2 JSON)", cfg.device_config)):
            if not Path(path).is_file():
                raise ConfigError(f"{what} {path} not found: build the P4 program first (make p4) "
                                  f"or give --p4info/--device-config")
    try:  # an unreadable token or a bad certificate is refused before anything starts
        guard = ApiGuard.from_settings(split_addr(cfg.api, "--api")[0], cfg.api_token_file,
                                       cfg.api_tls_cert, cfg.api_tls_key) if with_api else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    state = Path(cfg.state_dir) if cfg.state_dir else default_state_dir()
    state.mkdir(parents=True, exist_ok=True)
    launched: list[subprocess.Popen] = []
    try:
        for spec in topo.switches.values():
            if spec.kind != "p4" or cfg.launch == "never":
                continue
            up = launcher.is_listening(spec.grpc_host, spec.grpc_port)
            if cfg.launch == "always" and up:
                raise ConfigError(f"switch {spec.name}: something already listens on {spec.grpc_addr}")
            if not up:
                launched.append(launcher.launch(cfg.switch, spec, state / "switch-logs", cfg.switch_binary))
            else:
                log.info("switch %s: attaching to the switch already running at %s", spec.name, spec.grpc_addr)
        drivers = {name: make_driver(spec, cfg) for name, spec in topo.switches.items()}
        store = Store(state / "controller.sqlite")
        log.info("state: SQLite %s", state / "controller.sqlite")
        load, fetch = registry_functions(cfg, state)
        listen = split_addr(cfg.firefly_listen, "firefly.listen") if cfg.firefly_listen else None
        ctl = Controller(topo, drivers, store, load, cfg.firefly, cfg.poll_interval_s, cfg.mirror,
                         listen, cfg.registry_refresh_s, fetch, cfg.reconcile_interval_s,
                         label_trust=scopes, experiment_wildcard=cfg.experiment_wildcard)
        for ext in extensions:
            try:
                ext.configure(cfg.extensions.get(ext.name, {}))
            except ValueError as exc:
                raise ConfigError(f"{ext.name}: {exc}") from None
            ext.attach(ctl)
        api = None
        if with_api:
            host, port = split_addr(cfg.api, "--api")
            api = ApiServer(ctl, host, port, guard)
        return Runtime(cfg, topo, ctl, api, store, launched, extensions)
    except BaseException:
        launcher.terminate(launched)
        raise
