"""Rate-limit decisions with an injected clock: buckets per key, RCPT vs END-OF-MESSAGE, whitelists."""

from __future__ import annotations

import pytest
from twisted.internet import task

from owlery.settings import Settings, SettingsError, parse_text
from policyd.checks import CheckContext, InlineExecutor
from policyd.checks.ratelimit import Rate, parse_rate
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest

T0 = 1_700_000_000.0


def make(store=None, **overrides):
    settings = Settings().replace(state_backend="memory", **overrides)
    ctx = CheckContext(settings, task.Clock(), InlineExecutor())
    if store is not None:
        ctx.resource("state", lambda: store)
    return Pipeline(settings, ctx, checks={"RCPT": ["ratelimit"], "END-OF-MESSAGE": ["ratelimit"]})


def decide(pipe, now, **attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
            "client_address": "192.0.2.10", "sender": "a@example.com", "recipient": "",
            "instance": "i", "sasl_username": "alice", "recipient_count": "1"}
    base.update(attrs)
    out = []
    pipe.decide(PolicyRequest(base), pipe.new_session(), now).addBoth(out.append)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


@pytest.mark.parametrize("text,rate", [("100/1h", Rate(100, 3600)), ("5 / 10s", Rate(5, 10)),
                                       ("1/1d", Rate(1, 86400))])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("toml", ['ratelimit_messages = { user = "1/1h" }',
                                  'ratelimit_messages = { sender = "lots" }',
                                  'ratelimit_messages = { sender = "0/1h" }'])
def test_bad_limits_rejected(toml):
    with pytest.raises(SettingsError):
        parse_text(toml)


# (dt, attrs, expected verb) -- 3 messages per hour per SASL user
USER_WALK = [
    (0, {}, "DUNNO"),
    (1, {}, "DUNNO"),
    (2, {}, "DUNNO"),
    (3, {}, "REPLY"),                                  # 4th message within the hour: deferred
    (4, {"sasl_username": "bob"}, "DUNNO"),            # another user has their own bucket
    (5, {"protocol_state": "RCPT", "recipient": "x@y"}, "DUNNO"),   # recipients not limited here
    (1203, {}, "DUNNO"),                               # 20 min later: one token back
    (1204, {}, "REPLY"),
]


def test_message_limit_per_user_walk():
    pipe = make(ratelimit_messages={"sasl_username": "3/1h"})
    for i, (dt, attrs, verb) in enumerate(USER_WALK):
        d = decide(pipe, T0 + dt, **attrs)
        assert d.action.verb == verb, f"step {i}"
    assert str(d.action.reply) == "450 4.7.1 Rate limit reached, please try again later"
    assert d.log["ratelimit"] == "sasl_username:alice"
    assert d.log["limit"] == "3/1h messages"


def test_recipients_counted_at_rcpt():
    pipe = make(ratelimit_recipients={"client_address": "2/1m"})
    rcpt = {"protocol_state": "RCPT", "sasl_username": ""}
    assert decide(pipe, T0, recipient="a@x", **rcpt).action.verb == "DUNNO"
    assert decide(pipe, T0, recipient="b@x", **rcpt).action.verb == "DUNNO"
    d = decide(pipe, T0, recipient="c@x", **rcpt)
    assert d.action.verb == "REPLY" and d.log["ratelimit"] == "client_address:192.0.2.10"
    assert decide(pipe, T0, recipient="c@x", client_address="192.0.2.11", **rcpt).action.verb == "DUNNO"
    assert decide(pipe, T0 + 30, recipient="c@x", **rcpt).action.verb == "DUNNO"


def test_recipients_counted_at_end_of_message_with_recipient_count():
    pipe = make(ratelimit_recipients={"sender": "10/1h"}, ratelimit_recipients_at="end-of-message")
    assert decide(pipe, T0, protocol_state="RCPT", recipient="a@x").action.verb == "DUNNO"
    assert decide(pipe, T0, recipient_count="8").action.verb == "DUNNO"
    d = decide(pipe, T0, recipient_count="3", sender="A+tag@Example.com")   # same sender, normalised
    assert d.action.verb == "REPLY" and d.log["ratelimit"] == "sender:a@example.com"
    assert decide(pipe, T0, recipient_count="2").action.verb == "DUNNO"      # refused take cost nothing
    d = decide(pipe, T0 + 7200, recipient_count="11")
    assert d.action.verb == "REPLY" and d.log["retry_after"].startswith("never")


def test_null_sender_and_missing_user_not_keyed():
    pipe = make(ratelimit_messages={"sender": "1/1h", "sasl_username": "1/1h"})
    for _ in range(3):
        assert decide(pipe, T0, sender="", sasl_username="").action.verb == "DUNNO"


@pytest.mark.parametrize("attrs", [{"client_address": "127.0.0.1"}, {"sasl_username": "Relay"},
                                   {"sender": "noreply@bulk.example"}, {"sender": "x@trusted.example"}])
def test_whitelists(attrs):
    pipe = make(ratelimit_messages={"client_address": "1/1h"}, ratelimit_whitelist_users=["relay"],
                ratelimit_whitelist_senders=["noreply@bulk.example", "@trusted.example"])
    for _ in range(3):
        assert decide(pipe, T0, **attrs).action.verb == "DUNNO"


def test_shared_store_limit_holds_across_daemons(tmp_path):
    """Two pipelines (two MX hosts) on one store draw from the same bucket."""
    from owlery.state.sqlite_store import SQLiteStore
    path = str(tmp_path / "shared.sqlite")
    a = make(SQLiteStore(path), ratelimit_messages={"sasl_username": "2/1h"})
    b = make(SQLiteStore(path), ratelimit_messages={"sasl_username": "2/1h"})
    assert decide(a, T0).action.verb == "DUNNO"
    assert decide(b, T0).action.verb == "DUNNO"
    assert decide(a, T0).action.verb == "REPLY"
    assert decide(b, T0).action.verb == "REPLY"
