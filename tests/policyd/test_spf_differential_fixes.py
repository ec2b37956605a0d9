"""Regression tests for the SPF check faults the pypolicyd-spf differential found (RFC 7208 grounds).

The differential itself is tests/policyd/test_spf_policyd_differential.py; these pin each fix
with an injected zone (tests/policyd/spf_zone.py), no DNS at all.
"""

from __future__ import annotations

import socket

import pytest
import spf

from owlery.dns import evaluate
from tests.policyd.spf_zone import zone_lookup
from tests.policyd.test_spf_check import decide, make

ZONE = {
    "fail.example": [{"TXT": "v=spf1 -all"}],
    "pass.example": [{"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}],
}


def recording(zone=ZONE):
    calls = []
    lookup = zone_lookup(zone)

    def fn(name, qtype, timeout):
        calls.append((name, qtype))
        return lookup(name, qtype, timeout)
    return fn, calls


@pytest.mark.parametrize("sender,result", [
    ('"a@b"@fail.example', "fail"),          # pyspf alone checked 'b"@fail.example': none
    ('"x@y"@pass.example', "pass"),
])
def test_quoted_local_part_with_at_checks_domain_after_last_at(sender, result):
    """RFC 5321 4.1.2 / RFC 7208 4.3: the domain is what follows the last "@"."""
    lookup, calls = recording()
    r = evaluate(lookup, ip="192.0.2.9", sender=sender, helo="mx.example", query_time_limit=5)
    assert (r.result, r.domain) == (result, sender.rpartition("@")[2])
    assert ("fail.example" if result == "fail" else "pass.example", "TXT") in calls


@pytest.mark.parametrize("sender,helo", [
    ("alice", "mx.example"),                 # no domain: pyspf takes the whole string as one
    ("", "[192.0.2.5]"),                     # null sender, IP-literal HELO: postmaster@[192.0.2.5]
    ("", "[IPv6:2001:db8::5]"),
    ("", "bareword"),
    ("a@x..example", "mx.example"),          # empty label (this and the next: pyspf's own check)
    ("a@" + "l" * 64 + ".example", "mx.example"),   # label over 63 octets
])
def test_malformed_or_single_label_domain_is_none_without_dns(sender, helo):
    """RFC 7208 4.3: check_host() returns none at once; before, pyspf asked DNS for the name
    (and a resolver refusing it turned the verdict into temperror)."""
    def refusing(name, qtype, timeout):
        calls.append((name, qtype))
        raise spf.TempError("DNS REFUSED")
    calls: list = []
    r = evaluate(refusing, ip="192.0.2.9", sender=sender, helo=helo, query_time_limit=5)
    assert r.result == "none" and calls == []
    assert r.received_spf.startswith("None ")


@pytest.mark.parametrize("helo", ["[192.0.2.5]", "bareword"])
def test_null_sender_with_unusable_helo_gets_received_spf_none(helo):
    """RFC 7208 2.4: the null sender's MAIL FROM identity is postmaster@HELO, whose result
    (none, 4.3) is recorded like any other; before, the check answered DUNNO and wrote nothing."""
    pipe, _ = make()
    action = decide(pipe, sender="", helo_name=helo).action
    assert action.verb == "PREPEND" and action.text.startswith("Received-SPF: None "), action.render()


def test_receiver_is_this_host_not_the_recipient():
    """RFC 7208 9.1: receiver= is the host name of the SPF verifier (spf_hide_receiver = false);
    before, the first recipient (maybe a Bcc) was written."""
    pipe, _ = make(spf_hide_receiver=False)
    text = decide(pipe, recipient="bcc-reader@example.org").action.text
    assert f"receiver={socket.gethostname()};" in text and "bcc-reader" not in text
