/* scitags-p4: table and counter sizes per target. v1model (BMv2 and the built-in target) keeps
 * what a software switch can hold; Tofino sizes are what the chip fits with headroom (see
 * p4src/README.md for the compiler's resource figures). */
#ifndef SCITAGS_SIZE_P4
#define SCITAGS_SIZE_P4

#if defined(__TARGET_TOFINO__) && __TARGET_TOFINO__ >= 2
#define FIREFLY_V4_TABLE_SIZE 262144
#define FIREFLY_V6_TABLE_SIZE 131072
#define POLICY_TABLE_SIZE 4096
#define TAG_COUNTER_SIZE 4096
#elif defined(__TARGET_TOFINO__)
/* Tofino 1: what its 12 stages place (p4src/README.md, Tofino status) */
#define FIREFLY_V4_TABLE_SIZE 131072
#define FIREFLY_V6_TABLE_SIZE 65536
#define POLICY_TABLE_SIZE 4096
#define TAG_COUNTER_SIZE 4096
#else
#define FIREFLY_V4_TABLE_SIZE 65536
#define FIREFLY_V6_TABLE_SIZE 65536
#define POLICY_TABLE_SIZE 4096
#define TAG_COUNTER_SIZE 4096
#endif

#define L2_TABLE_SIZE 4096
#define TRUST_TABLE_SIZE 1024
#define PORT_MODE_TABLE_SIZE 512   /* one entry per port */
#define LEARNED_SRC_TABLE_SIZE L2_TABLE_SIZE

#endif
