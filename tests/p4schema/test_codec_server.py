"""The entity layer against the built-in target's real P4Runtime server (softswitch, over
gRPC on 127.0.0.1) running the compiled scitags program: what the codec writes is what a
wildcard read gives back, decoded to equal entities, so a diff of the two is empty."""
from __future__ import annotations

import ipaddress

import pytest
from p4.v1 import p4runtime_pb2

from p4schema import (CloneSession, CounterEntry, EntityCodec, Lpm, MulticastGroup, P4Schema,
                      Ternary, diff, load_p4info)
from scitags_core.flowlabel import encode_label
from tests.conftest import P4_BUILD

testkit = pytest.importorskip("softswitch.p4rt.testkit", reason="the built-in target is not built")
Update = p4runtime_pb2.Update
P4INFO = P4_BUILD / "scitags.p4info.txtpb"


@pytest.fixture
def server():
    h = testkit.Harness(load=False)
    h.stub.SetForwardingPipelineConfig(testkit.pipeline_request(
        h.device_id, load_p4info(P4INFO), (P4_BUILD / "scitags.json").read_bytes()))
    yield h
    h.close()


def test_written_entities_read_back_equal(server):
    codec = EntityCodec(P4Schema.from_file(P4INFO))
    tables = ["l2_forward", "scitag_policy", "exthdr_policy", "label_trust", "firefly_v4", "firefly_v6"]
    want = [
        codec.table_entry("l2_forward", {"dst_mac": 0x000000000001}, "set_egress_port", {"port": 1}),
        codec.table_entry("scitag_policy", {"flow_label": Ternary(encode_label(3, 2, 0), 0x3FEFC)},
                          "count_tag_and_mirror", {"tag_id": 7, "mirror_session": 200}, 20),
        codec.table_entry("scitag_policy", {"flow_label": Ternary(encode_label(3, 0, 0), 0x3FE00)},
                          "count_tag", {"tag_id": 8}, 10),
        codec.table_entry("exthdr_policy", {"exthdr_tag": Ternary(3 << 8 | 2, 0xFFFFFF)},
                          "exthdr_count_tag", {"tag_id": 7}, 20),
        codec.table_entry("label_trust", {"src_addr": Lpm(int(ipaddress.IPv6Address("2001:db8::")), 32)},
                          "trust_label", {}),
        codec.table_entry("firefly_v4", {"src_addr": 0x0A000001, "dst_addr": 0x0A000002,
                                         "protocol": 6, "src_port": 40000, "dst_port": 1094},
                          "firefly_flow_v4", {"experiment": 3, "activity": 2},
                          idle_timeout_ns=120 * 10**9),
        codec.table_entry("firefly_v6", {"src_addr": (0x20010DB8 << 96) | 1,
                                         "dst_addr": (0x20010DB8 << 96) | 2, "protocol": 17,
                                         "src_port": 1, "dst_port": 2},
                          "firefly_flow_v6", {"experiment": 600, "activity": 200}),
    ]
    pre = [MulticastGroup.of(1, [(1, 1), (2, 1)]), CloneSession.of(100, [(255, 1)]),
           CloneSession.of(200, [(3, 1)])]
    server.write(codec.updates(diff(want + pre, [])))
    got = codec.decode_all(server.read([codec.read_table(t) for t in tables]))
    assert sorted(got, key=repr) == sorted(want, key=repr)
    got_pre = codec.decode_all(server.read([codec.read_multicast_groups(),
                                            codec.read_clone_sessions()]))
    assert sorted(got_pre, key=repr) == sorted(pre, key=repr)
    assert not diff(want + pre, got + got_pre)
    # one change on each side: the diff names exactly it
    moved = codec.table_entry("l2_forward", {"dst_mac": 0x000000000001}, "set_egress_port", {"port": 2})
    plan = diff([moved, *want[1:]], got)
    assert (plan.modify, plan.insert, plan.delete) == ([moved], [], [])
    server.write(codec.updates(plan))
    assert moved in codec.decode_all(server.read([codec.read_table("l2_forward")]))
    # counter cells: zeroed by a MODIFY, read back by index
    server.write([codec.update(Update.MODIFY, CounterEntry("tag_counter", 7, 0, 0))])
    cells = codec.decode_all(server.read([codec.read_counter("tag_counter")]))
    assert CounterEntry("ScitagsIngress.tag_counter", 7, 0, 0) in cells
