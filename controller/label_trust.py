"""The flow-label trust scope: the source prefixes whose IPv6 flow labels are tags.

Linux gives every unmarked IPv6 flow a random-looking label (net.ipv6.auto_flowlabels=1), so a
label is a tag only where the operator says the senders mark: `--trust-labels-from PREFIX`
(repeatable), YAML `trust_labels_from:`, or per switch `trust_labels_from:` in the topology
(overriding the global one; `[]` there: no scope on that switch). The switch matches the
packet's *source* address (label_trust, LPM): the return direction of a marked transfer (ACKs
from the remote data node) carries the remote kernel's label, not a tag, so matching the
destination would count random labels as the local site's experiments. Extension-header tags
and firefly-declared flows are tags wherever they come from; the scope applies to labels only.

Without a scope every label is counted as a tag, as before, and the CLI, API and /metrics say
that the label counts are unverified.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Mapping

Scope = tuple[str, ...] | None  # None: no scope (every label trusted)


def parse_scope(value: Any, where: str) -> Scope:
    """Normalized IPv6 prefixes of a `trust_labels_from` value (a prefix or a list of them);
    None when not given. ValueError names `where`, the bad value and the cause."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{where}: must be a prefix or a list of prefixes, got {value!r}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{where}: {item!r} is not a prefix (write it as a string)")
        try:
            net = ipaddress.ip_network(item.strip(), strict=True)
        except ValueError as exc:
            raise ValueError(f"{where}: {item!r} is not a valid prefix: {exc}") from None
        if net.version != 6:
            raise ValueError(f"{where}: {item!r} is IPv4: flow labels exist only in IPv6")
        if str(net) not in out:
            out.append(str(net))
    return tuple(out)


def switch_scopes(global_scope: Scope, switches: Mapping[str, Any], source: str) -> dict[str, Scope]:
    """Scope per switch: its topology entry's `trust_labels_from` (spec.options), else the
    global one. ValueError names the topology file and the switch."""
    out: dict[str, Scope] = {}
    for name, spec in switches.items():
        options = getattr(spec, "options", {}) or {}
        if "trust_labels_from" in options:
            raw = options["trust_labels_from"]
            out[name] = parse_scope(raw if raw is not None else [],
                                    f"{source}: switch {name}: trust_labels_from")
        else:
            out[name] = global_scope
    return out


def verified(scope: Scope, enforced: bool) -> bool:
    """The switch's label counts come from trusted senders only."""
    return bool(scope) and enforced


def status(scopes: Mapping[str, Scope], drivers: Mapping[str, Any]) -> dict:
    """/api/v1/status["label_trust"] and the counters' header: per switch the scope and
    whether its label counts are verified."""
    per_switch = {}
    for name, scope in scopes.items():
        enforced = bool(getattr(drivers.get(name), "enforces_label_trust", False))
        has_table = getattr(drivers.get(name), "has_table", None)
        if enforced and has_table is not None:
            enforced = has_table("ScitagsIngress.label_trust")
        per_switch[name] = {"trust_labels_from": list(scope) if scope else [],
                            "enforced": bool(scope) and enforced,
                            "label_counts": "verified" if verified(scope, enforced) else "unverified"}
    configured = any(s["trust_labels_from"] for s in per_switch.values())
    unverified = sorted(n for n, s in per_switch.items() if s["label_counts"] == "unverified")
    return {"configured": configured, "label_counts": "unverified" if unverified else "verified",
            "unverified_switches": unverified, "switches": per_switch}
