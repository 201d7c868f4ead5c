"""Fireflies byte for byte as the deployed senders build them (SPEC.md "What the real
senders put on the wire"), for the interoperability tests and the benchmarks.

- flowd-go 2.4 (types/firefly.go): Go's encoding/json on the Firefly struct: compact, the
  struct's field order (state, current-time (omitempty), start-time, end-time (omitempty));
  HTML characters escaped as \\u003c; times in TIME_FORMAT "2006-01-02T15:04:05.999999-07:00"
  (trailing zeros of the fraction dropped, "+00:00"); current-time only on `ongoing`; the
  np plugin's `end` has "start-time": ""; prependSyslog off = the bare JSON, on = the
  SYSLOG_HEADER with CurrentTime as TIMESTAMP (empty for start/end: two spaces). APP-NAME is
  "flowd-go-<version>" (Makefile ldflags), the application too.
- XRootD (src/XrdNet/XrdNetPMarkFF.cc ffFmt0/1/2): "<134>1 - HOST xrootd - firefly-json - ",
  lifecycle state/current-time/start-time[/end-time], then `context`, then `flow-id`; two
  datagrams per event, client->server first, then server->client (addresses and ports
  swapped).
- dCache: times ending in Z, HOSTNAME = the sender's IP address, `start` with "usage": {},
  an extra top-level "storage-stats" member.
The Python reference (flowd 1.1.7) is not transcribed: the tests run its own code.
"""
from __future__ import annotations

import datetime as dt
import json

FLOWD_GO_APP = "flowd-go-v2.4.2"
XROOTD_APP = "xrootd 5.8.1"
DCACHE_APP = "dCache 10.2.5"


def go_time(value: dt.datetime) -> str:
    """Go's Format("2006-01-02T15:04:05.999999-07:00")."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += (".%06d" % value.microsecond).rstrip("0")
    offset = value.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def go_string(value: str) -> str:
    """A JSON string as Go's json.Marshal writes it (HTML-safe escaping)."""
    text = json.dumps(value, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def flowd_go(state: str, src: str, src_port: int, dst: str, dst_port: int, experiment: int,
             activity: int, *, start: dt.datetime | None = None, end: dt.datetime | None = None,
             now: dt.datetime | None = None, application: str = FLOWD_GO_APP,
             prepend_syslog: bool = False, hostname: str = "dtn1.example.org",
             skops: dict | None = None, netlink: dict | None = None) -> bytes:
    """One flowd-go firefly (NewFirefly + Payload). `start` None gives "start-time": ""."""
    afi = "ipv6" if ":" in src else "ipv4"
    current = go_time(now or dt.datetime.now(dt.timezone.utc)) if state == "ongoing" else ""
    life = '{"state":' + go_string(state)
    if current:
        life += ',"current-time":' + go_string(current)
    life += ',"start-time":' + go_string(go_time(start) if start else "")
    if end is not None:
        life += ',"end-time":' + go_string(go_time(end))
    life += "}"
    body = ('{"version":1,"flow-lifecycle":' + life
            + ',"flow-id":{"afi":"' + afi + '","src-ip":' + go_string(src) + ',"dst-ip":'
            + go_string(dst) + ',"protocol":"tcp","src-port":' + str(src_port)
            + ',"dst-port":' + str(dst_port) + '}'
            + ',"context":{"experiment-id":' + str(experiment) + ',"activity-id":' + str(activity)
            + ',"application":' + go_string(application) + '}')
    if netlink is not None:
        body += ',"netlink":' + json.dumps(netlink, separators=(",", ":"), sort_keys=True)
    if skops is not None:  # a Go map: keys sorted
        body += ',"skOps":' + json.dumps(skops, separators=(",", ":"), sort_keys=True)
    body += "}"
    if prepend_syslog:
        body = f"<134>1 {current} {hostname} {FLOWD_GO_APP} - firefly-json - " + body
    return body.encode()


def xrootd_utc(value: dt.datetime) -> str:
    """XrdNetPMarkFF::getUTC: strftime("%FT%T") + ".%06u+00:00"."""
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + ".%06d+00:00" % value.microsecond


def xrootd_pair(state: str, client: str, client_port: int, server: str, server_port: int,
                experiment: int, activity: int, *, start: dt.datetime, now: dt.datetime,
                host: str = "xrd1.example.org", application: str = XROOTD_APP) -> list[bytes]:
    """The two datagrams XRootD's Emit() sends for one event (client->server, then swapped)."""
    afi = "6" if ":" in client else "4"
    head = (f"<134>1 - {host} xrootd - firefly-json - "
            '{"version":1,"flow-lifecycle":{"state":"%s","current-time":"%s","start-time":"%s"%s},'
            % (state, xrootd_utc(now), xrootd_utc(start),
               ',"end-time":"%s"' % xrootd_utc(now) if state == "end" else ""))
    context = ('"context":{"experiment-id":%d,"activity-id":%d,"application":"%s"},'
               % (experiment, activity, application))

    def flow_id(src: str, dst: str, sport: int, dport: int) -> str:
        return ('"flow-id":{"afi":"ipv%s","src-ip":"%s","dst-ip":"%s","protocol":"tcp",'
                '"src-port":%d,"dst-port":%d}}' % (afi, src, dst, sport, dport))

    return [(head + context + flow_id(client, server, client_port, server_port)).encode(),
            (head + context + flow_id(server, client, server_port, client_port)).encode()]


def dcache(state: str, src: str, src_port: int, dst: str, dst_port: int, experiment: int,
           activity: int, *, start: dt.datetime, now: dt.datetime, sender_ip: str,
           application: str = DCACHE_APP) -> bytes:
    """dCache's shape: Z times, the sender's address as HOSTNAME, usage {} on start,
    a storage-stats member."""
    def z(value: dt.datetime) -> str:
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    lifecycle = {"state": state, "start-time": z(start), "current-time": z(now)}
    if state == "end":
        lifecycle["end-time"] = z(now)
    doc = {"version": 1, "flow-lifecycle": lifecycle,
           "flow-id": {"afi": "ipv6" if ":" in src else "ipv4", "src-ip": src, "dst-ip": dst,
                       "protocol": "tcp", "src-port": src_port, "dst-port": dst_port},
           "context": {"experiment-id": experiment, "activity-id": activity,
                       "application": application},
           "usage": {} if state == "start" else {"received": 0, "sent": 1_234_567},
           "storage-stats": {"pool": "pool-a", "transferred": 0 if state == "start" else 1_234_567}}
    return (f"<134>1 {z(now)} {sender_ip} dCache - firefly-json - "
            + json.dumps(doc, separators=(",", ":"))).encode()
