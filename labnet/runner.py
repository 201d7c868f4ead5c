"""Entry point of lab/run.py and lab/demo.py: checks, lab, controller, then the CLI
or the scripted demo. Exit codes: 0 ok, 2 bad usage / missing prerequisite, 1 failure."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from labnet.progress import Say, reporter

DEMO_DOC = """The scitags-p4 Mininet demo: default topology, controller, a marked IPv6 transfer for
two experiments, an IPv4 transfer described by fireflies only, unmarked traffic, then the
operator's counters table. Exit 0 when the counters show what was sent."""
RUN_DOC = """Run a topology in Mininet with P4 target switches (softswitch or BMv2) and open the
Mininet CLI; everything is removed on exit, also after Ctrl-C."""

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOPOLOGY = ROOT / "topologies" / "single.yaml"


def prerequisites(switch: str, need_traffic: bool) -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (Mininet needs network namespaces): run with sudo")
    for tool in ("ip",) + (("iperf3", "nft") if need_traffic else ()):
        if shutil.which(tool) is None:
            missing.append(f"{tool} not on PATH")
    from labnet.controller_proc import program_dir

    for name in ("scitags.json", "scitags.p4info.txtpb"):
        if not (program_dir() / name).exists():
            missing.append(f"compiled P4 program {program_dir() / name} (run `make p4`)")
    if switch == "soft" and not Path(sys.executable).with_name("softswitch").exists() \
            and shutil.which("softswitch") is None:
        missing.append("the softswitch console script (run the README setup)")
    return missing


def build_parser(demo: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab/demo.py" if demo else "lab/run.py",
                                description=DEMO_DOC if demo else RUN_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topology", default=str(DEFAULT_TOPOLOGY), help="topology YAML (default single.yaml)")
    p.add_argument("--switch", default=os.environ.get("SWITCH") or "auto", choices=["auto", "soft", "bmv2"],
                   help="P4 target: auto = BMv2 when installed, else the built-in softswitch "
                        "(default: $SWITCH or auto)")
    p.add_argument("--api", default="127.0.0.1:9180", help="controller API address")
    p.add_argument("--mirror", action="append", default=None, metavar="EXP[/ACT]",
                   help="tags mirrored to the monitor port (default: cms)")
    if demo:
        p.add_argument("--interactive", action="store_true",
                       help="after the demo, leave the Mininet CLI open with the controller running")
        p.add_argument("--seconds", type=float, default=3.0, help="length of each transfer (default 3)")
        p.add_argument("--rate", default="8M", help="iperf3 rate per transfer (default 8M)")
    else:
        p.add_argument("--controller", action="store_true", help="start the controller too")
        p.add_argument("--no-cli", action="store_true", help="start, report, stop (a smoke test)")
    return p


def main(argv: Sequence[str], *, demo: bool) -> int:
    say = reporter("demo" if demo else "lab")
    args = build_parser(demo).parse_args(argv)
    from controller.topology import TopologyError, load_topology
    from labnet.switches import pick_switch

    try:
        topology = load_topology(args.topology)
    except (TopologyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    switch = pick_switch(args.switch)
    with_controller = demo or args.controller
    missing = prerequisites(switch, need_traffic=demo) if with_controller else \
        ([] if os.geteuid() == 0 else ["root"])
    if missing:
        print("error: missing prerequisites:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2

    from labnet.controller_proc import ControllerProcess, ControllerStartError
    from labnet.network import Lab, LabError
    from labnet.switches import SwitchStartError
    from labnet.traffic import TrafficError

    lab = Lab(topology, switch=switch)
    ctl = None
    target = "BMv2 simple_switch_grpc" if switch == "bmv2" else "the built-in softswitch"
    say(f"starting topology {topology.name!r} ({len(topology.switches)} switch(es), "
        f"{len(topology.hosts)} host(s)) with {target}; lab {lab.prefix}, logs {lab.log_dir}")
    try:
        lab.start()
        say("switches up: " + ", ".join(f"{n} (gRPC 127.0.0.1:{topology.switches[n].grpc_port})"
                                        for n in topology.switches))
        if with_controller:
            state = Path(tempfile.mkdtemp(prefix=f"labnet-{lab.prefix}-ctl-"))
            ctl = ControllerProcess(args.topology, switch, api=args.api, state_dir=state,
                                    log_path=lab.log_dir / "controller.log",
                                    mirror=args.mirror if args.mirror is not None else ["cms"])
            say(f"starting the controller (API http://{args.api}, log {ctl.log_path})")
            ctl.start()
            assert ctl.proc is not None
            lab.track("controller", ctl.proc.pid)
            say("controller programmed every switch")
        if demo:
            from labnet.demo import run_demo

            run_demo(lab, ctl, seconds=args.seconds, rate=args.rate, say=say)
            if args.interactive:
                _cli(lab, say)
        elif not args.no_cli:
            _cli(lab, say)
        else:
            say(f"switch processes alive: {lab.switches_alive()}")
        return 0
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        return 1
    except (LabError, SwitchStartError, ControllerStartError, TrafficError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if ctl is not None:
            ctl.stop()
        lab.stop()
        say("stopped: no namespace, veth or process left")


def _cli(lab: object, say: Say) -> None:
    from mininet.cli import CLI

    say("Mininet CLI (type 'exit' to stop everything); e.g. h1 ping -6 -c1 2001:db8:1::2")
    CLI(lab.net)  # type: ignore[attr-defined]
