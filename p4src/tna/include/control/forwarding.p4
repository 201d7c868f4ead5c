/* L2 forwarding (TNA): unicast by destination MAC, else flood through the PRE; never back out
 * of the ingress port (unicast hairpins dropped here, flood copies pruned in egress). */
#ifndef SCITAGS_TNA_FORWARDING_P4
#define SCITAGS_TNA_FORWARDING_P4

control Forwarding(inout headers_t hdr, inout local_metadata_t meta,
                   in ingress_intrinsic_metadata_t ig_intr_md,
                   inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                   inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    @name(".ScitagsIngress.drop") action drop() {
        ig_dprsr_md.drop_ctl = 1;
    }

    @name(".ScitagsIngress.set_egress_port") action set_egress_port(port_id_t port) {
        ig_tm_md.ucast_egress_port = port;
    }

    @name(".ScitagsIngress.flood") action flood(mcast_group_t group) {
        ig_tm_md.mcast_grp_a = group;
    }

    @name(".ScitagsIngress.l2_forward") table l2_forward {
        key = {
            hdr.ethernet.dst_addr : exact @name("dst_mac");
        }
        actions = { set_egress_port; flood; drop; }
        default_action = flood(FLOOD_GROUP_ID);
        size = L2_TABLE_SIZE;
    }

    apply {
        if (hdr.ethernet.isValid()) {
            l2_forward.apply();
            if (ig_tm_md.mcast_grp_a == 0 && ig_tm_md.ucast_egress_port == ig_intr_md.ingress_port) {
                drop();
            }
            hdr.bridged.setValid();
            hdr.bridged.kind = MD_KIND_BRIDGED;
            hdr.bridged._pad0 = 0;
            hdr.bridged.ingress_port = ig_intr_md.ingress_port;
        }
    }
}

control EgressForwarding(inout headers_t hdr, inout local_metadata_t meta,
                         in egress_intrinsic_metadata_t eg_intr_md,
                         inout egress_intrinsic_metadata_for_deparser_t eg_dprsr_md) {
    apply {
        if (hdr.bridged.isValid()) {
            if (hdr.bridged.ingress_port == eg_intr_md.egress_port) {
                eg_dprsr_md.drop_ctl = 1;  /* flood pruning */
            }
            hdr.bridged.setInvalid();
        }
    }
}

#endif
