/* Packet-out and packet-in (v1model): frames from the controller leave by the port they name,
 * untouched and uncounted; copies to the CPU port get the packet-in header. */
#ifndef SCITAGS_V1MODEL_PACKETIO_P4
#define SCITAGS_V1MODEL_PACKETIO_P4

control PacketIoIngress(inout headers_t hdr, inout local_metadata_t meta,
                        inout standard_metadata_t standard_metadata) {
    apply {
        /* applied to packet-outs only (the top file) */
        standard_metadata.egress_spec = hdr.packet_out.egress_port;
        hdr.packet_out.setInvalid();
    }
}

/* An ingress clone is the frame as received, parsed again; nothing here rewrites its headers,
   so the copy to the CPU is the packet-in header + the original frame. */
control PacketIoEgress(inout headers_t hdr, inout local_metadata_t meta,
                       inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.egress_port == CPU_PORT_ID) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = meta.punt_ingress_port;
            hdr.packet_in.reason = meta.punt_reason;
            hdr.packet_in._pad = 0;
            exit;
        }
    }
}

#endif
