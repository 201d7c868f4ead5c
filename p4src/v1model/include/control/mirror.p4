/* Copies (v1model): a firefly seen in band goes to the CPU, a tag whose entry asks for it to
 * the monitor port, a source MAC to learn (Forwarding's learn_miss) to the CPU; the original
 * goes on either way. v1model keeps one ingress clone per packet, decided here only: the
 * firefly copy first, then the monitor's. */
#ifndef SCITAGS_V1MODEL_MIRROR_P4
#define SCITAGS_V1MODEL_MIRROR_P4

control Mirroring(inout headers_t hdr, inout local_metadata_t meta,
               inout standard_metadata_t standard_metadata) {
    apply {
        if (hdr.udp.isValid() && hdr.udp.dst_port == FIREFLY_UDP_PORT) {
            meta.punt_ingress_port = standard_metadata.ingress_port;
            meta.punt_reason = PUNT_REASON_FIREFLY;
            clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION_ID, FL_PUNT);
        } else if (meta.mirror) {
            clone(CloneType.I2E, (bit<32>)meta.mirror_session);
        } else if (meta.learn_miss) {
            meta.punt_ingress_port = standard_metadata.ingress_port;
            meta.punt_reason = PUNT_REASON_LEARN;
            clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION_ID, FL_PUNT);
        }
    }
}

#endif
