/* Packet-out and packet-in (TNA): frames from the controller leave by the port they name,
 * untouched and uncounted (egress bypassed); mirrored copies to the CPU get the packet-in
 * header in egress. */
#ifndef SCITAGS_TNA_PACKETIO_P4
#define SCITAGS_TNA_PACKETIO_P4

control PacketIoIngress(inout headers_t hdr, inout local_metadata_t meta,
                        inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    apply {
        if (hdr.packet_out.isValid()) {
            ig_tm_md.ucast_egress_port = hdr.packet_out.egress_port;
            ig_tm_md.bypass_egress = 1;
            hdr.packet_out.setInvalid();
            exit;
        }
    }
}

control PacketIoEgress(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        if (hdr.mirror.isValid()) {
            if (hdr.mirror.reason != 0) {
                hdr.packet_in.setValid();
                hdr.packet_in.ingress_port = hdr.mirror.ingress_port;
                hdr.packet_in.reason = hdr.mirror.reason;
                hdr.packet_in._pad = 0;
            }
            hdr.mirror.setInvalid();
        }
    }
}

#endif
