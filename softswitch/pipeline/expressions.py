"""Compile BMv2 JSON expressions and type-value objects into Python expressions.

Values are Python ints with BMv2's infinite-precision semantics; a value is
truncated to the destination width only when written into a field, exactly as
bm::Data does. Booleans stay Python bools. Headers compile to their slot layout
(static) or to a runtime base-slot expression (stack element chosen at runtime).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .codegen import Namespace
from .errors import UnsupportedProgram
from .program import FieldInfo, HeaderInfo, Program, StackInfo, hexstr

SHIFT_CAP = 1 << 16  # a runtime shift beyond this gives the same masked result; caps memory


@dataclass
class Val:
    code: str
    kind: str  # "data" | "bool" | "hdr" | "dynhdr" | "stack"
    bits: int | None = None  # upper bound on bit length when known non-negative
    const: int | None = None
    hdr: HeaderInfo | None = None
    stack: StackInfo | None = None
    field: FieldInfo | None = None


def _const(v: int) -> Val:
    return Val(repr(v), "data", v.bit_length() if v >= 0 else None, const=v)


# Helpers the generated code calls for rarely used operators.
def two_comp_mod(x: int, w: int) -> int:
    if w <= 0:
        return 0
    half = 1 << (w - 1)
    return ((x + half) % (1 << w)) - half


def sat_cast(x: int, w: int) -> int:
    if w <= 0:
        return 0
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    return lo if x < lo else hi if x > hi else x


def usat_cast(x: int, w: int) -> int:
    hi = (1 << w) - 1 if w > 0 else 0
    return 0 if x < 0 else hi if x > hi else x


def shl(x: int, n: int) -> int:
    # a negative amount is a huge unsigned one to bm::Data: cap it like any huge shift
    return x << (n if 0 <= n < SHIFT_CAP else SHIFT_CAP)


def shr(x: int, n: int) -> int:
    return x >> (n if 0 <= n < SHIFT_CAP else SHIFT_CAP)


def div(x: int, y: int) -> int:
    return 0 if y == 0 else int(x / y) if (x < 0) != (y < 0) else x // y


def mod(x: int, y: int) -> int:
    return 0 if y == 0 else x - y * div(x, y)


def to_signed(v: int, w: int) -> int:
    v &= (1 << w) - 1
    return v - (1 << w) if v >> (w - 1) else v


HELPERS = {"_tcm": two_comp_mod, "_sat": sat_cast, "_usat": usat_cast, "_shl": shl,
           "_shr": shr, "_div": div, "_mod": mod, "_sx": to_signed}

_ARITH = {"+": "+", "-": "-", "*": "*", "&": "&", "|": "|", "^": "^"}
_CMP = {"==": "==", "!=": "!=", ">": ">", "<": "<", ">=": ">=", "<=": "<="}


class ExprCompiler:
    """Turns JSON into Python expression strings over F (PHV) and D (action data)."""

    def __init__(self, prog: Program, ns: Namespace, registers: dict[str, Any],
                 with_data: bool) -> None:
        self.prog = prog
        self.ns = ns
        self.registers = registers
        self.with_data = with_data
        for name, fn in HELPERS.items():
            ns.set(name, fn)

    # ---- type-value objects ----------------------------------------------------------
    def tv(self, obj: Any) -> Val:
        if isinstance(obj, bool):
            return Val(repr(obj), "bool")
        if isinstance(obj, int):
            return _const(obj)
        if not isinstance(obj, dict):
            raise ValueError(f"malformed expression operand {obj!r}")
        t, v = obj.get("type"), obj.get("value")
        if t == "field":
            return self.field(v)
        if t == "hexstr":
            return _const(hexstr(v))
        if t == "bool":
            return Val(repr(bool(v)), "bool")
        if t in ("runtime_data", "local"):
            if not self.with_data:
                raise ValueError(f"'{t}' reference outside of an action")
            return Val(f"D[{int(v)}]", "data")
        if t == "header":
            h = self.prog.header(v)
            return Val(repr(h.base), "hdr", hdr=h)
        if t == "header_stack":
            return Val(repr(v), "stack", stack=self._stack(v))
        if t == "expression":
            if isinstance(v, dict) and "op" in v:
                return self.op(v)
            return self.tv(v)
        if t == "register":
            arr = self._register(v[0])
            idx = self.data(v[1])
            return Val(f"{arr}.read({idx.code})", "data")
        if t == "stack_field":
            st = self._stack(v[0])
            fi = self._stack_field(st, v[1])
            base = self._last_base(st)
            return Val(f"F[{base} + {fi.slot - st.headers[0].base}]", "data",
                       None if fi.signed else fi.width)
        if t in ("union_stack_field", "header_union", "header_union_stack"):
            raise UnsupportedProgram(f"header unions ('{t}')")
        raise UnsupportedProgram(f"expression operand type '{t}'")

    def field(self, ref: list) -> Val:
        f = self.prog.field(ref)
        if isinstance(f, int):  # $valid$
            return Val(f"F[{f}]", "data", 1)
        return Val(f"F[{f.slot}]", "data", None if f.signed else f.width, field=f)

    def data(self, obj: Any) -> Val:
        v = self.tv(obj)
        return self.as_data(v)

    def as_data(self, v: Val) -> Val:
        if v.kind == "data":
            return v
        if v.kind == "bool":
            if v.code in ("True", "False"):
                return _const(int(v.code == "True"))
            return Val(f"(1 if {v.code} else 0)", "data", 1)
        raise ValueError(f"expected a value, got a {v.kind}")

    def as_bool(self, v: Val) -> Val:
        if v.kind == "bool":
            return v
        if v.kind == "data":
            return Val(f"({v.code} != 0)", "bool")
        raise ValueError(f"expected a boolean, got a {v.kind}")

    def cond(self, obj: Any) -> str:
        return self.as_bool(self.tv(obj)).code

    # ---- operators -------------------------------------------------------------------
    def op(self, node: dict) -> Val:
        op = node.get("op")
        left, right = node.get("left"), node.get("right")
        if op in _ARITH:
            a, b = self.data(left), self.data(right)
            if a.const is not None and b.const is not None:
                return _const(eval(f"{a.const} {op} {b.const}"))  # noqa: S307 - two ints
            bits = None
            if op == "&":
                known = [x for x in (a.bits, b.bits) if x is not None]
                bits = min(known) if known else None
            elif op in ("|", "^") and a.bits is not None and b.bits is not None:
                bits = max(a.bits, b.bits)
            return Val(f"({a.code} {_ARITH[op]} {b.code})", "data", bits)
        if op in ("<<", ">>"):
            a, b = self.data(left), self.data(right)
            if b.const is not None and 0 <= b.const < SHIFT_CAP:
                bits = None
                if a.bits is not None:
                    bits = a.bits + b.const if op == "<<" else max(a.bits - b.const, 0)
                return Val(f"({a.code} {op} {b.const})", "data", bits)
            fn = "_shl" if op == "<<" else "_shr"
            return Val(f"{fn}({a.code}, {b.code})", "data", a.bits if op == ">>" else None)
        if op in ("/", "%"):
            a, b = self.data(left), self.data(right)
            return Val(f"{'_div' if op == '/' else '_mod'}({a.code}, {b.code})", "data")
        if op in _CMP:
            a, b = self.data(left), self.data(right)
            return Val(f"({a.code} {_CMP[op]} {b.code})", "bool")
        if op in ("==b", "!=b"):
            a, b = self.as_bool(self.tv(left)), self.as_bool(self.tv(right))
            return Val(f"({a.code} {op[:2]} {b.code})", "bool")
        if op in ("==h", "!=h"):
            code = self._header_eq(self.tv(left), self.tv(right))
            return Val(code if op == "==h" else f"(not {code})", "bool")
        if op == "and":
            a, b = self.as_bool(self.tv(left)), self.as_bool(self.tv(right))
            return Val(f"({a.code} and {b.code})", "bool")
        if op == "or":
            a, b = self.as_bool(self.tv(left)), self.as_bool(self.tv(right))
            return Val(f"({a.code} or {b.code})", "bool")
        if op == "not":
            return Val(f"(not {self.as_bool(self.tv(right)).code})", "bool")
        if op == "~":
            a = self.data(right)
            return Val(f"(~{a.code})", "data")
        if op == "-" and left is None:
            return Val(f"(-{self.data(right).code})", "data")
        if op == "d2b":
            return self.as_bool(self.data(right))
        if op == "b2d":
            return self.as_data(self.as_bool(self.tv(right)))
        if op == "valid":
            h = self.tv(right)
            return Val(f"(F[{self.valid_slot(h)}] == 1)", "bool")
        if op == "?":
            c = self.as_bool(self.tv(node.get("cond")))
            a, b = self.tv(left), self.tv(right)
            if a.kind == "bool" or b.kind == "bool":
                a, b = self.as_bool(a), self.as_bool(b)
                return Val(f"({a.code} if {c.code} else {b.code})", "bool")
            a, b = self.as_data(a), self.as_data(b)
            bits = max(a.bits, b.bits) if a.bits is not None and b.bits is not None else None
            return Val(f"({a.code} if {c.code} else {b.code})", "data", bits)
        if op in ("two_comp_mod", "sat_cast", "usat_cast"):
            a, b = self.data(left), self.data(right)
            fn = {"two_comp_mod": "_tcm", "sat_cast": "_sat", "usat_cast": "_usat"}[op]
            return Val(f"{fn}({a.code}, {b.code})", "data")
        if op in ("dereference_header_stack", "dereference_stack"):
            st = self.tv(left)
            if st.kind != "stack" or st.stack is None:
                raise ValueError("dereference_header_stack needs a header stack")
            idx = self.data(right)
            if idx.const is not None:
                if not 0 <= idx.const < len(st.stack.headers):
                    raise ValueError(f"stack index {idx.const} out of range for '{st.stack.name}'")
                h = st.stack.headers[idx.const]
                return Val(repr(h.base), "hdr", hdr=h)
            bases = self.ns.add([h.base for h in st.stack.headers], "SB")
            return Val(f"{bases}[{idx.code}]", "dynhdr", stack=st.stack)
        if op == "access_field":
            h = self.tv(left)
            off = int(right)
            if h.kind == "hdr" and h.hdr is not None:
                fi = h.hdr.fields[off]
                return Val(f"F[{fi.slot}]", "data", None if fi.signed else fi.width, field=fi)
            if h.kind == "dynhdr" and h.stack is not None:
                fi = h.stack.headers[0].fields[off]
                return Val(f"F[{h.code} + {off}]", "data", None if fi.signed else fi.width,
                           field=fi)
            raise ValueError("access_field needs a header")
        if op == "last_stack_index":
            st = self.tv(right).stack
            if st is None:
                raise ValueError("last_stack_index needs a header stack")
            return Val(f"(F[{st.next_slot}] - 1)", "data")
        if op == "size_stack":
            st = self.tv(right).stack
            if st is None:
                raise ValueError("size_stack needs a header stack")
            return Val(f"F[{st.next_slot}]", "data", 32)
        if op in ("valid_union", "==u", "!=u", "dereference_union_stack", "access_union_header"):
            raise UnsupportedProgram(f"header unions (expression op '{op}')")
        raise UnsupportedProgram(f"expression op '{op}'")

    # ---- helpers ---------------------------------------------------------------------
    def valid_slot(self, h: Val) -> str:
        if h.kind == "hdr" and h.hdr is not None:
            return str(h.hdr.valid)
        if h.kind == "dynhdr" and h.stack is not None:
            return f"{h.code} + {len(h.stack.headers[0].fields)}"
        raise ValueError(f"expected a header, got a {h.kind}")

    def header_range(self, h: Val) -> tuple[str, str, int]:
        """(base code, validity-slot code, field count) of a static or dynamic header."""
        if h.kind == "hdr" and h.hdr is not None:
            return str(h.hdr.base), str(h.hdr.valid), len(h.hdr.fields)
        if h.kind == "dynhdr" and h.stack is not None:
            n = len(h.stack.headers[0].fields)
            return h.code, f"{h.code} + {n}", n
        raise ValueError(f"expected a header, got a {h.kind}")

    def _header_eq(self, a: Val, b: Val) -> str:
        ab, av, n = self.header_range(a)
        bb, bv, _ = self.header_range(b)
        return (f"((F[{av}] == 0 and F[{bv}] == 0) or (F[{av}] == 1 and F[{bv}] == 1 and "
                f"F[{ab}:{ab} + {n}] == F[{bb}:{bb} + {n}]))")

    def _stack(self, name: str) -> StackInfo:
        try:
            return self.prog.stacks[name]
        except KeyError:
            raise ValueError(f"unknown header stack '{name}'") from None

    def _stack_field(self, st: StackInfo, fname: str) -> FieldInfo:
        try:
            return st.headers[0].by_name[fname]
        except KeyError:
            raise ValueError(f"unknown field '{fname}' in stack '{st.name}'") from None

    def _last_base(self, st: StackInfo) -> str:
        bases = self.ns.add([h.base for h in st.headers], "SB")
        return f"{bases}[F[{st.next_slot}] - 1]"

    def _register(self, name: str) -> str:
        try:
            return self.ns.add(self.registers[name], "RG")
        except KeyError:
            raise ValueError(f"unknown register array '{name}'") from None

    # ---- writes ----------------------------------------------------------------------
    def store(self, f: FieldInfo, v: Val, slot_code: str | None = None) -> str:
        """Statement writing value v into field f (truncating as bm::Field::set does)."""
        target = f"F[{slot_code if slot_code is not None else f.slot}]"
        v = self.as_data(v)
        if f.signed:
            if v.const is not None:
                return f"{target} = {to_signed(v.const, f.width)!r}"
            return f"{target} = _sx({v.code}, {f.width})"
        if v.const is not None:
            return f"{target} = {v.const & f.mask!r}"
        if v.bits is not None and v.bits <= f.width:
            return f"{target} = {v.code}"
        return f"{target} = {v.code} & {f.mask:#x}"

    def lvalue(self, obj: Any) -> tuple[FieldInfo, str | None]:
        """A writable field: (field info, runtime slot code or None for static)."""
        if isinstance(obj, dict) and obj.get("type") == "field":
            f = self.prog.field(obj["value"])
            if isinstance(f, int):
                raise ValueError("cannot assign to $valid$")
            return f, None
        if isinstance(obj, dict) and obj.get("type") == "stack_field":
            st = self._stack(obj["value"][0])
            fi = self._stack_field(st, obj["value"][1])
            return fi, f"{self._last_base(st)} + {fi.slot - st.headers[0].base}"
        if isinstance(obj, dict) and obj.get("type") == "expression":
            v = self.tv(obj)
            if v.field is None:
                raise ValueError("assignment target is not a field")
            slot = v.code[2:-1]  # strip F[ ]
            return v.field, (None if slot == str(v.field.slot) else slot)
        raise ValueError(f"assignment target {obj!r} is not a field")
