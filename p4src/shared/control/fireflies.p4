/* Firefly-declared flows, the body of control Fireflies on every target: the 5-tuple entries
 * the controller writes from fireflies, counted per entry. Independent of Classify (on Tofino
 * the lookups share its stages); FireflyCheck (firefly_check.p4) compares a hit with the
 * packet's tag afterwards. Included by <target>/include/control/fireflies.p4. */
    @name(".ScitagsIngress.firefly_v4_counter")
    SCITAGS_DIRECT_COUNTER(firefly_v4_counter);
    @name(".ScitagsIngress.firefly_v6_counter")
    SCITAGS_DIRECT_COUNTER(firefly_v6_counter);
    @name(".ScitagsIngress.set_label_experiment") action set_label_experiment(bit<16> experiment) {
        meta.tag_experiment = experiment;
    }

    /* The experiment of a label: its bits 17..9 reversed, by a constant table rather than bit by
       bit (a Tofino action moves a field once, not nine single bits into one). Only packets of
       firefly flows with a registered label look it up. */
    @name(".ScitagsIngress.label_experiment") table label_experiment {
        key = {
            hdr.ipv6.flow_label[17:9] : exact @name("experiment_bits");
        }
        actions = { set_label_experiment; }
        const entries = {
#include "../label_experiment_entries.p4"
        }
#ifdef __TARGET_TOFINO__
        size = 512;  /* bf-p4c wants it; p4c-bm2-ss warns when a constant table has it */
#endif
    }

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
        /* No return: on Tofino a return becomes a flag every later table waits for. */
        if (meta.l4_valid) {
            if (hdr.ipv6.isValid()) {
                if (firefly_v6.apply().hit) {
                    label_experiment.apply();  /* for FireflyCheck, if the label is a tag */
                }
            } else {
                firefly_v4.apply();  /* ports are found only behind IPv4 or IPv6 */
            }
        }
    }
