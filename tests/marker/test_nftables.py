"""nftables marking: generated rule text, and real rules in a throwaway namespace."""
from __future__ import annotations

import pytest

from marker.flows import make_key
from marker.nftables import Nft, add_rule_script, parse_rules, rule_comment, rule_match
from scitags_core import flowlabel
from tests.marker.netns import probe_label, run_in

KEY = make_key("tcp", "2001:db8::1", 2345, "2001:db8::2", 5777)


def test_rule_text_matches_the_flow_and_sets_the_label():
    script = add_rule_script(KEY, 0x3000C)
    assert "add table ip6 scitags_marker" in script
    assert "type filter hook output priority mangle" in script
    assert ("ip6 saddr 2001:db8::1 ip6 daddr 2001:db8::2 tcp sport 2345 tcp dport 5777 "
            "ip6 flowlabel set 196620") in script
    assert f'comment "{rule_comment(KEY)}"' in script


def test_udp_rule_and_ipv4_refused():
    udp = make_key("udp", "::1", 1, "::2", 2)
    assert "udp sport 1 udp dport 2" in rule_match(udp)
    with pytest.raises(ValueError, match="IPv6 only"):
        rule_match(make_key("tcp", "10.0.0.1", 1, "10.0.0.2", 2))
    with pytest.raises(ValueError, match="outside"):
        add_rule_script(KEY, 1 << 20)


def test_table_name_is_checked():
    with pytest.raises(ValueError, match="must start with"):
        Nft("filter")
    with pytest.raises(ValueError):
        Nft("scitags_marker; flush ruleset")


def test_parse_rules_reads_label_and_comment():
    doc = ('{"nftables": [{"metainfo": {}}, {"rule": {"family": "ip6", "table": "scitags_marker", '
           '"chain": "output", "handle": 7, "comment": "scitags-marker x", "expr": [{"mangle": '
           '{"key": {"payload": {"protocol": "ip6", "field": "flowlabel"}}, "value": 99}}]}}]}')
    (rule,) = parse_rules(doc)
    assert (rule.handle, rule.label, rule.flow_ident) == (7, 99, "x")


@pytest.mark.netns
def test_real_rule_marks_packets_and_is_removed(ns):
    nft = Nft(netns=ns)
    key = make_key("udp", "::1", 40001, "::1", 40002)
    label = flowlabel.encode_label(3, 3, entropy=5)
    assert probe_label(ns, 40002, 40001) == 0  # auto_flowlabels=0: unmarked is 0
    nft.mark(key, label)
    (rule,) = nft.rules()
    assert rule.label == label and rule.flow_ident == key.ident
    assert probe_label(ns, 40002, 40001) == label
    assert probe_label(ns, 40003, 40001) == 0  # another flow stays unmarked
    nft.mark(key, label ^ 1)  # re-marking replaces, never duplicates
    assert [r.label for r in nft.rules()] == [label ^ 1]
    assert nft.unmark(key) is True
    assert nft.rules() == [] and nft.unmark(key) is False
    assert probe_label(ns, 40002, 40001) == 0
    assert nft.drop_table() is True
    assert "scitags_marker" not in run_in(ns, "nft", "list", "ruleset").stdout


@pytest.mark.netns
def test_clean_all_removes_every_marker_table_and_nothing_else(ns):
    run_in(ns, "nft", "add", "table", "inet", "other")
    Nft("scitags_marker", netns=ns).mark(KEY, 1)
    Nft("scitags_marker_b", netns=ns).mark(KEY, 2)
    assert sorted(Nft(netns=ns).clean_all()) == ["scitags_marker", "scitags_marker_b"]
    ruleset = run_in(ns, "nft", "list", "ruleset").stdout
    assert "scitags_marker" not in ruleset and "table inet other" in ruleset
