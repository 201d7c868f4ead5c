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
        meta.in_bucket = true;
        meta.bucket = BUCKET_UNREGISTERED;
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

    @name(".ScitagsIngress.exthdr_count_tag") action exthdr_count_tag(tag_id_t tag_id) {
        meta.exthdr_hit = true;
        meta.exthdr_tag_id = tag_id;
    }

    @name(".ScitagsIngress.exthdr_count_tag_and_mirror")
    action exthdr_count_tag_and_mirror(tag_id_t tag_id, mirror_session_t mirror_session) {
        meta.exthdr_hit = true;
        meta.exthdr_tag_id = tag_id;
        meta.exthdr_mirror = true;
        meta.exthdr_mirror_session = mirror_session;
    }

    /* The same tags on the option's data: experiment << 8 | activity (mask 0xFFFFFF, or
       0xFFFF00 for the whole experiment). Actions of its own, writing fields of their own, so
       that on Tofino it is looked up in the same stage as the label. */
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

    apply {
        /* The common case (a trusted label, no option) takes the fewest steps; the rest is
           fixed up after the lookups, which do not depend on each other (on Tofino: one
           stage). One call site per counter, at the end (a Tofino counter is addressed once
           per packet; v1model reads the same). The top file applies this to every packet but
           packet-outs. */
        if (SCITAGS_PARSER_ERROR) {
            /* Truncated or malformed headers: counted, never forwarded half-understood. */
            meta.in_bucket = true;
            meta.bucket = BUCKET_PARSER_ERROR;
            SCITAGS_DROP;
        } else if (hdr.ipv6.isValid()) {
            if (meta.exthdr_unparsed) {
                meta.in_bucket = true;
                meta.bucket = BUCKET_EXTHDR_UNPARSED;
            } else {
                if (meta.hopopts_tag_valid || meta.dstopts_tag_valid) {
                    /* The option is the tag; the label, looked up beside it, only tells
                       whether the two disagree. With both headers tagged the later counts. */
                    meta.exthdr_tag_valid = true;
                    if (meta.dstopts_tag_valid) {
                        meta.exthdr_tag = meta.dstopts_tag;
                    } else {
                        meta.exthdr_tag = meta.hopopts_tag;
                    }
                    exthdr_policy.apply();
                }
                if (hdr.ipv6.flow_label != 0) {
                    label_trust.apply();
                    scitag_policy.apply();
                    if (meta.label_untrusted) {
                        /* Outside the trust scope a label is no tag, registered or not (what it
                           would have been goes to untrusted_tag_counter): the unregistered
                           bucket holds only trusted labels, the base of the controller's
                           background estimate. */
                        if (meta.label_class == LABEL_REGISTERED) {
                            meta.label_hit = true;
                        }
                        meta.label_class = LABEL_UNTRUSTED;
                        meta.mirror = false;
                        meta.in_bucket = true;
                        meta.bucket = BUCKET_UNTRUSTED_LABEL;
                    }
                } else if (!meta.exthdr_tag_valid) {
                    meta.in_bucket = true;
                    meta.bucket = BUCKET_UNMARKED;
                }
                if (meta.exthdr_tag_valid) {
                    /* the option decides the copy; its bucket replaces the label's */
                    meta.mirror = meta.exthdr_mirror;
                    meta.mirror_session = meta.exthdr_mirror_session;
                    meta.in_bucket = true;
                    meta.bucket = BUCKET_EXTHDR_UNREGISTERED;
                    if (meta.exthdr_hit) {
                        /* (comparisons as conditions, not values: Tofino's actions have none) */
                        meta.in_bucket = false;
                        if (meta.label_class == LABEL_REGISTERED
                                && meta.label_tag_id != meta.exthdr_tag_id) {
                            meta.in_bucket = true;
                            meta.bucket = BUCKET_EXTHDR_MISMATCH;
                        }
                    }
                }
            }
        }
        if (meta.label_class == LABEL_REGISTERED && !meta.exthdr_tag_valid) {
            tag_counter.count((bit<32>)meta.label_tag_id);
        } else if (meta.exthdr_hit) {
            exthdr_tag_counter.count((bit<32>)meta.exthdr_tag_id);
        } else if (meta.label_class == LABEL_UNTRUSTED && meta.label_hit) {
            untrusted_tag_counter.count((bit<32>)meta.label_tag_id);
        }
        if (meta.in_bucket) {
            bucket_counter.count((bit<32>)meta.bucket);
        }
    }
