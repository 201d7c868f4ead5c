/* scitags-p4: packet headers and metadata shared by every target. */
#ifndef SCITAGS_HEADERS_P4
#define SCITAGS_HEADERS_P4

#include "defines.p4"
#include "size.p4"

/* Prepended to packets sent to the controller. 3 bytes; the padding in front of the 9-bit
   port makes a 16-bit group with the port in its low bits, where Tofino keeps port numbers
   (its copies to the CPU carry this header from ingress inside the mirror header). */
@controller_header("packet_in")
header packet_in_t {
    bit<7>    _pad;
    port_id_t ingress_port;
    bit<8>    reason;
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

/* First two bytes of a Hop-by-Hop or Destination Options header (RFC 8200 4.3, 4.6). */
header ipv6_ext_t {
    bit<8> next_hdr;
    bit<8> hdr_ext_len;   /* in 8-byte units, not counting the first 8 bytes */
}

/* The 6 option bytes of an 8-byte options header, extracted once the walk has read them (the
   scitags option among them: type 0x1E, length 3, experiment << 8 | activity). */
header ipv6_opts_area_t {
    bit<48> options;
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

#ifdef __TARGET_TOFINO__
/* What the egress parser finds first: the kind of the header in front of the frame. */
const bit<8> MD_KIND_BRIDGED = 0;
const bit<8> MD_KIND_MIRROR = 1;

/* Ingress -> egress on every forwarded packet: what egress needs to prune floods. 4 bytes, as
   the mirror header, so that both paths of the egress parser reach its minimum depth alike. */
header bridged_md_t {
    bit<8>    kind;
    bit<15>   _pad0;
    port_id_t ingress_port;
}

/* In front of a mirrored copy (ingress deparser, mirror_type 1): to the CPU or the monitor. Its
   last three bytes are packet_in_t's fields in packet_in_t's order: egress parses them as the
   packet-in header itself (md_kind_t + packet_in_t), so a CPU copy needs no field copies. */
header mirror_md_t {
    bit<8>    kind;
    @padding bit<7> _pad;
    port_id_t ingress_port;
    bit<8>    reason;        /* 0: monitor copy, else the packet-in reason */
}

header md_kind_t {
    bit<8>    kind;
}

/* The first 61 bytes of the frame behind the 4-byte bridged or mirror header: a Tofino 1
   egress parser must read 65 bytes (every frame in egress has at least 64), and reading them
   as a header keeps the compiler from adding its own padding loop. Written back unchanged. */
header frame_head_t {
    bit<488>  data;
}
#endif

struct headers_t {
#ifdef __TARGET_TOFINO__
    bridged_md_t bridged;
    md_kind_t    mirror;         /* egress: the kind byte of a mirrored copy (then packet_in) */
    frame_head_t frame_head;     /* egress */
#endif
    packet_out_t packet_out;
    packet_in_t  packet_in;
    ethernet_t   ethernet;
    vlan_t       vlan;
    ipv4_t       ipv4;
    ipv6_t       ipv6;
    ipv6_ext_t   hopopts;
    ipv6_opts_area_t hopopts_opts;
    ipv6_ext_t   dstopts;
    ipv6_opts_area_t dstopts_opts;
    tcp_t        tcp;
    udp_t        udp;
}

#ifdef __TARGET_TOFINO__
/* Egress needs nothing but the header in front of the frame (bridged_md_t or mirror_md_t). */
struct egress_metadata_t { }
#endif

/* Field list ids for metadata that must survive a clone (v1model). */
const bit<8> FL_PUNT = 1;

struct local_metadata_t {
    bit<16>      l4_src_port;
    bit<16>      l4_dst_port;
    bool         l4_valid;
    bit<8>       l4_protocol;        /* TCP or UDP, behind any extension headers */
    bool         hopopts_tag_valid;  /* the parser found a scitags option in Hop-by-Hop */
    exthdr_tag_t hopopts_tag;        /* its data: experiment << 8 | activity */
    bool         dstopts_tag_valid;  /* ... in Destination Options */
    exthdr_tag_t dstopts_tag;
    exthdr_tag_t exthdr_tag;         /* Classify: the packet's option (Destination Options' first) */
    bool         exthdr_unparsed;    /* options the walk could not follow */
    bit<2>       label_class;
    bool         label_untrusted;    /* the source is outside the trust scope */
    tag_id_t     label_tag_id;
    bool         exthdr_hit;
    tag_id_t     exthdr_tag_id;
    tag_id_t     tag_id_diff;        /* exthdr_tag_id ^ label_tag_id, on an option's hit */
    bool         exthdr_mirror;      /* the option's entry asks for a monitor copy */
    mirror_session_t exthdr_mirror_session;
    bool         in_bucket;          /* counted in bucket_counter[bucket] */
    bucket_id_t  bucket;
    bit<2>       counted;            /* COUNTED_*: the tag cell Classify counted, if any */
    tag_id_t     counted_tag;        /* ... and its number */
    bool         mirror;             /* the tag's entry asks for a monitor copy */
    mirror_session_t mirror_session;
    bool         firefly_hit;
    bit<16>      firefly_experiment; /* what the firefly declared (may exceed 511) */
    bit<8>       firefly_activity;
    bit<16>      tag_experiment;     /* the label's experiment, then the packet's tag's difference to the firefly's */
    bit<8>       tag_activity;       /* the difference of the activities */
    bucket_id_t  firefly_bucket;     /* FireflyCheck's outcome: consistent, mismatch, firefly only */
    bool         firefly_confirmed;  /* ... a trusted label confirms the firefly */
    bit<3>       port_mode;          /* PORT_MODE_* of the ingress port */
    bit<2>       direction;          /* DIRECTION_* of the ingress port */
    bool         learn_miss;         /* learn mode: a source MAC not learned on this port */
    /* Carried to the egress copy of a firefly punted to the CPU (v1model). */
    @field_list(FL_PUNT) port_id_t punt_ingress_port;
    @field_list(FL_PUNT) bit<8>    punt_reason;
#ifdef __TARGET_TOFINO__
    mirror_md_t  mirror_md;          /* what the ingress deparser puts in front of a copy */
#endif
}

#endif
