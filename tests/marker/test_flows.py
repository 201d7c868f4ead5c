"""Validation of flow requests: names, ids, addresses, ports (marker.flows)."""
from __future__ import annotations

import ipaddress

import pytest

from marker.flows import MarkerInputError, make_key, make_request, resolve_tag


def test_names_and_ids_resolve_to_the_same_tag(registry):
    by_name = resolve_tag(registry, "cms", "Cache")
    by_id = resolve_tag(registry, 3, 3)
    by_text_id = resolve_tag(registry, "3", "3")
    assert by_name == by_id == by_text_id
    assert (by_name.experiment_name, by_name.activity_name) == ("cms", "Cache")


def test_names_are_case_insensitive_and_may_contain_spaces(registry):
    tag = resolve_tag(registry, "ATLAS", "data challenge")
    assert (tag.experiment_id, tag.activity_id) == (2, 26)


@pytest.mark.parametrize("exp, act, words", [
    ("nosuchexp", "Cache", "unknown experiment 'nosuchexp'"),
    ("cms", "nosuchact", "unknown activity 'nosuchact'"),
    (0, 1, "experiment id 0 outside the flow-label range 1..511"),
    (512, 1, "experiment id 512 outside the flow-label range"),
    (3, 64, "activity id 64 outside the flow-label range 0..63"),
    (3, -1, "activity id -1 outside"),
    (200, 1, "unknown experiment 200"),  # in range but not registered
    (3, 60, "unknown activity 60"),
])
def test_bad_tags_are_refused_with_the_cause(registry, exp, act, words):
    with pytest.raises(MarkerInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        resolve_tag(registry, exp, act)


def test_unregistered_in_range_ids_only_on_request(registry):
    tag = resolve_tag(registry, 200, 7, allow_unregistered=True)
    assert (tag.experiment_id, tag.activity_id, tag.experiment_name) == (200, 7, None)
    with pytest.raises(MarkerInputError, match="outside"):
        resolve_tag(registry, 600, 7, allow_unregistered=True)
    with pytest.raises(MarkerInputError, match="unknown experiment 'nosuch'"):
        resolve_tag(registry, "nosuch", 7, allow_unregistered=True)


@pytest.mark.parametrize("args, words", [
    (("tcp", "2001:db8::1", 1, "not-an-ip", 2), "invalid destination address 'not-an-ip'"),
    (("tcp", "2001:db8::zz", 1, "2001:db8::2", 2), "invalid source address"),
    (("tcp", "2001:db8::1", 0, "2001:db8::2", 2), "invalid source port 0"),
    (("tcp", "2001:db8::1", 1, "2001:db8::2", 70000), "invalid destination port 70000"),
    (("tcp", "2001:db8::1", "x", "2001:db8::2", 1), "not a number"),
    (("icmp", "2001:db8::1", 1, "2001:db8::2", 2), "invalid protocol 'icmp'"),
    (("tcp", "10.0.0.1", 1, "2001:db8::2", 2), "different address families"),
])
def test_bad_flows_are_refused(args, words):
    with pytest.raises(MarkerInputError, match=words):
        make_key(*args)


def test_ipv4_flows_are_valid_requests(registry):
    req = make_request(registry, "start", "UDP", "10.0.1.1", "5000", "10.0.1.2", 6000, "lhcb", "Cache")
    assert req.key.afi == 4 and req.key.protocol == "udp"
    assert req.key.src == ipaddress.ip_address("10.0.1.1")


def test_bracketed_ipv6_is_accepted():
    key = make_key("tcp", "[2001:db8::1]", 1, "[2001:db8::2]", 2)
    assert str(key) == "tcp [2001:db8::1]:1 -> [2001:db8::2]:2"
