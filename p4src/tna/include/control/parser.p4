/* scitags-p4 TNA parsers and deparsers. The ingress parser reads what the v1model parser reads
 * (same states, same option walk); egress sees only the bridged or mirror header in front of
 * the frame, which it forwards untouched. */
#ifndef SCITAGS_TNA_PARSER_P4
#define SCITAGS_TNA_PARSER_P4

#include "../../../shared/exthdr_walk.p4"

parser ScitagsIngressParser(packet_in pkt,
                            out headers_t hdr,
                            out local_metadata_t meta,
                            out ingress_intrinsic_metadata_t ig_intr_md) {
    state start {
        pkt.extract(ig_intr_md);
        pkt.advance(PORT_METADATA_SIZE);
        /* Tofino leaves metadata as the PHV had it: every field is set here. */
        meta.l4_src_port = 0;
        meta.l4_dst_port = 0;
        meta.l4_valid = false;
        meta.l4_protocol = 0;
        meta.hopopts_tag_valid = false;
        meta.hopopts_tag = 0;
        meta.dstopts_tag_valid = false;
        meta.dstopts_tag = 0;
        meta.exthdr_tag = 0;
        meta.exthdr_unparsed = false;
        meta.label_class = LABEL_NONE;
        meta.label_untrusted = false;
        meta.label_tag_id = 0;
        meta.exthdr_hit = false;
        meta.exthdr_tag_id = 0;
        meta.tag_id_diff = 0;
        meta.exthdr_mirror = false;
        meta.exthdr_mirror_session = 0;
        meta.in_bucket = false;
        meta.bucket = 0;
        meta.counted = COUNTED_NONE;
        meta.counted_tag = 0;
        meta.mirror = false;
        meta.mirror_session = 0;
        meta.firefly_hit = false;
        meta.firefly_experiment = 0;
        meta.firefly_activity = 0;
        meta.tag_experiment = 0;
        meta.tag_activity = 0;
        meta.firefly_bucket = 0;
        meta.firefly_confirmed = false;
        meta.port_mode = 0;
        meta.direction = 0;
        meta.learn_miss = false;
        meta.punt_ingress_port = 0;
        meta.punt_reason = 0;
        /* The mirror header, complete but for the reason (set where a copy is made): the
           ingress port is written here, not in the actions that punt (one source each). */
        meta.mirror_md.setValid();
        meta.mirror_md.kind = MD_KIND_MIRROR;
        meta.mirror_md.ingress_port = ig_intr_md.ingress_port;
        meta.mirror_md.reason = 0;
        transition select(ig_intr_md.ingress_port) {
            CPU_PORT_ID: parse_packet_out;
            default: parse_ethernet;
        }
    }

    state parse_packet_out {
        pkt.extract(hdr.packet_out);
        transition parse_ethernet;
    }

    state parse_ethernet {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_VLAN: parse_vlan;
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_vlan {
        pkt.extract(hdr.vlan);
        transition select(hdr.vlan.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (5, 0, PROTO_TCP): parse_tcp;
            (5, 0, PROTO_UDP): parse_udp;
            default: accept;
        }
    }

    state parse_ipv6 {
        pkt.extract(hdr.ipv6);
        transition select(hdr.ipv6.next_hdr) {
            PROTO_TCP: parse_tcp;
            PROTO_UDP: parse_udp;
            PROTO_HOPOPTS: parse_hopopts;
            PROTO_DSTOPTS: parse_dstopts;
            default: accept;
        }
    }

    EXTHDR_OPTION_STATES(hopopts)

    state hopopts_next {
        transition select(hdr.hopopts.next_hdr) {
            PROTO_TCP: parse_tcp;
            PROTO_UDP: parse_udp;
            PROTO_DSTOPTS: parse_dstopts;
            default: accept;
        }
    }

    EXTHDR_OPTION_STATES(dstopts)

    state dstopts_next {
        transition select(hdr.dstopts.next_hdr) {
            PROTO_TCP: parse_tcp;
            PROTO_UDP: parse_udp;
            default: accept;
        }
    }

    state exthdr_unparsed {
        meta.exthdr_unparsed = true;
        transition accept;
    }

    state parse_tcp {
        pkt.extract(hdr.tcp);
        meta.l4_src_port = hdr.tcp.src_port;
        meta.l4_dst_port = hdr.tcp.dst_port;
        meta.l4_protocol = PROTO_TCP;
        meta.l4_valid = true;
        transition accept;
    }

    state parse_udp {
        pkt.extract(hdr.udp);
        meta.l4_src_port = hdr.udp.src_port;
        meta.l4_dst_port = hdr.udp.dst_port;
        meta.l4_protocol = PROTO_UDP;
        meta.l4_valid = true;
        transition accept;
    }
}

control ScitagsIngressDeparser(packet_out pkt,
                               inout headers_t hdr,
                               in local_metadata_t meta,
                               in ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {
    Mirror() mirror;

    apply {
        if (ig_dprsr_md.mirror_type == MIRROR_TYPE_I2E) {
            mirror.emit<mirror_md_t>((MirrorId_t)meta.mirror_session, meta.mirror_md);
        }
        pkt.emit(hdr.bridged);
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.vlan);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.ipv6);
        pkt.emit(hdr.hopopts);
        pkt.emit(hdr.hopopts_opts);
        pkt.emit(hdr.dstopts);
        pkt.emit(hdr.dstopts_opts);
        pkt.emit(hdr.tcp);
        pkt.emit(hdr.udp);
    }
}

parser ScitagsEgressParser(packet_in pkt,
                           out headers_t hdr,
                           out egress_metadata_t meta,
                           out egress_intrinsic_metadata_t eg_intr_md) {
    state start {
        pkt.extract(eg_intr_md);
        transition select(pkt.lookahead<bit<8>>()) {
            MD_KIND_MIRROR: parse_mirror;
            default: parse_bridged;
        }
    }

    state parse_bridged {
        pkt.extract(hdr.bridged);
        transition parse_frame_head;
    }

    state parse_mirror {
        pkt.extract(hdr.mirror);
        pkt.extract(hdr.packet_in);  /* reason 0 (a monitor copy): dropped again in egress */
        transition parse_frame_head;
    }

    state parse_frame_head {
        pkt.extract(hdr.frame_head);
        transition accept;
    }
}

control ScitagsEgressDeparser(packet_out pkt,
                              inout headers_t hdr,
                              in egress_metadata_t meta,
                              in egress_intrinsic_metadata_for_deparser_t eg_dprsr_md) {
    apply {
        pkt.emit(hdr.packet_in);
        pkt.emit(hdr.frame_head);
    }
}

#endif
