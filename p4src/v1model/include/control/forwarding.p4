/* L2 forwarding (v1model): unicast by destination MAC, else flood; never back out of the
 * ingress port (unicast hairpins dropped here, flood copies pruned in egress). */
#ifndef SCITAGS_V1MODEL_FORWARDING_P4
#define SCITAGS_V1MODEL_FORWARDING_P4

control Forwarding(inout headers_t hdr, inout local_metadata_t meta,
                   inout standard_metadata_t standard_metadata) {
    @name(".ScitagsIngress.drop") action drop() {
        mark_to_drop(standard_metadata);
    }

    @name(".ScitagsIngress.set_egress_port") action set_egress_port(port_id_t port) {
        standard_metadata.egress_spec = port;
    }

    @name(".ScitagsIngress.flood") action flood(mcast_group_t group) {
        standard_metadata.mcast_grp = group;
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
            if (standard_metadata.mcast_grp == 0
                    && standard_metadata.egress_spec == standard_metadata.ingress_port) {
                drop();
            }
        }
    }
}

control EgressForwarding(inout headers_t hdr, inout local_metadata_t meta,
                         inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.instance_type == PKT_INSTANCE_TYPE_REPLICATION
                && standard_metadata.egress_port == standard_metadata.ingress_port) {
            mark_to_drop(standard_metadata);  /* flood pruning */
        }
    }
}

#endif
