"""Two policy daemons (two MX hosts) sharing one Redis: greylist and rate limits hold across them.

Both run `owlery policyd` as separate processes with state_backend = "redis" and the same
key prefix (unique to this test); requests go straight over the policy protocol.
"""

from __future__ import annotations

import time

import pytest

from policyd.cli import query
from tests.harness.owlery_daemons import OwleryDaemons

DELAY_S = 1


@pytest.fixture(scope="module")
def two_hosts(harness_dirs, redis_url):
    from tests.harness.stores import drop_redis_prefix, unique_name
    prefix = unique_name("owlery-test:") + ":"
    config = (
        'policyd_checks = { RCPT = ["greylist"], "END-OF-MESSAGE" = ["ratelimit"] }\n'
        'state_backend = "redis"\n'
        f'state_redis_url = "{redis_url}"\n'
        f'state_key_prefix = "{prefix}"\n'
        f"greylist_delay = {DELAY_S}\n"
        "greylist_whitelist_clients = []\n"
        "greylist_whitelist_recipients = []\n"
        'ratelimit_messages = { sasl_username = "3/1h" }\n')
    hosts = []
    try:
        for name in ("mx1", "mx2"):
            hosts.append(OwleryDaemons(harness_dirs(name), which=("policyd",),
                                       extra_config=config + f'greylist_hostname = "{name}.example.test"\n').start())
        yield [f"tcp:127.0.0.1:{h.ports['policyd']}" for h in hosts]
    finally:
        for h in hosts:
            h.stop()
        drop_redis_prefix(redis_url, prefix)


def rcpt(**attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
            "client_address": "192.0.2.7", "client_name": "mail.sender.example",
            "helo_name": "mail.sender.example", "sender": "news@sender.example",
            "recipient": "bob@example.test", "instance": "a.1"}
    base.update(attrs)
    return base


def test_triplet_greylisted_by_one_passes_at_the_other(two_hosts):
    mx1, mx2 = two_hosts
    assert query(mx1, rcpt()).startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
    # mx2 knows the triplet: still greylisted, with less time left, not a fresh delay
    assert query(mx2, rcpt(client_address="192.0.2.8", instance="b.1")).startswith("DEFER_IF_PERMIT 4.7.1")
    time.sleep(DELAY_S + 0.2)   # the greylist delay (behaviour under test)
    answer = query(mx2, rcpt(client_address="192.0.2.8", instance="b.2"))
    assert answer.startswith("PREPEND X-Greylist: delayed ") and "mx2.example.test" in answer, answer
    assert query(mx1, rcpt(instance="a.2")) == "DUNNO"


def test_rate_limit_reached_through_one_holds_at_the_other(two_hosts):
    mx1, mx2 = two_hosts
    eom = rcpt(protocol_state="END-OF-MESSAGE", recipient="", sasl_username="alice", recipient_count="1")
    answers = [query(mx, dict(eom, instance=f"rl.{i}")) for i, mx in enumerate([mx1, mx2, mx1, mx2, mx1])]
    assert answers[:3] == ["DUNNO", "DUNNO", "DUNNO"]
    assert answers[3] == "450 4.7.1 Rate limit reached, please try again later"
    assert answers[4] == answers[3]
    # another user still has their whole bucket on both hosts
    assert query(mx2, dict(eom, sasl_username="bob", instance="rl.x")) == "DUNNO"
