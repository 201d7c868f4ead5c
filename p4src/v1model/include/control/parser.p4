/* scitags-p4 v1model parser and deparser. */
#ifndef SCITAGS_V1MODEL_PARSER_P4
#define SCITAGS_V1MODEL_PARSER_P4

#include "../../../shared/exthdr_walk.p4"

parser ScitagsParser(packet_in pkt,
                     out headers_t hdr,
                     inout local_metadata_t meta,
                     inout standard_metadata_t standard_metadata) {
    state start {
        transition select(standard_metadata.ingress_port) {
            CPU_PORT: parse_packet_out;
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
        /* Ports only in unfragmented (or first-fragment) packets without options. */
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

    /* Options the walk cannot follow: the rest of the packet is payload, forwarded as it is. */
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

control ScitagsDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.packet_in);
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

#endif
