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

    @name(".ScitagsIngress.firefly_agrees") action firefly_agrees(bucket_id_t bucket) {
        meta.firefly_bucket = bucket;
    }

    @name(".ScitagsIngress.firefly_confirmed_by_label") action firefly_confirmed_by_label() {
        meta.firefly_bucket = BUCKET_CONSISTENT;
        meta.firefly_confirmed = true;
    }

    /* The packet's tag is its option, else a trusted registered label; tag_experiment and
       tag_activity hold that tag's differences to what the firefly declared. First match wins. */
    @name(".ScitagsIngress.firefly_outcome") table firefly_outcome {
        key = {
            meta.exthdr_hit      : ternary @name("exthdr_hit");
            meta.label_class     : ternary @name("label_class");
            meta.label_untrusted : ternary @name("label_untrusted");
            meta.tag_experiment  : ternary @name("experiment_diff");
            meta.tag_activity    : ternary @name("activity_diff");
        }
        actions = { firefly_agrees; firefly_confirmed_by_label; }
        const entries = {
            (true, _, _, 0, 0) : firefly_agrees(BUCKET_CONSISTENT);
            (true, _, _, _, _) : firefly_agrees(BUCKET_MISMATCH);
            (false, LABEL_REGISTERED, false, 0, 0) : firefly_confirmed_by_label();
            (false, LABEL_REGISTERED, false, _, _) : firefly_agrees(BUCKET_MISMATCH);
            (false, _, _, _, _) : firefly_agrees(BUCKET_FIREFLY_ONLY);
        }
#ifdef __TARGET_TOFINO__
        size = 8;  /* bf-p4c wants it; p4c-bm2-ss warns when a constant table has it */
#endif
    }

    apply {
        if (meta.firefly_hit) {
            /* Differences (a Tofino condition reads at most 44 bits; a table compares them
               with 0 in one step). The label's experiment came from label_experiment,
               looked up with the flow. */
            if (meta.exthdr_hit) {
                meta.tag_experiment = meta.exthdr_tag[23:8] ^ meta.firefly_experiment;
                meta.tag_activity = meta.exthdr_tag[7:0] ^ meta.firefly_activity;
            } else {
                meta.tag_experiment = meta.tag_experiment ^ meta.firefly_experiment;
                meta.tag_activity = ((bit<8>)hdr.ipv6.flow_label[7:2]) ^ meta.firefly_activity;
            }
            firefly_outcome.apply();
            firefly_bucket_counter.count((bit<32>)meta.firefly_bucket);
            if (meta.firefly_confirmed) {
                confirmed_tag_counter.count((bit<32>)meta.label_tag_id);
            }
        }
    }
