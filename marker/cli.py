"""`marker`: end-host scitags marker (IPv6 flow labels via nftables + fireflies).

    marker run [--config FILE] [flags]              long-running daemon
    marker flow start PROTO SRC SPORT DST DPORT EXPERIMENT ACTIVITY
    marker flow end   PROTO SRC SPORT DST DPORT [EXPERIMENT ACTIVITY]
    marker flow list                                flows of the running daemon
    marker status | marker clean | marker label EXPERIMENT ACTIVITY

Exit codes: 0 ok, 2 bad usage or input, 1 runtime failure.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from controller.output import print_json, print_table
from marker import config as config_mod
from marker import control, standalone
from marker.fireflies import Collector, FireflySender
from marker.flows import MarkerInputError, make_key, make_request, resolve_tag
from marker.nftables import DEFAULT_TABLE, Nft, NftError
from marker.socketlabel import EXTHDR_STRATEGIES
from scitags_core import flowlabel
from scitags_core.registry import RegistryError

OK, FAILURE, USAGE = 0, 1, 2


def _collector(text: str) -> Collector:
    try:
        return Collector.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", metavar="FILE", help="registry JSON (default: the active registry)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the marker daemon (control socket, np_api pipe, poller)")
    _common(run)
    run.add_argument("--config", metavar="FILE", help="YAML configuration (flags override it)")
    run.add_argument("--table", help=f"nftables ip6 table to own (default {DEFAULT_TABLE})")
    run.add_argument("--socket", dest="control_socket", metavar="PATH", help="control socket path")
    pipe = run.add_mutually_exclusive_group()
    pipe.add_argument("--np-api", metavar="PATH", help="named pipe for np_api lines")
    pipe.add_argument("--no-np-api", action="store_true", help="no named pipe")
    run.add_argument("--collector", action="append", type=_collector, default=[],
                     metavar="HOST[:PORT]", help="extra firefly receiver (repeatable)")
    run.add_argument("--no-destination-fireflies", action="store_true",
                     help="do not send fireflies to the flow's destination port 10514")
    run.add_argument("--ongoing", type=float, metavar="SECONDS", help="ongoing firefly interval (0: none)")
    run.add_argument("--allow-unregistered", action="store_true",
                     help="accept in-range ids the registry does not know")
    run.add_argument("--poll-experiment", metavar="NAME|ID", help="enable the TCP poller with this experiment")
    run.add_argument("--poll-activity", metavar="NAME|ID", help="activity for polled connections")
    run.add_argument("--poll-ports", metavar="P1,P2", help="ports to match (local or remote; default all)")
    run.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS")

    flow = sub.add_parser("flow", help="start/end one flow (through a running daemon, or alone)")
    fsub = flow.add_subparsers(dest="flow_command", required=True)
    for state in ("start", "end"):
        f = fsub.add_parser(state, help=f"{state} a flow")
        _common(f)
        f.add_argument("protocol", help="tcp or udp")
        f.add_argument("src", help="source address")
        f.add_argument("src_port", help="source port")
        f.add_argument("dst", help="destination address")
        f.add_argument("dst_port", help="destination port")
        f.add_argument("experiment", nargs=None if state == "start" else "?", help="experiment name or id")
        f.add_argument("activity", nargs=None if state == "start" else "?", help="activity name or id")
        f.add_argument("--socket", default=control.DEFAULT_SOCKET, metavar="PATH",
                       help="control socket of a running daemon")
        how = f.add_mutually_exclusive_group()
        how.add_argument("--standalone", action="store_true", help="do not use a daemon even if one runs")
        how.add_argument("--daemon", action="store_true", help="fail unless a daemon answers")
        f.add_argument("--table", default=DEFAULT_TABLE, help="nftables table (standalone)")
        f.add_argument("--collector", action="append", type=_collector, default=[],
                       metavar="HOST[:PORT]", help="extra firefly receiver (standalone)")
        f.add_argument("--allow-unregistered", action="store_true",
                       help="accept in-range ids the registry does not know")
    lst = fsub.add_parser("list", help="active flows of the running daemon")
    lst.add_argument("--socket", default=control.DEFAULT_SOCKET, metavar="PATH")
    lst.add_argument("--json", action="store_true", help="print JSON")

    status = sub.add_parser("status", help="the running daemon's counters")
    status.add_argument("--socket", default=control.DEFAULT_SOCKET, metavar="PATH")
    status.add_argument("--json", action="store_true", help="print JSON")

    clean = sub.add_parser("clean", help="remove every marker nftables table and state here (after a crash)")
    clean.add_argument("--socket", default=control.DEFAULT_SOCKET, metavar="PATH")
    clean.add_argument("--np-api", default=None, metavar="PATH", help="stale named pipe to remove")
    clean.add_argument("--json", action="store_true", help="print JSON")

    send = sub.add_parser("send", help="generate a marked flow itself (socket flow-label manager, no nftables)")
    _common(send)
    for name, what in (("protocol", "tcp or udp"), ("src", "source address"), ("src_port", "source port"),
                       ("dst", "destination address"), ("dst_port", "destination port"),
                       ("experiment", "experiment name or id"), ("activity", "activity name or id")):
        send.add_argument(name, help=what)
    send.add_argument("--seconds", type=float, default=5.0, help="how long to send (default 5)")
    send.add_argument("--rate", default="10M", help="bits/s, K/M/G suffix, 0 = as fast as possible (default 10M)")
    send.add_argument("--ongoing", type=float, default=0.0, metavar="SECONDS", help="ongoing firefly interval")
    send.add_argument("--collector", action="append", type=_collector, default=[], metavar="HOST[:PORT]")
    send.add_argument("--allow-unregistered", action="store_true")
    send.add_argument("--exthdr", choices=list(EXTHDR_STRATEGIES),
                      help="also carry the tag in an IPv6 extension-header option, as flowd-go's strategy "
                           "of that name (needs CAP_NET_RAW)")

    label = sub.add_parser("label", help="print the flow label for an experiment and activity")
    _common(label)
    label.add_argument("experiment")
    label.add_argument("activity")
    label.add_argument("--entropy", type=int, default=0, help="5-bit entropy (default 0)")
    return parser


def _registry(path: str | None):  # noqa: ANN202 - Registry, imported lazily
    from marker.daemon import load_registry

    return load_registry(path)


def _say(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print_json(data)
    else:
        print(text)


def cmd_run(args: argparse.Namespace) -> int:
    from marker.daemon import MarkerDaemon

    cfg = config_mod.load(args.config) if args.config else config_mod.MarkerConfig()
    for name in ("registry", "table", "control_socket"):
        if getattr(args, name, None):
            setattr(cfg, name, getattr(args, name))
    if args.np_api:
        cfg.np_api = args.np_api
    if args.no_np_api:
        cfg.np_api = None
    cfg.collectors += args.collector
    if args.no_destination_fireflies:
        cfg.fireflies_to_destination = False
    if args.ongoing is not None:
        if args.ongoing < 0:
            raise MarkerInputError("--ongoing must be >= 0")
        cfg.ongoing_interval = args.ongoing
    if args.allow_unregistered:
        cfg.allow_unregistered = True
    if args.poll_experiment or args.poll_activity:
        if not (args.poll_experiment and args.poll_activity):
            raise MarkerInputError("--poll-experiment and --poll-activity go together")
        cfg.poller = config_mod.PollerConfig(
            args.poll_experiment, args.poll_activity,
            config_mod.parse_ports(args.poll_ports or [], "--poll-ports"), args.poll_interval)
    MarkerDaemon(cfg, _registry(cfg.registry)).serve_forever()
    return OK


def cmd_flow(args: argparse.Namespace) -> int:
    if args.flow_command == "list":
        reply = control.request(args.socket, {"op": "list"})
        if args.json:
            print_json(reply.get("flows", []))
        else:
            print_table(["flow", "experiment", "activity", "label", "source", "since"],
                        [[f["flow"], f"{f['experiment']} ({f['experiment_id']})",
                          f"{f['activity']} ({f['activity_id']})", f["flow_label"] or "-", f["source"],
                          f["start_time"]] for f in reply.get("flows", [])])
        return OK
    state = args.flow_command
    use_daemon = not args.standalone and (args.daemon or control.daemon_alive(args.socket))
    if use_daemon:
        reply = control.request(args.socket, {
            "op": "flow", "state": state, "protocol": args.protocol, "src": args.src,
            "src_port": args.src_port, "dst": args.dst, "dst_port": args.dst_port,
            "experiment": args.experiment, "activity": args.activity})
        _say(args, reply, ("marker: " if reply.get("ok") else "marker: error: ") + str(reply.get("message")))
        if reply.get("ok"):
            return OK
        return USAGE if reply.get("bad_input") else FAILURE
    registry = _registry(args.registry)
    nft = Nft(args.table)
    sender = FireflySender(args.collector)
    try:
        if state == "start":
            req = make_request(registry, "start", args.protocol, args.src, args.src_port, args.dst,
                               args.dst_port, args.experiment, args.activity,
                               allow_unregistered=args.allow_unregistered)
            outcome = standalone.start(req, nft, sender)
        else:
            key = make_key(args.protocol, args.src, args.src_port, args.dst, args.dst_port)
            tag = None
            if args.experiment is not None and args.activity is not None:
                tag = resolve_tag(registry, args.experiment, args.activity,
                                  allow_unregistered=args.allow_unregistered)
            outcome = standalone.end(key, tag, nft, sender)
    finally:
        sender.close()
    data = {"ok": outcome.ok, "message": outcome.message}
    if outcome.flow is not None:
        data["flow"] = outcome.flow.as_dict()
    _say(args, data, "marker: " + outcome.message)
    return OK


def cmd_status(args: argparse.Namespace) -> int:
    reply = control.request(args.socket, {"op": "status"})
    if args.json:
        print_json(reply)
    else:
        print(f"marker daemon on {args.socket}: {reply.get('flows')} active flow(s), table ip6 "
              f"{reply.get('table')}, np_api {reply.get('np_api') or 'off'}, registry {reply.get('registry')}")
        counters = reply.get("counters", {})
        fireflies = reply.get("fireflies", {})
        nft_stats = {k: v for k, v in reply.get("nftables", {}).items() if k != "layout"}
        print_table(["counter", "value"], sorted(counters.items())
                    + [("fireflies_sent", fireflies.get("sent", 0)),
                       ("firefly_send_errors", fireflies.get("errors", 0))] + sorted(nft_stats.items()))
    return OK


def cmd_clean(args: argparse.Namespace) -> int:
    from pathlib import Path

    from marker.npapi import DEFAULT_PIPE

    if control.daemon_alive(args.socket):
        raise MarkerInputError(f"a marker daemon is running on {args.socket}: stop it first "
                               "(it removes its rules when it stops)")
    tables = Nft().clean_all()
    flows = standalone.forget_all()
    removed = []
    for path in (Path(args.socket), Path(args.np_api or DEFAULT_PIPE)):
        if path.exists() and not path.is_file() and not path.is_dir():
            path.unlink()
            removed.append(str(path))
    data = {"ok": True, "tables": tables, "flow_files": flows, "removed": removed}
    _say(args, data, f"marker: removed table(s) {', '.join(tables) or 'none'}, "
                     f"{len(flows)} flow record(s), {', '.join(removed) or 'no stale socket/pipe'}")
    return OK


def cmd_label(args: argparse.Namespace) -> int:
    tag = resolve_tag(_registry(args.registry), args.experiment, args.activity)
    label = flowlabel.encode_label(tag.experiment_id, tag.activity_id, args.entropy)
    data = {"experiment_id": tag.experiment_id, "experiment": tag.experiment_name,
            "activity_id": tag.activity_id, "activity": tag.activity_name,
            "flow_label": label, "flow_label_hex": f"0x{label:05x}",
            "scitag": flowlabel.scitag_value(tag.experiment_id, tag.activity_id)}
    _say(args, data, f"{tag}: flow label 0x{label:05x} ({label}); protocol scitag value {data['scitag']}")
    return OK


def _rate(text: str) -> float:
    units = {"k": 1e3, "m": 1e6, "g": 1e9}
    text = text.strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise MarkerInputError(f"bad --rate {text!r} (e.g. 10M, 500K, 0)") from None


def cmd_send(args: argparse.Namespace) -> int:
    import socket as socket_mod

    from marker.manager import FlowManager
    from marker.socketlabel import ExtHdrMarking, labelled_socket, send_for

    rate = _rate(args.rate)
    req = make_request(_registry(args.registry), "start", args.protocol, args.src, args.src_port, args.dst,
                       args.dst_port, args.experiment, args.activity, source="send",
                       allow_unregistered=args.allow_unregistered)
    exthdr = None
    if args.exthdr:
        if req.key.afi != 6:
            raise MarkerInputError("--exthdr: extension headers are IPv6 only")
        exthdr = ExtHdrMarking(args.exthdr, req.tag.experiment_id, req.tag.activity_id)
    manager = FlowManager(None, FireflySender(args.collector), ongoing_interval=args.ongoing)
    outcome = manager.handle(req)
    if not outcome.ok or outcome.flow is None:
        raise MarkerInputError(outcome.message)
    manager.start_ongoing()
    try:
        if outcome.flow.label is not None:
            sock = labelled_socket(req.key, outcome.flow.label, exthdr)
        else:  # IPv4: no label, fireflies only
            kind = socket_mod.SOCK_STREAM if req.key.protocol == "tcp" else socket_mod.SOCK_DGRAM
            sock = socket_mod.socket(socket_mod.AF_INET, kind)
            sock.setsockopt(socket_mod.SOL_SOCKET, socket_mod.SO_REUSEADDR, 1)
            sock.bind((str(req.key.src), req.key.src_port))
            sock.connect((str(req.key.dst), req.key.dst_port))
        with sock:
            sent = send_for(sock, args.seconds, rate)
    finally:
        manager.stop()  # end firefly
    data = {"ok": True, "flow": outcome.flow.as_dict(), "sent_bytes": sent, "seconds": args.seconds,
            "exthdr": args.exthdr}
    how = f" (and a {args.exthdr} extension-header option)" if args.exthdr else ""
    _say(args, data, f"marker: {outcome.message}{how}; sent {sent} bytes in {args.seconds:g}s")
    return OK


COMMANDS = {"send": cmd_send, "run": cmd_run, "flow": cmd_flow, "status": cmd_status, "clean": cmd_clean, "label": cmd_label}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s marker %(levelname)s %(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except (MarkerInputError, flowlabel.TagRangeError, RegistryError) as exc:
        print(f"marker: error: {exc}", file=sys.stderr)
        return USAGE
    except (NftError, control.ControlError, OSError) as exc:
        print(f"marker: error: {exc}", file=sys.stderr)
        return FAILURE


if __name__ == "__main__":
    sys.exit(main())
