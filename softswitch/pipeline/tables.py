"""Match-action tables: entry storage, lookup structures and control-plane operations.

Lookup structures, chosen per table match kind:
  exact    dict keyed on the key (an int for one field, a tuple otherwise); the
           compiled pipeline calls dict.get directly.
  lpm      one dict per prefix length, longest first.
  ternary  entries grouped by mask tuple, one dict per group (a single dict when
           all entries share masks, the common case); best priority wins.
  range    a list sorted by priority, scanned linearly.
Priorities follow BMv2 (smaller value wins; ties go to the smaller handle); the
P4Runtime priority p (larger wins) is stored as 2**31 - p, as PI does.
"""
from __future__ import annotations

import bisect
import heapq
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ImmutableTable, TableFull
from .program import hexstr

P4RT_PRIORITY_PIVOT = 1 << 31
MatchField = tuple | None


@dataclass
class ActionRef:
    name: str
    id: int
    fn: Callable[[list, tuple], None]
    widths: list[int]
    param_names: list[str] = field(default_factory=list)


@dataclass
class KeyField:
    name: str
    match_type: str  # JSON: exact | lpm | ternary | range | valid
    width: int
    code: str  # Python expression over F giving the key value

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


@dataclass
class TableInfo:
    name: str
    keys: list[tuple[str, str, int]]
    actions: list[str]
    max_size: int
    with_direct_counters: list[str]
    supports_idle_timeout: bool
    default_action: tuple[str, list[bytes]]
    const_default: bool
    has_const_entries: bool
    match_type: str = "exact"
    const_default_entry: bool = False


class Entry:
    __slots__ = ("handle", "fn", "data", "aidx", "action", "args", "pkts", "byts", "ts", "sk",
                 "spec", "skey", "priority")

    def __init__(self) -> None:
        self.pkts = 0
        self.byts = 0
        self.ts = time.monotonic()
        self.handle = -1
        self.priority = 0
        self.sk = 0


def _sk(e: "Entry") -> int:
    return e.sk


def _row_sk(row: tuple) -> int:
    return row[0].sk


def _noop(F: list, D: tuple) -> None:  # noqa: N803 - PHV naming used across generated code
    return None


def _int(b: bytes | int, what: str) -> int:
    if isinstance(b, int):
        if b < 0:
            raise ValueError(f"{what}: negative value")
        return b
    if not isinstance(b, (bytes, bytearray)):
        raise ValueError(f"{what}: expected bytes, got {type(b).__name__}")
    return int.from_bytes(b, "big")


def _fit(v: int, width: int, what: str) -> int:
    if v >> width:
        raise ValueError(f"{what}: value {v:#x} does not fit in {width} bits")
    return v


def _prefix_mask(plen: int, width: int) -> int:
    return ((1 << plen) - 1) << (width - plen)


class Table:
    def __init__(self, name: str, tid: int, kind: str, keys: list[KeyField],
                 actions: list[ActionRef], max_size: int, with_counters: bool,
                 support_timeout: bool, direct_counters: list[str]) -> None:
        self.name = name
        self.id = tid
        self.kind = kind
        self.keys = keys
        self.actions = actions
        self.by_action = {a.name: i for i, a in enumerate(actions)}
        self.max_size = max_size
        self.with_counters = with_counters
        self.support_timeout = support_timeout
        self.direct_counters = direct_counters
        self.entries: dict[int, Entry] = {}
        self._free: list[int] = []
        self._next_handle = 0
        self.immutable = False
        self.const_default = False       # action function fixed by the program
        self.const_default_entry = False  # action function and data fixed
        self.default = self._make_default(None, ())
        self.initial_default: tuple[int | None, tuple] = (None, ())
        # lookup structures (never rebound: the compiled pipeline holds references)
        self.exact: dict[Any, Entry] = {}
        self.groups: list[tuple] = []
        self._lpm: dict[int, dict] = {}
        self._tern: dict[tuple, list] = {}  # masks -> [dict key -> entries, best sk]
        self.ranges: list[tuple] = []
        self.lookup: Callable[..., Entry | None] = self._compile_lookup()

    # ---- description -----------------------------------------------------------------
    def info(self) -> TableInfo:
        name, args = self.get_default()
        return TableInfo(self.name, [(k.name, k.match_type, k.width) for k in self.keys],
                         [a.name for a in self.actions], self.max_size,
                         list(self.direct_counters) if self.with_counters else [],
                         self.support_timeout, (name, args), self.const_default,
                         self.immutable, self.kind, self.const_default_entry)

    # ---- actions ---------------------------------------------------------------------
    def _action(self, name: str) -> tuple[int, ActionRef]:
        try:
            i = self.by_action[name]
        except KeyError:
            raise KeyError(f"table '{self.name}' has no action '{name}'") from None
        return i, self.actions[i]

    def _action_data(self, act: ActionRef, args: list[bytes] | tuple) -> tuple:
        if len(args) != len(act.widths):
            raise ValueError(f"action '{act.name}' takes {len(act.widths)} parameters, "
                             f"got {len(args)}")
        return tuple(_fit(_int(a, f"action '{act.name}' parameter {i}"), w,
                          f"action '{act.name}' parameter {i}")
                     for i, (a, w) in enumerate(zip(args, act.widths)))

    @staticmethod
    def _args_bytes(act: ActionRef | None, data: tuple) -> list[bytes]:
        if act is None:
            return []
        return [v.to_bytes(max(1, (w + 7) // 8), "big") for v, w in zip(data, act.widths)]

    def _make_default(self, aidx: int | None, data: tuple) -> Entry:
        e = Entry()
        if aidx is None:
            e.fn, e.aidx, e.action = _noop, -1, None
        else:
            act = self.actions[aidx]
            e.fn, e.aidx, e.action = act.fn, aidx, act.name
        e.data = data
        return e

    # ---- default entry ---------------------------------------------------------------
    def set_initial_default(self, action_id: int, data: list, action_const: bool,
                            entry_const: bool) -> None:
        aidx = next((i for i, a in enumerate(self.actions) if a.id == action_id), None)
        if aidx is None:
            raise ValueError(f"table '{self.name}': default action id {action_id} "
                             f"is not one of its actions")
        act = self.actions[aidx]
        values = self._action_data(act, [hexstr(v) for v in data])
        self.initial_default = (aidx, values)
        self.const_default = action_const
        self.const_default_entry = entry_const
        self.default = self._make_default(aidx, values)

    def set_default(self, action: str, args: list[bytes]) -> None:
        aidx, act = self._action(action)
        data = self._action_data(act, args)
        if self.const_default_entry and (aidx, data) != (self.default.aidx, self.default.data):
            raise ImmutableTable(f"table '{self.name}' has a const default entry")
        if self.const_default and aidx != self.default.aidx:
            raise ImmutableTable(f"table '{self.name}' has a const default action "
                                 f"'{self.default.action}'")
        self.default = self._make_default(aidx, data)

    def reset_default(self) -> None:
        self.default = self._make_default(*self.initial_default)

    def get_default(self) -> tuple[str, list[bytes]]:
        d = self.default
        act = self.actions[d.aidx] if d.aidx >= 0 else None
        return (d.action or "", self._args_bytes(act, d.data))

    # ---- match normalisation -----------------------------------------------------------
    def _spec(self, match: list[MatchField]) -> tuple:
        """Normalise a control-plane match into per-key (value, mask) or (lo, hi) specs."""
        if len(match) != len(self.keys):
            raise ValueError(f"table '{self.name}' has {len(self.keys)} key fields, "
                             f"got {len(match)}")
        out = []
        for k, m in zip(self.keys, match):
            what = f"table '{self.name}' key '{k.name}'"
            full = k.mask
            if m is None:
                if k.match_type in ("exact", "valid"):
                    raise ValueError(f"{what}: an exact key cannot be omitted")
                out.append(("r", 0, full) if k.match_type == "range" else ("t", 0, 0))
                continue
            if not isinstance(m, (tuple, list)) or not m:
                raise ValueError(f"{what}: malformed match {m!r}")
            kind = m[0]
            if kind in ("exact", "optional", "valid"):
                v = _fit(_int(m[1], what), k.width, what)
                spec = ("r", v, v) if k.match_type == "range" else ("t", v, full)
            elif kind == "lpm":
                v, plen = _fit(_int(m[1], what), k.width, what), int(m[2])
                if not 0 <= plen <= k.width:
                    raise ValueError(f"{what}: prefix length {plen} outside 0..{k.width}")
                mask = _prefix_mask(plen, k.width)
                spec = ("t", v & mask, mask)
            elif kind == "ternary":
                v = _fit(_int(m[1], what), k.width, what)
                mask = _fit(_int(m[2], what), k.width, what)
                spec = ("t", v & mask, mask)
            elif kind == "range":
                lo = _fit(_int(m[1], what), k.width, what)
                hi = _fit(_int(m[2], what), k.width, what)
                if lo > hi:
                    raise ValueError(f"{what}: range low {lo:#x} > high {hi:#x}")
                spec = ("r", lo, hi)
            else:
                raise ValueError(f"{what}: unknown match kind '{kind}'")
            allowed = {"exact": ("t",), "valid": ("t",), "lpm": ("t",), "ternary": ("t",),
                       "range": ("r", "t")}[k.match_type]
            if spec[0] not in allowed:
                raise ValueError(f"{what}: '{kind}' match on a {k.match_type} key")
            if k.match_type in ("exact", "valid") and spec[2] != full:
                raise ValueError(f"{what}: {kind} match with a partial mask on an exact key")
            if k.match_type == "lpm" and (~spec[2] & full) & ((~spec[2] & full) + 1):
                raise ValueError(f"{what}: mask is not a prefix")
            out.append(spec)
        return tuple(out)

    # ---- lookup structures -------------------------------------------------------------
    def _compile_lookup(self) -> Callable[..., Entry | None]:
        n = len(self.keys)
        args = ", ".join(f"k{i}" for i in range(n))
        ns: dict[str, Any] = {"G": self.groups, "R": self.ranges}
        if self.kind == "exact":
            key = "k0" if n == 1 else f"({args},)"
            src = f"def lookup({args}):\n    return X.get({key})\n"
            ns["X"] = self.exact
        elif self.kind == "lpm":
            lp = next(i for i, k in enumerate(self.keys) if k.match_type == "lpm")
            parts = [f"k{i} & m" if i == lp else f"k{i}" for i in range(n)]
            key = parts[0] if n == 1 else f"({', '.join(parts)},)"
            src = (f"def lookup({args}):\n"
                   f"    for m, d in G:\n"
                   f"        e = d.get({key})\n"
                   f"        if e is not None:\n"
                   f"            return e\n"
                   f"    return None\n")
        elif self.kind == "ternary":
            ms = ", ".join(f"m{i}" for i in range(n))
            parts = [f"k{i} & m{i}" for i in range(n)]
            key = parts[0] if n == 1 else f"({', '.join(parts)},)"
            src = (f"def lookup({args}):\n"
                   f"    best = None\n"
                   f"    for {ms}, d, gsk in G:\n"
                   f"        if best is not None and gsk > best.sk:\n"
                   f"            break\n"
                   f"        l = d.get({key})\n"
                   f"        if l:\n"
                   f"            e = l[0]\n"
                   f"            if best is None or e.sk < best.sk:\n"
                   f"                best = e\n"
                   f"    return best\n")
        else:  # range
            names, tests = [], []
            for i, k in enumerate(self.keys):
                if k.match_type == "range":
                    names += [f"a{i}", f"b{i}"]
                    tests.append(f"a{i} <= k{i} <= b{i}")
                else:
                    names += [f"m{i}", f"v{i}"]
                    tests.append(f"k{i} & m{i} == v{i}")
            src = (f"def lookup({args}):\n"
                   f"    for e, {', '.join(names)} in R:\n"
                   f"        if {' and '.join(tests) or 'True'}:\n"
                   f"            return e\n"
                   f"    return None\n")
        if n == 0:
            src = "def lookup():\n    return None\n"
        exec(compile(src, f"<table {self.name}>", "exec"), ns)  # noqa: S102 - generated here
        return ns["lookup"]

    def _insert(self, e: Entry) -> None:
        spec = e.spec
        if self.kind == "exact":
            key = spec[0][1] if len(spec) == 1 else tuple(s[1] for s in spec)
            if key in self.exact:
                raise ValueError(f"table '{self.name}': an entry with this key exists")
            self.exact[key] = e
            e.skey = key
        elif self.kind == "lpm":
            lp = next(i for i, k in enumerate(self.keys) if k.match_type == "lpm")
            mask = spec[lp][2]
            plen = bin(mask).count("1")
            key = spec[0][1] if len(spec) == 1 else tuple(s[1] for s in spec)
            d = self._lpm.get(plen)
            if d is None:
                d = self._lpm[plen] = {}
                self._rebuild_lpm()
            if key in d:
                raise ValueError(f"table '{self.name}': an entry with this prefix exists")
            d[key] = e
            e.skey = (plen, key)
        elif self.kind == "ternary":
            masks = tuple(s[2] for s in spec)
            key = spec[0][1] if len(spec) == 1 else tuple(s[1] for s in spec)
            group = self._tern.get(masks)
            if group is None:
                group = self._tern[masks] = [{}, e.sk]
            lst = group[0].setdefault(key, [])
            bisect.insort(lst, e, key=_sk)
            e.skey = (masks, key)
            if e.sk <= group[1] or len(self._tern) != len(self.groups):
                group[1] = min(group[1], e.sk)
                self._rebuild_groups()
        else:
            row: list[Any] = [e]
            for s in spec:
                row += [s[1], s[2]] if s[0] == "r" else [s[2], s[1]]
            bisect.insort(self.ranges, tuple(row), key=_row_sk)

    def _remove(self, e: Entry) -> None:
        if self.kind == "exact":
            del self.exact[e.skey]
        elif self.kind == "lpm":
            plen, key = e.skey
            d = self._lpm[plen]
            del d[key]
            if not d:
                del self._lpm[plen]
                self._rebuild_lpm()
        elif self.kind == "ternary":
            masks, key = e.skey
            group = self._tern[masks]
            d = group[0]
            lst = d[key]
            lst.remove(e)
            if not lst:
                del d[key]
            if not d:
                del self._tern[masks]
                self._rebuild_groups()
            elif e.sk == group[1]:
                group[1] = min(x[0].sk for x in d.values())
                self._rebuild_groups()
        else:
            self.ranges[:] = [r for r in self.ranges if r[0] is not e]

    def _rebuild_lpm(self) -> None:
        lp = next(i for i, k in enumerate(self.keys) if k.match_type == "lpm")
        width = self.keys[lp].width
        self.groups[:] = [(_prefix_mask(p, width), self._lpm[p])
                          for p in sorted(self._lpm, reverse=True)]

    def _rebuild_groups(self) -> None:
        """One row per mask group, best priority first (lookup stops early on them)."""
        rows = [(*masks, d, gsk) for masks, (d, gsk) in self._tern.items()]
        rows.sort(key=lambda r: r[-1])
        self.groups[:] = rows

    # ---- entries ---------------------------------------------------------------------
    def _alloc_handle(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        h = self._next_handle
        self._next_handle += 1
        return h

    def add(self, match: list[MatchField], action: str, args: list[bytes], priority: int = 0,
            *, bm_priority: int | None = None, from_program: bool = False) -> int:
        if self.immutable and not from_program:
            raise ImmutableTable(f"table '{self.name}' has const entries")
        if len(self.entries) >= self.max_size:
            raise TableFull(f"table '{self.name}' is full ({self.max_size} entries)")
        spec = self._spec(match)
        aidx, act = self._action(action)
        data = self._action_data(act, args)
        e = Entry()
        e.spec, e.fn, e.data, e.aidx, e.action = spec, act.fn, data, aidx, act.name
        e.priority = priority
        handle = self._alloc_handle()
        e.handle = handle
        bm = bm_priority if bm_priority is not None else P4RT_PRIORITY_PIVOT - int(priority)
        e.sk = (bm << 32) | handle
        try:
            self._insert(e)
        except Exception:
            heapq.heappush(self._free, handle)
            raise
        self.entries[handle] = e
        return handle

    def _entry(self, handle: int) -> Entry:
        try:
            return self.entries[handle]
        except KeyError:
            raise KeyError(f"table '{self.name}' has no entry with handle {handle}") from None

    def modify(self, handle: int, action: str, args: list[bytes]) -> None:
        if self.immutable:
            raise ImmutableTable(f"table '{self.name}' has const entries")
        e = self._entry(handle)
        aidx, act = self._action(action)
        data = self._action_data(act, args)
        e.fn, e.data, e.aidx, e.action = act.fn, data, aidx, act.name

    def delete(self, handle: int) -> None:
        if self.immutable:
            raise ImmutableTable(f"table '{self.name}' has const entries")
        e = self._entry(handle)
        self._remove(e)
        del self.entries[handle]
        heapq.heappush(self._free, handle)

    def clear(self) -> None:
        if self.immutable:
            raise ImmutableTable(f"table '{self.name}' has const entries")
        self.entries.clear()
        self.exact.clear()
        self._lpm.clear()
        self._tern.clear()
        self.groups[:] = []
        self.ranges[:] = []
        self._free = []
        self._next_handle = 0

    def describe(self, handle: int) -> dict:
        e = self._entry(handle)
        act = self.actions[e.aidx]
        return {"handle": handle, "match": e.spec, "action": e.action,
                "args": self._args_bytes(act, e.data), "priority": e.priority}

    # ---- const entries from the JSON -------------------------------------------------
    def add_program_entry(self, entry: dict, actions_by_id: dict[int, str]) -> None:
        match: list[MatchField] = []
        for k, m in zip(self.keys, entry.get("match_key", [])):
            mt = m.get("match_type", k.match_type)
            if mt == "exact":
                match.append(("exact", hexstr(m["key"])))
            elif mt == "valid":
                match.append(("exact", int(bool(m["key"]))))
            elif mt == "lpm":
                match.append(("lpm", hexstr(m["key"]), int(m["prefix_length"])))
            elif mt in ("ternary", "optional"):
                match.append(("ternary", hexstr(m["key"]) & hexstr(m["mask"]), hexstr(m["mask"])))
            elif mt == "range":
                match.append(("range", hexstr(m["start"]), hexstr(m["end"])))
            else:
                raise ValueError(f"table '{self.name}': const entry match type '{mt}'")
        ae = entry["action_entry"]
        name = actions_by_id.get(ae["action_id"])
        if name is None:
            raise ValueError(f"table '{self.name}': const entry action id {ae['action_id']}")
        args = [hexstr(a) for a in ae.get("action_data", [])]
        self.add(match, name, args, bm_priority=int(entry.get("priority", 0) or 0),
                 from_program=True)
