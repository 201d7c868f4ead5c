"""Load BMv2 JSON into a checked model with a flat per-packet slot layout.

Every packet is one Python list ``F`` (the PHV). Each header instance owns a
contiguous run of slots: one per field, then one validity slot. Metadata headers
come first so that "reset all metadata" is a single slice assignment. Target
registers that BMv2 keeps beside the PHV (clone session, packet-length register,
exit flag, ...) get slots after the headers, so copying a packet is ``F[:]``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import UnsupportedProgram

# Core parser errors BMv2 always knows, in the order it appends missing ones.
CORE_ERRORS = ("NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds",
               "HeaderTooShort", "ParserTimeout", "ParserInvalidArgument")

# Target registers kept beside the PHV (see simple_switch's RegisterAccess).
GLOBAL_SLOTS = ("ERR", "CKERR", "PKTLEN", "ILEN", "CLONE", "CLONE_FL", "RESUB",
                "RECIRC", "EXIT", "TRUNC", "PAYLOAD")
NO_TRUNCATION = 1 << 62

REQUIRED_FIELDS = ("standard_metadata.ingress_port", "standard_metadata.packet_length",
                   "standard_metadata.instance_type", "standard_metadata.egress_spec",
                   "standard_metadata.egress_port")


def hexstr(value: Any) -> int:
    """Parse a BMv2 'hexstr' ("0x0a", "-0x1", "7") or a bare int."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, got {value!r}")
    return int(value, 16)


@dataclass
class FieldInfo:
    header: "HeaderInfo"
    name: str
    width: int
    signed: bool
    slot: int
    shift: int  # bit offset from the least significant end of the packed header

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    @property
    def full_name(self) -> str:
        return f"{self.header.name}.{self.name}"


@dataclass
class HeaderInfo:
    name: str
    id: int
    type_name: str
    metadata: bool
    base: int = 0
    fields: list[FieldInfo] = field(default_factory=list)
    by_name: dict[str, FieldInfo] = field(default_factory=dict)
    nbits: int = 0

    @property
    def valid(self) -> int:
        return self.base + len(self.fields)

    @property
    def nbytes(self) -> int:
        return self.nbits // 8

    @property
    def end(self) -> int:  # one past the validity slot
        return self.valid + 1


@dataclass
class StackInfo:
    name: str
    id: int
    headers: list[HeaderInfo]
    next_slot: int = 0


class Program:
    """The checked content of one BMv2 JSON document."""

    def __init__(self, doc: dict) -> None:
        if not isinstance(doc, dict):
            raise ValueError("BMv2 JSON must be an object")
        self.doc = doc
        self._check_unsupported()
        self.headers: dict[str, HeaderInfo] = {}
        self.headers_by_id: dict[int, HeaderInfo] = {}
        self.stacks: dict[str, StackInfo] = {}
        self.globals: dict[str, int] = {}
        self._layout()
        self.aliases = {a[0]: tuple(a[1]) for a in doc.get("field_aliases", [])}
        self.errors = self._errors()
        self.actions_by_id: dict[int, dict] = {a["id"]: a for a in doc.get("actions", [])}
        self.calculations = {c["name"]: c for c in doc.get("calculations", [])}
        self.field_lists = {fl["id"]: fl for fl in doc.get("field_lists", [])}
        self.counter_arrays = {c["name"]: c for c in doc.get("counter_arrays", [])}
        self.register_arrays = {r["name"]: r for r in doc.get("register_arrays", [])}
        self.parse_vsets = {v["name"]: v for v in doc.get("parse_vsets", [])}
        for name in REQUIRED_FIELDS:
            if self.sys_field(name) is None:
                raise ValueError(f"program lacks required field {name} (not a v1model program?)")

    # ---- loading -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: bytes | str | dict) -> "Program":
        if isinstance(config, dict):
            return cls(config)
        if isinstance(config, (bytes, bytearray)):
            config = bytes(config).decode("utf-8")
        if not isinstance(config, str):
            raise ValueError(f"config must be bytes, str or dict, not {type(config).__name__}")
        try:
            doc = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config is not valid JSON: {exc}") from None
        return cls(doc)

    def _check_unsupported(self) -> None:
        d = self.doc
        meta = d.get("__meta__", {})
        version = meta.get("version")
        if version is not None and (not isinstance(version, list) or version[0] != 2):
            raise UnsupportedProgram(f"BMv2 JSON format version {version} (need 2.x)")
        for key, what in (("header_union_types", "header unions"), ("header_unions", "header unions"),
                          ("header_union_stacks", "header union stacks"),
                          ("meter_arrays", "meters"), ("learn_lists", "digests (learn_lists)")):
            items = d.get(key) or []
            if items:
                names = ", ".join(repr(i.get("name")) for i in items)
                raise UnsupportedProgram(f"{what}: {names}")
        for ext in d.get("extern_instances") or []:
            raise UnsupportedProgram(f"extern '{ext.get('type')}' instance '{ext.get('name')}'")
        for ht in d.get("header_types", []):
            for f in ht.get("fields", []):
                if f[1] == "*":
                    raise UnsupportedProgram(
                        f"variable-length field '{f[0]}' in header type '{ht['name']}'")
        for pipe in d.get("pipelines", []):
            for prof in pipe.get("action_profiles") or []:
                raise UnsupportedProgram(f"action profile '{prof.get('name')}'")
            for t in pipe.get("tables", []):
                if t.get("type", "simple") != "simple":
                    raise UnsupportedProgram(f"table '{t['name']}' of type '{t['type']}'")
                if t.get("direct_meters"):
                    raise UnsupportedProgram(f"direct meter on table '{t['name']}'")
        for chk in d.get("checksums", []):
            if chk.get("type", "generic") not in ("generic", "ipv4"):
                raise UnsupportedProgram(f"checksum '{chk['name']}' of type '{chk.get('type')}'")

    def _layout(self) -> None:
        types = {t["name"]: t for t in self.doc.get("header_types", [])}
        insts = self.doc.get("headers", [])
        # metadata first, so that resetting metadata is one slice
        order = [h for h in insts if h.get("metadata")] + [h for h in insts if not h.get("metadata")]
        slot = 0
        self.meta_end = 0
        for h in order:
            if h["header_type"] not in types:
                raise ValueError(f"header '{h['name']}' has unknown type '{h['header_type']}'")
            ht = types[h["header_type"]]
            info = HeaderInfo(h["name"], h["id"], ht["name"], bool(h.get("metadata")), base=slot)
            specs = ht.get("fields", [])
            total = sum(int(f[1]) for f in specs)
            shift = total
            for i, f in enumerate(specs):
                width = int(f[1])
                signed = bool(f[2]) if len(f) > 2 else False
                shift -= width
                fi = FieldInfo(info, f[0], width, signed, slot + i, shift)
                info.fields.append(fi)
                info.by_name[f[0]] = fi
            info.nbits = total
            if not info.metadata and total % 8:
                raise ValueError(f"header '{info.name}' is {total} bits, not a whole number of bytes")
            slot = info.end
            self.headers[info.name] = info
            self.headers_by_id[info.id] = info
            if info.metadata:
                self.meta_end = slot
        for st in self.doc.get("header_stacks", []):
            hdrs = [self.headers_by_id[i] for i in st["header_ids"]]
            self.stacks[st["name"]] = StackInfo(st["name"], st["id"], hdrs, next_slot=slot)
            slot += 1
        for g in GLOBAL_SLOTS:
            self.globals[g] = slot
            slot += 1
        self.nslots = slot

    def _errors(self) -> dict[str, int]:
        errs = {e[0]: int(e[1]) for e in self.doc.get("errors", [])}
        nxt = max(errs.values(), default=-1) + 1
        for core in CORE_ERRORS:
            if core not in errs:
                errs[core] = nxt
                nxt += 1
        return errs

    # ---- lookups -------------------------------------------------------------------
    def header(self, name: str) -> HeaderInfo:
        try:
            return self.headers[name]
        except KeyError:
            raise ValueError(f"unknown header instance '{name}'") from None

    def field(self, ref: list | tuple) -> FieldInfo | int:
        """A field reference [header, field]; '$valid$' gives the validity slot (int)."""
        hname, fname = ref[0], ref[1]
        hdr = self.header(hname)
        if fname == "$valid$":
            return hdr.valid
        try:
            return hdr.by_name[fname]
        except KeyError:
            raise ValueError(f"unknown field '{hname}.{fname}'") from None

    def sys_field(self, name: str) -> FieldInfo | None:
        """A field simple_switch looks up by name, honouring field_aliases."""
        ref = self.aliases.get(name)
        if ref is None:
            ref = tuple(name.split(".", 1))
        hdr = self.headers.get(ref[0])
        if hdr is None:
            return None
        return hdr.by_name.get(ref[1])

    def action(self, action_id: int) -> dict:
        try:
            return self.actions_by_id[action_id]
        except KeyError:
            raise ValueError(f"unknown action id {action_id}") from None

    def template(self) -> list[int]:
        """A fresh PHV: all fields 0, metadata valid, packet headers invalid."""
        phv = [0] * self.nslots
        for h in self.headers.values():
            if h.metadata:
                phv[h.valid] = 1
        phv[self.globals["TRUNC"]] = NO_TRUNCATION
        phv[self.globals["PAYLOAD"]] = b""
        return phv
