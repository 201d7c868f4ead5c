/* scitags-p4: packet headers and metadata shared by every target. */
#ifndef SCITAGS_HEADERS_P4
#define SCITAGS_HEADERS_P4

#include "defines.p4"

/* Prepended to packets sent to the controller. 3 bytes. */
@controller_header("packet_in")
header packet_in_t {
    port_id_t ingress_port;
    bit<8>    reason;
    bit<7>    _pad;
}

/* Prepended by the controller to packets it sends. 2 bytes. */
@controller_header("packet_out")
header packet_out_t {
    port_id_t egress_port;
    bit<7>    _pad;
}

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16>    ether_type;
}

header vlan_t {
    bit<3>  pcp;
    bit<1>  dei;
    bit<12> vid;
    bit<16> ether_type;
}

header ipv4_t {
    bit<4>      version;
    bit<4>      ihl;
    bit<8>      dscp_ecn;
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

header ipv6_t {
    bit<4>      version;
    bit<8>      traffic_class;
    bit<20>     flow_label;
    bit<16>     payload_len;
    bit<8>      next_hdr;
    bit<8>      hop_limit;
    ipv6_addr_t src_addr;
    ipv6_addr_t dst_addr;
}

header tcp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4>  data_offset;
    bit<4>  res;
    bit<8>  flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

header udp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> length;
    bit<16> checksum;
}

struct headers_t {
    packet_out_t packet_out;
    packet_in_t  packet_in;
    ethernet_t   ethernet;
    vlan_t       vlan;
    ipv4_t       ipv4;
    ipv6_t       ipv6;
    tcp_t        tcp;
    udp_t        udp;
}

/* Field list ids for metadata that must survive a clone. */
const bit<8> FL_PUNT = 1;

struct local_metadata_t {
    bit<16>      l4_src_port;
    bit<16>      l4_dst_port;
    bool         l4_valid;
    experiment_t label_experiment;  /* decoded from the flow label */
    activity_t   label_activity;
    bit<2>       label_class;
    bool         firefly_hit;
    bit<16>      firefly_experiment; /* what the firefly declared (may exceed 511) */
    bit<8>       firefly_activity;
    /* Carried to the egress copy of a firefly punted to the CPU. */
    @field_list(FL_PUNT) port_id_t punt_ingress_port;
    @field_list(FL_PUNT) bit<8>    punt_reason;
}

#endif
