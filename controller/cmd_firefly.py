"""`controller firefly parse|listen`: validate fireflies from a file, or receive them."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from controller.cmd_registry import add_registry_option, load_registry
from controller.errors import ExitCode, UsageError
from controller.output import print_json
from scitags_core.firefly import FIREFLY_PORT, FireflyRecord, FireflyRejected
from scitags_core.firefly_parse import parse_firefly
from scitags_core.firefly_receiver import FireflyReceiver
from scitags_core.firefly_stats import FireflyStats
from scitags_core.registry import Registry


def _endpoint(address: object, port: int) -> str:
    text = str(address)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _record_line(record: FireflyRecord, registry: Registry) -> str:
    info = registry.describe(record.experiment_id, record.activity_id)
    text = (f"{record.state.value} {record.protocol.value} "
            f"{_endpoint(record.src_ip, record.src_port)} -> {_endpoint(record.dst_ip, record.dst_port)} "
            f"experiment {record.experiment_id} ({info.experiment_name or 'unregistered'}) "
            f"activity {record.activity_id} ({info.activity_name or 'unregistered'})")
    if record.deviations:
        text += " deviations: " + ",".join(d.value for d in record.deviations)
    return text


def _record_json(record: FireflyRecord, registry: Registry) -> dict[str, Any]:
    data = record.to_dict()
    data["tag"] = registry.describe(record.experiment_id, record.activity_id).as_dict()
    return data


def _read_input(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _parse(args: argparse.Namespace) -> int:
    registry = load_registry(args)
    data = _read_input(args.file)
    if args.datagram:
        items = [(1, data)]
    else:  # one firefly per line; a firefly's JSON never contains a raw newline
        items = [(n, line.rstrip(b"\r")) for n, line in enumerate(data.split(b"\n"), 1)
                 if line.strip()]
    if not items:
        raise UsageError(f"no fireflies in {args.file}")
    results: list[dict[str, Any]] = []
    rejected = 0
    stats = FireflyStats()
    for number, item in items:
        try:
            record = parse_firefly(item, strict=args.strict)
        except FireflyRejected as exc:
            rejected += 1
            results.append({"line": number, "accepted": False, "reason": exc.reason.value,
                            "detail": exc.detail})
            if not args.json:
                print(f"{number}: rejected {exc.reason.value}: {exc.detail}")
            continue
        stats.count_accepted(record)
        results.append({"line": number, "accepted": True,
                        "deviations": [d.value for d in record.deviations],
                        "record": _record_json(record, registry)})
        if not args.json:
            print(f"{number}: ok {_record_line(record, registry)}")
    accepted = len(items) - rejected
    summary = stats.snapshot()
    if args.json:
        print_json({"accepted": accepted, "rejected": rejected, "registry": registry.identity,
                    "deviations": summary["deviations"], "applications": summary["applications"],
                    "results": results})
    else:
        for app, entry in summary["applications"].items():  # the totals line stays last
            devs = ", ".join(f"{d} {n}" for d, n in entry["deviations"].items()) or "none"
            print(f"application {app}: {entry['accepted']} accepted, deviations: {devs}")
        print(f"{len(items)} fireflies: {accepted} accepted, {rejected} rejected")
    return ExitCode.USAGE if rejected else ExitCode.OK


def _listen(args: argparse.Namespace) -> int:
    registry = load_registry(args)
    done = threading.Event()
    seen = 0
    out = sys.stdout

    def show(record: FireflyRecord, peer: tuple[str, int]) -> None:
        nonlocal seen
        seen += 1
        if args.json:
            out.write(json.dumps({"peer": list(peer), **_record_json(record, registry)}) + "\n")
        else:
            out.write(f"{_endpoint(*peer)}: {_record_line(record, registry)}\n")
        out.flush()
        if args.count and seen >= args.count:
            done.set()

    receiver = FireflyReceiver(port=args.port, host=args.host, strict=args.strict)
    receiver.subscribe(show)
    try:
        receiver.start()
    except OSError as exc:
        print(f"controller: cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.FAILURE
    print(f"listening on {_endpoint(*receiver.address)}", file=sys.stderr)
    try:
        done.wait(args.timeout if args.timeout else None)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    counters = receiver.counters().as_dict()
    print(json.dumps(counters) if args.json else
          f"received {counters['received']}, accepted {counters['accepted']}, rejected "
          f"{counters['rejected_total']} {counters['rejected'] or ''}".rstrip(), file=sys.stderr)
    return ExitCode.OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "firefly", help="validate or receive UDP fireflies",
        description="Fireflies are RFC 5424 syslog messages carrying a JSON flow description, "
                    f"sent to UDP port {FIREFLY_PORT}.")
    sub = parser.add_subparsers(dest="firefly_command", metavar="ACTION", required=True)

    parse = sub.add_parser(
        "parse", help="validate fireflies from a file",
        description="Validate one firefly per line (or the whole file as one datagram) and print "
                    "each record or the reason it was rejected. Exit 2 if any was rejected.")
    parse.add_argument("file", nargs="?", default="-", metavar="FILE",
                       help="input file, - for standard input (default)")
    parse.add_argument("--datagram", action="store_true",
                       help="the whole file is one datagram, not one firefly per line")
    parse.add_argument("--strict", action="store_true",
                       help="exactly firefly.schema.json: refuse the real-world deviations")
    add_registry_option(parse)
    parse.add_argument("--json", action="store_true", help="print JSON")
    parse.set_defaults(func=_parse)

    listen = sub.add_parser("listen", help="receive fireflies and print them",
                            description="Receive fireflies on UDP (IPv4 and IPv6) and print each "
                                        "accepted one; counters go to stderr at the end.")
    listen.add_argument("--port", type=int, default=FIREFLY_PORT, help=f"UDP port ({FIREFLY_PORT})")
    listen.add_argument("--host", help="listen address (default: all, IPv4 and IPv6)")
    listen.add_argument("--count", type=int, default=0, help="stop after N accepted fireflies")
    listen.add_argument("--timeout", type=float, default=0, help="stop after S seconds")
    listen.add_argument("--strict", action="store_true", help="exactly firefly.schema.json")
    add_registry_option(listen)
    listen.add_argument("--json", action="store_true", help="print JSON lines")
    listen.set_defaults(func=_listen)
