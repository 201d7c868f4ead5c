/* scitags-p4 for BMv2 (v1model): forward like a switch, count IPv6 flow-label and
 * extension-header tags and firefly-declared flows per experiment and activity, mirror tagged
 * traffic, and copy fireflies seen in band to the controller. p4src/README.md describes the
 * tables; each concern is one control under include/control/, named as on TNA. Every table,
 * action and counter carries an absolute @name: the P4Runtime names are the controller's
 * interface, the same on every target, whatever the control structure. */
#include <core.p4>
#include <v1model.p4>

#include "../shared/headers.p4"
#include "include/target.p4"
#include "include/control/parser.p4"
#include "include/control/packetio.p4"
#include "include/control/forwarding.p4"
#include "include/control/classify.p4"
#include "include/control/fireflies.p4"
#include "include/control/mirror.p4"

control ScitagsVerifyChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply { }  /* forwarding never rewrites headers, so checksums are left alone */
}

control ScitagsIngress(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t standard_metadata) {
    PacketIoIngress() packetio;
    Forwarding() forwarding;
    Classify() classify;
    Fireflies() fireflies;
    FireflyCheck() firefly_check;
    Mirroring() mirroring;

    apply {
        /* No exit anywhere: on Tofino an exit would make every later table wait for it. */
        if (hdr.packet_out.isValid()) {
            packetio.apply(hdr, meta, standard_metadata);
        } else {
            if (!SCITAGS_PARSER_ERROR) {
                fireflies.apply(hdr, meta, standard_metadata);  /* the lookups: independent of Classify */
            }
            classify.apply(hdr, meta, standard_metadata);  /* counts (and drops) parser errors */
            if (!SCITAGS_PARSER_ERROR) {
                forwarding.apply(hdr, meta, standard_metadata);
                firefly_check.apply(hdr, meta, standard_metadata);
                mirroring.apply(hdr, meta, standard_metadata);
            }
        }
    }
}

control ScitagsEgress(inout headers_t hdr,
                      inout local_metadata_t meta,
                      inout standard_metadata_t standard_metadata) {
    PacketIoEgress() packetio;
    EgressForwarding() forwarding;

    apply {
        packetio.apply(hdr, meta, standard_metadata);
        forwarding.apply(hdr, meta, standard_metadata);
    }
}

control ScitagsComputeChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply { }
}

V1Switch(ScitagsParser(),
         ScitagsVerifyChecksum(),
         ScitagsIngress(),
         ScitagsEgress(),
         ScitagsComputeChecksum(),
         ScitagsDeparser()) main;
