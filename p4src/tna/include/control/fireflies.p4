/* Firefly-declared flows (TNA): shared/control/fireflies.p4. */
#ifndef SCITAGS_TNA_FIREFLIES_P4
#define SCITAGS_TNA_FIREFLIES_P4

control Fireflies(inout headers_t hdr, inout local_metadata_t meta) {
#include "../../../shared/control/fireflies.p4"
}

#endif
