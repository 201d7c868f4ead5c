/* scitags-p4 for Tofino (TNA; T2NA with --target tofino2): the same program as
 * v1model/scitags.p4, each concern one control under include/control/ named as on v1model,
 * the shared logic in ../shared/. P4Runtime names are absolute (@name(".X")) and equal to
 * v1model's: the controller drives both the same way (tests/p4/test_p4info_parity.py). */
#include <core.p4>
#if __TARGET_TOFINO__ == 2
#include <t2na.p4>
#else
#include <tna.p4>
#endif

/* The PCIe CPU port: 192 on 2-pipe Tofino 1 parts, 0 on Tofino 2 (a 4-pipe Tofino 1 has it
 * at 320: rebuild with -DCPU_PORT=320). The switch's chassis config must agree. */
#ifndef CPU_PORT
#if __TARGET_TOFINO__ == 2
#define CPU_PORT 0
#else
#define CPU_PORT 192
#endif
#endif

#include "../shared/headers.p4"
#include "include/target.p4"
#include "include/control/parser.p4"
#include "include/control/packetio.p4"
#include "include/control/forwarding.p4"
#include "include/control/classify.p4"
#include "include/control/fireflies.p4"
#include "include/control/mirror.p4"

control ScitagsIngress(inout headers_t hdr,
                       inout local_metadata_t meta,
                       in ingress_intrinsic_metadata_t ig_intr_md,
                       in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                       inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                       inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    PacketIoIngress() packetio;
    Forwarding() forwarding;
    Classify() classify;
    Fireflies() fireflies;
    FireflyCheck() firefly_check;
    Mirroring() mirroring;

    apply {
        /* No exit anywhere: on Tofino an exit would make every later table wait for it. */
        if (hdr.packet_out.isValid()) {
            packetio.apply(hdr, meta, ig_tm_md);
        } else {
            if (!SCITAGS_PARSER_ERROR) {
                fireflies.apply(hdr, meta);  /* the lookups: independent of Classify */
            }
            classify.apply(hdr, meta, ig_prsr_md, ig_dprsr_md);  /* counts (and drops) parser errors */
            if (!SCITAGS_PARSER_ERROR) {
                forwarding.apply(hdr, meta, ig_intr_md, ig_dprsr_md, ig_tm_md);
                firefly_check.apply(hdr, meta);
                mirroring.apply(hdr, meta, ig_intr_md, ig_dprsr_md);
            }
        }
    }
}

control ScitagsEgress(inout headers_t hdr,
                      inout egress_metadata_t meta,
                      in egress_intrinsic_metadata_t eg_intr_md,
                      in egress_intrinsic_metadata_from_parser_t eg_prsr_md,
                      inout egress_intrinsic_metadata_for_deparser_t eg_dprsr_md,
                      inout egress_intrinsic_metadata_for_output_port_t eg_oport_md) {
    PacketIoEgress() packetio;
    EgressForwarding() forwarding;

    apply {
        packetio.apply(hdr, meta);
        forwarding.apply(hdr, meta, eg_intr_md, eg_dprsr_md);
    }
}

Pipeline(ScitagsIngressParser(),
         ScitagsIngress(),
         ScitagsIngressDeparser(),
         ScitagsEgressParser(),
         ScitagsEgress(),
         ScitagsEgressDeparser()) pipe;

Switch(pipe) main;
