"""owlery.spf_compiled gives pyspf's very result, or steps aside.

The oracle is pyspf itself, through the same entry (`owlery.dns.evaluate` with and without
`simple=True`), on generated zones: records of the simple subset and records just outside it
(macros, a/mx/ptr/exists, exp= and unknown modifiers, bad CIDRs and addresses, loops, several
records, non-ASCII text, includes without records, redirects twice or nowhere, more than ten
DNS-querying terms), clients in and out of their networks (IPv4, IPv6, IPv4-mapped, odd
forms), and sender and HELO identities of every shape. Every field of the SpfResult must be
equal, headers included; the compiled path must answer a fair share of the cases (or it
would test nothing), and never answer outside the subset.
"""

from __future__ import annotations

import random

import pytest

from owlery import spf_compiled
from owlery.dns import SpfResult, _checkable, evaluate, trace_headers

NETS4 = ["10.0.0.0/8", "192.0.2.0/24", "198.51.100.7", "203.0.113.128/25", "0.0.0.0/0", "172.16.0.0/12",
         "192.0.2.77/32", "10.1.2.3/16"]
NETS6 = ["2001:db8::/32", "2001:DB8:1::1", "::1/128", "2001:db8:abcd::/48", "::/0", "2001:db8::/129"]
BAD = ["ip4:192.0.2.1/33", "ip4:01.2.3.4", "ip4:1.2.3.4/", "ip4:1.2.3.4//64", "ip4:1.2.3", "ip6:zz::1",
       "ip4:300.1.1.1", "-all:foo", "all/24", "ipv4:1.2.3.4", "192.0.2.1", "include:", "include:%{d}.x",
       "a", "mx", "ptr", "exists:%{i}.x.example", "a:host.example", "mx:mail.example/24", "exp=exp.example",
       "foo=bar", "default=-", "redirect=%{d}.r", "ip4:1.2.3.4,", "+ALL", "IP4:10.0.0.0/8", "Include:inc0.example",
       "ip6:::ffff:10.0.0.1", "prt", "-ip4:192.0.2.0/24/", "ip4:192.0.2.0/-1"]


def _simple(lookup, **kw):
    return spf_compiled.evaluate_simple(lookup, checkable=_checkable, **kw)


CLIENTS = ["10.1.2.3", "192.0.2.77", "192.0.2.200", "198.51.100.7", "203.0.113.200", "172.20.1.1", "8.8.8.8",
           "2001:db8::5", "2001:db8:1::1", "2001:db8:abcd:1::9", "2001:4860::1", "::1", "::ffff:10.1.2.3",
           "010.1.2.3", "10.01.2.3", "2001:DB8::5", "fe80::1%eth0", "1.2.3.4.5", "not-an-ip", "0.0.0.0"]


def _term(rng: random.Random, includes: list[str]) -> str:
    roll = rng.random()
    qualifier = rng.choice(["", "", "+", "-", "~", "?"])
    if roll < 0.4:
        return f"{qualifier}ip4:{rng.choice(NETS4)}"
    if roll < 0.55:
        return f"{qualifier}ip6:{rng.choice(NETS6)}"
    if roll < 0.72 and includes:
        return f"{qualifier}include:{rng.choice(includes)}"
    if roll < 0.93:
        return f"{qualifier}all"
    return rng.choice(BAD)


def _record(rng: random.Random, includes: list[str], redirects: list[str]) -> str:
    terms = [_term(rng, includes) for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.2 and redirects:
        terms.insert(rng.randint(0, len(terms)), f"redirect={rng.choice(redirects)}")
    if rng.random() < 0.03 and redirects:
        terms.append(f"redirect={rng.choice(redirects)}")
    head = rng.choice(["v=spf1"] * 8 + ["V=SPF1", "v=spf1 ", "v=spf10"])
    sep = rng.choice([" "] * 8 + ["  "])
    return sep.join([head] + terms) + rng.choice([""] * 9 + [" "])


def _zone(rng: random.Random) -> dict[str, list[tuple[bytes, ...]]]:
    """Domains d0..d11.example, inc0..inc5.example, r0..r2.example with TXT sets."""
    zone: dict[str, list[tuple[bytes, ...]]] = {}
    includes = [f"inc{i}.example" for i in range(6)]
    redirects = [f"r{i}.example" for i in range(3)] + ["nowhere.example"]
    for name in [f"d{i}.example" for i in range(12)] + includes + redirects[:3]:
        kind = rng.random()
        if kind < 0.12:
            continue                                    # NXDOMAIN
        txts: list[tuple[bytes, ...]] = []
        if kind < 0.2:
            txts.append((b"google-site-verification=abc",))   # TXT without SPF
        else:
            text = _record(rng, [i for i in includes if i != name], redirects).encode()
            if rng.random() < 0.2 and len(text) > 10:
                cut = rng.randint(1, len(text) - 1)
                txts.append((text[:cut], text[cut:]))          # one record in two strings
            else:
                txts.append((text,))
            if rng.random() < 0.1:
                txts.append((b"other=thing",))
            if rng.random() < 0.04:
                txts.append((b"v=spf1 -all",))                 # two records: permerror
            if rng.random() < 0.03:
                txts.append((b"v=spf1\n",))                   # a record by pyspf's "$"
            if rng.random() < 0.03:
                txts.append(("v=spf1 ip4:10.0.0.0/8 -all caf\u00e9".encode(),))
        zone[name] = txts
    return zone


def _lookup(zone: dict[str, list[tuple[bytes, ...]]]):
    def lookup(name: str, qtype: str, timeout: float) -> list:
        name = name.lower()
        if qtype == "TXT":
            return [((name, "TXT"), t) for t in zone.get(name, [])]
        if qtype == "A" and name in zone:
            return [((name, "A"), "192.0.2.77")]
        if qtype == "MX" and name in zone:
            return [((name, "MX"), (10, name))]
        return []
    return lookup


def _identities(rng: random.Random) -> tuple[str, str]:
    domain = rng.choice([f"d{i}.example" for i in range(12)] + ["D3.Example", "inc1.example", "r0.example"])
    sender = rng.choice([f"user@{domain}"] * 6 + [f"First.Last+tag@{domain}", "", "", "", f"@{domain}", domain,
                         f"a@b@{domain}", f"us er@{domain}", f"j\u00f6rg@{domain}", f"user@{domain}.",
                         "user@single", "user@[192.0.2.1]"])
    helo = rng.choice([f"mx.{domain}", domain, domain, "d1.example", "", "[192.0.2.1]", "localhost", "D2.EXAMPLE",
                       "mail\u00e9.example"])
    return sender, helo


def _outcome(lookup, simple: bool, common: dict):
    try:
        return evaluate(lookup, simple=simple, **common)
    except Exception as e:  # noqa: BLE001 - pyspf refuses a client address that is none: both must
        return ("raised", type(e).__name__, str(e))


def _pair(lookup, ip: str, sender: str, helo: str, **kw):
    common = dict(ip=ip, sender=sender, helo=helo, query_time_limit=20, receiver="mx.test.example", **kw)
    return _outcome(lookup, False, common), _outcome(lookup, True, common)


@pytest.mark.parametrize("seed", range(12))
def test_compiled_equals_pyspf_on_generated_zones(seed):
    rng = random.Random(seed)
    answered = fell_back = 0
    for _zone_round in range(25):
        lookup = _lookup(_zone(rng))
        spf_compiled._compiled.clear()
        for _ in range(40):
            ip = rng.choice(CLIENTS)
            sender, helo = _identities(rng)
            kw = rng.choice([{}, {"authserv_id": "mx.test.example"}, {"headers": False},
                             {"default_explanation": "see https://example.org/spf"}])
            fast = _simple(lookup, ip=ip, sender=sender, helo=helo, timeout=20,
                                                default_explanation=kw.get("default_explanation"))
            if fast is None:
                fell_back += 1
            else:
                answered += 1
            slow, quick = _pair(lookup, ip, sender, helo, **kw)
            assert quick == slow, (seed, ip, sender, helo, kw)
            if isinstance(slow, SpfResult):
                # headers="later": the same verdict, and the same headers when built afterwards
                later = _outcome(lookup, True, dict(ip=ip, sender=sender, helo=helo, query_time_limit=20,
                                                    receiver="mx.test.example", headers="later",
                                                    **{k: v for k, v in kw.items() if k != "headers"}))
                assert later[:4] == slow[:4], (seed, ip, sender, helo, kw)
                if "headers" not in kw:
                    assert trace_headers(later) == (slow.received_spf, slow.authentication_results)
    # The generator gives both kinds in good number, or this test would check nothing.
    assert answered > 200 and fell_back > 150, (answered, fell_back)


def test_results_the_fast_path_gives():
    zone = {
        "a.example": [(b"v=spf1 ip4:192.0.2.0/24 include:b.example -all",)],
        "b.example": [(b"v=spf1 ip6:2001:db8::/32 ~all",)],
        "c.example": [(b"google-site-verification=x",)],
        "d.example": [(b"v=spf1 ", b"redirect=a.example",)],
    }
    lookup = _lookup(zone)

    def run(ip: str, sender: str, helo: str = "mx.a.example"):
        got = _simple(lookup, ip=ip, sender=sender, helo=helo, timeout=20,
                                           default_explanation=None)
        assert got is not None
        return got[0], got[2].mechanism

    assert run("192.0.2.9", "x@a.example") == ("pass", "ip4:192.0.2.0/24")
    # include: the included record's pass is a match of the include term (its qualifier applies)
    assert run("2001:db8::1", "x@a.example") == ("pass", "include:b.example")
    assert run("198.51.100.1", "x@a.example") == ("fail", "-all")
    assert run("198.51.100.1", "x@c.example") == ("none", None)
    assert run("198.51.100.1", "x@nxdomain.example") == ("none", None)
    assert run("192.0.2.9", "", "d.example") == ("pass", "ip4:192.0.2.0/24")   # HELO, through redirect=


@pytest.mark.parametrize("record", [
    b"v=spf1 a -all", b"v=spf1 mx ~all", b"v=spf1 exists:%{i}.x.example -all", b"v=spf1 ip4:1.2.3.4 exp=e.example -all",
    b"v=spf1 include:%{d}.x -all", b"v=spf1 ip4:1.2.3.4/33 -all", b"v=spf1 ptr -all", b"v=spf1 -all:x",
    b"v=spf1 include:nothing.example -all", b"v=spf1 redirect=nothing.example",
    b"v=spf1 redirect=a.example redirect=a.example", b"v=spf1 ip4:10.0.0.0/8 -all caf\xc3\xa9",
    b"v=spf1 " + b" ".join(b"include:a.example" for _ in range(11)) + b" -all",
])
def test_outside_the_subset_pyspf_decides(record):
    lookup = _lookup({"x.example": [(record,)], "a.example": [(b"v=spf1 ip4:192.0.2.0/24 -all",)]})
    assert _simple(lookup, ip="198.51.100.1", sender="u@x.example", helo="h.example",
                                        timeout=20, default_explanation=None) is None
    slow, quick = _pair(lookup, "198.51.100.1", "u@x.example", "h.example")
    assert quick == slow


def test_two_records_and_non_ascii_identities_go_to_pyspf():
    lookup = _lookup({"x.example": [(b"v=spf1 -all",), (b"v=spf1 +all",)]})
    for ip, sender, helo in [("192.0.2.1", "u@x.example", "h"), ("192.0.2.1", "j\u00f6rg@x.example", "h"),
                             ("::ffff:192.0.2.1", "u@y.example", "h"), ("192.0.2.01", "u@y.example", "h")]:
        assert _simple(lookup, ip=ip, sender=sender, helo=helo, timeout=20,
                                            default_explanation=None) is None


@pytest.mark.parametrize("txts", [
    [(b"v=spf1\n",), (b"v=spf1 -all",)],          # two records by pyspf's test: permerror
    [(b"v=spf1\n",)],                              # one, which pyspf reads as none
    [(b"V=SPF1 ip4:192.0.2.0/24 -all",)],
    [(b"v=spf1",)],
])
def test_what_counts_as_a_record_is_pyspfs(txts):
    lookup = _lookup({"x.example": txts})
    slow, quick = _pair(lookup, "192.0.2.1", "u@x.example", "h.example")
    assert quick == slow


def test_include_loop_is_bounded_and_left_to_pyspf():
    lookup = _lookup({"x.example": [(b"v=spf1 include:y.example -all",)],
                      "y.example": [(b"v=spf1 include:x.example -all",)]})
    assert _simple(lookup, ip="192.0.2.1", sender="u@x.example", helo="h.example",
                                        timeout=20, default_explanation=None) is None
    slow, quick = _pair(lookup, "192.0.2.1", "u@x.example", "h.example")
    assert quick == slow and slow.result == "permerror"


def test_rfc7208_suite_gives_the_same_through_the_compiled_path():
    """Every scenario of the RFC 7208 suite (../shared/conformance, read at run time): the same
    SpfResult (or the same refusal) with and without the compiled path."""
    from tests.policyd.spf_zone import zone_lookup
    from tests.policyd.test_spf_rfc7208 import CASES, SUITE
    assert SUITE.exists(), f"SPF conformance suite not found at {SUITE.resolve()}"
    answered = 0
    for case in CASES:
        scenario, _name, test = case.values
        lookup = zone_lookup(scenario.get("zonedata"))
        common = dict(ip=test["host"], sender=test.get("mailfrom", ""), helo=test.get("helo", ""),
                      default_explanation="DEFAULT")
        try:
            fast = _simple(lookup, timeout=20, **common)
        except Exception:  # noqa: BLE001 - the pyspf path must then refuse the same way
            fast = None
        answered += fast is not None
        slow, quick = _pair(lookup, **common)
        assert quick == slow, (_name, common)
    assert answered > 20, answered
