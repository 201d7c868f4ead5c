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

    tag_id_t hit_tag_id = 0;
    bool hit_mirror = false;

    @name(".ScitagsIngress.count_tag") action count_tag(tag_id_t tag_id) {
        hit_tag_id = tag_id;
        hit_mirror = false;
    }

    @name(".ScitagsIngress.count_tag_and_mirror")
    action count_tag_and_mirror(tag_id_t tag_id, mirror_session_t mirror_session) {
        hit_tag_id = tag_id;
        hit_mirror = true;
        meta.mirror_session = mirror_session;
    }

    @name(".ScitagsIngress.unregistered_label") action unregistered_label() { }

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

    /* The same tags on the option's data: experiment << 8 | activity (mask 0xFFFFFF, or
       0xFFFF00 for the whole experiment). */
    @name(".ScitagsIngress.exthdr_policy") table exthdr_policy {
        key = {
            meta.exthdr_tag : ternary @name("exthdr_tag");
        }
        actions = { count_tag; count_tag_and_mirror; @defaultonly NoAction; }
        const default_action = NoAction();
        size = POLICY_TABLE_SIZE;
    }

    @name(".ScitagsIngress.trust_label") action trust_label() {
        meta.label_trusted = true;
    }

    @name(".ScitagsIngress.distrust_label") action distrust_label() {
        meta.label_trusted = false;
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
        /* One call site per counter (a Tofino counter is addressed once per packet; v1model
           is written the same way so that both targets read alike). */
        meta.label_class = LABEL_NONE;
        bool in_bucket = true;
        bucket_id_t bucket = BUCKET_UNMARKED;
        bool parser_error = SCITAGS_PARSER_ERROR;
        if (parser_error) {
            /* Truncated or malformed headers: counted, never forwarded half-understood. */
            bucket = BUCKET_PARSER_ERROR;
            SCITAGS_DROP;
        } else if (hdr.packet_out.isValid() || !hdr.ipv6.isValid()) {
            in_bucket = false;
        } else if (meta.exthdr_unparsed) {
            bucket = BUCKET_EXTHDR_UNPARSED;
        } else {
            /* The label first: with an option it only tells whether the two disagree. */
            if (hdr.ipv6.flow_label != 0) {
                /* Outside the trust scope a label is no tag, registered or not (bucket 6; what it
                   would have been in untrusted_tag_counter): the unregistered bucket then holds
                   only trusted labels, the base of the controller's background estimate. */
                label_trust.apply();
                bool hit = scitag_policy.apply().hit;
                meta.label_tag_id = hit_tag_id;
                if (!meta.label_trusted) {
                    meta.label_class = LABEL_UNTRUSTED;
                    meta.label_hit = hit;
                } else if (hit) {
                    meta.label_class = LABEL_REGISTERED;
                    meta.mirror = hit_mirror;
                } else {
                    meta.label_class = LABEL_UNREGISTERED;
                }
            }
            if (meta.exthdr_tag_valid) {
                hit_mirror = false;
                if (exthdr_policy.apply().hit) {
                    meta.exthdr_hit = true;
                    meta.exthdr_tag_id = hit_tag_id;
                    meta.mirror = hit_mirror;
                    in_bucket = meta.label_class == LABEL_REGISTERED && meta.label_tag_id != hit_tag_id;
                    bucket = BUCKET_EXTHDR_MISMATCH;
                } else {
                    meta.mirror = false;
                    bucket = BUCKET_EXTHDR_UNREGISTERED;
                }
            } else if (meta.label_class == LABEL_REGISTERED) {
                in_bucket = false;
            } else if (meta.label_class == LABEL_UNTRUSTED) {
                bucket = BUCKET_UNTRUSTED_LABEL;
            } else if (meta.label_class == LABEL_UNREGISTERED) {
                bucket = BUCKET_UNREGISTERED;
            }
        }
        if (in_bucket) {
            bucket_counter.count((bit<32>)bucket);
        }
        if (meta.exthdr_tag_valid) {
            if (meta.exthdr_hit) {
                exthdr_tag_counter.count((bit<32>)meta.exthdr_tag_id);
            }
        } else if (meta.label_class == LABEL_REGISTERED) {
            tag_counter.count((bit<32>)meta.label_tag_id);
        } else if (meta.label_class == LABEL_UNTRUSTED && meta.label_hit) {
            untrusted_tag_counter.count((bit<32>)meta.label_tag_id);
        }
        if (parser_error) {
            exit;
        }
    }
