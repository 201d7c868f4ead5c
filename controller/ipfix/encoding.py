"""IPFIX (RFC 7011) message and template encoding for scitags flow and aggregate records.

Hand-written with `struct`: the IPFIX libraries on PyPI are unmaintained (last release 2014)
or collector-only, and the wire format needed here is small and fixed. What we write is
checked by real collectors (pmacct's nfacctd, nfdump's nfcapd) in tests/ipfix/.

Templates (ids fixed, documented in controller/ipfix/README.md):
  256 firefly flow, IPv4     257 firefly flow, IPv6 (with flowLabelIPv6)
  258 aggregate per (switch, source, experiment, activity) per interval
Experiment and activity are the enterprise elements 8057/1200 (unsigned16) and 8057/1201
(unsigned8), the ones the public scitags IPFIX exporter (CESNET ipfixprobe) uses.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Iterable, NamedTuple, Sequence

IPFIX_VERSION = 10
HEADER = struct.Struct("!HHIII")  # version, length, export time, sequence, observation domain
SET_HEADER = struct.Struct("!HH")  # set id, length
TEMPLATE_SET_ID = 2
DOMAIN_NAME_LEN = 32  # fixed-length, NUL-padded: pmacct 1.7 reads variable-length strings
#                      only from enterprise elements, so the name has a fixed size (<= 31 bytes)
SCITAGS_PEN = 8057  # enterprise number of the scitags elements (CESNET ipfixprobe `scitag_export`)
MAX_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Element:
    """One Information Element as a template field specifier."""

    name: str
    element_id: int
    length: int
    enterprise: int = 0

    def specifier(self) -> bytes:
        if self.enterprise:
            return struct.pack("!HHI", 0x8000 | self.element_id, self.length, self.enterprise)
        return struct.pack("!HH", self.element_id, self.length)


# IANA IPFIX Information Elements (RFC 7012 and the IANA registry), and the scitags ones.
OCTET_DELTA = Element("octetDeltaCount", 1, 8)
PACKET_DELTA = Element("packetDeltaCount", 2, 8)
PROTOCOL = Element("protocolIdentifier", 4, 1)
SRC_PORT = Element("sourceTransportPort", 7, 2)
SRC_V4 = Element("sourceIPv4Address", 8, 4)
DST_PORT = Element("destinationTransportPort", 11, 2)
DST_V4 = Element("destinationIPv4Address", 12, 4)
SRC_V6 = Element("sourceIPv6Address", 27, 16)
DST_V6 = Element("destinationIPv6Address", 28, 16)
FLOW_LABEL = Element("flowLabelIPv6", 31, 4)
OCTET_TOTAL = Element("octetTotalCount", 85, 8)
PACKET_TOTAL = Element("packetTotalCount", 86, 8)
FLOW_END_REASON = Element("flowEndReason", 136, 1)
METERING_PROCESS = Element("meteringProcessId", 143, 4)
START_MS = Element("flowStartMilliseconds", 152, 8)
END_MS = Element("flowEndMilliseconds", 153, 8)
DOMAIN_NAME = Element("observationDomainName", 300, DOMAIN_NAME_LEN)
IP_VERSION = Element("ipVersion", 60, 1)
EXPERIMENT = Element("scitagsExperimentId", 1200, 2, SCITAGS_PEN)
ACTIVITY = Element("scitagsActivityId", 1201, 1, SCITAGS_PEN)

# flowEndReason values (RFC 7012 / IANA)
END_IDLE, END_ACTIVE, END_OF_FLOW, END_FORCED = 1, 2, 3, 4
# meteringProcessId values in aggregate records: which switch counters were read
METERING_SOURCES = {"flowlabel": 1}  # tag counters (flow label, extension header); firefly
#   traffic is exported per flow (its records sum to the firefly aggregates)


@dataclass(frozen=True)
class Template:
    template_id: int
    elements: tuple[Element, ...]
    fixed: struct.Struct  # the data record's layout

    def record(self) -> bytes:
        fields = b"".join(e.specifier() for e in self.elements)
        return struct.pack("!HH", self.template_id, len(self.elements)) + fields


def _template(template_id: int, elements: Sequence[Element], fmt: str) -> Template:
    fixed = struct.Struct("!" + fmt)
    if fixed.size != sum(e.length for e in elements):
        raise AssertionError(f"template {template_id}: format does not match the elements")
    return Template(template_id, tuple(elements), fixed)


# Totals before deltas: a collector that keeps one byte counter per record (nfdump maps both
# elements to one field, the later one wins) then keeps the delta, which is what sums right.
_FLOW_TAIL = (START_MS, END_MS, PACKET_TOTAL, OCTET_TOTAL, PACKET_DELTA, OCTET_DELTA,
              FLOW_END_REASON, EXPERIMENT, ACTIVITY, DOMAIN_NAME)
_FLOW_TAIL_FMT = f"QQQQQQBHB{DOMAIN_NAME_LEN}s"
FLOW_V4 = _template(256, (SRC_V4, DST_V4, PROTOCOL, SRC_PORT, DST_PORT) + _FLOW_TAIL,
                    "4s4sBHH" + _FLOW_TAIL_FMT)
FLOW_V6 = _template(257, (SRC_V6, DST_V6, PROTOCOL, SRC_PORT, DST_PORT, FLOW_LABEL) + _FLOW_TAIL,
                    "16s16sBHHI" + _FLOW_TAIL_FMT)
# ipVersion 6: the tag counters count IPv6 packets (label or extension header); collectors
# such as nfacctd also take a record without addresses as traffic only when it is present.
AGGREGATE = _template(258, (IP_VERSION, START_MS, END_MS, PACKET_DELTA, OCTET_DELTA,
                            METERING_PROCESS, EXPERIMENT, ACTIVITY, DOMAIN_NAME),
                      f"BQQQQIHB{DOMAIN_NAME_LEN}s")
TEMPLATES = (FLOW_V4, FLOW_V6, AGGREGATE)


class FlowRecord(NamedTuple):  # a tuple: made by the thousand on every poll
    """One report of a firefly flow at one switch (observation domain).

    Delta counts are what is new since this flow's previous record at this switch; total
    counts are everything since the flow started there (RFC 7012 packetTotalCount: since the
    flow's metering began). Interim (active-timeout) records and the end record carry both:
    collectors that sum records use the deltas, the end record's totals are the flow's."""

    domain_id: int
    switch: str
    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    protocol: int
    src_port: int
    dst_port: int
    start_ms: int
    end_ms: int
    packet_delta: int
    octet_delta: int
    packet_total: int
    octet_total: int
    end_reason: int
    experiment: int
    activity: int
    flow_label: int = 0  # IPv6 only; 0 = none seen (RFC 6437: zero means unlabeled)

    @property
    def template(self) -> Template:
        return FLOW_V6 if self.src.version == 6 else FLOW_V4


class AggregateRecord(NamedTuple):
    """Traffic of one (switch, source, experiment, activity) over one interval.
    activity 0 = the whole-experiment rule (an activity the registry does not list)."""

    domain_id: int
    switch: str
    source: str  # a key of METERING_SOURCES
    experiment: int
    activity: int
    start_ms: int
    end_ms: int
    packet_delta: int
    octet_delta: int

    @property
    def template(self) -> Template:
        return AGGREGATE


def _name(text: str) -> bytes:
    return text.encode()[:DOMAIN_NAME_LEN - 1]  # struct pads with NULs: always terminated


def _clip(value: int, bits: int) -> int:
    return min(max(int(value), 0), (1 << bits) - 1)


def _fields(rec: FlowRecord | AggregateRecord, clip: bool) -> tuple:
    c = (lambda v, bits=64: _clip(v, bits)) if clip else (lambda v, bits=64: v)
    if isinstance(rec, AggregateRecord):
        return (6, c(rec.start_ms), c(rec.end_ms), c(rec.packet_delta), c(rec.octet_delta),
                METERING_SOURCES[rec.source], c(rec.experiment, 16), c(rec.activity, 8),
                _name(rec.switch))
    tail = (c(rec.start_ms), c(rec.end_ms), c(rec.packet_total), c(rec.octet_total),
            c(rec.packet_delta), c(rec.octet_delta), rec.end_reason, c(rec.experiment, 16),
            c(rec.activity, 8), _name(rec.switch))
    if rec.src.version == 6:
        return (rec.src.packed, rec.dst.packed, rec.protocol, rec.src_port, rec.dst_port,
                rec.flow_label & 0xFFFFF, *tail)
    return (rec.src.packed, rec.dst.packed, rec.protocol, rec.src_port, rec.dst_port, *tail)


_V4_PACK, _V6_PACK = FLOW_V4.fixed.pack, FLOW_V6.fixed.pack


def encode_record(rec: FlowRecord | AggregateRecord) -> bytes:
    """The data record's bytes (without set header). A value out of its field's range
    (a negative delta, an id beyond 16/8 bits) saturates instead of failing the record."""
    try:
        if type(rec) is FlowRecord:  # the hot path, spelled out (no per-field calls)
            if rec.src.version == 4:
                return _V4_PACK(rec.src.packed, rec.dst.packed, rec.protocol, rec.src_port,
                                rec.dst_port, rec.start_ms, rec.end_ms, rec.packet_total,
                                rec.octet_total, rec.packet_delta, rec.octet_delta,
                                rec.end_reason, rec.experiment, rec.activity, _name(rec.switch))
            return _V6_PACK(rec.src.packed, rec.dst.packed, rec.protocol, rec.src_port,
                            rec.dst_port, rec.flow_label & 0xFFFFF, rec.start_ms, rec.end_ms,
                            rec.packet_total, rec.octet_total, rec.packet_delta, rec.octet_delta,
                            rec.end_reason, rec.experiment, rec.activity, _name(rec.switch))
        return rec.template.fixed.pack(*_fields(rec, False))
    except struct.error:
        return rec.template.fixed.pack(*_fields(rec, True))


def template_set(templates: Iterable[Template] = TEMPLATES) -> bytes:
    body = b"".join(t.record() for t in templates)
    return SET_HEADER.pack(TEMPLATE_SET_ID, SET_HEADER.size + len(body)) + body


def header(length: int, export_time: int, sequence: int, domain_id: int) -> bytes:
    return HEADER.pack(IPFIX_VERSION, length, export_time & MAX_U32, sequence & MAX_U32, domain_id)


@dataclass
class MessageBody:
    """Sets of one message (everything after the header) and how many data records it holds."""

    sets: bytes
    records: int


def pack_bodies(encoded: Sequence[tuple[int, bytes]], max_message: int,
                with_templates: bool) -> list[MessageBody]:
    """Encoded data records (template id, bytes) of ONE observation domain into message
    bodies of at most max_message bytes (header included). Templates, when asked, go first in
    the first message: a collector has them before the data that uses them."""
    budget = max_message - HEADER.size
    bodies: list[MessageBody] = []
    parts: list[bytes] = [template_set()] if with_templates else []
    used, count = sum(map(len, parts)), 0
    set_tid, set_parts, set_len = None, [], 0

    def close_set() -> None:
        nonlocal set_parts, set_len
        if set_parts:
            parts.append(SET_HEADER.pack(set_tid, SET_HEADER.size + set_len))
            parts.extend(set_parts)
            set_parts, set_len = [], 0

    for tid, data in encoded:
        new_set = tid != set_tid or not set_parts
        need = len(data) + (SET_HEADER.size if new_set else 0)
        if used + need > budget and used:
            close_set()
            bodies.append(MessageBody(b"".join(parts), count))
            parts, used, count = [], 0, 0
            new_set, need = True, len(data) + SET_HEADER.size
        if new_set:
            close_set()
            set_tid = tid
        set_parts.append(data)
        set_len += len(data)
        used += need
        count += 1
    close_set()
    if parts:
        bodies.append(MessageBody(b"".join(parts), count))
    return bodies
