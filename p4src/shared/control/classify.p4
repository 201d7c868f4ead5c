/* Classification, the body of control Classify on every target: what tag a packet carries,
 * counted in its tag cell or a bucket. The target's control file binds its intrinsic metadata
 * through the macros of <target>/include/target.p4 and includes this file.
 *
 * A scitags option (Hop-by-Hop / Destination Options) is the tag when present; else the flow
 * label, matched raw against the controller's ternary entries (it writes the label pattern of
 * each experiment/activity: no bit reversal per packet), a tag only when its source is inside
 * the trust scope (label_trust). */
    @name(".ScitagsIngress.tag_counter")
    SCITAGS_COUNTER(tag_counter, TAG_COUNTER_SIZE);
    @name(".ScitagsIngress.untrusted_tag_counter")
    SCITAGS_COUNTER(untrusted_tag_counter, TAG_COUNTER_SIZE);
    @name(".ScitagsIngress.exthdr_tag_counter")
    SCITAGS_COUNTER(exthdr_tag_counter, TAG_COUNTER_SIZE);
    @name(".ScitagsIngress.bucket_counter")
    SCITAGS_COUNTER(bucket_counter, BUCKET_COUNT);

    /* The policy tables' actions write the outcome straight into the metadata the rest of the
       program reads (no per-packet copies: on BMv2 every statement outside a table costs). */
    @name(".ScitagsIngress.count_tag") action count_tag(tag_id_t tag_id) {
        meta.label_class = LABEL_REGISTERED;
        meta.label_tag_id = tag_id;
    }

    @name(".ScitagsIngress.count_tag_and_mirror")
    action count_tag_and_mirror(tag_id_t tag_id, mirror_session_t mirror_session) {
        meta.label_class = LABEL_REGISTERED;
        meta.label_tag_id = tag_id;
        meta.mirror = true;
        meta.mirror_session = mirror_session;
    }

    @name(".ScitagsIngress.unregistered_label") action unregistered_label() {
        meta.label_class = LABEL_UNREGISTERED;
    }

    /* Per registered experiment/activity one entry on the label pattern (mask 0x3FEFC), per
       experiment one on its bits alone (mask 0x3FE00, lower priority). */
    @name(".ScitagsIngress.scitag_policy") table scitag_policy {
        key = {
            hdr.ipv6.flow_label : ternary @name("flow_label");
        }
        actions = { count_tag; count_tag_and_mirror; @defaultonly unregistered_label; }
        const default_action = unregistered_label();
        size = POLICY_TABLE_SIZE;
    }

    /* Besides the option's tag, its difference to the label's (looked up a stage before):
       classify_outcome needs only to compare it with 0. */
    @name(".ScitagsIngress.exthdr_count_tag") action exthdr_count_tag(tag_id_t tag_id) {
        meta.exthdr_hit = true;
        meta.exthdr_tag_id = tag_id;
        meta.tag_id_diff = tag_id ^ meta.label_tag_id;
    }

    @name(".ScitagsIngress.exthdr_count_tag_and_mirror")
    action exthdr_count_tag_and_mirror(tag_id_t tag_id, mirror_session_t mirror_session) {
        meta.exthdr_hit = true;
        meta.exthdr_tag_id = tag_id;
        meta.tag_id_diff = tag_id ^ meta.label_tag_id;
        meta.exthdr_mirror = true;
        meta.exthdr_mirror_session = mirror_session;
    }

    /* The same tags on the option's data: experiment << 8 | activity (mask 0xFFFFFF, or
       0xFFFF00 for the whole experiment). Actions of its own, writing fields of their own. */
    @name(".ScitagsIngress.exthdr_policy") table exthdr_policy {
        key = {
            meta.exthdr_tag : ternary @name("exthdr_tag");
        }
        actions = { exthdr_count_tag; exthdr_count_tag_and_mirror; @defaultonly NoAction; }
        const default_action = NoAction();
        size = POLICY_TABLE_SIZE;
    }

    @name(".ScitagsIngress.trust_label") action trust_label() { }

    @name(".ScitagsIngress.distrust_label") action distrust_label() {
        meta.label_untrusted = true;
    }

    /* Where flow labels are tags: by default everywhere; with a trust scope the controller sets
       the default to distrust_label and writes one trust_label entry per trusted prefix. */
    @name(".ScitagsIngress.label_trust") table label_trust {
        key = {
            hdr.ipv6.src_addr : lpm @name("src_addr");
        }
        actions = { trust_label; distrust_label; }
        default_action = trust_label();
        size = TRUST_TABLE_SIZE;
    }

    /* The outcome of the three lookups, in one constant table rather than a chain of
       conditions (on Tofino each dependent condition is a stage): what is counted in which
       cell (counted, counted_tag), the bucket, and whose monitor copy is made. */
    @name(".ScitagsIngress.outcome_bucket") action outcome_bucket(bucket_id_t bucket) {
        meta.in_bucket = true;
        meta.bucket = bucket;
        meta.mirror = false;
    }

    @name(".ScitagsIngress.outcome_label") action outcome_label() {
        meta.counted = COUNTED_LABEL;
        meta.counted_tag = meta.label_tag_id;
    }

    /* A registered label from outside the trust scope: no tag; what it would have been goes to
       untrusted_tag_counter (the unregistered bucket holds only trusted labels, the base of
       the controller's background estimate). */
    @name(".ScitagsIngress.outcome_untrusted") action outcome_untrusted(bucket_id_t bucket) {
        meta.counted = COUNTED_UNTRUSTED;
        meta.counted_tag = meta.label_tag_id;
        meta.in_bucket = true;
        meta.bucket = bucket;
        meta.mirror = false;
    }

    /* The option is the tag, and decides the copy. */
    @name(".ScitagsIngress.outcome_option") action outcome_option() {
        meta.counted = COUNTED_OPTION;
        meta.counted_tag = meta.exthdr_tag_id;
        meta.mirror = meta.exthdr_mirror;
        meta.mirror_session = meta.exthdr_mirror_session;
    }

    @name(".ScitagsIngress.outcome_option_mismatch") action outcome_option_mismatch() {
        outcome_option();
        meta.in_bucket = true;
        meta.bucket = BUCKET_EXTHDR_MISMATCH;
    }

    /* Keys: whether the options were walked, where the option is, the label's lookups, the
       option's lookup and (tag_id_diff) whether the two name the same tag. First match wins. */
    @name(".ScitagsIngress.classify_outcome") table classify_outcome {
        key = {
            meta.exthdr_unparsed   : ternary @name("exthdr_unparsed");
            meta.hopopts_tag_valid : ternary @name("hopopts_tag");
            meta.dstopts_tag_valid : ternary @name("dstopts_tag");
            meta.label_class       : ternary @name("label_class");
            meta.label_untrusted   : ternary @name("label_untrusted");
            meta.exthdr_hit        : ternary @name("exthdr_hit");
            meta.tag_id_diff       : ternary @name("tag_id_diff");
        }
        actions = { outcome_bucket; outcome_label; outcome_untrusted; outcome_option;
                    outcome_option_mismatch; }
        const entries = {
            /* options the walk could not follow: neither they nor the label are looked at */
            (true, _, _, _, _, _, _) : outcome_bucket(BUCKET_EXTHDR_UNPARSED);
            /* no option: the label */
            (false, false, false, LABEL_NONE, _, _, _) : outcome_bucket(BUCKET_UNMARKED);
            (false, false, false, LABEL_REGISTERED, false, _, _) : outcome_label();
            (false, false, false, LABEL_UNREGISTERED, false, _, _) : outcome_bucket(BUCKET_UNREGISTERED);
            (false, false, false, LABEL_REGISTERED, true, _, _) : outcome_untrusted(BUCKET_UNTRUSTED_LABEL);
            (false, false, false, LABEL_UNREGISTERED, true, _, _) : outcome_bucket(BUCKET_UNTRUSTED_LABEL);
            /* an option (either header): it is the tag; a trusted registered label naming
               another tag is a mismatch */
            (false, _, _, LABEL_REGISTERED, false, true, 0) : outcome_option();
            (false, _, _, LABEL_REGISTERED, false, true, _) : outcome_option_mismatch();
            (false, _, _, _, _, true, _) : outcome_option();
            (false, _, _, LABEL_REGISTERED, true, false, _) : outcome_untrusted(BUCKET_EXTHDR_UNREGISTERED);
            (false, _, _, _, _, false, _) : outcome_bucket(BUCKET_EXTHDR_UNREGISTERED);
        }
#ifdef __TARGET_TOFINO__
        size = 16;  /* bf-p4c wants it; p4c-bm2-ss warns when a constant table has it */
#endif
    }

    apply {
        /* Three steps, each a stage on Tofino: the lookups on the packet's own fields (the
           option's tag chosen beside them), the option's lookup (it needs the label's tag id),
           the outcome; then the counters. One call site per counter (a Tofino counter is
           addressed once per packet; v1model reads the same). The top file applies this to
           every packet but packet-outs. */
        if (SCITAGS_PARSER_ERROR) {
            /* Truncated or malformed headers: counted, never forwarded half-understood. */
            meta.in_bucket = true;
            meta.bucket = BUCKET_PARSER_ERROR;
            SCITAGS_DROP;
        } else if (hdr.ipv6.isValid()) {
            if (!meta.exthdr_unparsed) {
                /* With both headers tagged the later one (Destination Options) counts. */
                if (meta.dstopts_tag_valid) {
                    meta.exthdr_tag = meta.dstopts_tag;
                } else {
                    meta.exthdr_tag = meta.hopopts_tag;
                }
                if (hdr.ipv6.flow_label != 0) {
                    label_trust.apply();
                    scitag_policy.apply();
                }
                if (meta.hopopts_tag_valid || meta.dstopts_tag_valid) {
                    exthdr_policy.apply();
                }
            }
            classify_outcome.apply();
        }
        if (meta.counted == COUNTED_LABEL) {
            tag_counter.count((bit<32>)meta.counted_tag);
        } else if (meta.counted == COUNTED_OPTION) {
            exthdr_tag_counter.count((bit<32>)meta.counted_tag);
        } else if (meta.counted == COUNTED_UNTRUSTED) {
            untrusted_tag_counter.count((bit<32>)meta.counted_tag);
        }
        if (meta.in_bucket) {
            bucket_counter.count((bit<32>)meta.bucket);
        }
    }
