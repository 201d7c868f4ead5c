/* Copies (TNA): a firefly seen in band goes to the CPU, a tag whose entry asks for it to the
 * monitor port, a source MAC to learn (Forwarding's learn_miss) to the CPU; the original goes on
 * either way. One ingress mirror per packet, as on v1model, decided here only: the firefly
 * copy first, then the monitor's. The ingress deparser puts mirror_md_t in front of the copy. */
#ifndef SCITAGS_TNA_MIRROR_P4
#define SCITAGS_TNA_MIRROR_P4

control Mirroring(inout headers_t hdr, inout local_metadata_t meta,
               in ingress_intrinsic_metadata_t ig_intr_md,
               inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {
    apply {
        if (hdr.udp.isValid() && hdr.udp.dst_port == FIREFLY_UDP_PORT) {
            meta.mirror_md.reason = PUNT_REASON_FIREFLY;
            meta.mirror_session = (mirror_session_t)CPU_CLONE_SESSION_ID;
            ig_dprsr_md.mirror_type = MIRROR_TYPE_I2E;
        } else if (meta.mirror) {
            ig_dprsr_md.mirror_type = MIRROR_TYPE_I2E;
        } else if (meta.learn_miss) {
            meta.mirror_md.reason = PUNT_REASON_LEARN;
            meta.mirror_session = (mirror_session_t)CPU_CLONE_SESSION_ID;
            ig_dprsr_md.mirror_type = MIRROR_TYPE_I2E;
        }
    }
}

#endif
