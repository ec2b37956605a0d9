"""DNSBL/DNSWL: postscreen's site grammar, error answers, scores, and the dnsbl check against the DNS stub.

The parser cases follow postconf(5) postscreen_dnsbl_sites and ip_match(3)'s IPv4 pattern
grammar (Postfix's own messages: "numeric range error", "garbage after pattern", ...).
The check runs through the pipeline with the inline executor and the in-process DNS stub.
"""

from __future__ import annotations

import logging

import pytest
from twisted.internet import defer, task

from owlery import dnsbl as core
from owlery.errors import StateUnavailable
from owlery.settings import Settings, SettingsError
from owlery.state import Capability
from owlery.state.memory_store import MemoryStore
from policyd.checks import CheckContext, Executor, InlineExecutor
from policyd.pipeline import Decision, Pipeline
from policyd.protocol import PolicyRequest

T0 = 1_700_000_000.0

# --- the grammar ---------------------------------------------------------------------------

# (pattern, addresses it matches, addresses it does not)
FILTERS = [
    ("127.0.0.2", ["127.0.0.2"], ["127.0.0.3", "127.0.1.2"]),
    ("[127.0.0.2]", ["127.0.0.2"], ["127.0.0.3"]),                     # [] around the whole pattern
    ("127.0.0.[2..11]", ["127.0.0.2", "127.0.0.11"], ["127.0.0.1", "127.0.0.12"]),
    ("127.0.[0..255].[1..3]", ["127.0.9.1", "127.0.255.3"], ["127.0.9.0", "127.0.0.255", "127.1.9.1"]),
    ("127.0.0.[2;4;6..8]", ["127.0.0.2", "127.0.0.4", "127.0.0.7"], ["127.0.0.3", "127.0.0.5", "127.0.0.9"]),
    ("127.0.0.[5..5]", ["127.0.0.5"], ["127.0.0.4"]),
    ("[127..127].000.0.[002]", ["127.0.0.2"], ["127.0.0.20"]),       # leading zeros are decimal
]

BAD_FILTERS = [
    ("", "empty address pattern"),
    ("[]", "empty address pattern"),
    ("127.0.0", 'need "."'),
    ("127.0.0.2.1", "garbage after pattern"),
    ("127.0.0.256", 'need decimal number 0..255 or "["'),
    ("127.0.0.[11..2]", "numeric range error"),      # lo must not exceed hi
    ("127.0.0.[2..]", "numeric range error"),
    ("127.0.0.[2.3]", "numeric range error"),
    ("127.0.[3.4]", "numeric range error"),          # a [] cannot span two fields
    ("127.0.0.3[6..9]", "garbage after pattern"),    # a field is a number or a [], not both
    ("127.0.0.[]", "need decimal number 0..255"),
    ("127.0.0.[2,4]", 'need ";" or "]"'),            # ";" separates, not ","
    ("127.0.0.[256]", "need decimal number 0..255"),
    ("[127.0.0.2", 'missing "]"'),
    ("127.0.0.*", 'need decimal number 0..255 or "["'),
    ("127.0.0.2 ", "garbage after pattern"),
]


@pytest.mark.parametrize("pattern,good,bad", FILTERS)
def test_filter_matches_as_ip_match(pattern, good, bad):
    f = core.parse_filter(pattern)
    assert all(f.matches(a) for a in good)
    assert not any(f.matches(a) for a in bad)


@pytest.mark.parametrize("pattern,message", BAD_FILTERS)
def test_filter_syntax_errors(pattern, message):
    with pytest.raises(core.FilterError, match=message.replace("[", r"\[").replace(".", r"\.")):
        core.parse_filter(pattern)


SITES = [
    ("zen.spamhaus.org", "zen.spamhaus.org", None, 1),
    ("zen.spamhaus.org*3", "zen.spamhaus.org", None, 3),
    ("zen.spamhaus.org=127.0.0.[2..11]*3", "zen.spamhaus.org", "127.0.0.[2..11]", 3),
    ("list.dnswl.org=127.0.[0..255].[1..3]*-2", "list.dnswl.org", "127.0.[0..255].[1..3]", -2),
    ("Example.COM=127.0.0.4", "example.com", "127.0.0.4", 1),
    ("bl.example*+2", "bl.example", None, 2),
    ("bl.example*0", "bl.example", None, 0),
    ("_dq.example.net", "_dq.example.net", None, 1),
]

BAD_SITES = [
    ("bl.example*", "bad DNSBL weight factor"),
    ("bl.example*3x", "bad DNSBL weight factor"),
    ("bl.example*2.5", "bad DNSBL weight factor"),
    ("bl.example*2=127.0.0.2", "bad DNSBL weight factor"),   # weight is split off first, at '*'
    ("bl.example=127.0.0", 'need "."'),
    ("=127.0.0.2", "bad DNSBL domain name"),
    ("bl.example.", "bad DNSBL domain name"),                # an empty label
    ("bl..example", "bad DNSBL domain name"),
    ("-bl.example", "bad DNSBL domain name"),
    ("192.0.2.1", "bad DNSBL domain name"),                  # all-numeric: an address, not a domain
    ("bl.exämple", "bad DNSBL domain name"),
    ("a" * 64 + ".example", "bad DNSBL domain name"),
]


@pytest.mark.parametrize("entry,domain,flt,weight", SITES)
def test_site_entries(entry, domain, flt, weight):
    site = core.parse_site(entry)
    assert (site.domain, str(site.filter) if site.filter else None, site.weight) == (domain, flt, weight)
    assert core.parse_site(str(site)) == site        # printed back in the same grammar


@pytest.mark.parametrize("entry,message", BAD_SITES)
def test_bad_site_entries(entry, message):
    with pytest.raises(ValueError, match=message):
        core.parse_site(entry)


def test_sites_split_on_commas_and_white_space_and_settings_refuse_bad_ones():
    sites = core.parse_sites(["a.example, b.example\tc.example=127.0.0.2*2", "d.example"])
    assert [s.domain for s in sites] == ["a.example", "b.example", "c.example", "d.example"]
    s = Settings().replace(dnsbl_sites="zen.spamhaus.org*3 list.dnswl.org=127.0.[0..255].[1..3]*-2")
    assert [str(x) for x in s.dnsbl_sites] == ["zen.spamhaus.org*3", "list.dnswl.org=127.0.[0..255].[1..3]*-2"]
    with pytest.raises(SettingsError, match="numeric range error"):
        Settings().replace(dnsbl_sites=["zen.spamhaus.org=127.0.0.[9..2]"])
    with pytest.raises(SettingsError):
        Settings().replace(dnsbl_reject_reply="250 2.0.0 fine")


# --- answers and scores --------------------------------------------------------------------

ERRORS = [
    ("zen.spamhaus.org", "127.255.255.254", "127.255.255.0/24"),     # query via a public resolver
    ("zen.spamhaus.org", "127.255.255.252", "127.255.255.0/24"),     # typo in the list name
    ("zen.spamhaus.org", "127.255.255.255", "127.255.255.0/24"),     # rate limited
    ("bl.example", "127.255.255.1", "127.255.255.0/24"),             # any list
    ("bl.example", "192.0.2.1", "outside 127.0.0.0/8"),              # a wildcard / hijacked answer
    ("bl.example", "not-an-address", "not an IPv4 address"),
    ("list.dnswl.org", "127.0.0.255", "dnswl.org error code"),
    ("dbl.spamhaus.org", "127.0.1.255", "dbl.spamhaus.org error code"),
]


@pytest.mark.parametrize("domain,answer,why", ERRORS)
def test_error_answers_are_never_listings(domain, answer, why):
    assert why in core.error_reason(domain, answer)
    q = core.plan([("client", "192.0.2.10", core.parse_sites(
        [domain, f"{domain}=[0..255].[0..255].[0..255].[0..255]"]))])
    result = core.score(q, {q[0].name: core.Answer((answer,), 60)})
    assert result.total == 0 and not result.hits and result.errors


def test_a_weight_counts_once_per_entry_and_every_matching_entry_counts():
    sites = core.parse_sites("bl.example*2 bl.example=127.0.0.[2..3]*3 bl.example=127.0.0.9*100 wl.example*-5")
    q = core.plan([("client", "192.0.2.10", sites)])
    assert [x.name for x in q] == ["10.2.0.192.bl.example", "10.2.0.192.wl.example"]   # one query per list
    answers = {"10.2.0.192.bl.example": core.Answer(("127.0.0.2", "127.0.0.3", "127.255.255.254"), 60),
               "10.2.0.192.wl.example": core.Answer((), 60)}
    result = core.score(q, answers)
    assert result.total == 5 and [h.weight for h in result.hits] == [2, 3]
    assert result.errors == (("bl.example", "error answer 127.255.255.254"),)
    answers["10.2.0.192.wl.example"] = core.Answer(("127.0.10.1",), 60)
    assert core.score(q, answers).total == 0


def test_query_names_ipv4_ipv6_and_rhsbl():
    assert core.ip_query_name("192.0.2.99", "zen.example.") == "99.2.0.192.zen.example"
    assert core.ip_query_name("::ffff:192.0.2.99", "zen.example") == "99.2.0.192.zen.example"
    six = core.ip_query_name("2001:db8::1:2", "bl.test")
    assert six == ".".join("2001" "0db8" + "0" * 16 + "0001" "0002")[::-1] + ".bl.test"
    assert len(six.split(".")) == 32 + 2
    assert core.ip_query_name("not an address", "bl.test") is None
    assert core.domain_query_name("Sender.Example.", "dbl.test") == "sender.example.dbl.test"
    assert core.domain_query_name("[192.0.2.1]", "dbl.test") is None
    assert core.domain_query_name("localhost", "dbl.test") is None
    assert core.domain_query_name("a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".example",
                                  "dbl.test") is None      # over 253 characters


# --- the check through the pipeline, against the DNS stub ----------------------------------

@pytest.fixture
def zone(dns_zone):
    z = dns_zone
    z.add("10.2.0.192.bl.example", "A", "127.0.0.2", ttl=300)        # listed
    z.add("11.2.0.192.bl.example", "A", "127.0.0.2")                # listed and allowlisted
    z.add("11.2.0.192.wl.example", "A", "127.0.10.2")
    z.add("12.2.0.192.err.example", "A", "127.255.255.254")         # the list refuses our resolver
    z.add("13.2.0.192.bl.example", "A", "127.0.0.20")               # listed outside the filter
    six = core.ip_query_name("2001:db8::25", "bl.example")
    z.add(six, "A", "127.0.0.3")
    z.add("spam.example.dbl.example", "A", "127.0.1.2")
    z.add("bad-helo.example.dbl.example", "A", "127.0.1.2")
    return z


def make(zone, executor=None, **overrides):
    values = dict(dnsbl_sites=["bl.example=127.0.0.[2..11]*2", "wl.example=127.0.[0..255].[1..3]*-3",
                               "err.example*2"],
                  dnsbl_threshold=2, dnsbl_timeout=1, state_backend="memory")
    values.update(overrides)
    settings = Settings().replace(**values)
    clock = task.Clock()
    ctx = CheckContext(settings, clock, executor or InlineExecutor(), resolver=zone.resolver(lifetime=1.0))
    return Pipeline(settings, ctx, checks={"RCPT": ["dnsbl"]})


def request(**attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": "192.0.2.10",
            "client_name": "mail.example", "helo_name": "mail.example", "sender": "a@sender.example",
            "recipient": "u@example.org", "instance": "i1"}
    base.update(attrs)
    return PolicyRequest(base)


def decide(pipe, now=T0, **attrs):
    return run(pipe, now, **attrs)[0]


def run(pipe, now=T0, **attrs):
    """(decision, the request's Score). A passing decision carries no log fields (the
    pipeline answers a bare DUNNO), so the Score left in request.memo tells what was found."""
    out = []
    req = request(**attrs)
    pipe.decide(req, pipe.new_session(), now).addBoth(out.append)
    assert out, "no decision"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0], req.memo.get("dnsbl")


def test_listed_client_is_refused_with_the_list_names(zone):
    d = decide(make(zone))
    assert d.action.render() == "554 5.7.1 Service unavailable; client [192.0.2.10] blocked using bl.example"
    assert d.check == "dnsbl" and d.log["dnsbl"] == "listed" and d.log["dnsbl_score"] == 2


def test_allowlist_weight_offsets_a_listing_and_allowlists(zone):
    d, score = run(make(zone), client_address="192.0.2.11")
    assert d.action.verb == "DUNNO" and score.total == -1
    assert score.names() == ["bl.example"] and score.names(positive=False) == ["wl.example"]
    check = make(zone, dnsbl_allowlist_threshold=-1).by_state["RCPT"][0]
    assert check._verdict(request(), score).log["dnsbl"] == "allowlisted"
    assert make(zone).by_state["RCPT"][0]._verdict(request(), score).log["dnsbl"] == "pass"   # off at 0


def test_error_code_answer_is_not_counted_and_is_logged(zone, caplog):
    caplog.set_level(logging.WARNING, "owlery.policyd")
    d, score = run(make(zone), client_address="192.0.2.12")
    assert d.action.verb == "DUNNO" and score.total == 0
    assert score.errors == (("err.example", "error answer 127.255.255.254"),)
    # the same answer with a weight over the threshold would refuse: it is the error filter that saves it
    assert core.score(core.plan([("client", "192.0.2.12", core.parse_sites("err.example*2"))]),
                      {"12.2.0.192.err.example": core.Answer(("127.0.0.2",), 60)}).total == 2
    assert "12.2.0.192.err.example answered 127.255.255.254: a list error, not a listing" in caplog.text


def test_answer_outside_the_filter_is_no_listing(zone):
    assert decide(make(zone), client_address="192.0.2.13").action.verb == "DUNNO"


def test_ipv6_client_looked_up_by_nibbles(zone):
    d = decide(make(zone), client_address="2001:db8::25")
    assert d.action.render().startswith("554 5.7.1 Service unavailable; client [2001:db8::25] blocked using bl.example")


def test_rhsbl_on_sender_and_helo_domains(zone):
    pipe = make(zone, dnsbl_sites=[], dnsbl_rhsbl_sender_sites=["dbl.example=127.0.1.[2..99]*2"],
                dnsbl_rhsbl_helo_sites=["dbl.example=127.0.1.[2..99]*2"])
    d = decide(pipe, client_address="192.0.2.50", sender="x@spam.example")
    assert d.action.render().endswith("blocked using dbl.example (sender domain)")
    d = decide(pipe, client_address="192.0.2.50", helo_name="bad-helo.example")
    assert d.action.render().endswith("blocked using dbl.example (helo domain)")
    before = len(zone.queries)
    d = decide(pipe, client_address="192.0.2.50", sender="", helo_name="[192.0.2.50]")
    assert d.action.verb == "DUNNO" and len(zone.queries) == before   # nothing to look up


def test_servfail_and_timeout_are_no_listing_and_logged(zone, caplog):
    caplog.set_level(logging.WARNING, "owlery.policyd")
    zone.fail("10.2.0.192.bl.example")
    d, score = run(make(zone))
    assert d.action.verb == "DUNNO" and ("bl.example", "server failure") in score.errors
    zone.remove("10.2.0.192.bl.example")
    zone.drop("10.2.0.192.bl.example")
    d, score = run(make(zone, dnsbl_timeout=0.2))
    assert d.action.verb == "DUNNO" and ("bl.example", "timeout") in score.errors
    assert "lookup of 10.2.0.192.bl.example failed: timeout; not counted" in caplog.text


class _NeverExecutor(Executor):
    """A pool whose jobs never finish: only the pipeline's own timeout can end the wait."""

    def submit(self, fn, *args, **kwargs):
        return defer.Deferred()


def test_a_pool_timeout_is_no_listing_never_a_reply(zone):
    pipe = make(zone, executor=_NeverExecutor(), dnsbl_timeout=2)
    out = []
    req = request()
    pipe.decide(req, pipe.new_session(), T0).addBoth(out.append)
    assert not out
    pipe.ctx.clock.advance(3)
    assert isinstance(out[0], Decision) and out[0].action.verb == "DUNNO"
    assert req.memo["dnsbl"].errors == (("bl.example", "timeout"), ("wl.example", "timeout"),
                                        ("err.example", "timeout"))


def test_answers_cached_for_their_ttl_then_asked_again(zone):
    pipe = make(zone)
    decide(pipe)
    asked = len(zone.queries)
    # another recipient, another message: no DNS, and no Deferred at all (fast path)
    got = pipe.decide_now(request(recipient="v@example.org", instance="i2"), pipe.new_session(), T0 + 10)
    assert isinstance(got, Decision) and got.log["dnsbl"] == "listed"
    assert len(zone.queries) == asked
    # the NXDOMAIN answers (wl, err) live 60 s (the SOA's negative TTL, dnsbl_cache_min_ttl);
    # the listing lives its own 300 s
    decide(pipe, now=T0 + 100)
    assert sorted(n for n, _ in zone.queries[asked:]) == ["10.2.0.192.err.example", "10.2.0.192.wl.example"]
    asked = len(zone.queries)
    decide(pipe, now=T0 + 150)
    assert len(zone.queries) == asked
    decide(pipe, now=T0 + 301)
    assert "10.2.0.192.bl.example" in [n for n, _ in zone.queries[asked:]]


def test_ttl_clamped_errors_not_cached_memory_bounded(zone):
    pipe = make(zone, dnsbl_cache_max_ttl=30, dnsbl_cache_min_ttl=10)
    decide(pipe)
    asked = len(zone.queries)
    decide(pipe, now=T0 + 31)                     # the 300 s answer was kept 30 s only
    assert len(zone.queries) == asked + 3
    zone.fail("10.2.0.192.wl.example")
    pipe = make(zone)
    decide(pipe)
    asked = len(zone.queries)
    decide(pipe, now=T0 + 1)
    assert [n for n, _ in zone.queries[asked:]] == ["10.2.0.192.wl.example"]   # the failure is asked again
    pipe = make(zone, dnsbl_cache_entries=2)
    decide(pipe)
    assert len(pipe.ctx.resource("dnsbl", None).cache) == 2


class SharedMemoryStore(MemoryStore):
    """A memory store that says it is shared (as Redis does), and can be taken down."""

    capabilities = frozenset({Capability.SHARED})
    down = False

    def get_many(self, keys, now):
        if self.down:
            raise StateUnavailable("store down")
        return super().get_many(keys, now)

    def write_many(self, writes):
        if self.down:
            raise StateUnavailable("store down")
        return super().write_many(writes)


def make_shared(zone, store, **overrides):
    values = dict(dnsbl_sites=["bl.example=127.0.0.[2..11]*2"], dnsbl_threshold=2, state_backend="memory")
    values.update(overrides)
    settings = Settings().replace(**values)
    ctx = CheckContext(settings, task.Clock(), InlineExecutor(), resolver=zone.resolver(lifetime=1.0))
    ctx.resource("state", lambda: store)
    return Pipeline(settings, ctx, checks={"RCPT": ["dnsbl"]})


def test_shared_cache_serves_another_mx_and_an_outage_is_no_cache(zone, caplog):
    store = SharedMemoryStore()
    decide(make_shared(zone, store))
    asked = len(zone.queries)
    assert store.get("dnsbl:10.2.0.192.bl.example", T0).endswith(" 127.0.0.2")
    other_mx = make_shared(zone, store)
    assert decide(other_mx, now=T0 + 5).log["dnsbl"] == "listed"
    assert len(zone.queries) == asked                          # answered from the shared store
    assert decide(make_shared(zone, store), now=T0 + 301).log["dnsbl"] == "listed"
    assert len(zone.queries) == asked + 1                      # expired there too: asked again
    caplog.set_level(logging.WARNING, "owlery.policyd")
    store.down = True
    d = decide(make_shared(zone, store), now=T0 + 302)
    assert d.log["dnsbl"] == "listed" and len(zone.queries) == asked + 2
    assert "shared cache read failed (store down); going on without it" in caplog.text
    # not shared (SQLite, memory): never used
    plain = make_shared(zone, MemoryStore())
    assert plain.ctx.resource("dnsbl", None).store is None


def test_reply_template_names_and_soft_code(zone):
    pipe = make(zone, dnsbl_reply_names={"bl.example": "our-list"},
                dnsbl_reject_reply="550 5.7.1 %a is listed by %l (100%%)")
    assert decide(pipe).action.render() == "550 5.7.1 192.0.2.10 is listed by our-list (100%)"
    pipe = make(zone, dnsbl_reject_reply="450 4.7.1 Listed by %l, try later")
    assert decide(pipe).action.render() == "DEFER_IF_PERMIT 4.7.1 Listed by bl.example, try later"


def test_authenticated_and_local_clients_are_not_looked_up(zone):
    pipe = make(zone)
    asked = len(zone.queries)
    check = pipe.by_state["RCPT"][0]
    assert check.evaluate(request(sasl_username="alice"), T0).log["dnsbl"] == "authenticated"
    assert check.evaluate(request(client_address="10.1.2.3"), T0).log["dnsbl"] == "skip-network"
    assert check.evaluate(request(client_address="::1"), T0).log["dnsbl"] == "skip-network"
    assert decide(pipe, sasl_username="alice").action.verb == "DUNNO"
    assert len(zone.queries) == asked


def test_the_score_is_in_the_request_memo_for_other_checks(zone):
    pipe = make(zone)
    req = request()
    out = []
    pipe.decide(req, pipe.new_session(), T0).addBoth(out.append)
    assert req.memo["dnsbl"].total == 2 and req.memo["dnsbl"].names() == ["bl.example"]


def test_readme_dnsbl_settings_parse_and_print_for_postscreen():
    import re

    from owlery.app import postfix
    from owlery.settings import parse_text
    from tests.core.test_readme import README, literal_blocks
    m = re.search(r"^DNS blocklists and allowlists\n~+\n(.*?)(?=^\S[^\n]*\n[=~-]{3,}\n)", README, re.S | re.M)
    assert m, "README has no subsection 'DNS blocklists and allowlists'"
    toml = literal_blocks(m.group(1))[0]
    s = parse_text(toml, "README.rst")
    assert [str(x) for x in s.dnsbl_sites] == ["zen.spamhaus.org=127.0.0.[2..11]*3", "bl.spamcop.net*2",
                                               "list.dnswl.org=127.0.[0..255].[1..3]*-2"]
    assert s.greylist_only_listed and s.greylist_skip_spf_pass and s.dnsbl_allowlist_threshold == -1
    assert "postscreen_dnsbl_sites = zen.spamhaus.org=127.0.0.[2..11]*3, " \
           "bl.spamcop.net=127.[0..254].[0..255].[0..255]*2, " in postfix.render_postscreen(s)
    assert "$ owlery postfix --postscreen" in m.group(1)
