/* Classification (v1model): shared/control/classify.p4 with v1model's metadata. */
#ifndef SCITAGS_V1MODEL_CLASSIFY_P4
#define SCITAGS_V1MODEL_CLASSIFY_P4

control Classify(inout headers_t hdr, inout local_metadata_t meta,
                 inout standard_metadata_t standard_metadata) {
#include "../../../shared/control/classify.p4"
}

#endif
