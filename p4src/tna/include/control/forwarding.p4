/* Forwarding (TNA), by the placement mode of the ingress port (port_mode; no entry: static):
 *  - static: unicast by destination MAC (l2_forward), else flood; never back out of the ingress
 *    port (unicast hairpins dropped here, flood copies pruned in egress);
 *  - learn: the same, and a source MAC not yet learned on this port (learned_src miss) is marked
 *    for Mirroring, which copies it to the CPU (packet-in reason 2) unless the packet already
 *    gets a copy (a firefly or a monitor copy);
 *  - wire: out of the partner port, untouched, whatever the addresses; wire_down (the partner's
 *    link is down) drops and counts in wire_down_counter[ingress port], never floods;
 *  - tap: copies from a tap or mirror port: counted (Classify, Fireflies), fireflies punted and
 *    monitor copies made (Mirroring), the packet itself dropped.
 * A labelled port (direction) counts the packet's tag in direction_tag_counter too. */
#ifndef SCITAGS_TNA_FORWARDING_P4
#define SCITAGS_TNA_FORWARDING_P4

control Forwarding(inout headers_t hdr, inout local_metadata_t meta,
                   in ingress_intrinsic_metadata_t ig_intr_md,
                   inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                   inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    @name(".ScitagsIngress.direction_tag_counter")
    SCITAGS_COUNTER(direction_tag_counter, 2 * TAG_COUNTER_SIZE);
    @name(".ScitagsIngress.wire_down_counter")
    SCITAGS_COUNTER(wire_down_counter, PORT_MODE_TABLE_SIZE);

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

    @name(".ScitagsIngress.static_port") action static_port(bit<2> direction) {
        meta.port_mode = PORT_MODE_STATIC;
        meta.direction = direction;
    }

    @name(".ScitagsIngress.learn_port") action learn_port(bit<2> direction) {
        meta.port_mode = PORT_MODE_LEARN;
        meta.direction = direction;
    }

    @name(".ScitagsIngress.wire_to") action wire_to(port_id_t port, bit<2> direction) {
        meta.port_mode = PORT_MODE_WIRE;
        meta.direction = direction;
        ig_tm_md.ucast_egress_port = port;
    }

    @name(".ScitagsIngress.wire_down") action wire_down(bit<2> direction) {
        meta.port_mode = PORT_MODE_WIRE_DOWN;
        meta.direction = direction;
    }

    @name(".ScitagsIngress.tap_port") action tap_port(bit<2> direction) {
        meta.port_mode = PORT_MODE_TAP;
        meta.direction = direction;
    }

    /* One entry per port of a switch not in static mode, or labelled with a direction. */
    @name(".ScitagsIngress.port_mode") table port_mode {
        key = {
            ig_intr_md.ingress_port : exact @name("ingress_port");
        }
        actions = { static_port; learn_port; wire_to; wire_down; tap_port; @defaultonly NoAction; }
        const default_action = NoAction();
        size = PORT_MODE_TABLE_SIZE;
    }

    @name(".ScitagsIngress.source_known") action source_known() { }

    @name(".ScitagsIngress.learn_source") action learn_source() {
        meta.learn_miss = true;  /* Mirroring punts it (unless the packet gets another copy) */
    }

    /* Learned (source MAC, port) pairs, aged by idle timeout; a miss is punted. */
    @name(".ScitagsIngress.learned_src") table learned_src {
        key = {
            hdr.ethernet.src_addr : exact @name("src_mac");
            ig_intr_md.ingress_port : exact @name("ingress_port");
        }
        actions = { source_known; @defaultonly learn_source; }
        const default_action = learn_source();
        size = LEARNED_SRC_TABLE_SIZE;
        SCITAGS_IDLE_TIMEOUT;
    }

    apply {
        /* Dispatch on the port's action, not on a mode field (on Tofino: no stage for it).
           No entry: static forwarding, DIRECTION_NONE (0, as the parser left them). */
        switch (port_mode.apply().action_run) {
            wire_to: { }  /* out of the partner port, set by wire_to */
            wire_down: {
                wire_down_counter.count((bit<32>)ig_intr_md.ingress_port);
                drop();
            }
            tap_port: { drop(); }
            default: {  /* static, learn */
                l2_forward.apply();
                if (ig_tm_md.mcast_grp_a == 0 && ig_tm_md.ucast_egress_port == ig_intr_md.ingress_port) {
                    drop();
                }
                if (meta.port_mode == PORT_MODE_LEARN && hdr.ethernet.src_addr[40:40] == 0) {
                    learned_src.apply();
                }
            }
        }
        if (meta.direction != DIRECTION_NONE
                && (meta.counted == COUNTED_LABEL || meta.counted == COUNTED_OPTION)) {
            /* the tag Classify counted: cell = tag * 2 + 0 (to the WAN, direction 1) or 1
               (from the WAN, direction 2), the tag and the direction's high bit side by side
               (a Tofino counter index is a field, not an expression) */
            bit<17> cell = meta.counted_tag ++ meta.direction[1:1];
            direction_tag_counter.count((bit<32>)cell);
        }
        /* every packet forwarded in the pipeline carries the ingress port to egress */
        hdr.bridged.setValid();
        hdr.bridged.kind = MD_KIND_BRIDGED;
        hdr.bridged._pad0 = 0;
        hdr.bridged.ingress_port = ig_intr_md.ingress_port;
    }
}

control EgressForwarding(inout headers_t hdr, inout egress_metadata_t meta,
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
