"""Parser compilation: parse states -> Python functions, plus checksum verification.

States are inlined where they are reached (see codegen.function_nodes); the others
become functions returning (next_state, offset), run by a small trampoline. On a parser exception
(PacketTooShort, StackOutOfBounds, a failed verify) parsing stops: headers already
extracted stay valid, the error code is recorded, and the rest of the packet is
payload (bm_sim/parser.cpp).
"""
from __future__ import annotations

from typing import Any

from .codegen import Code, Namespace, function_nodes
from .errors import UnsupportedProgram
from .expressions import ExprCompiler, Val
from .primitives import PrimitiveCompiler
from .program import HeaderInfo, Program, StackInfo, hexstr


def lookahead(pkt: bytes, off: int, bitoff: int, width: int) -> int:
    """Bits [bitoff, bitoff+width) after off; missing bytes read as zero."""
    start = off + (bitoff >> 3)
    shift = bitoff & 7
    nb = (shift + width + 7) >> 3
    chunk = pkt[start:start + nb]
    if len(chunk) < nb:
        chunk = chunk.ljust(nb, b"\x00")
    return (int.from_bytes(chunk, "big") >> (nb * 8 - shift - width)) & ((1 << width) - 1)


class ValueSet:
    """A parser value set; members are the compressed (unpadded) concatenation of the key."""

    def __init__(self, name: str, width: int) -> None:
        self.name = name
        self.width = width
        self.members: list[int] = []
        self.views: list[_VSetView] = []

    def set_members(self, values: list[int]) -> None:
        for v in values:
            if not 0 <= v < (1 << self.width):
                raise ValueError(f"value {v:#x} does not fit value set '{self.name}' "
                                 f"({self.width} bits)")
        self.members = list(values)
        for view in self.views:
            view.rebuild(self.members)


class _VSetView:
    """A value set as matched by one transition: padded to the key layout and masked."""

    def __init__(self, widths: list[int], mask: int | None) -> None:
        self.widths = widths
        self.mask = mask
        self.values: set[int] = set()

    def rebuild(self, members: list[int]) -> None:
        out = set()
        for m in members:
            rest, padded, shift = m, 0, 0
            for w in reversed(self.widths):
                padded |= (rest & ((1 << w) - 1)) << shift
                rest >>= w
                shift += -(-w // 8) * 8
            out.add(padded & self.mask if self.mask is not None else padded)
        self.values = out

    def match(self, key: int) -> bool:
        return (key & self.mask if self.mask is not None else key) in self.values


class ParserCompiler:
    def __init__(self, prog: Program, ns: Namespace, ex: ExprCompiler, pc: PrimitiveCompiler,
                 vsets: dict[str, ValueSet]) -> None:
        self.prog = prog
        self.ns = ns
        self.ex = ex
        self.pc = pc
        self.vsets = vsets
        self.E = prog.errors
        self.S = prog.globals
        ns.set("_ifb", int.from_bytes)
        ns.set("_lookahead", lookahead)

    def compile(self, parser: dict) -> str:
        """Generate ``PARSE(F, pkt)``; returns its global name."""
        states = {s["name"]: s for s in parser.get("parse_states", [])}
        init = parser.get("init_state")
        self.states = states
        succ: dict[str, list[str | None]] = {}
        for s in states.values():
            succ[s["name"]] = []
            for t in s.get("transitions", []):
                nxt = t.get("next_state")
                if nxt is not None and nxt not in states:
                    raise ValueError(f"parser state '{s['name']}' goes to unknown '{nxt}'")
                succ[s["name"]].append(nxt)
        self.fn_names = {name: self.ns.fresh("PS") for name in states}
        self.joins = function_nodes(succ, init if init in states else None)
        code = Code()
        for name in sorted(self.joins, key=lambda n: n != init):
            code(f"def {self.fn_names[name]}(F, pkt, n, off):")
            with code.indent():
                self._state(code, name, set())
        parse_fn = self.ns.fresh("PARSE")
        code(f"def {parse_fn}(F, pkt):")
        with code.indent():
            if init is None or init not in states:
                code("off = 0")
            else:
                code("n = len(pkt)")
                code(f"st, off = {self.fn_names[init]}(F, pkt, n, 0)")
                code("while st is not None:")
                with code.indent():
                    code("st, off = st(F, pkt, n, off)")
            code(f"F[{self.S['PAYLOAD']}] = pkt[off:] if off else pkt")
            self._verify_checksums(code)
            code("return off")
        self.ns.run(code.text(), f"parser-{parser.get('name')}")
        return parse_fn

    # ---- states ----------------------------------------------------------------------
    def _fail(self, code: Code, err: str) -> None:
        code(f"F[{self.S['ERR']}] = {err}")
        code("return None, off")

    def _state(self, code: Code, name: str, seen: set[str]) -> None:
        if name in seen:  # cannot happen for single-predecessor chains; guard anyway
            code(f"return {self.fn_names[name]}, off")
            return
        seen = seen | {name}
        st = self.states[name]
        for op in st.get("parser_ops", []):
            self._op(code, op, name)
        self._transition(code, st, seen)

    def _goto(self, code: Code, nxt: str | None, seen: set[str]) -> None:
        if nxt is None:
            code("return None, off")
        elif nxt in self.joins:
            code(f"return {self.fn_names[nxt]}, off")
        else:
            self._state(code, nxt, seen)

    def _op(self, code: Code, op: dict, state: str) -> None:
        kind = op.get("op")
        params = op.get("parameters", [])
        if kind == "extract":
            p = params[0]
            if p.get("type") == "regular":
                self._extract(code, self.prog.header(p["value"]))
            elif p.get("type") == "stack":
                self._extract_stack(code, self.prog.stacks[p["value"]])
            else:
                raise UnsupportedProgram(f"extract of '{p.get('type')}' in parser state '{state}'")
        elif kind == "extract_VL":
            raise UnsupportedProgram(f"variable-length extract in parser state '{state}'")
        elif kind == "set":
            f, slot = self.ex.lvalue(params[0])
            src = params[1]
            if src.get("type") == "lookahead":
                bitoff, width = int(src["value"][0]), int(src["value"][1])
                need = (bitoff >> 3) + (((bitoff & 7) + width + 7) >> 3)
                code(f"if n - off < {need}:")
                with code.indent():
                    self._fail(code, str(self.E["PacketTooShort"]))
                val = Val(f"_lookahead(pkt, off, {bitoff}, {width})", "data", width)
            else:
                val = self.ex.tv(src)
            code(self.ex.store(f, val, slot))
        elif kind == "verify":
            cond = self.ex.cond(params[0])
            err = params[1]
            err_code = str(int(err)) if isinstance(err, int) else self.ex.data(err).code
            code(f"if not {cond}:")
            with code.indent():
                self._fail(code, err_code)
        elif kind in ("shift", "advance"):
            if kind == "shift":
                nbytes = Val(repr(int(params[0])), "data", const=int(params[0]))
                bits = None
            else:
                bits = self.ex.data(params[0])
                nbytes = None
            if bits is not None:
                code(f"_b = {bits.code}")
                code("if _b % 8:")
                with code.indent():
                    self._fail(code, str(self.E["ParserInvalidArgument"]))
                code("_k = _b >> 3")
            else:
                code(f"_k = {nbytes.code}")
            code("if n - off < _k:")
            with code.indent():
                self._fail(code, str(self.E["PacketTooShort"]))
            code("off += _k")
        elif kind == "primitive":
            self.pc.one(code, params[0], f"parser state '{state}'")
        else:
            raise UnsupportedProgram(f"parser op '{kind}' in parser state '{state}'")

    def _extract_into(self, code: Code, h: HeaderInfo, base: str | None = None) -> None:
        n = h.nbytes
        code(f"v = _ifb(pkt[off:off + {n}], 'big')")
        parts = []
        for f in h.fields:
            e = f"v >> {f.shift}" if f.shift else "v"
            if f.shift + f.width < h.nbits:
                e = f"({e}) & {f.mask:#x}"
            if f.signed:
                e = f"_sx({e}, {f.width})"
            parts.append(e)
        parts.append("1")
        b = str(h.base) if base is None else base
        code(f"F[{b}:{b} + {len(h.fields) + 1}] = ({', '.join(parts)},)")

    def _extract(self, code: Code, h: HeaderInfo) -> None:
        n = h.nbytes
        code(f"if n - off < {n}:")
        with code.indent():
            self._fail(code, str(self.E["PacketTooShort"]))
        if n:
            self._extract_into(code, h)
        else:
            code(f"F[{h.valid}] = 1")
        code(f"off += {n}")

    def _extract_stack(self, code: Code, st: StackInfo) -> None:
        depth = len(st.headers)
        h0 = st.headers[0]
        code(f"_i = F[{st.next_slot}]")
        code(f"if _i >= {depth}:")
        with code.indent():
            self._fail(code, str(self.E["StackOutOfBounds"]))
        code(f"if n - off < {h0.nbytes}:")
        with code.indent():
            self._fail(code, str(self.E["PacketTooShort"]))
        bases = self.ns.add([h.base for h in st.headers], "SB")
        self._extract_into(code, h0, base=f"{bases}[_i]")
        code(f"F[{st.next_slot}] = _i + 1")
        code(f"off += {h0.nbytes}")

    def _transition(self, code: Code, st: dict, seen: set[str]) -> None:
        transitions = st.get("transitions", [])
        cases, default = [], None
        for t in transitions:
            ttype = t.get("type")
            if ttype == "default" or (ttype is None and t.get("value") == "default"):
                default = t
            else:
                cases.append(t)
        if not cases:
            self._goto(code, default.get("next_state") if default else None, seen)
            return
        key_parts, widths = [], []
        for k in st.get("transition_key", []):
            kt, kv = k.get("type"), k.get("value")
            if kt == "field":
                v = self.ex.field(kv)
                width = v.field.width if v.field is not None else 1
                code_s = f"({v.code} & {(1 << width) - 1:#x})" if v.field is not None and \
                    v.field.signed else v.code
            elif kt == "stack_field":
                v = self.ex.tv(k)
                st_info = self.prog.stacks[kv[0]]
                width = st_info.headers[0].by_name[kv[1]].width
                code_s = v.code
            elif kt == "lookahead":
                bitoff, width = int(kv[0]), int(kv[1])
                code_s = f"_lookahead(pkt, off, {bitoff}, {width})"
            else:
                raise UnsupportedProgram(f"transition key type '{kt}' in state '{st['name']}'")
            key_parts.append(code_s)
            widths.append(width)
        shift, terms = 0, []
        for c, w in zip(reversed(key_parts), reversed(widths)):
            terms.append(f"({c} << {shift})" if shift else c)
            shift += -(-w // 8) * 8
        code(f"k = {' | '.join(reversed(terms)) if terms else '0'}")
        first = True
        for t in cases:
            ttype = t.get("type", "hexstr")
            mask = t.get("mask")
            m = hexstr(mask) if mask is not None else None
            if ttype == "hexstr":
                val = hexstr(t["value"])
                test = f"k == {val:#x}" if m is None else f"(k & {m:#x}) == {val & m:#x}"
            elif ttype == "parse_vset":
                vs = self.vsets.get(t["value"])
                if vs is None:
                    raise ValueError(f"unknown parse value set '{t['value']}'")
                view = _VSetView(widths, m)
                vs.views.append(view)
                view.rebuild(vs.members)
                test = f"{self.ns.add(view, 'VS')}.match(k)"
            else:
                raise UnsupportedProgram(f"transition type '{ttype}' in state '{st['name']}'")
            code(f"{'if' if first else 'elif'} {test}:")
            first = False
            with code.indent():
                self._goto(code, t.get("next_state"), seen)
        code("else:")
        with code.indent():
            self._goto(code, default.get("next_state") if default else None, seen)

    # ---- checksums -------------------------------------------------------------------
    def _verify_checksums(self, code: Code) -> None:
        for chk in self.prog.doc.get("checksums", []):
            if not chk.get("verify", True):
                continue
            target, calc = checksum_target_and_calc(self.prog, self.pc, chk)
            cond = chk.get("if_cond")
            tests = [] if target.header.metadata else [f"F[{target.header.valid}]"]
            if cond is not None and self.ex.cond(cond) != "True":
                tests.append(self.ex.cond(cond))
            line = f"if {calc}(F) != F[{target.slot}]: F[{self.S['CKERR']}] = 1"
            if tests:
                code(f"if {' and '.join(tests)}:")
                with code.indent():
                    code(line)
            else:
                code(line)


def checksum_target_and_calc(prog: Program, pc: PrimitiveCompiler, chk: dict) -> tuple[Any, str]:
    """The target field and the compiled calculation of a JSON checksum object."""
    target = prog.field(chk["target"])
    if isinstance(target, int):
        raise ValueError(f"checksum '{chk['name']}' targets $valid$")
    if chk.get("type", "generic") == "ipv4":
        # legacy type: csum16 over the header with the checksum field zeroed
        name = f"__ipv4_{chk['name']}"
        if name not in prog.calculations:
            inputs = []
            for f in target.header.fields:
                if f is target:
                    inputs.append({"type": "hexstr", "value": "0x0", "bitwidth": f.width})
                else:
                    inputs.append({"type": "field", "value": [target.header.name, f.name]})
            prog.calculations[name] = {"name": name, "algo": "csum16", "input": inputs}
        return target, pc._calc(name)
    return target, pc._calc(chk["calculation"])
