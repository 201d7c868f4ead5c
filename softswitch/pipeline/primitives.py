"""Action primitives (core + simple_switch) compiled into Python statements.

Each primitive becomes a few statements over F (PHV) and D (action data). The
semantics follow bm_sim/core/primitives.cpp and targets/simple_switch/primitives.cpp.
"""
from __future__ import annotations

import logging
import random
from typing import Any, Callable

from .checksum import compile_calculation
from .codegen import Code, Namespace
from .errors import UnsupportedProgram
from .expressions import ExprCompiler, Val
from .externs import CounterArray, RegisterArray
from .program import Program

log = logging.getLogger("softswitch.p4")

DROP_PORT = 511
MIRROR_VALID = 0x8000


def log_msg(fmt: str, values: list[int]) -> None:
    """log_msg(): each '{}' takes the next value (decimal), as BMv2 prints them."""
    out, i, k = [], 0, 0
    while i < len(fmt):
        if fmt[i] == "\\" and i + 1 < len(fmt) and fmt[i + 1] in "{}":
            out.append(fmt[i + 1])
            i += 2
            continue
        if fmt[i] == "{":
            j = fmt.find("}", i)
            if j < 0:
                out.append(fmt[i:])
                break
            out.append(str(values[k]) if k < len(values) else fmt[i:j + 1])
            k += 1
            i = j + 1
            continue
        out.append(fmt[i])
        i += 1
    log.info("%s", "".join(out))


def assert_failed(what: str, where: str) -> None:
    # BMv2 aborts the whole switch here; a long-running target logs and goes on.
    log.error("%s error: %s", what, where)


def rng_uniform(lo: int, hi: int) -> int | None:
    if lo > hi:
        log.warning("random result is not specified when lo > hi")
        return None
    return random.randint(lo, hi)


class PrimitiveCompiler:
    """Emits the body of one action (or parser / deparser primitive call)."""

    def __init__(self, prog: Program, ns: Namespace, ex: ExprCompiler,
                 counters: dict[str, CounterArray], registers: dict[str, RegisterArray]) -> None:
        self.prog = prog
        self.ns = ns
        self.ex = ex
        self.counters = counters
        self.registers = registers
        self.uses_exit = False
        self.uses_clone = False
        self.uses_resubmit = False
        self.uses_recirculate = False
        self.uses_truncate = False
        self._calcs: dict[str, str] = {}
        g = prog.globals
        self.S = g
        ns.set("_log_msg", log_msg)
        ns.set("_assert_failed", assert_failed)
        ns.set("_rng", rng_uniform)
        self.handlers: dict[str, Callable[[Code, list], None]] = {
            "assign": self._assign, "modify_field": self._assign,
            "assign_header": self._assign_header, "copy_header": self._assign_header,
            "assign_header_stack": self._assign_stack,
            "add_header": self._add_header, "add_header_fast": self._add_header_fast,
            "remove_header": self._remove_header,
            "mark_to_drop": self._mark_to_drop, "drop": self._drop,
            "clone_ingress_pkt_to_egress": self._clone, "clone_egress_pkt_to_egress": self._clone,
            "resubmit": self._resubmit, "recirculate": self._recirculate,
            "modify_field_with_hash_based_offset": self._hash,
            "modify_field_rng_uniform": self._random,
            "add_to_field": self._binop_self("+"), "subtract_from_field": self._binop_self("-"),
            "add": self._binop("+"), "subtract": self._binop("-"), "bit_xor": self._binop("^"),
            "bit_or": self._binop("|"), "bit_and": self._binop("&"),
            "shift_left": self._binop("<<"), "shift_right": self._binop(">>"),
            "no_op": lambda code, p: None,
            "count": self._count, "register_read": self._register_read,
            "register_write": self._register_write, "truncate": self._truncate,
            "exit": self._exit, "assert": self._assert("Assert"), "assume": self._assert("Assume"),
            "log_msg": self._log_msg, "push": self._push, "pop": self._pop,
        }

    # ---- bodies ----------------------------------------------------------------------
    def body(self, code: Code, prims: list[dict], where: str) -> None:
        if any(p.get("op") in ("_jump", "_jump_if_zero") for p in prims):
            self._body_with_jumps(code, prims, where)
            return
        start = len(code.lines)
        for p in prims:
            self.one(code, p, where)
        if len(code.lines) == start:
            code("pass")

    def _body_with_jumps(self, code: Code, prims: list[dict], where: str) -> None:
        code("pc = 0")
        code(f"while pc < {len(prims)}:")
        with code.indent():
            for i, p in enumerate(prims):
                code(f"{'if' if i == 0 else 'elif'} pc == {i}:")
                with code.indent():
                    op = p.get("op")
                    params = p.get("parameters", [])
                    if op == "_jump":
                        code(f"pc = {self.ex.data(params[0]).code}")
                    elif op == "_jump_if_zero":
                        c = self.ex.data(params[0]).code
                        code(f"pc = {self.ex.data(params[1]).code} if {c} == 0 else {i + 1}")
                    else:
                        self.one(code, p, where)
                        code(f"pc = {i + 1}")

    def one(self, code: Code, prim: dict, where: str) -> None:
        op = prim.get("op")
        handler = self.handlers.get(op)
        if handler is None:
            if op == "execute_meter":
                raise UnsupportedProgram(f"meters (primitive 'execute_meter' in {where})")
            if op == "generate_digest":
                raise UnsupportedProgram(f"digests (primitive 'generate_digest' in {where})")
            if op in ("assign_VL", "assign_union", "assign_union_stack"):
                raise UnsupportedProgram(f"primitive '{op}' in {where}")
            if isinstance(op, str) and op.startswith("_") and "_" in op[1:]:
                raise UnsupportedProgram(f"extern method '{op}' in {where}")
            raise UnsupportedProgram(f"primitive '{op}' in {where}")
        handler(code, prim.get("parameters", []))

    # ---- assignment ------------------------------------------------------------------
    def _assign(self, code: Code, p: list) -> None:
        if p[0].get("type") in ("header", "header_stack"):
            if p[0]["type"] == "header":
                return self._assign_header(code, p)
            return self._assign_stack(code, p)
        f, slot = self.ex.lvalue(p[0])
        src = self.ex.as_data(self.ex.tv(p[1]))
        if len(p) > 2:  # P4_14 modify_field(dst, src, mask)
            m = self.ex.data(p[2])
            tgt = f"F[{slot if slot is not None else f.slot}]"
            src = Val(f"(({tgt} & ~{m.code}) | ({src.code} & {m.code}))", "data")
        code(self.ex.store(f, src, slot))

    def _assign_header(self, code: Code, p: list) -> None:
        dst, src = self.ex.tv(p[0]), self.ex.tv(p[1])
        db, dv, n = self.ex.header_range(dst)
        sb, sv, _ = self.ex.header_range(src)
        code(f"if F[{sv}]:")
        with code.indent():
            code(f"F[{db}:{db} + {n + 1}] = F[{sb}:{sb} + {n + 1}]")
        code("else:")
        with code.indent():
            code(f"F[{dv}] = 0")

    def _assign_stack(self, code: Code, p: list) -> None:
        dst, src = self.ex.tv(p[0]).stack, self.ex.tv(p[1]).stack
        if dst is None or src is None or len(dst.headers) != len(src.headers):
            raise ValueError("assign_header_stack needs two stacks of one depth")
        code(f"F[{dst.next_slot}] = F[{src.next_slot}]")
        for d, s in zip(dst.headers, src.headers):
            self._assign_header(code, [{"type": "header", "value": d.name},
                                       {"type": "header", "value": s.name}])

    # ---- validity --------------------------------------------------------------------
    def _hdr_nbytes(self, h: Val) -> int:
        info = h.hdr if h.hdr is not None else h.stack.headers[0] if h.stack else None
        if info is None:
            raise ValueError("expected a header")
        return info.nbytes

    def _add_header(self, code: Code, p: list) -> None:
        h = self.ex.tv(p[0])
        b, v, n = self.ex.header_range(h)
        code(f"if not F[{v}]:")
        with code.indent():
            code(f"F[{b}:{b} + {n + 1}] = {[0] * n + [1]!r}")
            if h.hdr is None or not h.hdr.metadata:
                code(f"F[{self.S['PKTLEN']}] += {self._hdr_nbytes(h)}")

    def _add_header_fast(self, code: Code, p: list) -> None:
        code(f"F[{self.ex.valid_slot(self.ex.tv(p[0]))}] = 1")

    def _remove_header(self, code: Code, p: list) -> None:
        h = self.ex.tv(p[0])
        v = self.ex.valid_slot(h)
        code(f"if F[{v}]:")
        with code.indent():
            if h.hdr is None or not h.hdr.metadata:
                code(f"F[{self.S['PKTLEN']}] -= {self._hdr_nbytes(h)}")
            code(f"F[{v}] = 0")

    # ---- v1model ---------------------------------------------------------------------
    def _mark_to_drop(self, code: Code, p: list) -> None:
        h = self.ex.tv(p[0]).hdr
        if h is None or "egress_spec" not in h.by_name:
            raise ValueError("mark_to_drop needs standard_metadata")
        code(f"F[{h.by_name['egress_spec'].slot}] = {DROP_PORT}")
        if "mcast_grp" in h.by_name:
            code(f"F[{h.by_name['mcast_grp'].slot}] = 0")

    def _drop(self, code: Code, p: list) -> None:
        spec = self.prog.sys_field("standard_metadata.egress_spec")
        code(f"F[{spec.slot}] = {DROP_PORT}")
        mg = self.prog.sys_field("intrinsic_metadata.mcast_grp")
        if mg is not None:
            code(f"F[{mg.slot}] = 0")

    def _clone(self, code: Code, p: list) -> None:
        self.uses_clone = True
        sess = self.ex.data(p[0]).code
        fl = self.ex.data(p[1]).code if len(p) > 1 else "0"
        code(f"F[{self.S['CLONE']}] = ({sess} & 0xffff) | {MIRROR_VALID:#x}")
        code(f"F[{self.S['CLONE_FL']}] = {fl} & 0xffff")

    def _resubmit(self, code: Code, p: list) -> None:
        self.uses_resubmit = True
        code(f"F[{self.S['RESUB']}] = {self.ex.data(p[0]).code if p else '0'} & 0xffff")

    def _recirculate(self, code: Code, p: list) -> None:
        self.uses_recirculate = True
        code(f"F[{self.S['RECIRC']}] = {self.ex.data(p[0]).code if p else '0'} & 0xffff")

    def _truncate(self, code: Code, p: list) -> None:
        self.uses_truncate = True
        t = self.S["TRUNC"]
        code(f"_t = {self.ex.data(p[0]).code}")
        code(f"if _t < F[{t}]: F[{t}] = _t")

    def _exit(self, code: Code, p: list) -> None:
        self.uses_exit = True
        code(f"F[{self.S['EXIT']}] = 1")

    def _calc(self, name: str) -> str:
        if name not in self._calcs:
            self._calcs[name] = compile_calculation(self.prog, self.ns, name)
        return self._calcs[name]

    def _hash(self, code: Code, p: list) -> None:
        f, slot = self.ex.lvalue(p[0])
        base = self.ex.data(p[1]).code
        calc = self._calc(p[2]["value"])
        size = self.ex.data(p[3]).code
        code(f"_s = {size}")
        code(f"_h = ({calc}(F) % (_s if _s else 1)) + {base}")
        code(self.ex.store(f, Val("_h", "data"), slot))

    def _random(self, code: Code, p: list) -> None:
        f, slot = self.ex.lvalue(p[0])
        code(f"_r = _rng({self.ex.data(p[1]).code}, {self.ex.data(p[2]).code})")
        code("if _r is not None:")
        with code.indent():
            code(self.ex.store(f, Val("_r", "data"), slot))

    def _binop_self(self, op: str) -> Callable[[Code, list], None]:
        def emit(code: Code, p: list) -> None:
            f, slot = self.ex.lvalue(p[0])
            cur = f"F[{slot if slot is not None else f.slot}]"
            code(self.ex.store(f, Val(f"({cur} {op} {self.ex.data(p[1]).code})", "data"), slot))
        return emit

    def _binop(self, op: str) -> Callable[[Code, list], None]:
        def emit(code: Code, p: list) -> None:
            f, slot = self.ex.lvalue(p[0])
            a, b = self.ex.data(p[1]).code, self.ex.data(p[2]).code
            if op in ("<<", ">>"):
                expr = f"{'_shl' if op == '<<' else '_shr'}({a}, {b})"
            else:
                expr = f"({a} {op} {b})"
            code(self.ex.store(f, Val(expr, "data"), slot))
        return emit

    # ---- externs ---------------------------------------------------------------------
    def _count(self, code: Code, p: list) -> None:
        name = p[0]["value"]
        arr = self.counters.get(name)
        if arr is None:
            raise ValueError(f"unknown counter array '{name}'")
        cp, cb = self.ns.add(arr.pkts, "CP"), self.ns.add(arr.byts, "CB")
        idx = self.ex.data(p[1])
        if idx.const is not None:
            if 0 <= idx.const < arr.size:
                code(f"{cp}[{idx.const}] += 1; {cb}[{idx.const}] += F[{self.S['ILEN']}]")
            return
        code(f"_i = {idx.code}")
        code(f"if 0 <= _i < {arr.size}:")
        with code.indent():
            code(f"{cp}[_i] += 1; {cb}[_i] += F[{self.S['ILEN']}]")

    def _register_array(self, obj: dict) -> str:
        reg = self.registers.get(obj["value"])
        if reg is None:
            raise ValueError(f"unknown register array '{obj['value']}'")
        return self.ns.add(reg, "RG")

    def _register_read(self, code: Code, p: list) -> None:
        f, slot = self.ex.lvalue(p[0])
        reg = self._register_array(p[1])
        code(self.ex.store(f, Val(f"{reg}.read({self.ex.data(p[2]).code})", "data"), slot))

    def _register_write(self, code: Code, p: list) -> None:
        reg = self._register_array(p[0])
        code(f"{reg}.write({self.ex.data(p[1]).code}, {self.ex.data(p[2]).code})")

    # ---- misc ------------------------------------------------------------------------
    def _assert(self, what: str) -> Callable[[Code, list], None]:
        def emit(code: Code, p: list) -> None:
            c = self.ex.as_bool(self.ex.tv(p[0])).code
            code(f"if not {c}:")
            with code.indent():
                code(f"_assert_failed({what!r}, {c!r})")
        return emit

    def _log_msg(self, code: Code, p: list) -> None:
        fmt = p[0].get("value", "")
        vals = [self.ex.data(v).code for v in (p[1].get("value") or [])] if len(p) > 1 else []
        code(f"_log_msg({fmt!r}, [{', '.join(vals)}])")

    def _stack_of(self, obj: Any):  # noqa: ANN202
        st = self.ex.tv(obj).stack
        if st is None:
            raise ValueError("push/pop need a header stack")
        return st

    def _push(self, code: Code, p: list) -> None:
        st = self._stack_of(p[0])
        n = self.ex.data(p[1])
        if n.const is None:
            raise UnsupportedProgram("push_front with a runtime count")
        k, depth = n.const, len(st.headers)
        if k <= 0:
            return
        hs = st.headers
        for i in range(depth - 1, k - 1, -1):
            d, s = hs[i], hs[i - k]
            code(f"F[{d.base}:{d.end}] = F[{s.base}:{s.end}]")
        for i in range(min(k, depth)):
            code(f"F[{hs[i].valid}] = 0")
        code(f"F[{st.next_slot}] = min({depth}, F[{st.next_slot}] + {k})")

    def _pop(self, code: Code, p: list) -> None:
        st = self._stack_of(p[0])
        n = self.ex.data(p[1])
        if n.const is None:
            raise UnsupportedProgram("pop_front with a runtime count")
        k, depth = n.const, len(st.headers)
        if k <= 0:
            return
        hs = st.headers
        for i in range(0, depth - k):
            d, s = hs[i], hs[i + k]
            code(f"F[{d.base}:{d.end}] = F[{s.base}:{s.end}]")
        for i in range(max(depth - k, 0), depth):
            code(f"F[{hs[i].valid}] = 0")
        code(f"F[{st.next_slot}] = max(0, F[{st.next_slot}] - {k})")
