"""Assemble a loaded Program into runnable functions and runtime state."""
from __future__ import annotations

from typing import Callable

from .codegen import Code, Namespace
from .control import ControlCompiler
from .deparser import compile_deparser
from .errors import UnsupportedProgram
from .expressions import ExprCompiler
from .externs import CounterArray, RegisterArray
from .parser import ParserCompiler, ValueSet
from .primitives import PrimitiveCompiler
from .program import FieldInfo, Program
from .tables import ActionRef, KeyField, Table


def _pick(items: list[dict], name: str, what: str) -> dict | None:
    """simple_switch looks parsers/pipelines up by their conventional names."""
    for it in items:
        if it.get("name") == name:
            return it
    if len(items) == 1:
        return items[0]
    if not items:
        return None
    raise UnsupportedProgram(f"{what}: no '{name}' among {[i.get('name') for i in items]}")


class CompiledProgram:
    """Everything needed to run packets through one program."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.ns = ns = Namespace()
        self.counters: dict[str, CounterArray] = {}
        self.direct_counters: dict[str, str] = {}  # counter name -> table name
        for c in prog.counter_arrays.values():
            if c.get("is_direct"):
                self.direct_counters[c["name"]] = c.get("binding", "")
            else:
                self.counters[c["name"]] = CounterArray(c["name"], int(c["size"]))
        self.registers = {r["name"]: RegisterArray(r["name"], int(r["size"]), int(r["bitwidth"]))
                          for r in prog.register_arrays.values()}
        self.vsets = {v["name"]: ValueSet(v["name"], int(v.get("compressed_bitwidth", 0)))
                      for v in prog.parse_vsets.values()}
        self.ex = ExprCompiler(prog, ns, self.registers, with_data=True)
        self.pc = PrimitiveCompiler(prog, ns, self.ex, self.counters, self.registers)
        self.action_fns = self._compile_actions()
        self.tables = self._build_tables()
        doc = prog.doc
        parser = _pick(doc.get("parsers", []), "parser", "parsers")
        pex = ExprCompiler(prog, ns, self.registers, with_data=False)
        ppc = PrimitiveCompiler(prog, ns, pex, self.counters, self.registers)
        ppc._calcs = self.pc._calcs
        self.parse: Callable[[list, bytes], int] = ns.get(
            ParserCompiler(prog, ns, pex, ppc, self.vsets).compile(parser or {}))
        self.deparse: Callable[[list], bytes] = ns.get(compile_deparser(
            prog, ns, pex, ppc, _pick(doc.get("deparsers", []), "deparser", "deparsers")))
        for flag in ("uses_exit", "uses_clone", "uses_resubmit", "uses_recirculate",
                     "uses_truncate"):
            setattr(self, flag, getattr(self.pc, flag) or getattr(ppc, flag))
        pipes = doc.get("pipelines", [])
        cc = ControlCompiler(ns, self.ex, self.tables, self.action_fns, prog.globals["ILEN"],
                             prog.globals["EXIT"] if self.uses_exit else None)
        self.ingress = self._pipeline(cc, _pick(pipes, "ingress", "pipelines"))
        egress = next((p for p in pipes if p.get("name") == "egress"), None)
        self.egress = self._pipeline(cc, egress)
        self.field_lists = {fid: self._field_list(fl) for fid, fl in prog.field_lists.items()}
        self.template = prog.template()
        self.template[prog.globals["ERR"]] = prog.errors["NoError"]
        self.meta_end = prog.meta_end
        self.meta_init = self.template[:prog.meta_end]

    def _pipeline(self, cc: ControlCompiler, pipe: dict | None) -> Callable[[list], None]:
        if pipe is None:
            return lambda F: None  # noqa: N803
        return self.ns.get(cc.compile(pipe))

    def _compile_actions(self) -> dict[int, str]:
        code = Code()
        names: dict[int, str] = {}
        for aid, act in self.prog.actions_by_id.items():
            fn = self.ns.fresh("A")
            names[aid] = fn
            code(f"def {fn}(F, D):  # {act.get('name')}")
            with code.indent():
                self.pc.body(code, act.get("primitives", []), f"action '{act.get('name')}'")
        if code.lines:
            self.ns.run(code.text(), "actions")
        return names

    def _key_field(self, table: str, k: dict) -> KeyField:
        mt = k.get("match_type")
        if mt not in ("exact", "lpm", "ternary", "range", "valid"):
            raise UnsupportedProgram(f"match kind '{mt}' in table '{table}'")
        target = k.get("target")
        if mt == "valid":
            h = self.prog.header(target if isinstance(target, str) else target[0])
            return KeyField(k.get("name") or f"{h.name}.$valid$", mt, 1, f"F[{h.valid}]")
        f = self.prog.field(target)
        name = k.get("name") or f"{target[0]}.{target[1]}"
        if isinstance(f, int):
            width, code = 1, f"F[{f}]"
        else:
            width = f.width
            code = f"(F[{f.slot}] & {f.mask:#x})" if f.signed else f"F[{f.slot}]"
        mask = k.get("mask")
        if mask is not None:
            code = f"({code} & {int(mask, 16) & ((1 << width) - 1):#x})"
        return KeyField(name, mt, width, code)

    def _build_tables(self) -> dict[str, Table]:
        tables: dict[str, Table] = {}
        for pipe in self.prog.doc.get("pipelines", []):
            for t in pipe.get("tables", []):
                name = t["name"]
                keys = [self._key_field(name, k) for k in t.get("key", [])]
                ids = t.get("action_ids")
                if ids is None:
                    by_name = {a["name"]: a["id"] for a in self.prog.actions_by_id.values()}
                    ids = [by_name[n] for n in t.get("actions", [])]
                actions = []
                for aid in ids:
                    a = self.prog.action(aid)
                    actions.append(ActionRef(a["name"], aid, self.ns.get(self.action_fns[aid]),
                                             [int(r["bitwidth"]) for r in a.get("runtime_data", [])],
                                             [r["name"] for r in a.get("runtime_data", [])]))
                kind = t.get("match_type", "exact")
                kinds = {k.match_type for k in keys}
                if "range" in kinds:
                    kind = "range"
                elif "ternary" in kinds:
                    kind = "ternary"
                elif "lpm" in kinds and kind != "ternary":
                    kind = "lpm"
                if kind == "lpm" and sum(k.match_type == "lpm" for k in keys) != 1:
                    kind = "ternary"
                direct = [c for c, tb in self.direct_counters.items() if tb == name]
                table = Table(name, t.get("id", 0), kind, keys, actions, int(t.get("max_size", 1024)),
                              bool(t.get("with_counters")), bool(t.get("support_timeout")), direct)
                de = t.get("default_entry")
                if de is not None:
                    table.set_initial_default(de["action_id"], de.get("action_data", []),
                                              bool(de.get("action_const")),
                                              bool(de.get("action_entry_const")))
                entries = t.get("entries")
                if entries:
                    names = {a.id: a.name for a in actions}
                    for e in entries:
                        table.add_program_entry(e, names)
                    table.immutable = True
                tables[name] = table
        return tables

    def _field_list(self, fl: dict) -> list[int]:
        slots = []
        for el in fl.get("elements", []):
            if el.get("type") == "field":
                f = self.prog.field(el["value"])
                slots.append(f if isinstance(f, int) else f.slot)
        return slots

    def sys_slot(self, name: str) -> int | None:
        f: FieldInfo | None = self.prog.sys_field(name)
        return None if f is None else f.slot
