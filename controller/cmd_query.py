"""`controller counters` / `controller history` / `controller flows` / `controller status`:
ask the running controller through its local HTTP API."""
from __future__ import annotations

import argparse
import csv
import sys
import json
import time
import urllib.error
import urllib.parse
import urllib.request

from controller.errors import ExitCode, UsageError
from controller.output import print_json, print_table
from controller.windows import WHEN_FORMS, WindowError, iso, parse_duration, parse_window
from controller.api_auth import client_headers

DEFAULT_API = "127.0.0.1:9180"


class ApiUnavailable(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code  # the HTTP status, when the API answered


class BadRequest(ApiUnavailable):
    """HTTP 400: the API refused the question (bad input: exit 2)."""


def api_get(api: str, path: str, params: dict | None = None, timeout: float = 10.0) -> dict:
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
    base = api if api.startswith("http") else f"http://{api}"
    url = f"{base}{path}" + (f"?{query}" if query else "")
    try:
        req = urllib.request.Request(url, headers=client_headers())  # $SCITAGS_API_TOKEN_FILE
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - local API
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        if exc.code == 400:
            try:
                body = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                pass
            raise BadRequest(body, 400) from None
        raise ApiUnavailable(f"{url}: HTTP {exc.code}: {body}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiUnavailable(f"no controller API at {base} ({reason}); is `controller start` running?") from None


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}P"


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("counters", help="packets, bytes and rate per experiment and activity",
                       description="Counts from the running controller, per switch, experiment, "
                       "activity and source (flowlabel tag / exthdr option / untrusted-label / firefly flow), "
                       "plus the buckets; BACKGROUND: the estimated random-label bytes in a flowlabel "
                       "row, CONFIRMED: its bytes on firefly flows that declared the same tag.")
    c.add_argument("--switch", help="only this switch")
    c.add_argument("--experiment", help="only this experiment (name or id)")
    c.add_argument("--activity", help="only this activity (name or id)")
    c.add_argument("--since", metavar="WHEN", help=f"only what was counted since WHEN ({WHEN_FORMS}; "
                   "in the controller host's time zone)")
    c.add_argument("--until", metavar="WHEN", help="with --since: until WHEN (default now)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--api", default=DEFAULT_API, help=f"controller API HOST:PORT (default {DEFAULT_API})")
    c.set_defaults(func=run_counters)

    h = sub.add_parser("history", help="packets and bytes per time step over a window",
                       description="Series per switch, source, experiment and activity (names as "
                       "they were at each step) and per bucket, from the controller's history; "
                       "steps without traffic are not listed; GAP lines: no controller was running.")
    h.add_argument("--switch", help="only this switch")
    h.add_argument("--experiment", help="only this experiment (name or id)")
    h.add_argument("--activity", help="only this activity (name or id)")
    h.add_argument("--source", help="only this source (flowlabel, exthdr, untrusted-label, "
                   "firefly, confirmed, bucket)")
    h.add_argument("--since", metavar="WHEN", required=True, help=f"start ({WHEN_FORMS})")
    h.add_argument("--until", metavar="WHEN", help="end (default now)")
    h.add_argument("--step", metavar="DURATION", help="step length, e.g. 5m (a multiple of the "
                   "fine step; default: at most 720 points)")
    out = h.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the API's answer (/api/v1/history)")
    out.add_argument("--csv", action="store_true", help="one line per point: time,epoch,switch,"
                     "source,experiment,activity,packets,bytes")
    h.add_argument("--api", default=DEFAULT_API, help=f"controller API HOST:PORT (default {DEFAULT_API})")
    h.set_defaults(func=run_history)

    f = sub.add_parser("flows", help="live and recent firefly flows with their bytes")
    f.add_argument("--recent", type=int, default=20, help="how many ended flows to show (default 20)")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    f.add_argument("--api", default=DEFAULT_API, help=f"controller API HOST:PORT (default {DEFAULT_API})")
    f.set_defaults(func=run_flows)

    s = sub.add_parser("status", help="switches, registry and firefly protection of the running controller")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--api", default=DEFAULT_API, help=f"controller API HOST:PORT (default {DEFAULT_API})")
    s.set_defaults(func=run_status)


def _query(args: argparse.Namespace, path: str, params: dict | None = None) -> dict | None:
    """The API's answer, or None after printing why there is none (a bad question: exit 2)."""
    try:
        return api_get(args.api, path, params)
    except BadRequest as exc:
        raise UsageError(str(exc)) from None
    except ApiUnavailable as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return None


def _check_window(since: str | None, until: str | None) -> None:
    """The WHENs' form, before asking (the controller answers in its own clock and zone)."""
    if since is None and until is None:
        return
    try:
        parse_window(since, until, time.time())
    except WindowError as exc:
        raise UsageError(str(exc)) from None


def window_line(data: dict) -> str:
    """The header of a window's answer: its bounds (whole steps), zone and gaps."""
    line = f"window {data['since']} .. {data['until']} (controller host's time zone: {data['timezone']})"
    for a, b in data.get("gaps") or []:
        line += f"\nGAP {iso(a)} .. {iso(b)}: no controller was running (counts unknown)"
    return line


def run_counters(args: argparse.Namespace) -> int:
    _check_window(args.since, args.until)
    data = _query(args, "/api/v1/counters", {"switch": args.switch, "experiment": args.experiment,
                                             "activity": args.activity, "since": args.since,
                                             "until": args.until})
    if data is None:
        return ExitCode.FAILURE
    rows = data["counters"]
    if args.json:  # a window: {since, until, timezone, gaps, counters}; else the rows
        print_json({k: data[k] for k in ("since", "until", "timezone", "gaps", "counters")}
                   if "since" in data else rows)
        return ExitCode.OK
    if "since" in data:
        print(window_line(data))
    print(label_trust_line(data.get("label_trust")))
    if not rows:
        print("no traffic counted yet" + (" (for these filters)" if args.switch or args.experiment
                                          or args.activity else ""))
        return ExitCode.OK
    table = []
    for r in rows:
        if r["source"] == "bucket":
            what = ("(bucket)", r["bucket"], "")
        else:
            exp = f"{r['experiment']} ({r['experiment_id']})"
            act = r["activity"] if r["activity_id"] is None else f"{r['activity']} ({r['activity_id']})"
            what = (exp, act, r["source"])
        bg = r.get("background_bytes")
        table.append([r["switch"], *what, r["packets"], r["bytes"],
                      "" if bg is None else _human(bg),
                      _human(r["confirmed_bytes"]) if "confirmed_bytes" in r else "",
                      _human(r["rate_bps"]) + "b/s", r["registry"]])
    print_table(["SWITCH", "EXPERIMENT", "ACTIVITY", "SOURCE", "PACKETS", "BYTES", "BACKGROUND",
                 "CONFIRMED", "RATE", "REGISTRY"], table)
    return ExitCode.OK


def run_history(args: argparse.Namespace) -> int:
    _check_window(args.since, args.until)
    if args.step:
        try:
            parse_duration(args.step, "--step")
        except WindowError as exc:
            raise UsageError(str(exc)) from None
    data = _query(args, "/api/v1/history", {
        "since": args.since, "until": args.until, "step": args.step, "switch": args.switch,
        "experiment": args.experiment, "activity": args.activity, "source": args.source})
    if data is None:
        return ExitCode.FAILURE
    if args.json:
        print_json(data)
        return ExitCode.OK
    lines = [(s["switch"], s["source"], s["experiment"], s["activity"], p) for s in data["series"]
             for p in s["points"]]
    lines += [(b["switch"], "bucket", b["bucket"], "", p) for b in data["buckets"] for p in b["points"]]
    lines.sort(key=lambda x: (x[4][0], x[:4]))
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["time", "epoch", "switch", "source", "experiment", "activity", "packets", "bytes"])
        for sw, src, exp, act, (t, p, b) in lines:
            writer.writerow([iso(t), t, sw, src, exp, act, p, b])
        return ExitCode.OK
    print(window_line(data) + f"\nstep {data['step_s']} s")
    if not lines:
        print("no traffic in this window" + (" (for these filters)" if args.switch or args.experiment
                                             or args.activity or args.source else ""))
        return ExitCode.OK
    print_table(["TIME", "SWITCH", "SOURCE", "EXPERIMENT", "ACTIVITY", "PACKETS", "BYTES"],
                [[iso(t), sw, src, exp, act, p, b] for sw, src, exp, act, (t, p, b) in lines])
    return ExitCode.OK


def label_trust_line(trust: dict | None) -> str:
    """The counters' header: whether flow-label counts come from a trust scope."""
    if trust is None:
        return "label counts: unverified (the controller does not report a trust scope)"
    if trust["label_counts"] == "verified":
        scopes = sorted({p for s in trust["switches"].values() for p in s["trust_labels_from"]})
        return f"label counts: verified (flow labels trusted only from {', '.join(scopes)})"
    where = ", ".join(trust["unverified_switches"])
    return (f"label counts: UNVERIFIED on {where}: no trust scope (--trust-labels-from), any random "
            f"kernel flow label may be counted; BACKGROUND estimates it (bytes)")


def run_flows(args: argparse.Namespace) -> int:
    data = _query(args, "/api/v1/flows", {"recent": args.recent})
    if data is None:
        return ExitCode.FAILURE
    if args.json:
        print_json(data)
        return ExitCode.OK
    now = time.time()
    rows = []
    for f in data["live"]:
        rows.append(["live", f["flow"], f"{f['experiment_name'] or '?'}/{f['activity_name'] or '?'}",
                     f["state"], ",".join(f["installed_on"]), f["packets"], f["bytes"],
                     f"{now - f['last_seen']:.0f}s ago"])
    for f in data["recent"]:
        rows.append([f"ended:{f['end_reason']}", f["flow"],
                     f"{f['experiment_name'] or '?'}/{f['activity_name'] or '?'}", "end",
                     ",".join(sorted(f["per_switch"])), f["packets"], f["bytes"],
                     f"{now - f['ended']:.0f}s ago"])
    print_table(["STATUS", "FLOW", "EXPERIMENT/ACTIVITY", "STATE", "SWITCHES", "PACKETS", "BYTES", "SEEN"], rows)
    return ExitCode.OK


def _repairs(switch: dict) -> str:
    """Drift repaired by the periodic reconcile, by kind/change ("-" when none)."""
    repairs = (switch.get("reconcile") or {}).get("repairs") or {}
    return ", ".join(f"{k} {n}" for k, n in repairs.items()) or "-"


def run_status(args: argparse.Namespace) -> int:
    data = _query(args, "/api/v1/status")
    if data is None:
        return ExitCode.FAILURE
    if args.json:
        print_json(data)
        return ExitCode.OK
    reg = data.get("registry") or {}
    print(f"registry {reg.get('identity')} ({reg.get('tags')} tag rules), {data['flows_live']} live flows")
    print(label_trust_line(data.get("label_trust")))
    print_table(["SWITCH", "STATUS", "PRIMARY", "SYNCS", "PUSHES", "RECONCILES", "REPAIRS", "ERROR"],
                [[n, s["status"], s["primary"], s["syncs"], s["pipeline_pushes"],
                  (s.get("reconcile") or {}).get("passes", ""), _repairs(s), s["error"] or ""]
                 for n, s in data["switches"].items()])
    ff = data["fireflies"]
    refused = ", ".join(f"{k} {v}" for k, v in ff["refused"].items() if v) or "none"
    print(f"fireflies accepted {ff['accepted']}, refused: {refused}")
    return ExitCode.OK
