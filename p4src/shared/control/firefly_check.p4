/* The firefly cross-check, the body of control FireflyCheck on every target: a firefly flow's
 * packet compared with its own tag (after Classify), counted in firefly_bucket_counter and,
 * when a label confirms the firefly, in confirmed_tag_counter. Included by
 * <target>/include/control/fireflies.p4. */
    @name(".ScitagsIngress.firefly_bucket_counter")
    SCITAGS_COUNTER(firefly_bucket_counter, BUCKET_COUNT);
    /* Per tag, the label bytes a firefly confirms: a firefly flow's packet whose trusted label
       names the experiment and activity the firefly declared. The rest of tag_counter is
       claimed by the label alone. */
    @name(".ScitagsIngress.confirmed_tag_counter")
    SCITAGS_COUNTER(confirmed_tag_counter, TAG_COUNTER_SIZE);

    apply {
        if (meta.firefly_hit) {
            /* The packet's tag: its option, else a trusted registered label (its experiment
               from label_experiment, looked up with the flow). Compared as the differences of
               experiment and activity to what the firefly declared: on Tofino a condition reads
               at most 44 bits. */
            if (meta.exthdr_hit) {
                meta.tag_valid = true;
                meta.tag_experiment = meta.exthdr_tag[23:8];
                meta.tag_activity = meta.exthdr_tag[7:0];
            } else if (meta.label_class == LABEL_REGISTERED) {
                meta.tag_valid = true;
                meta.tag_activity = (bit<8>)hdr.ipv6.flow_label[7:2];
            }
            meta.tag_experiment = meta.tag_experiment ^ meta.firefly_experiment;
            meta.tag_activity = meta.tag_activity ^ meta.firefly_activity;
            bucket_id_t bucket = BUCKET_MISMATCH;
            if (!meta.tag_valid) {
                bucket = BUCKET_FIREFLY_ONLY;
            } else if (meta.tag_experiment == 0 && meta.tag_activity == 0) {
                bucket = BUCKET_CONSISTENT;
            }
            firefly_bucket_counter.count((bit<32>)bucket);
            if (bucket == BUCKET_CONSISTENT && !meta.exthdr_hit) {
                confirmed_tag_counter.count((bit<32>)meta.label_tag_id);
            }
        }
    }
