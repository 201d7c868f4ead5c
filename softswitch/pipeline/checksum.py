"""Hash algorithms and named calculations (checksums, hash()).

A calculation's input is the bit-concatenation of its fields (fields of invalid
headers are skipped), zero-padded to whole bytes, optionally followed by the
unparsed payload, as BMv2's BufBuilder builds it.
"""
from __future__ import annotations

import binascii
import zlib
from typing import Callable

from .codegen import Code, Namespace
from .errors import UnsupportedProgram
from .program import Program, hexstr


def csum16(buf: bytes) -> int:
    """RFC 1071 ones'-complement checksum, as BMv2's csum16/cksum16.

    The ones'-complement sum of 16-bit words is congruent to the whole buffer read
    as one big-endian integer modulo 0xffff, which CPython computes in C.
    """
    if len(buf) & 1:
        buf += b"\x00"
    s = int.from_bytes(buf, "big") % 0xFFFF
    if s == 0 and buf.strip(b"\x00"):
        s = 0xFFFF
    return ~s & 0xFFFF


def _reflect(v: int, n: int) -> int:
    r = 0
    for _ in range(n):
        r = (r << 1) | (v & 1)
        v >>= 1
    return r


def _crc16_table() -> list[int]:
    # CRC-16/ARC: poly 0x8005, reflected in and out, init 0
    poly = _reflect(0x8005, 16)
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC16 = _crc16_table()


def crc16(buf: bytes) -> int:
    crc = 0
    for b in buf:
        crc = (crc >> 8) ^ _CRC16[(crc ^ b) & 0xFF]
    return crc


def crc32(buf: bytes) -> int:
    return zlib.crc32(buf) & 0xFFFFFFFF


def crc_ccitt(buf: bytes) -> int:
    return binascii.crc_hqx(buf, 0xFFFF)


def identity(buf: bytes) -> int:
    return int.from_bytes(buf[:8], "big")


def _xor(n: int) -> Callable[[bytes], int]:
    def xor_hash(buf: bytes) -> int:
        acc = 0
        for i in range(0, len(buf), n):
            chunk = buf[i:i + n]
            acc ^= int.from_bytes(chunk.ljust(n, b"\x00"), "big")
        return acc
    return xor_hash


ALGORITHMS: dict[str, Callable[[bytes], int]] = {
    "csum16": csum16, "cksum16": csum16, "crc16": crc16, "crc32": crc32,
    "crcCCITT": crc_ccitt, "identity": identity, "xor16": _xor(2), "xor32": _xor(4),
}


def compile_calculation(prog: Program, ns: Namespace, name: str) -> str:
    """Generate ``def CALC(F) -> int`` (payload from F's PAYLOAD slot); returns its name."""
    try:
        calc = prog.calculations[name]
    except KeyError:
        raise ValueError(f"unknown calculation '{name}'") from None
    algo = calc.get("algo")
    if algo not in ALGORITHMS:
        raise UnsupportedProgram(f"hash algorithm '{algo}' (calculation '{name}')")
    fn = ns.fresh("CALC")
    algo_name = ns.add(ALGORITHMS[algo], "ALG")
    code = Code()
    code(f"def {fn}(F):")
    with code.indent():
        code("a = 0")
        code("n = 0")
        payload = False
        # group consecutive inputs of one header under one validity test
        groups: list[tuple[int | None, list[tuple[str, int]]]] = []
        for item in calc.get("input", []):
            t, v = item.get("type"), item.get("value")
            if payload:
                raise ValueError(f"calculation '{name}': 'payload' must come last")
            if t == "field":
                f = prog.field(v)
                if isinstance(f, int):
                    parts, valid = [(f"F[{f}]", 1)], None
                else:
                    parts = [(f"(F[{f.slot}] & {f.mask:#x})" if f.signed else f"F[{f.slot}]",
                              f.width)]
                    valid = None if f.header.metadata else f.header.valid
            elif t == "header":
                h = prog.header(v)
                parts = [(f"(F[{fi.slot}] & {fi.mask:#x})" if fi.signed else f"F[{fi.slot}]",
                          fi.width) for fi in h.fields]
                valid = None if h.metadata else h.valid
            elif t == "hexstr":
                width = int(item["bitwidth"])
                parts, valid = [(repr(hexstr(v) & ((1 << width) - 1)), width)], None
            elif t == "payload":
                payload = True
                continue
            else:
                raise UnsupportedProgram(f"calculation input type '{t}' (calculation '{name}')")
            if groups and groups[-1][0] == valid:
                groups[-1][1].extend(parts)
            else:
                groups.append((valid, parts))
        for valid, parts in groups:
            width = sum(w for _, w in parts)
            expr = ""
            shift = width
            terms = []
            for c, w in parts:
                shift -= w
                terms.append(f"({c} << {shift})" if shift else c)
            expr = " | ".join(terms)
            stmt = f"a = (a << {width}) | {expr}; n += {width}"
            if valid is None:
                code(stmt)
            else:
                code(f"if F[{valid}]:")
                with code.indent():
                    code(stmt)
        code("pad = -n % 8")
        code("b = (a << pad).to_bytes((n + pad) // 8, 'big')")
        code(f"return {algo_name}(b + F[{prog.globals['PAYLOAD']}])" if payload
             else f"return {algo_name}(b)")
    ns.run(code.text(), f"calc-{name}")
    return fn
