/* Classification (TNA): shared/control/classify.p4 with TNA's metadata. */
#ifndef SCITAGS_TNA_CLASSIFY_P4
#define SCITAGS_TNA_CLASSIFY_P4

control Classify(inout headers_t hdr, inout local_metadata_t meta,
                 in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                 inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {
#include "../../../shared/control/classify.p4"
}

#endif
