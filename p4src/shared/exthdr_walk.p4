/* scitags-p4: the option walk of IPv6 Hop-by-Hop and Destination Options headers, written once
 * for every target (no parser counter, no header stack: the same states fit Tofino's parser).
 *
 * EXTHDR_OPTION_STATES(X) expands to the states parse_X .. X_done for the header hdr.X and its
 * options area hdr.X_opts, ending in the state X_next (the caller's: what follows the header).
 * The walk handles 8-byte headers (hdr_ext_len 0: 6 bytes of options, what flowd-go writes):
 * state X_at<o> looks at the option starting at byte o of the area (lookahead, nothing is
 * consumed), so each state knows how much room is left; Pad1, PadN, the scitags option (type
 * 0x1E, length 3: its data goes to meta.X_tag) and any other option are stepped over by
 * their length. At the end of the area the whole area is extracted at once, so the deparser
 * writes the header back as it came. A longer header, or an option that runs past the area,
 * goes to the caller's state `exthdr_unparsed`. */
#ifndef SCITAGS_EXTHDR_WALK_P4
#define SCITAGS_EXTHDR_WALK_P4

/* The two bytes (type, length) of the option at byte o of the area, and its data. */
#define EXTHDR_TL(o) pkt.lookahead<bit<((o) + 2) * 8>>()[15:0]
#define EXTHDR_TAG(o) pkt.lookahead<bit<((o) + 5) * 8>>()[23:0]

#define EXTHDR_OPTION_STATES(X) \
    state parse_##X { \
        pkt.extract(hdr.X); \
        transition select(hdr.X.hdr_ext_len) { \
            EXTHDR_MAX_LEN_UNITS: X##_at0; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_at0 { \
        transition select(EXTHDR_TL(0)) { \
            0x0000 &&& 0xFF00: X##_at1; \
            0x1E03: X##_tag0; \
            0x0000 &&& 0x00FF: X##_at2; \
            0x0001 &&& 0x00FF: X##_at3; \
            0x0002 &&& 0x00FF: X##_at4; \
            0x0003 &&& 0x00FF: X##_at5; \
            0x0004 &&& 0x00FF: X##_done; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_at1 { \
        transition select(EXTHDR_TL(1)) { \
            0x0000 &&& 0xFF00: X##_at2; \
            0x1E03: X##_tag1; \
            0x0000 &&& 0x00FF: X##_at3; \
            0x0001 &&& 0x00FF: X##_at4; \
            0x0002 &&& 0x00FF: X##_at5; \
            0x0003 &&& 0x00FF: X##_done; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_at2 { \
        transition select(EXTHDR_TL(2)) { \
            0x0000 &&& 0xFF00: X##_at3; \
            0x0000 &&& 0x00FF: X##_at4; \
            0x0001 &&& 0x00FF: X##_at5; \
            0x0002 &&& 0x00FF: X##_done; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_at3 { \
        transition select(EXTHDR_TL(3)) { \
            0x0000 &&& 0xFF00: X##_at4; \
            0x0000 &&& 0x00FF: X##_at5; \
            0x0001 &&& 0x00FF: X##_done; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_at4 { \
        transition select(EXTHDR_TL(4)) { \
            0x0000 &&& 0xFF00: X##_at5; \
            0x0000 &&& 0x00FF: X##_done; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_at5 { \
        transition select(pkt.lookahead<bit<48>>()[7:0]) { \
            0x00: X##_done; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_tag0 { \
        meta.X##_tag = EXTHDR_TAG(0); \
        meta.X##_tag_valid = true; \
        transition X##_at5; \
    } \
    state X##_tag1 { \
        meta.X##_tag = EXTHDR_TAG(1); \
        meta.X##_tag_valid = true; \
        transition X##_done; \
    } \
    state X##_done { \
        pkt.extract(hdr.X##_opts); \
        transition X##_next; \
    }

#endif
