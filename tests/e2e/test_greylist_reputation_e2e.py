"""Greylisting that trusts authentication and reputation, end to end through real Postfix.

Postfix asks `owlery policyd` at RCPT through exactly the policy lines `owlery postfix` prints;
dnsbl, SPF and greylisting run in that order, every DNS answer from the DNS stub:
- `greylist_only_listed` (Rspamd's score-gated greylisting): a client no list names is
  accepted at once; a client with a positive weight under the refusal threshold is greylisted
  (450 4.7.1); a client over the threshold is refused (554) by the dnsbl check before any
  greylisting; a DNSWL-allowlisted client passes at once.
- `greylist_skip_spf_pass`: a client whose SPF passes is never greylisted, whatever domain;
  one whose SPF fails in the same stack is greylisted.
"""

from __future__ import annotations

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message

SITES = ('dnsbl_sites = ["bl.rep.test=127.0.0.[2..11]*2", "hard.rep.test*6", '
         '"wl.rep.test=127.0.[0..255].[1..3]*-3"]\n'
         "dnsbl_threshold = 5\ndnsbl_allowlist_threshold = -1\n")


def _stack(postfix_factory, harness_dirs, dns_stub, name, settings):
    workdir = harness_dirs(name)
    daemons = OwleryDaemons(workdir, which=("policyd",), extra_config=(
        settings +
        'dnsbl_timeout = "2s"\n'
        'dns_nameservers = ["127.0.0.1"]\n'
        f"dns_port = {dns_stub.port}\n"
        'spf_query_time_limit = "5s"\n'
        f'state_sqlite_path = "{workdir}/state.sqlite"\n'
        'greylist_delay = 300\n'
        'greylist_hostname = "mx.example.test"\n'))
    daemons.start()
    policy = {k: v for k, v in daemons.main_cf(["unused.test"]).items() if "check_policy_service" in v}
    return postfix_factory(main_cf=policy, name=f"{name}-postfix"), daemons


@pytest.fixture(scope="module")
def listed_only(postfix_factory, harness_dirs, dns_stub):
    dns_stub.add("21.2.0.192.bl.rep.test", "A", "127.0.0.2")           # weight 2: greylisted
    dns_stub.add("22.2.0.192.bl.rep.test", "A", "127.0.0.2")           # and on a heavy list: refused
    dns_stub.add("22.2.0.192.hard.rep.test", "A", "127.0.0.2")
    dns_stub.add("23.2.0.192.bl.rep.test", "A", "127.0.0.2")           # listed and allowlisted
    dns_stub.add("23.2.0.192.wl.rep.test", "A", "127.0.10.2")
    pf, daemons = _stack(postfix_factory, harness_dirs, dns_stub, "greylist-listed", SITES + (
        'policyd_checks = { RCPT = ["dnsbl", "greylist"] }\n'
        "greylist_only_listed = true\n"))
    yield pf, daemons
    pf.stop()
    daemons.stop()


def send(pf, addr, subject, sender="news@rep-sender.test", helo="mail.rep-sender.test"):
    msg = build_message(sender=sender, to="bob@example.test", subject=subject)
    return pf.send(sender, ["bob@example.test"], msg, helo=helo,
                   xclient={"ADDR": addr, "NAME": helo}, check=False)


def test_unlisted_client_is_accepted_without_greylisting(listed_only):
    pf, daemons = listed_only
    r = send(pf, "192.0.2.20", "unlisted")
    assert r.accepted == ["bob@example.test"], r.rcpt
    assert any(m["Subject"] == "unlisted" for m in pf.wait_sent(1))


def test_client_with_a_weight_under_the_threshold_is_greylisted(listed_only):
    pf, daemons = listed_only
    code, text = send(pf, "192.0.2.21", "listed once").rcpt["bob@example.test"]
    assert code == 450 and "4.7.1" in text and "Greylisted" in text
    daemons.wait_log("policyd", "192.0.2.21")


def test_client_over_the_threshold_is_refused_not_greylisted(listed_only):
    pf, _ = listed_only
    code, text = send(pf, "192.0.2.22", "heavily listed").rcpt["bob@example.test"]
    assert code == 554 and "blocked using bl.rep.test, hard.rep.test" in text


def test_allowlisted_client_passes_at_once(listed_only):
    pf, _ = listed_only
    r = send(pf, "192.0.2.23", "allowlisted")
    assert r.accepted == ["bob@example.test"], r.rcpt


@pytest.fixture(scope="module")
def spf_pass(postfix_factory, harness_dirs, dns_stub):
    dns_stub.add("spf-pass.rep.test", "TXT", "v=spf1 ip4:192.0.2.30 -all")
    dns_stub.add("spf-fail.rep.test", "TXT", "v=spf1 ip4:198.51.100.1 ~all")
    pf, daemons = _stack(postfix_factory, harness_dirs, dns_stub, "greylist-spf", (
        'policyd_checks = { RCPT = ["spf", "greylist"] }\n'
        "greylist_skip_spf_pass = true\n"))
    yield pf, daemons
    pf.stop()
    daemons.stop()


def test_spf_pass_skips_greylisting_for_any_domain(spf_pass):
    pf, _ = spf_pass
    r = send(pf, "192.0.2.30", "spf pass", sender="a@spf-pass.rep.test", helo="mail.spf-pass.rep.test")
    assert r.accepted == ["bob@example.test"], r.rcpt
    assert any(m["Subject"] == "spf pass" for m in pf.wait_sent(1))


def test_spf_softfail_is_greylisted(spf_pass):
    pf, _ = spf_pass
    code, text = send(pf, "192.0.2.31", "spf softfail", sender="a@spf-fail.rep.test",
                      helo="mail.spf-fail.rep.test").rcpt["bob@example.test"]
    assert code == 450 and "Greylisted" in text
