"""Packet-in / packet-out headers, laid out from the P4Info controller_packet_metadata.

The fields of a @controller_header are packed big-endian, most significant first, in P4Info
order (as the P4 deparser emits them), rounded up to whole bytes; PI's PacketInMutate /
PacketOutMutate do the same.
"""
from __future__ import annotations

from p4.v1 import p4runtime_pb2 as p4r

from p4schema import ControllerHeader, canonical, value_of

from .status import INVALID_ARGUMENT, P4RTError


class PacketInCodec:
    def __init__(self, header: ControllerHeader | None) -> None:
        self.nbytes = header.nbytes if header else 0
        pad = header.nbytes * 8 - header.nbits if header else 0
        # (metadata id, shift, mask) for each field
        self.fields: list[tuple[int, int, int]] = []
        if header:
            offset = header.nbits
            for f in header.fields:
                offset -= f.bitwidth
                self.fields.append((f.id, offset + pad, f.limit - 1))

    def decode(self, frame: bytes) -> p4r.PacketIn | None:
        """The PacketIn for a frame sent to the CPU port; None when it is too short."""
        n = self.nbytes
        if len(frame) < n:
            return None
        pkt = p4r.PacketIn(payload=frame[n:])
        if n:
            hdr = int.from_bytes(frame[:n], "big")
            add = pkt.metadata.add
            for mid, shift, mask in self.fields:
                add(metadata_id=mid, value=canonical((hdr >> shift) & mask))
        return pkt


class PacketOutCodec:
    def __init__(self, header: ControllerHeader | None) -> None:
        self.header = header
        # metadata id -> (shift, bitwidth, limit)
        self.fields: dict[int, tuple[int, int, int]] = {}
        if header:
            pad = header.nbytes * 8 - header.nbits
            offset = header.nbits
            for f in header.fields:
                offset -= f.bitwidth
                self.fields[f.id] = (offset + pad, f.bitwidth, f.limit)

    def encode(self, packet: p4r.PacketOut) -> bytes:
        """The frame to inject on the CPU port; P4RTError(INVALID_ARGUMENT) for unknown
        metadata, ValueTooWide for a value too wide. Missing metadata fields are sent as
        zeros, as PI does."""
        if self.header is None:
            if len(packet.metadata):
                raise P4RTError(INVALID_ARGUMENT, "Unexpected metadata in PacketOut message")
            return packet.payload
        hdr = 0
        for md in packet.metadata:
            spec = self.fields.get(md.metadata_id)
            if spec is None:
                raise P4RTError(INVALID_ARGUMENT,
                                f"Unknown metadata id {md.metadata_id} in PacketOut message")
            shift, bw, limit = spec
            v = value_of(md.value, limit, bw, f"packet_out metadata {md.metadata_id}")
            hdr = (hdr & ~((limit - 1) << shift)) | (v << shift)
        return hdr.to_bytes(self.header.nbytes, "big") + packet.payload
