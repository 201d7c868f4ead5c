"""Deparser compilation: checksum updates, then valid headers in order, then payload."""
from __future__ import annotations

from .codegen import Code, Namespace
from .expressions import ExprCompiler, Val
from .parser import checksum_target_and_calc
from .primitives import PrimitiveCompiler
from .program import Program


def compile_deparser(prog: Program, ns: Namespace, ex: ExprCompiler, pc: PrimitiveCompiler,
                     deparser: dict | None) -> str:
    """Generate ``DEPARSE(F) -> bytes``; returns its global name."""
    fn = ns.fresh("DEPARSE")
    code = Code()
    code(f"def {fn}(F):")
    with code.indent():
        for chk in prog.doc.get("checksums", []):
            if not chk.get("update", True):
                continue
            target, calc = checksum_target_and_calc(prog, pc, chk)
            cond = chk.get("if_cond")
            stmt = ex.store(target, Val(f"{calc}(F)", "data"))
            if cond is not None and ex.cond(cond) != "True":
                code(f"if {ex.cond(cond)}:")
                with code.indent():
                    code(stmt)
            else:
                code(stmt)
        if deparser is not None:
            for prim in deparser.get("primitives", []) or []:
                pc.one(code, prim, f"deparser '{deparser.get('name')}'")
        code("o = []")
        for name in (deparser or {}).get("order", []):
            h = prog.header(name)
            if h.nbytes == 0:
                continue
            terms = []
            for f in h.fields:
                v = f"(F[{f.slot}] & {f.mask:#x})" if f.signed else f"F[{f.slot}]"
                terms.append(f"({v} << {f.shift})" if f.shift else v)
            code(f"if F[{h.valid}]:")
            with code.indent():
                code(f"o.append(({' | '.join(terms)}).to_bytes({h.nbytes}, 'big'))")
        code(f"o.append(F[{prog.globals['PAYLOAD']}])")
        code("return b''.join(o)")
    ns.run(code.text(), f"deparser-{(deparser or {}).get('name')}")
    return fn
