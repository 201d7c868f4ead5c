/* scitags-p4: constants and type names shared by every target (v1model, later TNA). */
#ifndef SCITAGS_DEFINES_P4
#define SCITAGS_DEFINES_P4

typedef bit<48> mac_addr_t;
typedef bit<32> ipv4_addr_t;
typedef bit<128> ipv6_addr_t;
typedef bit<9>  port_id_t;      /* v1model port width; TNA uses the same name */
typedef bit<16> tag_id_t;       /* counter cell the controller assigns to a tag */
typedef bit<9>  experiment_t;   /* experiment id as carried in the flow label */
typedef bit<6>  activity_t;     /* activity id as carried in the flow label */
typedef bit<16> mcast_group_t;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_IPV6 = 0x86DD;
const bit<16> ETHERTYPE_VLAN = 0x8100;
const bit<8>  PROTO_TCP = 6;
const bit<8>  PROTO_UDP = 17;

/* Fireflies are syslog messages to this UDP port (scitags SPEC). */
const bit<16> FIREFLY_UDP_PORT = 10514;

/* The CPU port. BMv2's --cpu-port must name the same number; 255 by convention.
   Rebuild with -DCPU_PORT=N to change it. */
#ifndef CPU_PORT
#define CPU_PORT 255
#endif
const port_id_t CPU_PORT_ID = CPU_PORT;

/* Clone session that copies fireflies to the CPU port (the controller creates it). */
const bit<32> CPU_CLONE_SESSION_ID = 100;

/* Packet-in reasons (packet_in.reason). */
const bit<8> PUNT_REASON_FIREFLY = 1;

/* Cells of the bucket counter: traffic that has no tag of its own. */
const bit<32> BUCKET_UNMARKED     = 0;  /* IPv6, flow label 0 */
const bit<32> BUCKET_UNREGISTERED = 1;  /* IPv6, label matches no registered tag */
const bit<32> BUCKET_CONSISTENT   = 2;  /* firefly flow whose label names the same tag */
const bit<32> BUCKET_MISMATCH     = 3;  /* firefly flow whose label names another tag */
const bit<32> BUCKET_FIREFLY_ONLY = 4;  /* firefly flow without a registered label */
const bit<32> BUCKET_PARSER_ERROR = 5;  /* truncated/malformed headers: dropped */
const bit<32> BUCKET_COUNT        = 8;

const bit<32> TAG_COUNTER_SIZE = 4096;
const int     FIREFLY_TABLE_SIZE = 65536;
const int     POLICY_TABLE_SIZE = 4096;
const int     L2_TABLE_SIZE = 4096;

/* standard_metadata.instance_type of a multicast copy, as BMv2 sets it */
const bit<32> PKT_INSTANCE_TYPE_REPLICATION = 5;

/* meta.label_class values (0: not IPv6) */
const bit<2> LABEL_UNMARKED = 1;
const bit<2> LABEL_UNREGISTERED = 2;
const bit<2> LABEL_REGISTERED = 3;

#endif
