"""IPv6 flow-label marking with nftables: rule text (pure) and the `nft` runner.

All rules live in one table of their own (family ip6, default `scitags_marker`), in an
output-hook chain at mangle priority, so the marker never touches anyone else's ruleset and
`delete table` removes everything it ever added. Each rule carries a comment naming its flow,
which is how a rule is found again (after a restart too) without keeping nft handles.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Sequence

from marker.flows import FlowKey

DEFAULT_TABLE = "scitags_marker"
TABLE_PREFIX = "scitags_marker"  # `marker clean` removes every table whose name starts so
CHAIN = "output"
COMMENT_PREFIX = "scitags-marker "
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


class Nft:
    """Runs nft in this network namespace (or in a named one, for tests and labs)."""

    def __init__(self, table: str = DEFAULT_TABLE, *, netns: str | None = None) -> None:
        if not table.startswith(TABLE_PREFIX) or not table.replace("_", "").isalnum():
            raise ValueError(f"table name {table!r} must start with {TABLE_PREFIX!r} and be alphanumeric/_")
        self.table = table
        self.netns = netns

    def _argv(self, *args: str) -> list[str]:
        base = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*base, NFT, *args]

    def _run(self, *args: str, script: str | None = None) -> str:
        if shutil.which(NFT) is None:
            raise NftError("nft not found on PATH (install nftables)")
        argv = self._argv(*args, *(("-f", "-") if script is not None else ()))
        proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise NftError(f"nft {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
        return proc.stdout

    def table_exists(self) -> bool:
        out = self._run("-j", "list", "tables", "ip6")
        return any(item.get("table", {}).get("name") == self.table
                   for item in json.loads(out).get("nftables", []))

    def rules(self) -> list[MarkRule]:
        if not self.table_exists():
            return []
        return parse_rules(self._run("-j", "list", "table", "ip6", self.table))

    def mark(self, key: FlowKey, label: int) -> None:
        """Install (or replace) the rule that sets `label` on the flow's packets."""
        self.unmark(key)
        self._run(script=add_rule_script(key, label, self.table))

    def unmark(self, key: FlowKey) -> bool:
        """Remove the flow's rule; False when there was none."""
        handles = [r.handle for r in self.rules() if r.comment == rule_comment(key)]
        if handles:
            self._run(script=delete_handles_script(handles, self.table))
        return bool(handles)

    def drop_table(self) -> bool:
        """Delete the whole table (marker stop); False when it did not exist."""
        if not self.table_exists():
            return False
        self._run(script=f"delete table ip6 {self.table}\n")
        return True

    def clean_all(self) -> list[str]:
        """Delete every marker table in this namespace (after a crash). Names returned."""
        out = self._run("-j", "list", "tables", "ip6")
        names = [item["table"]["name"] for item in json.loads(out).get("nftables", [])
                 if "table" in item and item["table"]["name"].startswith(TABLE_PREFIX)]
        if names:
            self._run(script="".join(f"delete table ip6 {n}\n" for n in names))
        return names
