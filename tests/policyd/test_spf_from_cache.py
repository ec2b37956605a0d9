"""SPF evaluated on the reactor when every DNS answer it needs is in the resolver's cache
(policyd/checks/spf.py SpfEngine._from_cache, owlery.dns.cached_lookup): the same verdicts as
the thread path, which asks the DNS stub, on records of every kind; a miss anywhere (even one
pyspf swallows, as for exp=) sends the evaluation to the thread pool instead."""

from __future__ import annotations

import time

import pytest
from twisted.internet import defer, task

from owlery import dns as odns
from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.checks import spf as spf_module
from policyd.checks.spf import SpfEngine
from policyd.protocol import PolicyRequest

RECORDS = [
    ("plain.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
    ("inc.example", "TXT", "v=spf1 include:_spf.inc.example ~all"),
    ("_spf.inc.example", "TXT", "v=spf1 ip4:198.51.100.0/24 -all"),
    ("amx.example", "TXT", "v=spf1 a mx -all"),
    ("amx.example", "A", "192.0.2.20"),
    ("amx.example", "MX", "10 mx.amx.example"),
    ("mx.amx.example", "A", "203.0.113.5"),
    ("redir.example", "TXT", "v=spf1 redirect=plain.example"),
    ("exp.example", "TXT", "v=spf1 -all exp=why.exp.example"),
    ("why.exp.example", "TXT", "%{i} is not one of %{d}'s senders"),
    ("noanswer.example", "A", "192.0.2.99"),          # a name without TXT: "no answer"
    ("helo.example", "TXT", "v=spf1 a -all"),
    ("helo.example", "A", "192.0.2.7"),
]
SENDERS = ["a@plain.example", "b@inc.example", "c@amx.example", "d@redir.example", "e@exp.example",
           "f@noanswer.example", "g@nxdomain.example", ""]
CLIENTS = ["192.0.2.7", "192.0.2.20", "198.51.100.9", "203.0.113.5", "233.252.0.1"]


@pytest.fixture
def engine(dns_zone):
    for name, rtype, value in RECORDS:
        dns_zone.add(name, rtype, value)
    settings = Settings().replace(dns_nameservers=["127.0.0.1"], dns_port=dns_zone.port,
                                  spf_helo_check=True, spf_authserv_id="mx.test",
                                  spf_header_type="both")
    ctx = CheckContext(settings, task.Clock(), InlineExecutor(), resolver=odns.build_resolver(settings))
    return SpfEngine(ctx)


def _as_written(verdicts):
    """Each verdict's fields and the trace headers it gives (built at once by pyspf's path,
    on demand from a compiled record's: owlery.dns.trace_headers)."""
    from owlery.dns import trace_headers
    return {k: None if r is None else (tuple(r[:4]), trace_headers(r)) for k, r in verdicts.items()}


def test_verdicts_from_the_cache_equal_the_thread_path(engine):
    for sender in SENDERS:
        for client in CLIENTS:
            args = (client, sender, "helo.example", "u@example.org")
            asked = engine._blocking(*args)             # the thread path: asks DNS, fills the cache
            cached = engine._from_cache(*args)
            assert _as_written(cached) == _as_written(asked), args
            cached = engine._from_cache(*args)          # now the verdicts themselves, reused
            assert cached is not None, args
            assert _as_written(cached) == _as_written(asked), args


def test_nothing_cached_goes_to_the_thread(engine):
    assert engine._from_cache("192.0.2.7", "a@plain.example", "helo.example", "u@example.org") is None


def test_a_miss_pyspf_swallows_still_goes_to_the_thread(engine):
    """exp= is looked up inside a bare except in pyspf: a cache miss there must not give a
    fail without its explanation."""
    engine.lookup("exp.example", "TXT", 2)                 # the record cached, its explanation not
    engine.lookup("helo.example", "TXT", 2)
    engine.lookup("helo.example", "A", 2)
    args = ("233.252.0.1", "e@exp.example", "helo.example", "u@example.org")
    assert engine._from_cache(*args) is None
    asked = engine._blocking(*args)
    assert "233.252.0.1 is not one of exp.example's senders" in asked["mailfrom"].explanation
    assert engine._from_cache(*args) == asked


def test_a_message_from_a_known_sender_does_not_use_the_thread_pool(engine, monkeypatch):
    used = []
    real = engine.ctx.run_blocking

    def counting(fn, *args, **kwargs):
        used.append(fn)
        return real(fn, *args, **kwargs)
    monkeypatch.setattr(engine.ctx, "run_blocking", counting)

    def verdicts(instance):
        req = PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                             "client_address": "192.0.2.9", "helo_name": "helo.example",
                             "sender": "x@plain.example", "recipient": "u@example.org", "instance": instance})
        out = []
        defer.ensureDeferred(engine.verdicts(req)).addBoth(out.append)
        return out[0]
    first = verdicts("m1")
    assert len(used) == 1 and first["mailfrom"].result == "pass"
    second = verdicts("m2")                 # another message, same sender domain and client
    assert len(used) == 1
    assert _as_written(second) == _as_written(first)


def test_verdicts_are_reused_only_while_their_dns_answers_live(dns_zone):
    """A verdict reused by later messages expires with the first DNS answer it rests on: a
    changed record with a short TTL is seen as a fresh evaluation would see it."""
    dns_zone.add("short.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all", ttl=1)
    settings = Settings().replace(dns_nameservers=["127.0.0.1"], dns_port=dns_zone.port, spf_helo_check=False)
    ctx = CheckContext(settings, task.Clock(), InlineExecutor(), resolver=odns.build_resolver(settings))
    engine = SpfEngine(ctx)
    args = ("192.0.2.9", "a@short.example", "h.example", "<UNKNOWN>")
    engine._blocking(*args)
    first = engine._from_cache(*args)
    assert first["mailfrom"].result == "pass"
    [(expires, *kept)] = engine.reused.values()
    assert spf_module._unpack(kept[0]) == first and expires <= time.time() + 1.5
    dns_zone.set("short.example", "TXT", "v=spf1 -all", ttl=1)
    deadline = time.monotonic() + 10
    while engine._from_cache(*args) is not None:      # the TTL running out is the behaviour under test
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert engine._blocking(*args)["mailfrom"].result == "fail"


def test_remembered_verdicts_hold_nothing_the_collector_walks(engine):
    """Both caches keep flat tuples of bytes and strings, which the cyclic collector stops tracking:
    with SpfResult objects and PolicyActions in them, every full collection of a busy policy
    daemon walked them all (~55 ms for 2 x 10,000 messages; a stall of every request)."""
    import gc

    from policyd.checks.spf import SpfCheck
    check = SpfCheck(engine.ctx)
    check.engine = engine
    for n, sender in enumerate(SENDERS):
        for client in CLIENTS:
            args = (client, sender, "helo.example", "<UNKNOWN>")
            engine._blocking(*args)
            engine._from_cache(*args)
            req = PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                                 "client_address": client, "helo_name": "helo.example",
                                 "sender": sender, "recipient": "u@example.org", "instance": f"m{n}.{client}"})
            got = []
            defer.ensureDeferred(check.evaluate(req, time.time())).addBoth(got.append)
            assert got and not isinstance(got[0], Exception)
            got[0].action.render()      # answered: the header is built and kept (LazyPrepend)
    assert len(engine.cache) == len(SENDERS) * len(CLIENTS) and engine.reused
    assert any(isinstance(p[1], str) for p in engine.cache.values())      # header texts kept too
    # One collection lets every entry go: an entry is one flat tuple (a marshalled bytes value
    # and strings). Nested tuples needed three, and in a daemon they were promoted still tracked.
    gc.collect()
    for table in (engine.cache, engine.reused):
        for key, value in table.items():
            assert not gc.is_tracked(key) and not gc.is_tracked(value), (key, value)
