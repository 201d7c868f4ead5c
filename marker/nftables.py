"""The marker's nftables table and the `nft` runner.

All marking lives in one table of its own (family ip6, default `scitags_marker`), in an
output-hook chain at mangle priority, so the marker never touches anyone else's ruleset and
`delete table` removes everything it ever added. Two layouts:
- `map` (default, marker.nftmap): one verdict-map lookup per packet, whatever the number of
  flows; each change is one nft transaction (all or nothing).
- `rules`: one rule per flow, found again by its comment; every packet walks them all. Kept
  as the baseline the benchmark measures the map against (bench/bench_marker.py).
A failed nft call raises NftError with nft's own message and is counted in `Nft.stats`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from marker import nftmap
from marker.flows import FlowKey

DEFAULT_TABLE = "scitags_marker"
TABLE_PREFIX = "scitags_marker"  # `marker clean` removes every table whose name starts so
CHAIN = "output"
COMMENT_PREFIX = nftmap.COMMENT_PREFIX  # one prefix for the comments of both layouts
NFT = "nft"


class NftError(RuntimeError):
    """nft failed or is missing; the message carries nft's own error text."""


def rule_comment(key: FlowKey) -> str:
    return COMMENT_PREFIX + key.ident


def rule_match(key: FlowKey) -> str:
    """nft match expression for packets this host sends in the flow."""
    if key.afi != 6:
        raise ValueError(f"flow-label marking is IPv6 only, not {key}")
    return (f"ip6 saddr {key.src} ip6 daddr {key.dst} "
            f"{key.protocol} sport {key.src_port} {key.protocol} dport {key.dst_port}")


def table_script(table: str = DEFAULT_TABLE) -> str:
    """Create the table and chain if missing (`add` is idempotent in nft)."""
    return (f"add table ip6 {table}\n"
            f"add chain ip6 {table} {CHAIN} "
            f"{{ type filter hook output priority mangle; policy accept; }}\n")


def add_rule_script(key: FlowKey, label: int, table: str = DEFAULT_TABLE) -> str:
    if not 0 <= label <= 0xFFFFF:
        raise ValueError(f"flow label {label} outside 0..0xFFFFF")
    return (table_script(table)
            + f'add rule ip6 {table} {CHAIN} {rule_match(key)} ip6 flowlabel set {label} '
              f'comment "{rule_comment(key)}"\n')


def delete_handles_script(handles: Sequence[int], table: str = DEFAULT_TABLE) -> str:
    return "".join(f"delete rule ip6 {table} {CHAIN} handle {h}\n" for h in handles)


@dataclass(frozen=True)
class MarkRule:
    """A marking rule read back from the kernel."""

    handle: int
    comment: str
    label: int | None

    @property
    def flow_ident(self) -> str | None:
        return self.comment[len(COMMENT_PREFIX):] if self.comment.startswith(COMMENT_PREFIX) else None


def parse_rules(nft_json: str) -> list[MarkRule]:
    """Marking rules in `nft -j list table` output."""
    rules = []
    for item in json.loads(nft_json).get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        label = None
        for expr in rule.get("expr", []):
            mangle = expr.get("mangle") if isinstance(expr, dict) else None
            if mangle and mangle.get("key", {}).get("payload", {}).get("field") == "flowlabel":
                label = mangle.get("value")
        rules.append(MarkRule(rule["handle"], rule.get("comment", ""), label))
    return rules


LAYOUTS = ("map", "rules")


class Nft:
    """Runs nft in this network namespace (or in a named one, for tests and labs).

    The map layout keeps a picture of the table (read from the kernel on first use, so a
    standalone `marker flow end` sees what an earlier process installed) and plans each
    change against it. When a transaction fails, the picture is thrown away and the change
    is planned once more against a fresh reading (another process may have changed the
    table); a second failure is raised. Nothing is half applied: nft -f is one transaction.
    """

    def __init__(self, table: str = DEFAULT_TABLE, *, netns: str | None = None, layout: str = "map") -> None:
        if not table.startswith(TABLE_PREFIX) or not table.replace("_", "").isalnum():
            raise ValueError(f"table name {table!r} must start with {TABLE_PREFIX!r} and be alphanumeric/_")
        if layout not in LAYOUTS:
            raise ValueError(f"nftables layout {layout!r} unknown ({', '.join(LAYOUTS)})")
        self.table = table
        self.netns = netns
        self.layout = layout
        self.stats: Counter[str] = Counter()  # nft_calls_total, nft_failures_total, nft_retries_total
        self._state: nftmap.MapState | None = None
        self._lock = threading.Lock()

    def _argv(self, *args: str) -> list[str]:
        base = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*base, NFT, *args]

    def _run(self, *args: str, script: str | None = None) -> str:
        if shutil.which(NFT) is None:
            raise NftError("nft not found on PATH (install nftables)")
        args = (*args, *(("-f", "-") if script is not None else ()))
        self.stats["nft_calls_total"] += 1
        try:
            proc = subprocess.run(self._argv(*args), input=script, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            self.stats["nft_failures_total"] += 1
            raise NftError(f"nft {' '.join(args)} timed out") from None
        if proc.returncode != 0:
            self.stats["nft_failures_total"] += 1
            raise NftError(f"nft {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
        return proc.stdout

    def table_exists(self) -> bool:
        out = self._run("-j", "list", "tables", "ip6")
        return any(item.get("table", {}).get("name") == self.table
                   for item in json.loads(out).get("nftables", []))

    def _listing(self) -> str | None:
        return self._run("-j", "list", "table", "ip6", self.table) if self.table_exists() else None

    # -- marking -------------------------------------------------------------------
    def rules(self) -> list[nftmap.Mark]:
        """The flows the kernel marks, read back from it."""
        listing = self._listing()
        if listing is None:
            return []
        if self.layout == "rules":
            return [nftmap.Mark(r.flow_ident, r.label) for r in parse_rules(listing)
                    if r.flow_ident is not None and r.label is not None]
        return nftmap.parse_state(listing, self.table, CHAIN).marks()

    def marked_count(self) -> int:
        """Flows marked now (the map layout answers from its picture of the table)."""
        if self.layout == "rules":
            return len(self.rules())
        with self._lock:
            return len(self._map_state().labels)

    def mark(self, key: FlowKey, label: int) -> None:
        """Install (or replace) the marking that sets `label` on the flow's packets."""
        self.mark_many([(key, label)])

    def unmark(self, key: FlowKey) -> bool:
        """Remove the flow's marking; False when there was none."""
        return self.unmark_many([key]) == 1

    def mark_many(self, items: Sequence[tuple[FlowKey, int]]) -> None:
        """Mark many flows in one transaction (the rules layout: old rules out, then new ones in)."""
        if self.layout == "rules":
            self.unmark_many([key for key, _ in items])
            self._run(script="".join(add_rule_script(key, label, self.table) for key, label in items))
            return
        self._apply_map(mark=items)

    def unmark_many(self, keys: Sequence[FlowKey]) -> int:
        """Unmark many flows in one transaction; how many were marked."""
        if self.layout == "rules":
            comments = {rule_comment(k) for k in keys}
            found = [r for r in parse_rules(self._listing() or "{}") if r.comment in comments]
            if found:
                self._run(script=delete_handles_script([r.handle for r in found], self.table))
            return len({r.comment for r in found})
        return self._apply_map(unmark=keys)

    def _map_state(self) -> nftmap.MapState:
        if self._state is None:
            listing = self._listing()
            self._state = nftmap.MapState() if listing is None else nftmap.parse_state(listing, self.table, CHAIN)
        return self._state

    def _apply_map(self, *, mark: Sequence[tuple[FlowKey, int]] = (), unmark: Sequence[FlowKey] = ()) -> int:
        with self._lock:
            for attempt in (1, 2):
                script, after, removed = nftmap.plan(self._map_state(), self.table, CHAIN, mark=mark, unmark=unmark)
                if not script:
                    return removed
                try:
                    self._run(script=script)
                except NftError:
                    self._state = None  # stale or not: read the kernel again before the next change
                    if attempt == 2:
                        raise
                    self.stats["nft_retries_total"] += 1
                    continue
                self._state = after
                return removed
        raise AssertionError("unreachable")

    # -- the table -----------------------------------------------------------------
    def drop_table(self) -> bool:
        """Delete the whole table (marker stop); False when it did not exist."""
        with self._lock:
            self._state = None
            if not self.table_exists():
                return False
            self._run(script=f"delete table ip6 {self.table}\n")
            return True

    def clean_all(self) -> list[str]:
        """Delete every marker table in this namespace (after a crash). Names returned."""
        with self._lock:
            self._state = None
            out = self._run("-j", "list", "tables", "ip6")
            names = [item["table"]["name"] for item in json.loads(out).get("nftables", [])
                     if "table" in item and item["table"]["name"].startswith(TABLE_PREFIX)]
            if names:
                self._run(script="".join(f"delete table ip6 {n}\n" for n in names))
            return names
