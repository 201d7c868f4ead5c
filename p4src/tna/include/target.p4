/* What the shared control bodies (shared/control/) need from TNA. Counters are 64-bit
 * packets-and-bytes cells; the index is 32 bits as on v1model. */
#ifndef SCITAGS_TNA_TARGET_P4
#define SCITAGS_TNA_TARGET_P4

#define SCITAGS_COUNTER(name, size) Counter<bit<64>, bit<32>>(size, CounterType_t.PACKETS_AND_BYTES) name
#define SCITAGS_DIRECT_COUNTER(name) DirectCounter<bit<32>>(CounterType_t.PACKETS_AND_BYTES) name  /* hardware cells; the driver keeps 64-bit totals */
#define SCITAGS_IDLE_TIMEOUT idle_timeout = true
#define SCITAGS_PARSER_ERROR (ig_prsr_md.parser_err != 0)
#define SCITAGS_DROP ig_dprsr_md.drop_ctl = 1

/* ig_dprsr_md.mirror_type of the copies the ingress deparser makes (mirror_md_t in front). */
const MirrorType_t MIRROR_TYPE_I2E = 1;

#endif
