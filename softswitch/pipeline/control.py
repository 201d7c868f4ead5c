"""Control-flow compilation: a pipeline's tables and conditionals -> Python functions.

Nodes are inlined where they are reached (see codegen.function_nodes); the others
become functions that return the next function, run by a trampoline. So a typical
pipeline is one or a few functions with nested ifs and little per-node call overhead.
"""
from __future__ import annotations

import time
from .codegen import Code, Namespace, function_nodes
from .expressions import ExprCompiler
from .tables import Table


class ControlCompiler:
    def __init__(self, ns: Namespace, ex: ExprCompiler, tables: dict[str, Table],
                 actions: dict[int, str], ilen_slot: int, exit_slot: int | None) -> None:
        self.ns = ns
        self.ex = ex
        self.tables = tables
        self.actions = actions  # action id -> generated function name
        self.ilen = ilen_slot
        self.exit_slot = exit_slot
        ns.set("_mono", time.monotonic)

    def compile(self, pipe: dict) -> str:
        """Generate ``PIPE(F)`` for one pipeline; returns its global name."""
        self.nodes: dict[str, tuple[str, dict]] = {}
        for t in pipe.get("tables", []):
            self.nodes[t["name"]] = ("table", t)
        for c in pipe.get("conditionals", []):
            self.nodes[c["name"]] = ("cond", c)
        for a in pipe.get("action_calls", []) or []:
            self.nodes[a["name"]] = ("call", a)
        init = pipe.get("init_table")
        succ = {name: self._successors(name) for name in self.nodes}
        for name, targets in succ.items():
            for target in targets:
                if target is not None and target not in self.nodes:
                    raise ValueError(f"pipeline '{pipe.get('name')}': node '{name}' goes to "
                                     f"unknown node '{target}'")
        if init is not None and init not in self.nodes:
            raise ValueError(f"pipeline '{pipe.get('name')}': unknown init_table '{init}'")
        self.joins = function_nodes(succ, init)
        self.fn = {n: self.ns.fresh("N") for n in self.joins}
        code = Code()
        for name in sorted(self.joins, key=lambda n: n != init):
            code(f"def {self.fn[name]}(F):")
            with code.indent():
                self._node(code, name)
        entry = self.ns.fresh("PIPE")
        code(f"def {entry}(F):")
        with code.indent():
            if init is None:
                code("return None")
            else:
                code(f"n = {self.fn[init]}(F)")
                code("while n is not None:")
                with code.indent():
                    code("n = n(F)")
        self.ns.run(code.text(), f"pipeline-{pipe.get('name')}")
        return entry

    # ---- graph -----------------------------------------------------------------------
    def _table_targets(self, t: dict) -> list[tuple[str, str | None, list[int]]]:
        """Distinct successors of a table: (kind, target, action indexes)."""
        nt = t.get("next_tables", {}) or {}
        if "__HIT__" in nt or "__MISS__" in nt:
            return [("hit", nt.get("__HIT__"), []), ("miss", nt.get("__MISS__"), [])]
        table = self.tables[t["name"]]
        by_target: dict[str | None, list[int]] = {}
        for i, a in enumerate(table.actions):
            by_target.setdefault(nt.get(a.name, t.get("base_default_next")), []).append(i)
        by_target.setdefault(t.get("base_default_next"), []).append(-1)  # no default action
        return [("act", tgt, idx) for tgt, idx in by_target.items()]

    def _successors(self, name: str) -> list[str | None]:
        kind, node = self.nodes[name]
        if kind == "table":
            return [tgt for _, tgt, _ in self._table_targets(node)]
        if kind == "cond":
            return [node.get("true_next"), node.get("false_next")]
        return [node.get("next_node")]

    def _goto(self, code: Code, target: str | None) -> None:
        if target is None:
            code("return None")
        elif target in self.joins:
            code(f"return {self.fn[target]}")
        else:
            self._node(code, target)

    # ---- nodes -----------------------------------------------------------------------
    def _node(self, code: Code, name: str) -> None:
        kind, node = self.nodes[name]
        if kind == "cond":
            code(f"if {self.ex.cond(node['expression'])}:")
            with code.indent():
                self._goto(code, node.get("true_next"))
            code("else:")
            with code.indent():
                self._goto(code, node.get("false_next"))
        elif kind == "call":
            code(f"{self.actions[node['action_id']]}(F, ())")
            self._exit_check(code)
            self._goto(code, node.get("next_node"))
        else:
            self._table(code, node)

    def _exit_check(self, code: Code) -> None:
        if self.exit_slot is not None:
            code(f"if F[{self.exit_slot}]:")
            with code.indent():
                code("return None")

    def _table(self, code: Code, t: dict) -> None:
        table = self.tables[t["name"]]
        tname = self.ns.add(table, "T")
        targets = self._table_targets(t)
        hit_miss = targets[0][0] == "hit"
        code(f"# table {t['name']}")
        if not table.keys and table.const_default_entry and table.default.aidx >= 0:
            # p4c's keyless tables for direct action calls: always a miss, fixed action
            d = table.default
            code(f"{self.ns.add(d.fn, 'A')}(F, {d.data!r})")
            self._exit_check(code)
            self._goto(code, targets[1][1] if hit_miss else
                       next(tgt for _, tgt, idx in targets if d.aidx in idx))
            return
        keys = [k.code for k in table.keys]
        if not keys:
            code("e = None")
        elif table.kind == "exact":
            key = keys[0] if len(keys) == 1 else f"({', '.join(keys)},)"
            code(f"e = {self.ns.add(table.exact, 'X')}.get({key})")
        else:
            code(f"e = {self.ns.add(table.lookup, 'L')}({', '.join(keys)})")
        code("if e is None:")
        with code.indent():
            code(f"e = {tname}.default")
            if hit_miss:
                code("h = False")
        code("else:")
        with code.indent():
            if table.with_counters:
                code(f"e.pkts += 1; e.byts += F[{self.ilen}]")
            code("e.ts = _mono()")
            if hit_miss:
                code("h = True")
        code("e.fn(F, e.data)")
        self._exit_check(code)
        if hit_miss:
            hit_t, miss_t = targets[0][1], targets[1][1]
            if hit_t == miss_t:
                self._goto(code, hit_t)
                return
            code("if h:")
            with code.indent():
                self._goto(code, hit_t)
            code("else:")
            with code.indent():
                self._goto(code, miss_t)
            return
        if len(targets) == 1:
            self._goto(code, targets[0][1])
            return
        # most common target last, as the else branch
        targets.sort(key=lambda x: len(x[2]))
        code("a = e.aidx")
        for i, (_, tgt, idx) in enumerate(targets[:-1]):
            test = f"a == {idx[0]}" if len(idx) == 1 else f"a in {tuple(idx)!r}"
            code(f"{'if' if i == 0 else 'elif'} {test}:")
            with code.indent():
                self._goto(code, tgt)
        code("else:")
        with code.indent():
            self._goto(code, targets[-1][1])
