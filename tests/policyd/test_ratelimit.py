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


# --- all or nothing: a request draws from all its buckets, or from none --------------------

@pytest.fixture(params=["memory", "sqlite", "redis"])
def engine(request, tmp_path):
    """A fresh store of each engine (Redis: the harness's real server, a prefix of its own)."""
    if request.param == "memory":
        from owlery.state.memory_store import MemoryStore
        s = MemoryStore()
    elif request.param == "sqlite":
        from owlery.state.sqlite_store import SQLiteStore
        s = SQLiteStore(str(tmp_path / "state.sqlite"))
    else:
        from owlery.state.redis_store import RedisStore
        s = RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
    yield s
    s.close()


A, B, C, D = "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"

# (dt, attrs, verb, bucket named in the log) -- 5 messages/h per user, 2 messages/h per client
USER_AND_CLIENT = [
    (0, {}, "DUNNO", None),                                             # alice 4, A 1
    (1, {}, "DUNNO", None),                                             # alice 3, A 0
    (2, {}, "REPLY", f"client_address:{A}"),                           # alice NOT charged: 3
    (3, {}, "REPLY", f"client_address:{A}"),
    (4, {"client_address": B}, "DUNNO", None),                          # alice 2
    (5, {"client_address": B}, "DUNNO", None),                          # alice 1
    (6, {"client_address": C}, "DUNNO", None),                          # alice 0 (charged per refusal: deferred)
    (7, {"client_address": D}, "REPLY", "sasl_username:alice"),        # D NOT charged: 2
    (8, {"client_address": D, "sasl_username": "bob"}, "DUNNO", None),
    (9, {"client_address": D, "sasl_username": "bob"}, "DUNNO", None),  # D had both its tokens
    (10, {"client_address": D, "sasl_username": "bob"}, "REPLY", f"client_address:{D}"),
    (1810, {}, "DUNNO", None),                                          # A and alice refilled by one
]

# (dt, recipient_count, verb, bucket named, retry_after) -- counted at END-OF-MESSAGE:
# 3 messages/h and 10 recipients/h per sender
MESSAGES_AND_RECIPIENTS = [
    (0, 11, "REPLY", "sender:a@example.com", "never (recipient_count exceeds the burst)"),   # m 3, r 10
    (0, 4, "DUNNO", None, None),                                        # m 2, r 6
    (0, 7, "REPLY", "sender:a@example.com", 361),                       # r short by 1 (360 s); m 2
    (0, 3, "DUNNO", None, None),                                        # m 1, r 3
    (0, 3, "DUNNO", None, None),                                        # m 0, r 0
    (0, 1, "REPLY", "sender:a@example.com", 1201),                      # both short: the longer wait
]


def test_all_or_nothing_user_and_client(engine):
    pipe = make(engine, ratelimit_messages={"sasl_username": "5/1h", "client_address": "2/1h"})
    for i, (dt, attrs, verb, named) in enumerate(USER_AND_CLIENT):
        d = decide(pipe, T0 + dt, **attrs)
        assert (d.action.verb, d.log.get("ratelimit")) == (verb, named), f"step {i}"


def test_all_or_nothing_messages_and_recipients(engine):
    pipe = make(engine, ratelimit_messages={"sender": "3/1h"}, ratelimit_recipients={"sender": "10/1h"},
                ratelimit_recipients_at="end-of-message")
    limits = []
    for i, (dt, count, verb, named, retry) in enumerate(MESSAGES_AND_RECIPIENTS):
        d = decide(pipe, T0 + dt, recipient_count=str(count))
        got = (d.action.verb, d.log.get("ratelimit"), d.log.get("retry_after"))
        assert got == (verb, named, retry), f"step {i}"
        limits.append(d.log.get("limit"))
    assert limits == ["10/1h recipients", None, "10/1h recipients", None, None, "3/1h messages"]


def test_all_or_nothing_at_rcpt(engine):
    """A recipient refused for the client's limit does not spend the user's."""
    pipe = make(engine, ratelimit_recipients={"sasl_username": "3/1m", "client_address": "1/1m"})
    rcpt = {"protocol_state": "RCPT", "recipient": "x@example.net"}
    assert decide(pipe, T0, **rcpt).action.verb == "DUNNO"
    assert decide(pipe, T0, **rcpt).log["ratelimit"] == f"client_address:{A}"
    assert decide(pipe, T0, **rcpt).log["ratelimit"] == f"client_address:{A}"
    assert decide(pipe, T0, client_address=B, **rcpt).action.verb == "DUNNO"
    assert decide(pipe, T0, client_address=C, **rcpt).action.verb == "DUNNO"    # alice's 3rd
    assert decide(pipe, T0, client_address=D, **rcpt).log["ratelimit"] == "sasl_username:alice"


# --- many decisions, one store call ----------------------------------------------------------

class QueueingExecutor(InlineExecutor):
    """Holds batched items until flush(), then hands them to their function in one call, like
    the daemon's state worker thread does with what was queued while it was busy."""

    def __init__(self):
        self.queued = []

    def submit_batched(self, name, fn, item):
        from twisted.internet import defer
        d = defer.Deferred()
        self.queued.append((name, fn, item, d))
        return d

    def flush(self):
        queued, self.queued = self.queued, []
        assert {name for name, *_ in queued} == {"state"}
        for (ok, value), (_, _, _, d) in zip(queued[0][1]([item for _, _, item, _ in queued]), queued):
            (d.callback if ok else d.errback)(value)


class CountingStore:
    """A real store, counting the calls that reach it."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if callable(attr):
            def counted(*args, **kwargs):
                self.calls.append(name)
                return attr(*args, **kwargs)
            return counted
        return attr


def test_concurrent_decisions_share_one_store_call(engine):
    settings = Settings().replace(ratelimit_messages={"client_address": "2/1h"})
    executor = QueueingExecutor()
    store = CountingStore(engine)
    ctx = CheckContext(settings, task.Clock(), executor)
    ctx.resource("state", lambda: store)
    pipe = Pipeline(settings, ctx, checks={"END-OF-MESSAGE": ["ratelimit"]})
    answers = {}
    for i, client in enumerate([A, A, B, A, C]):
        req = PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
                             "client_address": client, "sender": "s@example.com", "instance": f"i{i}"})
        pipe.decide(req, pipe.new_session(), T0).addCallback(lambda d, i=i: answers.__setitem__(i, d))
    assert answers == {} and len(executor.queued) == 5
    executor.flush()
    assert store.calls == ["take_all_many"]
    assert [answers[i].action.verb for i in range(5)] == ["DUNNO", "DUNNO", "DUNNO", "REPLY", "DUNNO"]
    assert answers[3].log["ratelimit"] == f"client_address:{A}"


def test_store_down_is_a_temporary_failure():
    from owlery.state.redis_store import RedisStore
    pipe = make(RedisStore("redis://127.0.0.1:1/0", timeout=0.5), ratelimit_messages={"sasl_username": "5/1h"})
    d = decide(pipe, T0)
    assert d.action.verb == "DEFER_IF_PERMIT" and d.action.reply.code == 451
