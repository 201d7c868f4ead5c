/* What the shared control bodies (shared/control/) need from v1model. */
#ifndef SCITAGS_V1MODEL_TARGET_P4
#define SCITAGS_V1MODEL_TARGET_P4

#define SCITAGS_COUNTER(name, size) counter(size, CounterType.packets_and_bytes) name
#define SCITAGS_DIRECT_COUNTER(name) direct_counter(CounterType.packets_and_bytes) name
#define SCITAGS_IDLE_TIMEOUT support_timeout = true
#define SCITAGS_PARSER_ERROR (standard_metadata.parser_error != error.NoError)
#define SCITAGS_DROP mark_to_drop(standard_metadata)

/* standard_metadata.instance_type of a multicast copy, as BMv2 sets it */
const bit<32> PKT_INSTANCE_TYPE_REPLICATION = 5;

#endif
