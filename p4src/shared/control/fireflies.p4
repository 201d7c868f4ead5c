/* Firefly-declared flows, the body of control Fireflies on every target: the 5-tuple entries
 * the controller writes from fireflies, counted per entry, and cross-checked against the
 * packet's own tag. Included by <target>/include/control/fireflies.p4. */
    @name(".ScitagsIngress.firefly_v4_counter")
    SCITAGS_DIRECT_COUNTER(firefly_v4_counter);
    @name(".ScitagsIngress.firefly_v6_counter")
    SCITAGS_DIRECT_COUNTER(firefly_v6_counter);
    @name(".ScitagsIngress.firefly_bucket_counter")
    SCITAGS_COUNTER(firefly_bucket_counter, BUCKET_COUNT);
    /* Per tag, the label bytes a firefly confirms: a firefly flow's packet whose trusted label
       names the experiment and activity the firefly declared. The rest of tag_counter is
       claimed by the label alone. */
    @name(".ScitagsIngress.confirmed_tag_counter")
    SCITAGS_COUNTER(confirmed_tag_counter, TAG_COUNTER_SIZE);

    @name(".ScitagsIngress.firefly_flow_v4") action firefly_flow_v4(bit<16> experiment, bit<8> activity) {
        firefly_v4_counter.count();
        meta.firefly_hit = true;
        meta.firefly_experiment = experiment;
        meta.firefly_activity = activity;
    }

    @name(".ScitagsIngress.firefly_flow_v6") action firefly_flow_v6(bit<16> experiment, bit<8> activity) {
        firefly_v6_counter.count();
        meta.firefly_hit = true;
        meta.firefly_experiment = experiment;
        meta.firefly_activity = activity;
    }

    @name(".ScitagsIngress.firefly_v4") table firefly_v4 {
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
        SCITAGS_IDLE_TIMEOUT;
        size = FIREFLY_V4_TABLE_SIZE;
    }

    /* protocol: the header in front of TCP/UDP is not always the IPv6 header (extension
       headers), so the key is the transport protocol the parser found. */
    @name(".ScitagsIngress.firefly_v6") table firefly_v6 {
        key = {
            hdr.ipv6.src_addr : exact @name("src_addr");
            hdr.ipv6.dst_addr : exact @name("dst_addr");
            meta.l4_protocol  : exact @name("protocol");
            meta.l4_src_port  : exact @name("src_port");
            meta.l4_dst_port  : exact @name("dst_port");
        }
        actions = { firefly_flow_v6; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = firefly_v6_counter;
        SCITAGS_IDLE_TIMEOUT;
        size = FIREFLY_V6_TABLE_SIZE;
    }

    apply {
        if (!meta.l4_valid) {
            return;
        }
        if (hdr.ipv6.isValid()) {
            firefly_v6.apply();
        } else if (hdr.ipv4.isValid()) {
            firefly_v4.apply();
        }
        if (!meta.firefly_hit) {
            return;
        }
        /* The packet's tag: its option, else a trusted registered label (decoded only here:
           the experiment bits are reversed, id bit 0 at label bit 17). */
        bool tagged = false;
        bit<16> experiment = 0;
        bit<8> activity = 0;
        if (meta.exthdr_hit) {
            tagged = true;
            experiment = meta.exthdr_tag[23:8];
            activity = meta.exthdr_tag[7:0];
        } else if (meta.label_class == LABEL_REGISTERED) {
            tagged = true;
            bit<20> l = hdr.ipv6.flow_label;
            experiment = (bit<16>)(l[9:9] ++ l[10:10] ++ l[11:11] ++ l[12:12] ++ l[13:13]
                                   ++ l[14:14] ++ l[15:15] ++ l[16:16] ++ l[17:17]);
            activity = (bit<8>)l[7:2];
        }
        bucket_id_t bucket = BUCKET_MISMATCH;
        if (!tagged) {
            bucket = BUCKET_FIREFLY_ONLY;
        } else if (experiment == meta.firefly_experiment && activity == meta.firefly_activity) {
            bucket = BUCKET_CONSISTENT;
        }
        firefly_bucket_counter.count((bit<32>)bucket);
        if (bucket == BUCKET_CONSISTENT && !meta.exthdr_hit) {
            confirmed_tag_counter.count((bit<32>)meta.label_tag_id);
        }
    }
