"""`softswitch`: the built-in v1model target, started like simple_switch_grpc.

    softswitch -i 1@veth1 -i 2@veth2 --device-id 0 --log-console program.json \\
        -- --grpc-server-addr 0.0.0.0:9559 --cpu-port 255

Target options may come before or after a lone '--', as simple_switch_grpc
requires them after it. TLS as simple_switch_grpc: --grpc-server-ssl with
--grpc-server-cert/--grpc-server-key, and --grpc-server-cacert plus
--grpc-server-with-client-auth to require client certificates. Exit status: 0 after SIGINT/SIGTERM, 2 for bad usage or a
program that cannot be loaded, 1 for a runtime failure (interface, gRPC port).
"""
from __future__ import annotations

import argparse
import functools
import importlib
import logging
import signal
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .engine import Engine, UnsupportedProgram
from .ports import RawSocketPort
from .switch import SoftSwitch

if TYPE_CHECKING:
    from .p4runtime_server import TlsFiles

log = logging.getLogger("softswitch")

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
          "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL, "off": logging.CRITICAL + 10}
_LETTER = {logging.DEBUG: "D", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E",
           logging.CRITICAL: "C"}

# simple_switch_grpc options we accept for drop-in compatibility but do not implement
IGNORED_WITH_VALUE = ("--thrift-port", "--nanolog", "--notifications-addr", "--restore-state",
                      "--max-port-count", "--log-file-max-size", "--log-file-max-files",
                      "--load-modules", "--dp-grpc-server-addr", "--packet-in", "--use-files",
                      "--priority-queues")
IGNORED_FLAGS = ("--log-flush", "--debugger", "--disable-swap", "--enable-swap")


class BMv2Formatter(logging.Formatter):
    """Lines shaped like bmv2's console log: [time] [bmv2] [D] [thread N] message."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(record.created))
        ms = int(record.msecs)
        letter = _LETTER.get(record.levelno, "I")
        return f"[{t}.{ms:03d}] [bmv2] [{letter}] [thread {record.thread}] {record.getMessage()}"


def _interface(value: str) -> tuple[int, str]:
    port, sep, iface = value.partition("@")
    if not sep or not iface:
        raise argparse.ArgumentTypeError(f"'{value}' is not <port-num>@<interface-name>")
    try:
        num = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{port}' is not a port number") from None
    if not 0 <= num < 511:
        raise argparse.ArgumentTypeError(f"port {num} outside 0..510")
    return num, iface


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="softswitch",
        description="Built-in v1model target: runs the BMv2 JSON p4c emits, with "
                    "simple_switch_grpc's command line.")
    p.add_argument("json", nargs="?", help="BMv2 JSON program (omit with --no-p4)")
    p.add_argument("-i", "--interface", action="append", type=_interface, default=[],
                   metavar="PORT@IFACE", help="attach interface IFACE as port PORT (repeatable)")
    p.add_argument("--device-id", type=int, default=0, help="P4Runtime device id (default 0)")
    p.add_argument("--grpc-server-addr", default="0.0.0.0:9559",
                   help="P4Runtime server address (default 0.0.0.0:9559)")
    p.add_argument("--cpu-port", type=int, default=None,
                   help="CPU port for packet-in/packet-out (no interface may use it)")
    p.add_argument("--drop-port", type=int, default=511, help="drop port (default 511)")
    p.add_argument("--log-console", action="store_true", help="log to stdout")
    p.add_argument("--log-file", default=None, help="log to this file")
    p.add_argument("-L", "--log-level", choices=sorted(LEVELS), default=None,
                   help="log level (default: debug with --log-console, else warn)")
    p.add_argument("--no-p4", action="store_true",
                   help="start without a program (load one through P4Runtime)")
    p.add_argument("--no-grpc", action="store_true", help="do not start the P4Runtime server")
    p.add_argument("--grpc-server-ssl", action="store_true",
                   help="TLS for the P4Runtime server (needs --grpc-server-cert and --grpc-server-key)")
    p.add_argument("--grpc-server-cacert", metavar="PEM",
                   help="CA certificate to verify client certificates against")
    p.add_argument("--grpc-server-cert", metavar="PEM", help="server certificate (chain)")
    p.add_argument("--grpc-server-key", metavar="PEM", help="server private key")
    p.add_argument("--grpc-server-with-client-auth", action="store_true",
                   help="require clients to present a certificate signed by --grpc-server-cacert")
    p.add_argument("--pcap", nargs="?", const=".", default=None,
                   help="accepted for compatibility; not implemented (ignored)")
    p.add_argument("--dump-packet-data", type=int, default=0,
                   help="log this many bytes of each packet at info level")
    for opt in IGNORED_WITH_VALUE:
        p.add_argument(opt, default=None, help=argparse.SUPPRESS)
    for opt in IGNORED_FLAGS:
        p.add_argument(opt, action="store_true", help=argparse.SUPPRESS)
    return p


def _setup_logging(args: argparse.Namespace) -> None:
    level = LEVELS[args.log_level] if args.log_level else (
        logging.DEBUG if args.log_console or args.log_file else logging.WARNING)
    root = logging.getLogger()
    root.setLevel(level)
    fmt = BMv2Formatter()
    handlers: list[logging.Handler] = []
    if args.log_console:
        handlers.append(logging.StreamHandler(sys.stdout))
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    if not handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    # gRPC and other libraries stay quiet unless asked
    if not args.log_level or LEVELS[args.log_level] > logging.DEBUG:
        logging.getLogger("grpc").setLevel(logging.WARNING)


def _tls_files(args: argparse.Namespace, parser: argparse.ArgumentParser) -> "TlsFiles | None":
    """The TLS settings simple_switch_grpc takes, checked before anything starts: a missing
    option, an unreadable file or a key that does not match its certificate is bad usage."""
    files = {"--grpc-server-cert": args.grpc_server_cert, "--grpc-server-key": args.grpc_server_key,
             "--grpc-server-cacert": args.grpc_server_cacert}
    if not args.grpc_server_ssl:
        given = [o for o, v in files.items() if v] + (
            ["--grpc-server-with-client-auth"] if args.grpc_server_with_client_auth else [])
        if given:  # serving plaintext while certificates were given would be a silent downgrade
            parser.error(f"{', '.join(given)} given without --grpc-server-ssl")
        return None
    missing = [o for o in ("--grpc-server-cert", "--grpc-server-key") if not files[o]]
    if missing:
        parser.error(f"--grpc-server-ssl needs {' and '.join(missing)}")
    if args.grpc_server_with_client_auth and not args.grpc_server_cacert:
        parser.error("--grpc-server-with-client-auth needs --grpc-server-cacert (the CA that "
                     "signs the client certificates)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(args.grpc_server_cert, args.grpc_server_key)
    except OSError as exc:  # ssl.SSLError is an OSError too
        parser.error(f"--grpc-server-cert {args.grpc_server_cert} / --grpc-server-key "
                     f"{args.grpc_server_key}: {exc.strerror or exc}")
    if args.grpc_server_cacert:
        try:
            context.load_verify_locations(cafile=args.grpc_server_cacert)
        except OSError as exc:
            parser.error(f"--grpc-server-cacert {args.grpc_server_cacert}: {exc.strerror or exc}")
    from .p4runtime_server import TlsFiles  # only here: grpc is not needed without a server
    return TlsFiles(args.grpc_server_cert, args.grpc_server_key, args.grpc_server_cacert,
                    args.grpc_server_with_client_auth)


def _load_server_class():  # noqa: ANN202 - returns the class or None
    try:
        module = importlib.import_module("softswitch.p4runtime_server")
    except ImportError as exc:
        log.warning("P4Runtime server unavailable (%s); running without gRPC", exc)
        return None
    return getattr(module, "P4RuntimeServer", None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [a for a in argv if a != "--"]  # simple_switch_grpc's target-option separator
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json is None and not args.no_p4:
        parser.error("give a JSON program or --no-p4")
    if args.cpu_port is not None and any(p == args.cpu_port for p, _ in args.interface):
        parser.error(f"--cpu-port {args.cpu_port} is also given an interface")
    tls = None if args.no_grpc else _tls_files(args, parser)
    _setup_logging(args)
    ignored = [o for o in IGNORED_WITH_VALUE + IGNORED_FLAGS
               if getattr(args, o.lstrip("-").replace("-", "_"))]
    if args.pcap is not None:
        ignored.append("--pcap")
    for opt in ignored:
        log.info("option %s is accepted for compatibility and ignored", opt)

    engine = Engine(cpu_port=args.cpu_port, drop_port=args.drop_port)
    if args.json is not None:
        try:
            engine.load(Path(args.json).read_bytes())
        except OSError as exc:
            print(f"softswitch: cannot read {args.json}: {exc.strerror}", file=sys.stderr)
            return 2
        except (UnsupportedProgram, ValueError) as exc:
            print(f"softswitch: cannot load {args.json}: {exc}", file=sys.stderr)
            return 2
    switch = SoftSwitch(engine, cpu_port=args.cpu_port)
    if args.dump_packet_data > 0:
        _add_packet_dump(switch, args.dump_packet_data)
    try:
        for port, iface in args.interface:
            switch.add_port(port, RawSocketPort(iface))
    except OSError as exc:
        print(f"softswitch: cannot open interface: {exc}", file=sys.stderr)
        switch.close()
        return 1

    server = None
    if not args.no_grpc:
        cls = _load_server_class()
        if cls is not None:
            send = (functools.partial(switch.inject, args.cpu_port) if args.cpu_port is not None
                    else _no_cpu_port)
            try:
                server = cls(engine, args.device_id, args.cpu_port, send)
                switch.add_packet_in_handler(server.deliver_packet_in)
                bound = server.start(args.grpc_server_addr, tls)
            except Exception as exc:  # a bind failure or a server bug: report, exit 1
                print(f"softswitch: cannot start the P4Runtime server on "
                      f"{args.grpc_server_addr}: {exc}", file=sys.stderr)
                switch.close()
                return 1
            log.info("P4Runtime server listening on %s (port %s, %s)", args.grpc_server_addr, bound,
                     "plaintext" if tls is None else "TLS, client certificates required"
                     if tls.require_client_auth else "TLS")

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    switch.start()
    log.info("softswitch running (device %d, %d ports, cpu port %s)", args.device_id,
             len(args.interface), args.cpu_port)
    while not stop.wait(0.5):
        pass
    if server is not None:
        try:
            server.stop()
        except Exception as exc:  # shutting down anyway
            log.warning("P4Runtime server stop failed: %s", exc)
    switch.close()
    return 0


def _no_cpu_port(frame: bytes) -> list:
    log.warning("packet-out dropped: the switch has no --cpu-port")
    return []


def _add_packet_dump(switch: SoftSwitch, nbytes: int) -> None:
    inner = switch.engine.process

    def process(port: int, frame: bytes) -> list[tuple[int, bytes]]:
        log.info("Packet data received on port %d: %s", port, frame[:nbytes].hex(" "))
        outs = inner(port, frame)
        for out_port, out in outs:
            log.info("Packet data sent on port %d: %s", out_port, out[:nbytes].hex(" "))
        return outs

    switch.engine.process = process  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.exit(main())
