/* scitags-p4: constants and type names shared by every target (v1model, TNA, T2NA).
 * p4schema/constants.py mirrors the values the controller needs; a test compares them. */
#ifndef SCITAGS_DEFINES_P4
#define SCITAGS_DEFINES_P4

typedef bit<48>  mac_addr_t;
typedef bit<32>  ipv4_addr_t;
typedef bit<128> ipv6_addr_t;
typedef bit<9>   port_id_t;      /* v1model's and Tofino's (PortId_t) port width */
typedef bit<16>  tag_id_t;       /* counter cell the controller assigns to a tag */
typedef bit<16>  mcast_group_t;
typedef bit<16>  mirror_session_t; /* wide enough for v1model (32 b) and Tofino (10 b) ids */
typedef bit<24>  exthdr_tag_t;   /* scitags option data: experiment << 8 | activity */
typedef bit<16>  bucket_id_t;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_IPV6 = 0x86DD;
const bit<16> ETHERTYPE_VLAN = 0x8100;
const bit<8>  PROTO_TCP = 6;
const bit<8>  PROTO_UDP = 17;
const bit<8>  PROTO_HOPOPTS = 0;    /* IPv6 Hop-by-Hop Options */
const bit<8>  PROTO_DSTOPTS = 60;   /* IPv6 Destination Options */

/* IPv6 options (RFC 8200 4.2) and the scitags option (flowd-go, RFC 4727 experimental type). */
#define IPV6_OPT_PAD1 0x00
#define IPV6_OPT_SCITAG 0x1E
#define IPV6_OPT_SCITAG_LEN 3

/* Fireflies are syslog messages to this UDP port (scitags SPEC). */
const bit<16> FIREFLY_UDP_PORT = 10514;

/* The CPU port. The switch must use the same number: BMv2's --cpu-port (255 by convention);
 * on Tofino the PCIe CPU port of the chip (tna/scitags.p4 sets the default per target).
 * Rebuild with -DCPU_PORT=N to change it. */
#ifndef CPU_PORT
#define CPU_PORT 255
#endif
const port_id_t CPU_PORT_ID = CPU_PORT;

/* Clone/mirror sessions the controller creates. */
const bit<32> CPU_CLONE_SESSION_ID = 100;  /* fireflies to the CPU port */
/* tagged traffic to the monitor port */
#define MONITOR_MIRROR_SESSION_ID 200

/* Multicast group of the flood ports. */
const mcast_group_t FLOOD_GROUP_ID = 1;

/* Packet-in reasons (packet_in.reason). */
const bit<8> PUNT_REASON_FIREFLY = 1;
const bit<8> PUNT_REASON_LEARN = 2;   /* a source MAC a learn-mode switch has not learned here */

/* Placement mode of an ingress port (port_mode table; no entry: static forwarding). */
const bit<3> PORT_MODE_STATIC = 0;
const bit<3> PORT_MODE_WIRE = 1;       /* out of the partner port, untouched */
const bit<3> PORT_MODE_WIRE_DOWN = 2;  /* the partner's link is down: dropped, counted */
const bit<3> PORT_MODE_TAP = 3;        /* copies: counted, never forwarded */
const bit<3> PORT_MODE_LEARN = 4;      /* MAC learning: unknown sources punted to the CPU */

/* Direction of traffic by its ingress port (port_mode's parameter): entering on a LAN port it
   goes to the WAN, entering on a WAN port it comes from it. direction_tag_counter cell =
   tag_id * 2 + (direction - 1). */
#define DIRECTION_NONE 0
#define DIRECTION_TO_WAN 1
#define DIRECTION_FROM_WAN 2

/* Cells of the buckets: traffic that has no tag cell of its own. One numbering over two
 * counters, because a Tofino counter is addressed once per packet and a packet can be in a
 * label bucket and a flow bucket at once:
 *   bucket_counter          cells 0, 1, 5..9 (what the packet's label or option is)
 *   firefly_bucket_counter  cells 2, 3, 4     (how a firefly flow's packet agrees with it) */
const bucket_id_t BUCKET_UNMARKED        = 0;  /* IPv6, flow label 0, no scitags option */
const bucket_id_t BUCKET_UNREGISTERED    = 1;  /* IPv6, trusted label matching no registered tag */
const bucket_id_t BUCKET_CONSISTENT      = 2;  /* firefly flow whose tag names the same experiment/activity */
const bucket_id_t BUCKET_MISMATCH        = 3;  /* firefly flow whose tag names another one */
const bucket_id_t BUCKET_FIREFLY_ONLY    = 4;  /* firefly flow without a tag */
const bucket_id_t BUCKET_PARSER_ERROR    = 5;  /* truncated/malformed headers: dropped */
const bucket_id_t BUCKET_UNTRUSTED_LABEL = 6;  /* a label (not 0) from outside the trust scope */
const bucket_id_t BUCKET_EXTHDR_UNREGISTERED = 7;  /* scitags option naming no registered tag */
const bucket_id_t BUCKET_EXTHDR_MISMATCH = 8;  /* option and a trusted registered label disagree */
const bucket_id_t BUCKET_EXTHDR_UNPARSED = 9;  /* options longer than the walk's limit or malformed: forwarded */
const bit<32> BUCKET_COUNT = 16;

/* Hop-by-Hop and Destination Options headers are walked option by option when they are 8 bytes
 * long (hdr_ext_len 0: 6 bytes of options, what flowd-go writes). A longer header, or an
 * option running past the header, is counted in BUCKET_EXTHDR_UNPARSED and forwarded
 * untouched, its TCP/UDP ports unseen. (The same limit on every target: a longer walk does not
 * fit Tofino's parser; see shared/exthdr_walk.p4.) */
#define EXTHDR_MAX_LEN_UNITS 0

/* meta.label_class values */
#define LABEL_NONE 0         /* not IPv6, or label 0 (what a v1model parser leaves) */
const bit<2> LABEL_UNREGISTERED = 1;
const bit<2> LABEL_REGISTERED = 2;    /* matches a tag (label_untrusted says whether it is trusted) */

/* meta.counted values: the tag cell Classify counted the packet in */
#define COUNTED_NONE 0       /* none (what a v1model parser leaves) */
const bit<2> COUNTED_LABEL = 1;      /* tag_counter: a trusted registered label, no option */
const bit<2> COUNTED_OPTION = 2;     /* exthdr_tag_counter: a registered scitags option */
const bit<2> COUNTED_UNTRUSTED = 3;  /* untrusted_tag_counter: a registered label from outside the trust scope */

#endif
