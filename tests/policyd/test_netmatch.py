"""NetworkMatcher: client addresses against network lists."""

import ipaddress

from policyd import netmatch
from policyd.netmatch import NetworkMatcher


def nets(*texts):
    return [ipaddress.ip_network(t) for t in texts]


def test_matches_v4_v6_and_mapped_addresses():
    m = NetworkMatcher(nets("192.0.2.0/24", "2001:db8::/32"))
    assert "192.0.2.77" in m
    assert "::ffff:192.0.2.77" in m          # IPv4-mapped matches as IPv4
    assert "2001:db8::1" in m
    assert "198.51.100.1" not in m
    assert "2001:db9::1" not in m


def test_text_that_is_no_address_matches_nothing():
    m = NetworkMatcher(nets("0.0.0.0/0", "::/0"))
    assert "" not in m
    assert "unknown" not in m
    assert "192.0.2.1" in m


def test_empty_list_is_false_and_matches_nothing():
    m = NetworkMatcher([])
    assert not m
    assert "192.0.2.1" not in m


def test_answers_are_remembered_within_a_bound(monkeypatch):
    monkeypatch.setattr(netmatch, "_MEMO_MAX", 3)
    m = NetworkMatcher(nets("10.0.0.0/8"))
    for i in range(10):
        assert f"10.0.0.{i}" in m
        assert len(m._memo) <= 3
    assert "11.0.0.1" not in m
