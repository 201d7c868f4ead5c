/* scitags-p4 for BMv2 (v1model): forward like a switch, count IPv6 flow-label tags and
 * firefly-declared flows per experiment and activity, mirror tagged traffic, and copy
 * fireflies seen in band to the controller. Tables are described in p4src/README.md. */
#include <core.p4>
#include <v1model.p4>

#include "../shared/headers.p4"
#include "parser.p4"

control ScitagsVerifyChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply { }  /* forwarding never rewrites headers, so checksums are left alone */
}

/* Every table, key, action and counter carries @name: the P4Runtime names are the
   controller's interface and must not change when the code is refactored. */
control ScitagsIngress(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t standard_metadata) {

    @name("tag_counter") counter(TAG_COUNTER_SIZE, CounterType.packets_and_bytes) tag_counter;
    @name("bucket_counter") counter(BUCKET_COUNT, CounterType.packets_and_bytes) bucket_counter;
    @name("firefly_v4_counter") direct_counter(CounterType.packets_and_bytes) firefly_v4_counter;
    @name("firefly_v6_counter") direct_counter(CounterType.packets_and_bytes) firefly_v6_counter;

    @name("drop") action drop() {
        mark_to_drop(standard_metadata);
    }

    /* ---- L2 forwarding ---- */
    @name("set_egress_port") action set_egress_port(port_id_t port) {
        standard_metadata.egress_spec = port;
    }

    @name("flood") action flood(mcast_group_t group) {
        standard_metadata.mcast_grp = group;
    }

    @name("l2_forward") table l2_forward {
        key = {
            hdr.ethernet.dst_addr : exact @name("dst_mac");
        }
        actions = { set_egress_port; flood; drop; }
        default_action = flood(1);
        size = L2_TABLE_SIZE;
    }

    /* ---- flow-label tags ---- */
    @name("count_tag") action count_tag(tag_id_t tag_id) {
        meta.label_class = LABEL_REGISTERED;
        tag_counter.count((bit<32>)tag_id);
    }

    @name("count_tag_and_mirror") action count_tag_and_mirror(tag_id_t tag_id, bit<32> mirror_session) {
        meta.label_class = LABEL_REGISTERED;
        tag_counter.count((bit<32>)tag_id);
        clone(CloneType.I2E, mirror_session);
    }

    @name("unregistered_label") action unregistered_label() {
        meta.label_class = LABEL_UNREGISTERED;
        bucket_counter.count(BUCKET_UNREGISTERED);
    }

    /* One entry per registered experiment/activity; activity mask 0 = whole experiment. */
    @name("scitag_policy") table scitag_policy {
        key = {
            meta.label_experiment : exact @name("experiment");
            meta.label_activity   : ternary @name("activity");
        }
        actions = { count_tag; count_tag_and_mirror; @defaultonly unregistered_label; }
        const default_action = unregistered_label();
        size = POLICY_TABLE_SIZE;
    }

    /* ---- firefly-declared flows (5-tuple, from the controller) ---- */
    @name("firefly_flow_v4") action firefly_flow_v4(bit<16> experiment, bit<8> activity) {
        firefly_v4_counter.count();
        meta.firefly_hit = true;
        meta.firefly_experiment = experiment;
        meta.firefly_activity = activity;
    }

    @name("firefly_flow_v6") action firefly_flow_v6(bit<16> experiment, bit<8> activity) {
        firefly_v6_counter.count();
        meta.firefly_hit = true;
        meta.firefly_experiment = experiment;
        meta.firefly_activity = activity;
    }

    @name("firefly_v4") table firefly_v4 {
        key = {
            hdr.ipv4.src_addr : exact @name("src_addr");
            hdr.ipv4.dst_addr : exact @name("dst_addr");
            hdr.ipv4.protocol : exact @name("protocol");
            meta.l4_src_port  : exact @name("src_port");
            meta.l4_dst_port  : exact @name("dst_port");
        }
        actions = { firefly_flow_v4; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = firefly_v4_counter;
        support_timeout = true;
        size = FIREFLY_TABLE_SIZE;
    }

    @name("firefly_v6") table firefly_v6 {
        key = {
            hdr.ipv6.src_addr : exact @name("src_addr");
            hdr.ipv6.dst_addr : exact @name("dst_addr");
            hdr.ipv6.next_hdr : exact @name("protocol");
            meta.l4_src_port  : exact @name("src_port");
            meta.l4_dst_port  : exact @name("dst_port");
        }
        actions = { firefly_flow_v6; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = firefly_v6_counter;
        support_timeout = true;
        size = FIREFLY_TABLE_SIZE;
    }

    apply {
        if (standard_metadata.parser_error != error.NoError) {
            /* Truncated or malformed headers: counted, never forwarded half-understood. */
            bucket_counter.count(BUCKET_PARSER_ERROR);
            drop();
            exit;
        }
        if (hdr.packet_out.isValid()) {
            /* From the controller: out of the named port, untouched and uncounted. */
            standard_metadata.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            exit;
        }

        if (hdr.ethernet.isValid()) {
            l2_forward.apply();
            if (standard_metadata.mcast_grp == 0
                    && standard_metadata.egress_spec == standard_metadata.ingress_port) {
                drop();  /* never hairpin */
            }
        }

        if (hdr.ipv6.isValid()) {
            if (hdr.ipv6.flow_label == 0) {
                meta.label_class = LABEL_UNMARKED;
                bucket_counter.count(BUCKET_UNMARKED);
            } else {
                /* Experiment bits are reversed in the label: id bit 0 sits at label bit 17. */
                meta.label_experiment = hdr.ipv6.flow_label[9:9] ++ hdr.ipv6.flow_label[10:10]
                    ++ hdr.ipv6.flow_label[11:11] ++ hdr.ipv6.flow_label[12:12]
                    ++ hdr.ipv6.flow_label[13:13] ++ hdr.ipv6.flow_label[14:14]
                    ++ hdr.ipv6.flow_label[15:15] ++ hdr.ipv6.flow_label[16:16]
                    ++ hdr.ipv6.flow_label[17:17];
                meta.label_activity = hdr.ipv6.flow_label[7:2];
                scitag_policy.apply();
            }
            if (meta.l4_valid) {
                firefly_v6.apply();
            }
        } else if (hdr.ipv4.isValid() && meta.l4_valid) {
            firefly_v4.apply();
        }

        if (meta.firefly_hit) {
            if (meta.label_class == LABEL_REGISTERED) {
                if (meta.firefly_experiment == (bit<16>)meta.label_experiment
                        && meta.firefly_activity == (bit<8>)meta.label_activity) {
                    bucket_counter.count(BUCKET_CONSISTENT);
                } else {
                    bucket_counter.count(BUCKET_MISMATCH);
                }
            } else {
                bucket_counter.count(BUCKET_FIREFLY_ONLY);
            }
        }

        /* A firefly in band: a copy to the controller, the original goes on its way.
           v1model keeps one ingress clone per packet, so this wins over mirroring. */
        if (hdr.udp.isValid() && hdr.udp.dst_port == FIREFLY_UDP_PORT) {
            meta.punt_ingress_port = standard_metadata.ingress_port;
            meta.punt_reason = PUNT_REASON_FIREFLY;
            clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION_ID, FL_PUNT);
        }
    }
}

control ScitagsEgress(inout headers_t hdr,
                      inout local_metadata_t meta,
                      inout standard_metadata_t standard_metadata) {
    /* An ingress clone is the frame as received, parsed again; nothing here rewrites its
       headers, so the copy to the CPU is the packet-in header + the original frame. */
    apply {
        if (standard_metadata.egress_port == CPU_PORT_ID) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = meta.punt_ingress_port;
            hdr.packet_in.reason = meta.punt_reason;
            hdr.packet_in._pad = 0;
        } else if (standard_metadata.instance_type == PKT_INSTANCE_TYPE_REPLICATION
                   && standard_metadata.egress_port == standard_metadata.ingress_port) {
            mark_to_drop(standard_metadata);  /* flood pruning: not back out of the ingress port */
        }
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
