"""The core DNS/SPF adapter (owlery.dns): the resolver from dns_* settings, pyspf's one hook, evaluate().

DNS answers come from the in-process stub (tests/harness/dns.py) or from an injected
lookup; nothing reaches real DNS.
"""

from __future__ import annotations

import threading
import time

import pytest
import spf

from owlery import dns as odns
from owlery.settings import Settings


def stub_settings(stub, **more):
    return Settings().replace(dns_nameservers=["127.0.0.1"], dns_port=stub.port, **more)


def test_resolver_follows_the_dns_settings():
    r = odns.build_resolver(Settings().replace(dns_nameservers=["192.0.2.53", "2001:db8::53"], dns_port=5353,
                                               dns_timeout="1500ms"))
    assert r.nameservers == ["192.0.2.53", "2001:db8::53"]
    assert (r.port, r.timeout, r.lifetime) == (5353, 1.5, 1.5)


def test_no_nameservers_means_the_system_s():
    import dns.resolver
    s = Settings()
    assert s.dns_nameservers == () and s.dns_timeout == 5.0
    r = odns.build_resolver(s)
    assert r.nameservers == dns.resolver.Resolver(configure=True).nameservers
    assert (r.port, r.lifetime) == (53, 5.0)


def test_lookup_shapes_from_the_stub(dns_zone):
    dns_zone.set("shapes.example.com", "A", "192.0.2.7")
    dns_zone.set("shapes.example.com", "MX", "10 mx.shapes.example.com")
    dns_zone.set("shapes.example.com", "TXT", ["v=spf1 ", "-all"])
    lookup = odns.dnspython_lookup(odns.build_resolver(stub_settings(dns_zone)))
    assert lookup("shapes.example.com", "A", 2) == [(("shapes.example.com", "A"), "192.0.2.7")]
    assert lookup("shapes.example.com", "MX", 2) == [(("shapes.example.com", "MX"), (10, "mx.shapes.example.com"))]
    assert lookup("shapes.example.com", "TXT", 2) == [(("shapes.example.com", "TXT"), (b"v=spf1 ", b"-all"))]
    assert lookup("absent.example.com", "TXT", 2) == []        # NXDOMAIN: no records, not an error
    assert lookup("shapes.example.com", "AAAA", 2) == []       # no answer of that type


def test_answers_are_cached_for_their_ttl_and_the_cache_can_be_off(dns_zone):
    """dns_cache_entries: a domain asked again (the next message from the same sender) is
    answered from the process's cache, positive or negative, until its TTL runs out."""
    dns_zone.set("cached.example.com", "TXT", "v=spf1 -all")
    lookup = odns.dnspython_lookup(odns.build_resolver(stub_settings(dns_zone)))
    for _ in range(3):
        assert lookup("cached.example.com", "TXT", 2) == [(("cached.example.com", "TXT"), (b"v=spf1 -all",))]
        assert lookup("nothing.example.com", "TXT", 2) == []
    assert dns_zone.queries.count(("cached.example.com", "TXT")) == 1
    assert dns_zone.queries.count(("nothing.example.com", "TXT")) == 1
    uncached = odns.dnspython_lookup(odns.build_resolver(stub_settings(dns_zone, dns_cache_entries=0)))
    for _ in range(2):
        uncached("cached.example.com", "TXT", 2)
    assert dns_zone.queries.count(("cached.example.com", "TXT")) == 3


def test_servfail_is_a_temporary_error(dns_zone):
    dns_zone.fail("broken.example.com")
    lookup = odns.dnspython_lookup(odns.build_resolver(stub_settings(dns_zone)))
    with pytest.raises(spf.TempError) as failed:
        lookup("broken.example.com", "TXT", 2)
    assert str(failed.value) == "DNS server failure for broken.example.com"   # (our servers unnamed)


def test_evaluate_through_the_configured_resolver(dns_zone):
    dns_zone.set("spf-core.example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    lookup = odns.dnspython_lookup(odns.build_resolver(stub_settings(dns_zone)))
    ok = odns.evaluate(lookup, ip="192.0.2.9", sender="a@spf-core.example.com", helo="h.example",
                       query_time_limit=5)
    bad = odns.evaluate(lookup, ip="203.0.113.9", sender="a@spf-core.example.com", helo="h.example",
                        query_time_limit=5, authserv_id="mx.test")
    assert (ok.result, ok.identity, ok.domain) == ("pass", "mailfrom", "spf-core.example.com")
    assert ok.received_spf.startswith("Pass ") and ok.authentication_results == ""
    assert bad.result == "fail"
    assert bad.authentication_results.startswith("Authentication-Results: mx.test; spf=fail")
    bare = odns.evaluate(lookup, ip="203.0.113.9", sender="a@spf-core.example.com", helo="h.example",
                         query_time_limit=5, authserv_id="mx.test", headers=False)
    assert bare == odns.SpfResult(bad.result, bad.identity, bad.explanation, bad.domain, "", "")


def test_a_server_that_never_answers_is_temperror_within_the_budget(dns_zone):
    dns_zone.drop("silent.example.com")
    lookup = odns.dnspython_lookup(odns.build_resolver(stub_settings(dns_zone, dns_timeout=0.2)))
    r = odns.evaluate(lookup, ip="192.0.2.9", sender="a@silent.example.com", helo="h.example", query_time_limit=0.5)
    assert r.result == "temperror"
    # The explanation reaches the sender in a 4xx: the name that timed out, not our servers' addresses.
    assert "127.0.0.1" not in r.explanation and "DNS timeout for silent.example.com" in r.explanation


def test_the_hook_answers_temperror_when_no_lookup_is_bound():
    odns.evaluate(lambda name, qtype, timeout: [], ip="192.0.2.1", sender="a@x.example", helo="x.example",
                  query_time_limit=1)
    assert spf.DNSLookup is odns._dispatch
    with pytest.raises(spf.TempError, match="no resolver bound"):
        spf.DNSLookup("x.example", "TXT")          # never the system resolver by accident


def test_each_thread_sees_its_own_lookup():
    both_inside = threading.Barrier(2, timeout=10)
    results = {}

    def zone_of(addr):
        first = []

        def lookup(name, qtype, timeout):
            if not first:
                first.append(name)
                both_inside.wait()     # both evaluations are mid-lookup at once
            return [((name, qtype), (f"v=spf1 ip4:{addr} -all".encode(),))] if qtype == "TXT" else []
        return lookup

    def run(key, addr):
        results[key] = odns.evaluate(zone_of(addr), ip="192.0.2.1", sender="a@t.example", helo="t.example",
                                     query_time_limit=5).result

    threads = [threading.Thread(target=run, args=("one", "192.0.2.1")),
               threading.Thread(target=run, args=("two", "198.51.100.1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"one": "pass", "two": "fail"}


def test_a_result_outside_rfc7208_counts_as_permerror(monkeypatch):
    class Query:
        ident, d = "mailfrom", "odd.example"

        def __init__(self, **kw):
            pass

        def check(self):
            return "Unknown", 550, "odd"

        def get_header(self, result, **kw):
            return f"{result} (odd)"
    monkeypatch.setattr(spf, "query", Query)
    r = odns.evaluate(lambda *a: [], ip="192.0.2.1", sender="a@odd.example", helo="h", query_time_limit=1)
    assert r.result == "permerror" and r.received_spf.startswith("PermError ")


def test_policyd_and_the_milter_evaluate_through_this_module():
    import milters.stages.spf as milter_spf
    import policyd.checks.spf as policyd_spf
    assert milter_spf.evaluate is odns.evaluate and policyd_spf.evaluate is odns.evaluate
    assert milter_spf.dnspython_lookup is odns.dnspython_lookup is policyd_spf.dnspython_lookup


def _cached(dns_zone, entries=10000):
    settings = Settings().replace(dns_nameservers=["127.0.0.1"], dns_port=dns_zone.port,
                                  dns_cache_entries=entries)
    resolver = odns.build_resolver(settings)
    return odns.dnspython_lookup(resolver), odns.cached_lookup(resolver)


def test_cache_only_lookups_answer_as_the_resolver_until_the_answers_expire(dns_zone, monkeypatch):
    """cached_lookup keeps converted answers beside dnspython's cache: the same records, NXDOMAIN
    and "no answer", each with its expiry reported, and nothing once that expiry has passed."""
    dns_zone.add("memo.example", "TXT", "v=spf1 -all", ttl=60)
    dns_zone.add("memo.example", "A", "192.0.2.5", ttl=60)
    ask, make = _cached(dns_zone)
    questions = [("memo.example", "TXT"), ("memo.example", "A"), ("memo.example", "MX"),
                 ("gone.memo.example", "A")]
    asked = {q: ask(*q, 5) for q in questions}
    assert asked[("memo.example", "TXT")] and asked[("gone.memo.example", "A")] == []
    for _ in range(2):                          # from dnspython's cache, then from the memo
        missed, expiries = [], []
        look = make(missed, expiries)
        assert {q: look(*q, 5) for q in questions} == asked
        assert missed == [] and len(expiries) == len(questions)
        assert all(time.time() < e <= time.time() + 61 for e in expiries)
    look(*questions[0], 5).append("scribbled")   # a caller's list is its own
    assert make([], [])(*questions[0], 5) == asked[questions[0]]
    later = max(expiries) + 1
    monkeypatch.setattr(time, "time", lambda: later)
    for q in questions:
        missed = []
        with pytest.raises(odns.NotCached):
            make(missed, [])(*q, 5)
        assert missed == [q[0]]


def test_cache_only_lookups_keep_no_more_than_the_cache_holds(dns_zone):
    for n in range(6):
        dns_zone.add(f"n{n}.memo.example", "A", f"192.0.2.{n + 1}", ttl=60)
    ask, make = _cached(dns_zone, entries=3)
    for n in range(6):
        ask(f"n{n}.memo.example", "A", 5)
        assert make([], [])(f"n{n}.memo.example", "A", 5) == [((f"n{n}.memo.example", "A"), f"192.0.2.{n + 1}")]
    memo = next(c.cell_contents for c in make.__closure__ if isinstance(c.cell_contents, dict))
    assert len(memo) <= 3
