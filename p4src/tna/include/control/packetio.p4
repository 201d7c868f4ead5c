/* Packet-out and packet-in (TNA): frames from the controller leave by the port they name,
 * untouched and uncounted (egress bypassed); mirrored copies to the CPU get the packet-in
 * header in egress. */
#ifndef SCITAGS_TNA_PACKETIO_P4
#define SCITAGS_TNA_PACKETIO_P4

control PacketIoIngress(inout headers_t hdr, inout local_metadata_t meta,
                        inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    apply {
        /* applied to packet-outs only (the top file) */
        ig_tm_md.ucast_egress_port = hdr.packet_out.egress_port;
        ig_tm_md.bypass_egress = 1;  /* the deparser does not emit packet_out */
    }
}

control PacketIoEgress(inout headers_t hdr, inout egress_metadata_t meta) {
    apply {
        if (hdr.mirror.isValid()) {
            if (hdr.packet_in.reason == 0) {
                hdr.packet_in.setInvalid();  /* a monitor copy: the frame as it came */
            }
            hdr.mirror.setInvalid();
        }
    }
}

#endif
