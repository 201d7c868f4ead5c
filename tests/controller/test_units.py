"""Pieces that need no switch: P4Info error mapping, firefly policy, SQLite store, settings."""
from __future__ import annotations

import pathlib

import pytest

from controller.config import ConfigError, load_config
from controller.drivers.base import Counts, FlowKey
from controller.drivers.p4runtime import P4InfoError, P4RuntimeDriver, parse_udp_frame
from controller.firefly_policy import FireflyPolicy, PolicyConfig
from controller.store import Store, TotalKey
from tests.conftest import P4_BUILD



def test_driver_reports_schema_errors_as_p4info_errors():
    # The P4Info index itself is tested in tests/p4schema; here: the driver's error mapping.
    driver = P4RuntimeDriver("s1", 1, "127.0.0.1:1", P4_BUILD / "scitags.p4info.txtpb",
                             P4_BUILD / "scitags.json")
    entry = driver._table_entry("l2_forward", {"dst_mac": 0x0A0000000001},
                                "set_egress_port", {"port": 3})
    assert entry.match[0].exact.value == b"\x0a\x00\x00\x00\x00\x01"
    assert entry.action.action.params[0].value == b"\x03"
    with pytest.raises(P4InfoError, match="no table named 'nope'"):
        driver._table_entry("nope", {})
    with pytest.raises(P4InfoError, match="does not fit in 48 bits"):
        driver._table_entry("l2_forward", {"dst_mac": 1 << 48})
    with pytest.raises(P4InfoError, match="no parameter 'port'"):
        driver._table_entry("l2_forward", {"dst_mac": 1}, "flood", {"port": 1})
    assert issubclass(P4InfoError, LookupError)


def test_parse_udp_frame_ipv4_ipv6():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether, Dot1Q
    f4 = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=10514) / b"hello")
    assert parse_udp_frame(f4) == (("10.0.0.1", 1234), b"hello")
    f6 = bytes(Ether() / Dot1Q(vlan=5) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=9, dport=10514) / b"x")
    assert parse_udp_frame(f6) == (("2001:db8::1", 9), b"x")
    assert parse_udp_frame(bytes(Ether() / IP() / b"tcpish")) is None


def test_policy_prefix_endpoint_rate_and_cap():
    p = FireflyPolicy(PolicyConfig(accept_sources=["10.0.0.0/8", "2001:db8::/32"], rate_per_source=1,
                                   burst=2, max_flows=1))
    ends = ("10.0.0.1", "10.0.0.2")
    assert p.check("192.0.2.1", ("192.0.2.1", "10.0.0.2"), True, 0).reason == "source-not-accepted"
    assert p.check("10.9.9.9", ends, True, 0).reason == "sender-not-endpoint"
    assert p.check("10.0.0.1", ends, True, 0, now=100.0).accepted
    assert p.check("10.0.0.1", ends, False, 1, now=100.0).accepted  # refresh of an installed flow
    assert p.check("10.0.0.1", ends, False, 1, now=100.0).reason == "rate-limited"
    assert p.check("10.0.0.1", ends, False, 1, now=101.5).accepted  # token back after 1 s
    assert p.check("10.0.0.2", ends, True, 1, now=102.0).reason == "table-full"
    snap = p.snapshot()
    assert snap["refused"]["source-not-accepted"] == 1 and snap["refused"]["table-full"] == 1
    assert snap["refused"]["rate-limited"] == 1 and snap["refused"]["sender-not-endpoint"] == 1
    assert snap["recent_refusals"][-1]["reason"] == "table-full"
    evict = FireflyPolicy(PolicyConfig(max_flows=1, when_full="evict-oldest"))
    d = evict.check("10.0.0.1", ends, True, 1, oldest="old-key")
    assert d.accepted and d.evict == "old-key"
    with pytest.raises(ValueError, match="when_full"):
        FireflyPolicy(PolicyConfig(when_full="panic"))


def test_store_totals_baselines_tag_ids_flows(tmp_path):
    db = tmp_path / "s.sqlite"
    s = Store(db)
    k = TotalKey("s1", "flowlabel", 3, 2, "cms", "perfSONAR", "2025-09-04")
    s.save({k: Counts(5, 500)}, {("s1", "tag:7"): Counts(5, 500)})
    ids = s.assign_tag_ids([(3, None), (3, 2), (2, 1)], capacity=4)
    assert sorted(ids.values()) == [1, 2, 3]
    s.record_flow({"flow": "tcp a -> b", "afi": 4, "src": "10.0.0.1", "dst": "10.0.0.2", "protocol": 6,
                   "src_port": 1, "dst_port": 2, "experiment_id": 3, "activity_id": 2,
                   "experiment_name": "cms", "activity_name": "perfSONAR", "registry": "r",
                   "started": 1.0, "ended": 2.0, "end_reason": "end", "packets": 3, "bytes": 300,
                   "per_switch": {"s1": {"packets": 3, "bytes": 300}}})
    s.close()
    s = Store(db)  # a restarted controller sees the same state
    assert s.load_totals() == {k: Counts(5, 500)}
    assert s.load_baselines() == {("s1", "tag:7"): Counts(5, 500)}
    assert s.assign_tag_ids([(2, 1), (3, 2)], capacity=4) == {(2, 1): ids[(2, 1)], (3, 2): ids[(3, 2)]}
    # Out of cells: the oldest unused assignment is recycled; still too many -> error.
    again = s.assign_tag_ids([(2, 1), (3, 2), (9, 9)], capacity=4)
    assert again[(9, 9)] == ids[(3, None)]
    with pytest.raises(ValueError, match="no counter cell left"):
        s.assign_tag_ids([(2, 1), (3, 2), (9, 9), (8, 8)], capacity=4)
    flows = s.recent_flows()
    assert flows[0]["bytes"] == 300 and flows[0]["per_switch"]["s1"]["packets"] == 3
    s.save({}, {}, [("s1", "tag:7")])
    assert s.load_baselines() == {}


def test_config_file_and_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("switch: bmv2\napi: 127.0.0.1:9999\nfirefly:\n  listen: null\n  max_flows: 10\n"
                        "  accept_sources: ['10.0.0.0/8']\n")
    cfg = load_config(str(cfg_file), {"api": "127.0.0.1:9181", "firefly.when_full": "evict-oldest"})
    assert cfg.switch == "bmv2" and cfg.api == "127.0.0.1:9181" and cfg.firefly_listen is None
    assert cfg.firefly.max_flows == 10 and cfg.firefly.when_full == "evict-oldest"
    cfg_file.write_text("swich: bmv2\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(str(cfg_file), {})
    with pytest.raises(ConfigError, match="not HOST:PORT"):
        load_config(None, {"api": "nowhere"})
    with pytest.raises(ConfigError, match="accept"):
        load_config(None, {"firefly.accept_sources": ["10.0.0.300/8"]})


def test_flowkey_helpers():
    k = FlowKey.of("2001:db8::1", "2001:db8::2", "tcp", 1, 2)
    assert k.afi == 6 and k.protocol == 6 and str(k) == "tcp [2001:db8::1]:1 -> [2001:db8::2]:2"
    with pytest.raises(ValueError, match="families differ"):
        FlowKey.of("10.0.0.1", "2001:db8::2", "udp", 1, 2)


def test_registry_from_url_file_and_fallback(tmp_path):
    import http.server
    import threading
    from controller.config import ControllerConfig
    from controller.runtime import registry_functions
    src = pathlib.Path(__file__).resolve().parents[2] / "scitags_core/data/registry-2025-09-04.json"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = src.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/api.json" % httpd.server_address[1]
    load, fetch = registry_functions(ControllerConfig(registry=url), tmp_path)
    reg = load()
    assert reg.experiment("cms").id == 3 and reg.source == url
    httpd.shutdown()
    httpd.server_close()
    # the URL is gone: refresh fails loudly, start-up falls back to the persisted copy
    with pytest.raises(RuntimeError, match="refresh failed"):
        fetch()
    assert load().digest == reg.digest
    with pytest.raises(ConfigError, match="cannot read"):
        registry_functions(ControllerConfig(registry=str(tmp_path / "none.json")), tmp_path)[0]()


def test_packet_in_parser_never_crashes_on_junk():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=120))
    def check(frame):
        import struct
        try:
            parse_udp_frame(frame)
        except (ValueError, IndexError, struct.error):
            pass  # the errors the driver catches and counts as packet_in_ignored
    check()
