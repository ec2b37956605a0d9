"""Greylisting beside SPF end to end: the accepted retry carries X-Greylist and SPF's header(s), each once.

Real Postfix asks `owlery policyd` (SPF then greylisting at RCPT, SPF answered by the DNS
stub) through exactly the policy lines `owlery.app.postfix.main_cf` prints for those
settings. Postfix takes one action per reply and ignores PREPEND at END-OF-MESSAGE, so the
headers that do not fit the RCPT reply must go out at DATA (issue "Deploying beside an
existing Postfix", item 3: X-Greylist was lost on single-recipient retries).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.policyd_stack import greylist_config, policyd_postfix
from tests.harness.postfix import build_message

DELAY_S = 1
CLIENT = {"ADDR": "192.0.2.7", "NAME": "mail.gl-spf.example.com"}
HELO = "mail.gl-spf.example.com"

# spf_header_type, extra policyd_checks entries, SPF header names expected on the message
MODES = {
    "received-spf": ("", ["Received-SPF"]),
    "both": (', DATA = ["spf"]', ["Received-SPF", "Authentication-Results"]),
}


@pytest.fixture(scope="module", params=sorted(MODES))
def stack(request, postfix_factory, harness_dirs, dns_stub):
    mode = request.param
    extra_checks, spf_headers = MODES[mode]
    dns_stub.add("gl-spf.example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_stub.add("mail.gl-spf.example.com", "TXT", "v=spf1 a -all")
    dns_stub.add("mail.gl-spf.example.com", "A", "192.0.2.7")
    workdir = harness_dirs(f"greylist-headers-{mode}")

    def policy_lines(daemons):
        """every policy line `owlery postfix` prints for these settings, verbatim"""
        return {k: v for k, v in daemons.main_cf(["unused.test"]).items() if "check_policy_service" in v}

    with policyd_postfix(postfix_factory, workdir, f"greylist-headers-postfix-{mode}", (
            f'policyd_checks = {{ RCPT = ["spf", "greylist"]{extra_checks} }}\n'
            f'spf_header_type = "{mode}"\n'
            'spf_authserv_id = "mx.example.test"\n'
            'dns_nameservers = ["127.0.0.1"]\n'
            f"dns_port = {dns_stub.port}\n"
            'spf_query_time_limit = "5s"\n' + greylist_config(workdir, DELAY_S)),
            main_cf=policy_lines) as (pf, daemons):
        yield pf, daemons, spf_headers


def greylist_then_deliver(pf, sender, rcpts, subject):
    msg = build_message(sender=sender, to=rcpts[0], subject=subject)
    first = pf.send(sender, rcpts, msg, helo=HELO, xclient=CLIENT, check=False)
    for rcpt in rcpts:
        code, text = first.rcpt[rcpt]
        assert code == 450 and "4.7.1" in text and "Greylisted" in text, first.rcpt
    time.sleep(DELAY_S + 0.2)   # the greylist delay itself (the behaviour under test), not a readiness wait
    second = pf.send(sender, rcpts, msg, helo=HELO, xclient=CLIENT)
    assert sorted(second.accepted) == sorted(rcpts), second.rcpt
    # accepted means queued: once the queue is empty again, the sink holds it
    got = [m for m in pf.wait_sent(1) if m["Subject"] == subject]
    assert len(got) == 1, f"expected one relayed copy of {subject!r}, got {len(got)}"
    assert sorted(got[0].rcpts) == sorted(rcpts), got[0].rcpts
    return got[0]


def assert_each_header_once(sent, spf_headers):
    message = sent.message
    greylist = message.get_all("X-Greylist") or []
    assert len(greylist) == 1, message.items()
    assert greylist[0].startswith("delayed ") and "by Owlery at mx.example.test" in greylist[0]
    assert int(greylist[0].split()[1]) >= DELAY_S
    for name in spf_headers:
        values = message.get_all(name) or []
        assert len(values) == 1, (name, message.items())
        assert "pass" in values[0].lower(), (name, values)
    if "Authentication-Results" in spf_headers:
        assert message["Authentication-Results"].startswith("mx.example.test;")


def test_single_recipient_retry_carries_x_greylist_and_spf_header(stack):
    pf, _, spf_headers = stack
    message = greylist_then_deliver(pf, "news@gl-spf.example.com", ["single@example.test"], "greylist+spf one")
    assert_each_header_once(message, spf_headers)


def test_multi_recipient_retry_carries_each_header_once(stack):
    pf, _, spf_headers = stack
    message = greylist_then_deliver(pf, "list@gl-spf.example.com",
                                    ["multi1@example.test", "multi2@example.test", "multi3@example.test"],
                                    "greylist+spf many")
    assert_each_header_once(message, spf_headers)
