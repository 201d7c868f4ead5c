/* scitags-p4: the option walk of IPv6 Hop-by-Hop and Destination Options headers, written once
 * for every target. A target defines, before including this file:
 *   EXTHDR_LEFT_SET(n)            load the count of option bytes left in the header
 *   EXTHDR_LEFT_SUB(n)            n bytes were walked
 *   EXTHDR_NEXT(done, more, bad)  the transition: none left / some left / overran the header
 * and a parser state `exthdr_unparsed`. EXTHDR_OPTION_STATES(X, done) then expands to the states
 * parse_X .. X_skipN for the header hdr.X with its byte stack hdr.X_bytes, ending in `done`.
 * Every byte walked is extracted (so the deparser writes the header back as it came); a scitags
 * option also leaves its data in meta.exthdr_tag. */
#ifndef SCITAGS_EXTHDR_WALK_P4
#define SCITAGS_EXTHDR_WALK_P4

#define EXTHDR_TAKE1(X) pkt.extract(hdr.X##_bytes.next);
#define EXTHDR_TAKE2(X) EXTHDR_TAKE1(X) EXTHDR_TAKE1(X)
#define EXTHDR_TAKE4(X) EXTHDR_TAKE2(X) EXTHDR_TAKE2(X)
#define EXTHDR_TAKE8(X) EXTHDR_TAKE4(X) EXTHDR_TAKE4(X)

/* An option of type other than Pad1 and the scitags option: 2 + N bytes, skipped. */
#define EXTHDR_SKIP_STATE(X, N, TAKES) \
    state X##_skip##N { TAKES EXTHDR_LEFT_SUB(2 + N) EXTHDR_NEXT(X##_done, X##_opt, exthdr_unparsed) }

#define EXTHDR_OPTION_STATES(X) \
    state parse_##X { \
        pkt.extract(hdr.X); \
        transition select(hdr.X.hdr_ext_len) { \
            0: X##_len0; \
            1: X##_len1; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_len0 { EXTHDR_LEFT_SET(6) transition X##_opt; } \
    state X##_len1 { EXTHDR_LEFT_SET(14) transition X##_opt; } \
    state X##_opt { \
        transition select(pkt.lookahead<bit<16>>()) { \
            0x0000 &&& 0xFF00: X##_pad1; \
            0x1E03: X##_scitag; \
            0x0000 &&& 0x00FF: X##_skip0; \
            0x0001 &&& 0x00FF: X##_skip1; \
            0x0002 &&& 0x00FF: X##_skip2; \
            0x0003 &&& 0x00FF: X##_skip3; \
            0x0004 &&& 0x00FF: X##_skip4; \
            0x0005 &&& 0x00FF: X##_skip5; \
            0x0006 &&& 0x00FF: X##_skip6; \
            0x0007 &&& 0x00FF: X##_skip7; \
            0x0008 &&& 0x00FF: X##_skip8; \
            0x0009 &&& 0x00FF: X##_skip9; \
            0x000A &&& 0x00FF: X##_skip10; \
            0x000B &&& 0x00FF: X##_skip11; \
            0x000C &&& 0x00FF: X##_skip12; \
            default: exthdr_unparsed; \
        } \
    } \
    state X##_pad1 { EXTHDR_TAKE1(X) EXTHDR_LEFT_SUB(1) EXTHDR_NEXT(X##_done, X##_opt, exthdr_unparsed) } \
    state X##_scitag { \
        meta.exthdr_tag = pkt.lookahead<scitag_opt_t>().experiment ++ pkt.lookahead<scitag_opt_t>().activity; \
        meta.exthdr_tag_valid = true; \
        EXTHDR_TAKE4(X) EXTHDR_TAKE1(X) EXTHDR_LEFT_SUB(5) \
        EXTHDR_NEXT(X##_done, X##_opt, exthdr_unparsed) \
    } \
    EXTHDR_SKIP_STATE(X, 0, EXTHDR_TAKE2(X)) \
    EXTHDR_SKIP_STATE(X, 1, EXTHDR_TAKE2(X) EXTHDR_TAKE1(X)) \
    EXTHDR_SKIP_STATE(X, 2, EXTHDR_TAKE4(X)) \
    EXTHDR_SKIP_STATE(X, 3, EXTHDR_TAKE4(X) EXTHDR_TAKE1(X)) \
    EXTHDR_SKIP_STATE(X, 4, EXTHDR_TAKE4(X) EXTHDR_TAKE2(X)) \
    EXTHDR_SKIP_STATE(X, 5, EXTHDR_TAKE4(X) EXTHDR_TAKE2(X) EXTHDR_TAKE1(X)) \
    EXTHDR_SKIP_STATE(X, 6, EXTHDR_TAKE8(X)) \
    EXTHDR_SKIP_STATE(X, 7, EXTHDR_TAKE8(X) EXTHDR_TAKE1(X)) \
    EXTHDR_SKIP_STATE(X, 8, EXTHDR_TAKE8(X) EXTHDR_TAKE2(X)) \
    EXTHDR_SKIP_STATE(X, 9, EXTHDR_TAKE8(X) EXTHDR_TAKE2(X) EXTHDR_TAKE1(X)) \
    EXTHDR_SKIP_STATE(X, 10, EXTHDR_TAKE8(X) EXTHDR_TAKE4(X)) \
    EXTHDR_SKIP_STATE(X, 11, EXTHDR_TAKE8(X) EXTHDR_TAKE4(X) EXTHDR_TAKE1(X)) \
    EXTHDR_SKIP_STATE(X, 12, EXTHDR_TAKE8(X) EXTHDR_TAKE4(X) EXTHDR_TAKE2(X))

#endif
