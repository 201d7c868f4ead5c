"""One flow without a daemon: `marker flow start` installs the rule and sends the start
firefly, `marker flow end` removes it and sends the end firefly.

What the end needs (tag, label, start time) is kept in a small JSON file per flow under
<state dir>/marker/flows/, tagged with the network namespace it belongs to, so `marker clean`
in a namespace only forgets that namespace's flows. No ongoing fireflies in this mode.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from marker.fireflies import FireflySender, utcnow
from marker.flows import FlowKey, FlowRequest, MarkerInputError, Tag
from marker.manager import ActiveFlow, Outcome
from marker.nftables import Nft
from scitags_core import flowlabel
from scitags_core.paths import state_dir

SUBDIR = Path("marker") / "flows"


def netns_id() -> str:
    """Identity of this process's network namespace (inode of /proc/self/ns/net)."""
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return "unknown"


def flows_dir() -> Path:
    return state_dir() / SUBDIR


def _path(key: FlowKey) -> Path:
    return flows_dir() / (key.ident.replace(":", "_") + ".json")


def _save(flow: ActiveFlow, table: str) -> None:
    path = _path(flow.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"netns": netns_id(), "table": table, "experiment_id": flow.tag.experiment_id,
           "activity_id": flow.tag.activity_id, "experiment": flow.tag.experiment_name,
           "activity": flow.tag.activity_name, "label": flow.label,
           "start_time": flow.start_time.isoformat(), "flow": flow.key.ident}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(path)


def _load(key: FlowKey) -> dict[str, Any] | None:
    try:
        doc = json.loads(_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if doc.get("netns") == netns_id() else None


def start(req: FlowRequest, nft: Nft, sender: FireflySender) -> Outcome:
    label = None
    if req.key.afi == 6:
        label = flowlabel.encode_label(req.tag.experiment_id, req.tag.activity_id)
        nft.mark(req.key, label)
    flow = ActiveFlow(req.key, req.tag, label, utcnow(), "cli")
    _save(flow, nft.table)
    sent = sender.send("start", req.key, req.tag, start_time=flow.start_time)
    how = f"label 0x{label:05x}" if label is not None else "IPv4: fireflies only, no packet marking"
    return Outcome(True, f"started {req.key} {req.tag}: {how} ({sent} firefly datagram(s) sent)", flow)


def end(key: FlowKey, tag: Tag | None, nft: Nft, sender: FireflySender) -> Outcome:
    doc = _load(key)
    if doc is None and tag is None:
        raise MarkerInputError(f"no flow {key} started here; give the experiment and activity to send its end")
    if doc is not None:
        tag = Tag(doc["experiment_id"], doc["activity_id"], doc.get("experiment"), doc.get("activity"))
        start_time = dt.datetime.fromisoformat(doc["start_time"])
    else:
        start_time = utcnow()
    assert tag is not None
    removed = nft.unmark(key) if key.afi == 6 else False
    if removed and nft.marked_count() == 0:
        nft.drop_table()  # the last standalone flow leaves nothing behind
    _path(key).unlink(missing_ok=True)
    sent = sender.send("end", key, tag, start_time=start_time, end_time=utcnow())
    return Outcome(True, f"ended {key} {tag}: rule {'removed' if removed else 'absent'} "
                         f"({sent} firefly datagram(s) sent)")


def forget_all() -> list[str]:
    """Delete this namespace's flow files (after `marker clean` dropped the rules)."""
    gone = []
    directory = flows_dir()
    if not directory.is_dir():
        return gone
    me = netns_id()
    for path in directory.glob("*.json"):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {"netns": me}  # unreadable: ours to clean
        if doc.get("netns") == me:
            path.unlink(missing_ok=True)
            gone.append(path.stem)
    return gone
