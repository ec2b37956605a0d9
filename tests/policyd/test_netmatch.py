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


def _reference(address, networks):
    """What the ipaddress module says (the matcher's definition)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in networks if n.version == ip.version)


def test_prefix_table_and_scan_agree_with_ipaddress_on_generated_input():
    """The fast paths (string parse of dotted quads, one set per prefix length) against the
    ipaddress module: random networks, random addresses in and near them, and text that
    looks like an address but is not one."""
    import random
    rnd = random.Random(20261206)
    odd = ["", "unknown", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.1.1.1", " 1.2.3.4",
           "1.2.3.4 ", "\u0661.2.3.4", "1..3.4", "+1.2.3.4", "1.2.3.-4", "::ffff:10.1.2.3",
           "::ffff:a01:203", "2001:db8::1%eth0", "fe80::1%1", "0.0.0.0", "255.255.255.255", "::"]
    for _ in range(200):
        networks = []
        for _ in range(rnd.randint(0, 6)):
            if rnd.random() < 0.6:
                plen = rnd.randint(0, 32)
                networks.append(ipaddress.ip_network(f"{ipaddress.IPv4Address(rnd.getrandbits(32))}/{plen}",
                                                     strict=False))
            else:
                plen = rnd.randint(0, 128)
                networks.append(ipaddress.ip_network(f"{ipaddress.IPv6Address(rnd.getrandbits(128))}/{plen}",
                                                     strict=False))
        m = NetworkMatcher(networks)
        table = netmatch.PrefixTable(networks)
        candidates = list(odd)
        for net in networks:
            n = int(net.network_address) + rnd.randint(0, net.num_addresses - 1)
            candidates.append(str(ipaddress.ip_address(n)))
            candidates.append(str(ipaddress.ip_address(max(0, int(net.network_address) - 1))))
            if net.version == 4:
                candidates.append(f"::ffff:{ipaddress.IPv4Address(n)}")
        candidates += [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(5)]
        for address in candidates:
            want = _reference(address, networks)
            assert (address in m) == want, (address, networks)
            assert (address in table) == want, (address, networks)
            assert netmatch.address_in(address, tuple(networks)) == want, (address, networks)


def test_v4_int_accepts_exactly_what_ipaddress_accepts():
    import itertools
    parts = ["0", "1", "00", "01", "255", "256", "999", "1000", "", "a", "\u0661", " 1", "+1"]
    for quad in itertools.product(parts, repeat=4):
        text = ".".join(quad)
        try:
            want = int(ipaddress.IPv4Address(text))
        except ValueError:
            want = None
        assert netmatch.v4_int(text) == want, text
