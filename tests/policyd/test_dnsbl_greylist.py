"""Greylisting that trusts authentication and reputation: SPF pass skips, DNSBL-gated greylisting, order.

greylist_skip_spf_pass (any domain) and greylist_spf_pass_domains (listed ones) let an SPF
pass through; an SPF lookup that fails greylists as usual. greylist_only_listed greylists
only clients with a positive DNSBL weight; a DNSWL-allowlisted client is never greylisted.
SPF and DNSBL results are shared with their checks (one lookup per message or client).
Runs the real pipeline, inline executor, the DNS stub for SPF records and lists.
"""

from __future__ import annotations

import logging

import pytest
from twisted.internet import defer, task

from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest

T0 = 1_700_000_000.0
GREYLISTED = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds"


@pytest.fixture
def zone(dns_zone):
    z = dns_zone
    z.add("pass.example.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    z.add("also-pass.example.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    z.add("fail.example.test", "TXT", "v=spf1 -all")
    z.add("neutral.example.test", "TXT", "v=spf1 ?all")
    z.fail("broken.example.test")                                    # SERVFAIL: temperror
    z.add("31.2.0.192.bl.example", "A", "127.0.0.2")                 # weight 2
    z.add("32.2.0.192.bl.example", "A", "127.0.0.2")                 # weight 2, and
    z.add("32.2.0.192.wl.example", "A", "127.0.10.2")                # allowlisted -3
    return z


def make(zone, tmp_path, checks=("greylist",), executor=None, **overrides):
    values = dict(state_backend="memory", greylist_delay=300, greylist_whitelist_clients=[str(tmp_path / "wc")],
                  greylist_whitelist_recipients=[str(tmp_path / "wr")], spf_query_time_limit=2,
                  dnsbl_sites=["bl.example=127.0.0.[2..11]*2", "wl.example=127.0.[0..255].[1..3]*-3"],
                  dnsbl_threshold=5)
    values.update(overrides)
    settings = Settings().replace(**values)
    ctx = CheckContext(settings, task.Clock(), executor or InlineExecutor(), resolver=zone.resolver(lifetime=1.0))
    return Pipeline(settings, ctx, checks={"RCPT": list(checks)})


def request(**attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": "192.0.2.20",
            "client_name": "mail.sender.test", "helo_name": "mail.sender.test", "sender": "a@pass.example.test",
            "recipient": "u@example.org", "instance": "i1"}
    base.update(attrs)
    return PolicyRequest(base)


def decide(pipe, **attrs):
    out = []
    pipe.decide(request(**attrs), pipe.new_session(), T0).addBoth(out.append)
    pipe.ctx.clock.advance(1)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def greylist_reason(pipe, **attrs):
    """The greylist check's own log field for one request (a passing decision carries none)."""
    check = next(c for c in pipe.checks if c.name == "greylist")
    out = []
    defer.ensureDeferred(check.evaluate(request(**attrs), T0)).addBoth(out.append)
    pipe.ctx.clock.advance(1)
    return out[0].log.get("greylist")


def test_skip_spf_pass_for_every_domain(zone, tmp_path):
    assert decide(make(zone, tmp_path)).action.render() == GREYLISTED            # off by default
    pipe = make(zone, tmp_path, greylist_skip_spf_pass=True)
    assert decide(pipe).action.verb == "DUNNO"
    assert greylist_reason(pipe, sender="b@also-pass.example.test") == "spf-pass"
    assert decide(pipe, sender="a@fail.example.test").action.render() == GREYLISTED
    assert decide(pipe, client_address="198.51.100.7").action.render() == GREYLISTED   # SPF neutral/fail
    assert decide(pipe, sender="").action.render() == GREYLISTED                  # bounces: no domain


def test_spf_pass_domains_only_for_listed_domains(zone, tmp_path):
    pipe = make(zone, tmp_path, greylist_spf_pass_domains=["example.test"])
    assert greylist_reason(pipe) == "spf-pass"                                    # a subdomain of a listed one
    pipe = make(zone, tmp_path, greylist_spf_pass_domains=["pass.example.test"])
    assert decide(pipe).action.verb == "DUNNO"
    assert decide(pipe, sender="b@also-pass.example.test").action.render() == GREYLISTED


def test_spf_failure_greylists_as_usual(zone, tmp_path):
    pipe = make(zone, tmp_path, greylist_skip_spf_pass=True)
    assert decide(pipe, sender="a@broken.example.test").action.render() == GREYLISTED   # temperror


class _SpfNeverAnswers(InlineExecutor):
    """SPF's thread never comes back: only the pipeline's own timeout ends the wait."""

    def submit(self, fn, *args, **kwargs):
        if getattr(fn, "__name__", "") == "_blocking":
            return defer.Deferred()
        return super().submit(fn, *args, **kwargs)


def test_spf_timeout_greylists_instead_of_4xx_error(zone, tmp_path, caplog):
    caplog.set_level(logging.INFO, "owlery.policyd")
    pipe = make(zone, tmp_path, executor=_SpfNeverAnswers(), greylist_skip_spf_pass=True)
    out = []
    pipe.decide(request(), pipe.new_session(), T0).addBoth(out.append)
    assert not out
    pipe.ctx.clock.advance(10)
    assert out[0].action.render() == GREYLISTED
    assert "greylist: SPF for a@pass.example.test unavailable" in caplog.text


def test_only_listed_clients_are_greylisted(zone, tmp_path):
    pipe = make(zone, tmp_path, greylist_only_listed=True)
    assert decide(pipe).action.verb == "DUNNO"                                    # no listing
    assert greylist_reason(pipe) == "not-listed"
    assert decide(pipe, client_address="192.0.2.31").action.render() == GREYLISTED   # weight 2 < 5
    assert decide(pipe, client_address="192.0.2.32").action.verb == "DUNNO"       # -1
    assert decide(pipe, client_address="192.0.2.31", sasl_username="alice").action.verb == "DUNNO"


def test_dnswl_allowlisted_clients_are_not_greylisted(zone, tmp_path):
    pipe = make(zone, tmp_path, dnsbl_allowlist_threshold=-1)
    assert greylist_reason(pipe, client_address="192.0.2.32") == "dnsbl-allowlisted"
    assert decide(pipe, client_address="192.0.2.31").action.render() == GREYLISTED
    assert decide(pipe).action.render() == GREYLISTED


def test_checks_share_results_and_refuse_before_greylisting(zone, tmp_path):
    checks = ("dnsbl", "spf", "greylist")
    pipe = make(zone, tmp_path, checks=checks, greylist_only_listed=True, greylist_skip_spf_pass=True,
                dnsbl_threshold=2, spf_header_type="none")
    d = decide(pipe, client_address="192.0.2.31", sender="a@fail.example.test")
    assert d.check == "dnsbl" and d.action.render().startswith("554 5.7.1 ")     # refused, not greylisted
    d = decide(pipe, client_address="198.51.100.9", sender="a@fail.example.test")
    assert d.check == "spf" and d.action.render().startswith("550 5.7.23")
    # listed below the threshold, SPF neutral: both checks pass, greylist reads both results
    pipe = make(zone, tmp_path, checks=checks, greylist_only_listed=True, greylist_skip_spf_pass=True,
                spf_header_type="none")
    before = len(zone.queries)
    d = decide(pipe, client_address="192.0.2.31", sender="a@neutral.example.test")
    assert d.check == "greylist" and d.action.render() == GREYLISTED
    asked = [n for n, _ in zone.queries[before:]]
    assert "31.2.0.192.bl.example" in asked and "neutral.example.test" in asked
    assert len(asked) == len(set(asked)), asked       # each name asked once, by the first check


def test_order_warning_when_greylist_comes_first(zone, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "owlery.policyd")
    make(zone, tmp_path, checks=("greylist", "spf", "dnsbl"))
    assert "policyd_checks at RCPT runs dnsbl and spf after greylist" in caplog.text
    caplog.clear()
    make(zone, tmp_path, checks=("dnsbl", "spf", "greylist"))
    assert "after greylist" not in caplog.text


def test_only_listed_without_lists_says_it_greylists_nobody(zone, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "owlery.policyd")
    pipe = make(zone, tmp_path, greylist_only_listed=True, dnsbl_sites=[])
    assert "greylist_only_listed is on but no DNS list is set" in caplog.text
    assert decide(pipe).action.verb == "DUNNO"
