/* softswitch test program: one v1model program that exercises the constructs the
 * built-in target implements, compiled by p4c-bm2-ss when it is installed
 * (tests/softswitch/test_p4c_programs.py) and then run on the engine and on BMv2.
 *
 * ingress table `act` (key: ethernet.etype) picks one behaviour per frame; egress
 * stamps what it saw into an `info` header in front of the frame. */
#include <core.p4>
#include <v1model.p4>

header info_t {
    bit<8>  instance_type;
    bit<16> rid;
    bit<8>  tag;
    bit<16> egress_port;
    bit<32> packet_length;
    bit<16> ingress_port;
}

header ethernet_t {
    bit<48> dst;
    bit<48> src;
    bit<16> etype;
}

header vlan_t {
    bit<3>  pcp;
    bit<1>  dei;
    bit<12> vid;
    bit<16> etype;
}

header label_t {
    bit<20> label;
    bit<3>  tc;
    bit<1>  bos;
    bit<8>  ttl;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  dscp;
    bit<16> total_len;
    bit<16> ident;
    bit<3>  flags;
    bit<13> frag;
    bit<8>  ttl;
    bit<8>  proto;
    bit<16> csum;
    bit<32> src;
    bit<32> dst;
}

header udp_t {
    bit<16> sport;
    bit<16> dport;
    bit<16> len;
    bit<16> csum;
}

struct headers_t {
    info_t      info;
    ethernet_t  ethernet;
    vlan_t      vlan;
    label_t[3]  mpls;
    ipv4_t      ipv4;
    udp_t       udp;
}

struct meta_t {
    @field_list(1) bit<8> tag;
    bit<32> value;
    bit<16> l4_dport;
    bit<16> hash16;
}

parser FeatParser(packet_in pkt, out headers_t hdr, inout meta_t meta,
                  inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etype) {
            0x8100: parse_vlan;
            0x8847: parse_mpls;
            0x0800: parse_ipv4;
            0x9900 &&& 0xff00: accept;
            default: accept;
        }
    }
    state parse_vlan {
        pkt.extract(hdr.vlan);
        transition select(hdr.vlan.etype) {
            0x0800: parse_ipv4;
            default: accept;
        }
    }
    state parse_mpls {
        pkt.extract(hdr.mpls.next);
        transition select(hdr.mpls.last.bos) {
            0: parse_mpls;
            1: mpls_payload;
        }
    }
    state mpls_payload {
        transition select(pkt.lookahead<bit<4>>()) {
            4: parse_ipv4;
            default: accept;
        }
    }
    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        verify(hdr.ipv4.ihl >= 5, error.HeaderTooShort);
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag, hdr.ipv4.proto) {
            (5, 0, 17): parse_udp;
            default: accept;
        }
    }
    state parse_udp {
        pkt.extract(hdr.udp);
        meta.l4_dport = hdr.udp.dport;
        transition accept;
    }
}

control FeatVerify(inout headers_t hdr, inout meta_t meta) {
    apply {
        verify_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.total_len,
              hdr.ipv4.ident, hdr.ipv4.flags, hdr.ipv4.frag, hdr.ipv4.ttl, hdr.ipv4.proto,
              hdr.ipv4.src, hdr.ipv4.dst },
            hdr.ipv4.csum, HashAlgorithm.csum16);
    }
}

control FeatIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    counter(16, CounterType.packets_and_bytes) etype_counter;
    direct_counter(CounterType.packets_and_bytes) kinds_counter;
    register<bit<32>>(4) reg;

    action fwd(bit<9> port) { sm.egress_spec = port; }
    action drop() { mark_to_drop(sm); }
    action mcast(bit<16> grp) { sm.mcast_grp = grp; }
    action clone_fwd(bit<32> session, bit<9> port) {
        clone_preserving_field_list(CloneType.I2E, session, 1);
        meta.tag = 0x5A;
        hdr.ethernet.src = 0xEE;
        sm.egress_spec = port;
    }
    action resub() {
        meta.tag = (bit<8>)sm.instance_type + 0x70;
        if (sm.instance_type == 0) {
            resubmit_preserving_field_list(1);
        }
        sm.egress_spec = 3;
    }
    action count_() {
        etype_counter.count((bit<32>)(hdr.ethernet.etype & 0xF));
        sm.egress_spec = 1;
    }
    action reg_() {
        reg.read(meta.value, 1);
        reg.write(1, meta.value + 1);
        meta.tag = (bit<8>)meta.value;
        sm.egress_spec = 1;
    }
    action trunc(bit<32> len) { truncate(len); sm.egress_spec = 1; }
    action exit_() { sm.egress_spec = 5; exit; }
    action spec511() { sm.egress_spec = 511; }
    action recirc() {
        meta.tag = (bit<8>)sm.instance_type + 0x30;
        sm.egress_spec = 2;
    }
    action hash_() {
        hash(meta.hash16, HashAlgorithm.crc16, (bit<16>)0,
             { hdr.ethernet.dst, hdr.ethernet.etype }, (bit<32>)65536);
        hdr.ethernet.src = (bit<48>)meta.hash16;
        sm.egress_spec = 1;
    }
    action mpls_swap() {
        hdr.mpls.pop_front(1);
        hdr.mpls.push_front(1);
        hdr.mpls[0].setValid();
        hdr.mpls[0].label = 99;
        hdr.mpls[0].ttl = 64;
        sm.egress_spec = 2;
    }
    action ttl_dec() {
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
        sm.egress_spec = (sm.checksum_error == 1) ? (bit<9>)9 : (bit<9>)2;
    }
    table act {
        key = { hdr.ethernet.etype : exact; }
        actions = { fwd; drop; mcast; clone_fwd; resub; count_; reg_; trunc; exit_; spec511;
                    recirc; hash_; mpls_swap; ttl_dec; NoAction; }
        default_action = NoAction();
        size = 64;
    }

    action set_port(bit<9> port) { sm.egress_spec = port; }
    action mark() { hdr.ethernet.src = 0xAB; }

    table kinds {
        key = {
            hdr.ethernet.dst   : ternary;
            hdr.ethernet.etype : range;
            hdr.ethernet.src   : optional;
        }
        actions = { set_port; NoAction; }
        default_action = NoAction();
        counters = kinds_counter;
        size = 64;
    }

    table prefixes {
        key = {
            hdr.ethernet.etype : exact;
            hdr.ethernet.dst   : lpm;
        }
        actions = { set_port; NoAction; }
        default_action = NoAction();
        size = 64;
    }

    apply {
        /* parser errors: the frame goes out of port 10 + a code, headers as parsed */
        if (sm.parser_error == error.PacketTooShort) {
            sm.egress_spec = 11;
            return;
        }
        if (sm.parser_error == error.HeaderTooShort) {
            sm.egress_spec = 12;
            return;
        }
        if (sm.parser_error == error.StackOutOfBounds) {
            sm.egress_spec = 13;
            return;
        }
        act.apply();
        if (sm.egress_spec == 5) {
            sm.egress_spec = 7;  /* never runs after exit_ */
        }
        if ((hdr.ethernet.etype & 0xff00) == 0x9900) {
            if (kinds.apply().hit) {
                mark();
            }
        }
        if ((hdr.ethernet.etype & 0xff00) == 0x9a00) {
            switch (prefixes.apply().action_run) {
                set_port: { mark(); }
            }
        }
    }
}

control FeatEgress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    action eg_drop() { mark_to_drop(sm); }
    action eg_clone(bit<32> session) {
        clone_preserving_field_list(CloneType.E2E, session, 1);
        meta.tag = 0x33;
    }
    action eg_recirc() { recirculate_preserving_field_list(1); }

    table eg {
        key = {
            sm.egress_port   : exact;
            sm.instance_type : exact;
        }
        actions = { eg_drop; eg_clone; NoAction; }
        default_action = NoAction();
        size = 16;
    }

    table eg_r {
        key = { meta.tag : exact; }
        actions = { eg_recirc; NoAction; }
        default_action = NoAction();
        size = 16;
    }

    action stamp() {
        hdr.info.setValid();
        hdr.info.instance_type = (bit<8>)sm.instance_type;
        hdr.info.rid = sm.egress_rid;
        hdr.info.tag = meta.tag;
        hdr.info.egress_port = (bit<16>)sm.egress_port;
        hdr.info.packet_length = sm.packet_length;
        hdr.info.ingress_port = (bit<16>)sm.ingress_port;
    }

    apply {
        switch (eg_r.apply().action_run) {
            eg_recirc: { }
            default: {
                eg.apply();
                stamp();
            }
        }
    }
}

control FeatCompute(inout headers_t hdr, inout meta_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.total_len,
              hdr.ipv4.ident, hdr.ipv4.flags, hdr.ipv4.frag, hdr.ipv4.ttl, hdr.ipv4.proto,
              hdr.ipv4.src, hdr.ipv4.dst },
            hdr.ipv4.csum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.udp.isValid() && hdr.ipv4.isValid(),
            { hdr.ipv4.src, hdr.ipv4.dst, 8w0, hdr.ipv4.proto, hdr.udp.len,
              hdr.udp.sport, hdr.udp.dport, hdr.udp.len },
            hdr.udp.csum, HashAlgorithm.csum16);
    }
}

control FeatDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.info);
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.vlan);
        pkt.emit(hdr.mpls);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.udp);
    }
}

V1Switch(FeatParser(), FeatVerify(), FeatIngress(), FeatEgress(), FeatCompute(),
         FeatDeparser()) main;
