"""`controller start`: run the controller until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import sys
import logging
import signal
import threading

from controller import extensions
from controller.config import ConfigError, load_config
from controller.errors import ExitCode, UsageError
from controller.launcher import LaunchError
from controller.topology import TopologyError

log = logging.getLogger("controller")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "start", help="run the controller (program switches, follow fireflies, count)",
        description="Keep every switch equal to what the registry, the topology and the live "
        "fireflies say, and serve counters on a local HTTP API. Options override --config.")
    p.add_argument("--switch", choices=["bmv2", "soft", "ovs", "tofino"],
                   help="target to launch when a switch is not running (default soft); ovs: the "
                   "single switch is Open vSwitch, attached over OpenFlow at --openflow (never launched); "
                   "tofino: the single switch is a Tofino running Stratum at --grpc-addr (docs/tofino.md)")
    p.add_argument("--tofino-chip", choices=["tofino", "tofino2"],
                   help="with --switch tofino: Tofino 1 (p4src/build/tna, CPU port 192; default) or "
                   "Tofino 2 (p4src/build/t2na, CPU port 0)")
    p.add_argument("--openflow", metavar="TARGET",
                   help="with --switch ovs: tcp:HOST:PORT when OVS listens (ovs-vsctl set-controller "
                   "BR ptcp:PORT), or ptcp:PORT[:HOST] when OVS connects to us (set-controller BR tcp:HOST:PORT)")
    p.add_argument("--grpc-addr", help="HOST:PORT of the single switch (no --topology); default 127.0.0.1:9559")
    p.add_argument("--device-id", type=int, help="P4Runtime device id of the single switch (default 1)")
    p.add_argument("--cpu-port", type=int, help="CPU port of the single switch (default 255; "
                   "--switch tofino: the program's, 192 or 0 on Tofino 2)")
    p.add_argument("--topology", help="topology YAML: manage every switch in it")
    p.add_argument("--registry", help="registry FILE or URL to pin (default: the persisted active registry)")
    p.add_argument("--registry-refresh", type=float, dest="registry_refresh_s", metavar="SECONDS",
                   help="refetch --registry every SECONDS (0: never)")
    p.add_argument("--config", help="YAML settings file (see controller/config.py)")
    p.add_argument("--launch", choices=["auto", "never", "always"],
                   help="start switches that are not listening (auto, default), never, always")
    p.add_argument("--switch-binary", help="executable to launch instead of simple_switch_grpc/softswitch")
    p.add_argument("--p4info", help="P4Info text file (default p4src/build/v1model/scitags.p4info.txtpb)")
    p.add_argument("--device-config", help="BMv2 JSON (default p4src/build/v1model/scitags.json); "
                   "Tofino: a bf-p4c output folder, whose P4Info it uses")
    p.add_argument("--state-dir", help="where the SQLite state and switch logs go")
    p.add_argument("--api", help="HOST:PORT of the HTTP API and dashboard (default 127.0.0.1:9180; "
                   "a non-loopback address needs --api-token-file)")
    p.add_argument("--api-token-file", metavar="FILE",
                   help="bearer token (first line of FILE) every API request must carry "
                   "(Authorization: Bearer TOKEN; the dashboard: open /?token=TOKEN)")
    p.add_argument("--api-tls-cert", metavar="PEM", help="with --api-tls-key: serve the API over HTTPS")
    p.add_argument("--api-tls-key", metavar="PEM", help="private key of --api-tls-cert")
    p.add_argument("--poll-interval", type=float, dest="poll_interval_s", metavar="SECONDS",
                   help="counter poll period (default 2)")
    p.add_argument("--reconcile-interval", type=float, dest="reconcile_interval_s", metavar="SECONDS",
                   help="read back every switch and repair drift every SECONDS (default 10; 0: only "
                   "on reconnect)")
    p.add_argument("--election-id", type=int, help="fixed election id (default: by start time)")
    p.add_argument("--tls-cacert", help="CA certificate for the switches' gRPC TLS")
    p.add_argument("--tls-cert", help="client certificate")
    p.add_argument("--tls-key", help="client key")
    p.add_argument("--mirror", action="append", metavar="EXP[/ACT]",
                   help="copy this tag's traffic to the monitor port (repeatable)")
    p.add_argument("--trust-labels-from", action="append", metavar="PREFIX",
                   help="count IPv6 flow labels as tags only from this source prefix (repeatable; "
                   "others go to the untrusted_label bucket; default: every label, unverified)")
    p.add_argument("--experiment-wildcard", choices=["on", "off"],
                   help="count an experiment's unregistered activities under its wildcard row "
                   "(default on; off: exact experiment/activity pairs only, 1/8 of the random-label "
                   "background)")
    p.add_argument("--firefly-listen", metavar="HOST:PORT",
                   help="UDP firefly receiver (default [::]:10514, IPv4 and IPv6; 'off' for in-band only)")
    p.add_argument("--accept-source", action="append", metavar="PREFIX",
                   help="accept fireflies only from this prefix (repeatable)")
    p.add_argument("--no-require-endpoint", action="store_true",
                   help="accept fireflies from senders that are not an endpoint of the flow")
    p.add_argument("--rate-per-source", type=float, help="fireflies per second per sender (default 50)")
    p.add_argument("--burst", type=float, help="fireflies a sender may send at once (default 100)")
    p.add_argument("--max-flows", type=int, help="cap on installed firefly flows (default 60000)")
    p.add_argument("--when-full", choices=["refuse-new", "evict-oldest"], help="policy at the cap")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="firefly entry idle timeout (default 120)")
    exts = extensions.load()
    for ext in exts:
        ext.add_arguments(p.add_argument_group(f"{ext.name} (extension)"))
    p.add_argument("--device-config-format", metavar="FORMAT",
                   help="how the device config is made: bmv2 (the JSON file, default) or another "
                   "format of controller.runtime.DEVICE_CONFIG_FORMATS")
    p.set_defaults(func=run, extensions=exts)


def _overrides(args: argparse.Namespace) -> dict:
    o = {k: getattr(args, k) for k in (
        "switch", "openflow", "grpc_addr", "device_id", "cpu_port", "topology", "registry", "registry_refresh_s",
        "launch", "switch_binary", "p4info", "device_config", "state_dir", "api", "api_token_file",
        "api_tls_cert", "api_tls_key", "poll_interval_s",
        "reconcile_interval_s", "election_id", "firefly_listen", "device_config_format", "tofino_chip")}
    o["mirror"] = args.mirror
    o["trust_labels_from"] = args.trust_labels_from
    o["experiment_wildcard"] = None if args.experiment_wildcard is None else args.experiment_wildcard == "on"
    o["firefly.accept_sources"] = args.accept_source
    o["firefly.rate_per_source"] = args.rate_per_source
    o["firefly.burst"] = args.burst
    o["firefly.max_flows"] = args.max_flows
    o["firefly.when_full"] = args.when_full
    o["firefly.idle_timeout_s"] = args.idle_timeout
    if args.no_require_endpoint:
        o["firefly.require_endpoint"] = False
    return o


def run(args: argparse.Namespace) -> int:
    from controller.config import TLSConfig
    from controller.runtime import build
    if args.verbose == 0:
        log.setLevel(logging.INFO)  # say what was written where
    try:
        exts = args.extensions
        cfg = load_config(args.config, _overrides(args), [e.name for e in exts])
        if args.tls_cacert or args.tls_cert or args.tls_key:
            cfg.tls = TLSConfig(args.tls_cacert, args.tls_cert, args.tls_key)
        for ext in exts:
            cfg.extensions.setdefault(ext.name, {}).update(ext.options(args))
        rt = build(cfg, extensions=exts)
    except (ConfigError, TopologyError) as exc:
        raise UsageError(str(exc)) from None
    except (LaunchError, OSError) as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        rt.start()
    except OSError as exc:
        print(f"controller: cannot start: {exc}", file=sys.stderr)
        rt.stop()
        return ExitCode.FAILURE
    log.info("controller running: %d switch(es) from %s, API %s, registry %s",
             len(rt.topology.switches), rt.topology.source, rt.api.url if rt.api else cfg.api,
             rt.controller.registry.identity if rt.controller.registry else "?")
    stop.wait()
    log.info("stopping: saving counts")
    rt.stop()
    return ExitCode.OK
