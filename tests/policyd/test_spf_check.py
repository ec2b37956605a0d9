"""The SPF check through the pipeline with an injected DNS zone: actions, codes, headers, skips, cache."""

from __future__ import annotations

import socket

import pytest
from twisted.internet import task

from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest
from tests.policyd.spf_zone import zone_lookup

T0 = 1_700_000_000.0

ZONE = {
    "pass.example": [{"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}],
    "fail.example": [{"TXT": "v=spf1 -all"}],
    "soft.example": [{"TXT": "v=spf1 ~all"}],
    "broken.example": [{"TXT": "v=spf1 moo -all"}],
    "slow.example": ["TIMEOUT"],
    "helo.pass.example": [{"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}],
    "helo.fail.example": [{"TXT": "v=spf1 -all"}],
}


def make(**overrides):
    values = dict(spf_authserv_id="mx.test")
    values.update(overrides)
    settings = Settings().replace(**values)
    calls = []
    lookup = zone_lookup(ZONE)

    def counting(name, qtype, timeout):
        calls.append((name, qtype))
        return lookup(name, qtype, timeout)
    ctx = CheckContext(settings, task.Clock(), InlineExecutor(), resolver=counting)
    return Pipeline(settings, ctx, checks={"RCPT": ["spf"], "DATA": ["spf"]}), calls


def decide(pipe, session=None, **attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": "192.0.2.10",
            "client_name": "mail.example", "helo_name": "helo.pass.example", "sender": "a@pass.example",
            "recipient": "u@example.org", "instance": "i1"}
    base.update(attrs)
    out = []
    pipe.decide(PolicyRequest(base), session or pipe.new_session(), T0).addBoth(out.append)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


# (sender, helo, client, overrides, expected rendered action prefix)
CASES = [
    ("a@pass.example", "helo.pass.example", "192.0.2.10", {}, "PREPEND Received-SPF: Pass "),
    ("a@fail.example", "helo.pass.example", "192.0.2.10", {}, "550 5.7.23 SPF mailfrom check fail"),
    ("a@fail.example", "helo.pass.example", "192.0.2.10", {"spf_enhanced_status_codes": False},
     "550 5.7.1 SPF mailfrom check fail"),
    ("a@fail.example", "helo.pass.example", "192.0.2.10", {"spf_fail_action": "defer"},
     "DEFER_IF_PERMIT 4.7.23 SPF mailfrom check fail"),
    ("a@fail.example", "helo.pass.example", "192.0.2.10", {"spf_fail_action": "header"},
     "PREPEND Received-SPF: Fail "),
    ("a@fail.example", "helo.pass.example", "192.0.2.10", {"spf_fail_action": "none"}, "DUNNO"),
    ("a@soft.example", "helo.pass.example", "192.0.2.10", {}, "PREPEND Received-SPF: SoftFail "),
    ("a@soft.example", "helo.pass.example", "192.0.2.10", {"spf_softfail_action": "reject"},
     "550 5.7.23 SPF mailfrom check softfail"),
    ("a@broken.example", "helo.pass.example", "192.0.2.10", {}, "PREPEND Received-SPF: PermError "),
    ("a@broken.example", "helo.pass.example", "192.0.2.10", {"spf_permerror_action": "reject"},
     "550 5.7.24 SPF mailfrom check permerror"),
    ("a@slow.example", "helo.pass.example", "192.0.2.10", {}, "PREPEND Received-SPF: TempError "),
    ("a@slow.example", "helo.pass.example", "192.0.2.10", {"spf_temperror_action": "defer"},
     "DEFER_IF_PERMIT 4.7.24 SPF mailfrom check temperror"),
    ("a@slow.example", "helo.pass.example", "192.0.2.10", {"spf_temperror_action": "reject"},
     "DEFER_IF_PERMIT 4.7.24 SPF mailfrom check temperror"),   # a DNS hiccup never rejects
    # HELO identity: fail rejects by default, even when MAIL FROM passes
    ("a@pass.example", "helo.fail.example", "192.0.2.10", {}, "550 5.7.23 SPF helo check fail"),
    ("a@pass.example", "helo.fail.example", "192.0.2.10", {"spf_helo_check": False}, "PREPEND Received-SPF: Pass"),
    # null sender: MAIL FROM identity is postmaster@HELO
    ("", "helo.pass.example", "192.0.2.10", {}, "PREPEND Received-SPF: Pass "),
    ("", "helo.fail.example", "192.0.2.10", {"spf_helo_fail_action": "header"},
     "550 5.7.23 SPF helo check fail"),
    # A-R only
    ("a@pass.example", "helo.pass.example", "192.0.2.10", {"spf_header_type": "authentication-results"},
     "PREPEND Authentication-Results: mx.test; spf=pass"),
    ("a@pass.example", "helo.pass.example", "192.0.2.10", {"spf_header_type": "none"}, "DUNNO"),
    # skips
    ("a@fail.example", "helo.pass.example", "127.0.0.1", {}, "DUNNO"),
    ("a@fail.example", "helo.pass.example", "198.51.100.5", {"spf_trusted_forwarders": ["198.51.100.0/24"]},
     "DUNNO"),
]


@pytest.mark.parametrize("sender,helo,client,overrides,expected", CASES)
def test_spf_actions(sender, helo, client, overrides, expected):
    pipe, _ = make(**overrides)
    d = decide(pipe, sender=sender, helo_name=helo, client_address=client)
    rendered = d.action.render() if d.action.verb != "REPLY" else str(d.action.reply)
    assert rendered.startswith(expected), rendered


def test_received_spf_hides_receiver_and_names_identity():
    pipe, _ = make()
    text = decide(pipe).action.text
    assert "receiver=<UNKNOWN>;" in text and "identity=mailfrom" in text and "client-ip=192.0.2.10;" in text
    # RFC 7208 9.1: receiver is the verifier's host name, never the (maybe Bcc) recipient.
    pipe, _ = make(spf_hide_receiver=False)
    text = decide(pipe).action.text
    assert f"receiver={socket.gethostname()};" in text and "u@example.org" not in text


def test_authenticated_sender_skipped_without_dns():
    pipe, calls = make()
    assert decide(pipe, sender="a@fail.example", sasl_username="alice").action.verb == "DUNNO"
    assert calls == []


def test_checked_once_per_instance_and_header_once():
    pipe, calls = make()
    s = pipe.new_session()
    assert decide(pipe, s, recipient="a@example.org").action.verb == "PREPEND"
    n = len(calls)
    assert decide(pipe, s, recipient="b@example.org").action.verb == "DUNNO"   # header already sent
    assert len(calls) == n                                                   # no new DNS queries


def test_both_headers_rcpt_then_data():
    pipe, _ = make(spf_header_type="both")
    s = pipe.new_session()
    assert decide(pipe, s).action.text.startswith("Received-SPF: Pass")
    d = decide(pipe, s, protocol_state="DATA", recipient="")
    assert d.action.text.startswith("Authentication-Results: mx.test; spf=pass")


def test_time_limit_bounded_by_rfc():
    from owlery.settings import SettingsError, parse_text
    with pytest.raises(SettingsError):
        parse_text("spf_query_time_limit = 60")
    assert parse_text('spf_query_time_limit = "5s"').spf_query_time_limit == 5
