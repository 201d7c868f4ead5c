/* Firefly-declared flows (v1model): shared/control/fireflies.p4. */
#ifndef SCITAGS_V1MODEL_FIREFLIES_P4
#define SCITAGS_V1MODEL_FIREFLIES_P4

control Fireflies(inout headers_t hdr, inout local_metadata_t meta,
                  inout standard_metadata_t standard_metadata) {
#include "../../../shared/control/fireflies.p4"
}

/* The cross-check of a hit with the packet's tag: shared/control/firefly_check.p4. */
control FireflyCheck(inout headers_t hdr, inout local_metadata_t meta,
                     inout standard_metadata_t standard_metadata) {
#include "../../../shared/control/firefly_check.p4"
}

#endif
