"""The greylist check through the policy pipeline: actions, skips, once-per-instance header, store down."""

from __future__ import annotations

import pytest
from twisted.internet import task

from owlery.errors import StateUnavailable
from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest

T0 = 1_700_000_000.0


def make_pipeline(tmp_path, **overrides):
    values = dict(state_backend="memory", greylist_delay=300, greylist_whitelist_clients=[str(tmp_path / "wc")],
                  greylist_whitelist_recipients=[str(tmp_path / "wr")], greylist_hostname="mx.test")
    values.update(overrides)
    settings = Settings().replace(**values)
    clock = task.Clock()
    ctx = CheckContext(settings, clock, InlineExecutor())
    return Pipeline(settings, ctx, checks={"RCPT": ["greylist"]})


def request(**attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": "192.0.2.10",
            "client_name": "mail.sender.example", "sender": "a@sender.example",
            "recipient": "u@example.org", "instance": "i1"}
    base.update(attrs)
    return PolicyRequest(base)


def decide(pipe, session, now, **attrs):
    """One decision; then the reactor clock moves on past the write-behind flush interval, as
    it would before the next request (so the store holds what was decided)."""
    d = pipe.decide(request(**attrs), session, now)
    out = []
    d.addBoth(out.append)
    pipe.ctx.clock.advance(1)
    assert out, "decision did not complete synchronously with the inline executor"
    if isinstance(out[0], Exception) or hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def test_first_attempt_deferred_then_passes_with_header_once(tmp_path):
    pipe = make_pipeline(tmp_path)
    s = pipe.new_session()
    d = decide(pipe, s, T0)
    assert d.action.render() == "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds"
    assert d.check == "greylist" and d.log["greylist"] == "new"
    d = decide(pipe, s, T0 + 120, instance="i2")
    assert d.action.render().endswith("in 180 seconds") and d.log["greylist"] == "early-retry"
    d = decide(pipe, s, T0 + 301, instance="i3")
    assert d.action.verb == "PREPEND"
    assert d.action.text.startswith("X-Greylist: delayed 301 seconds by Owlery at mx.test; ")
    # the same triplet again in the same message: known, no second header
    d = decide(pipe, s, T0 + 302, instance="i3")
    assert d.action.verb == "DUNNO"
    # the next message on the same triplet passes silently
    d = decide(pipe, s, T0 + 400, instance="i4")
    assert d.action.verb == "DUNNO"


def test_header_only_once_per_instance(tmp_path):
    pipe = make_pipeline(tmp_path, greylist_delay=0)
    s = pipe.new_session()
    assert decide(pipe, s, T0, recipient="a@example.org").action.verb == "DEFER_IF_PERMIT"
    assert decide(pipe, s, T0, recipient="b@example.org").action.verb == "DEFER_IF_PERMIT"
    assert decide(pipe, s, T0 + 1, recipient="a@example.org", instance="m").action.verb == "PREPEND"
    assert decide(pipe, s, T0 + 1, recipient="b@example.org", instance="m").action.verb == "DUNNO"


@pytest.mark.parametrize("attrs,why", [
    ({"sasl_username": "alice"}, "authenticated"),
    ({"client_address": "127.0.0.1"}, "skip-network"),
    ({"client_name": "smtp.trusted.example"}, "whitelisted-client"),
    ({"client_address": "203.0.113.7"}, "whitelisted-client"),
    ({"recipient": "postmaster@example.org"}, "whitelisted-recipient"),
])
def test_skips(tmp_path, attrs, why):
    (tmp_path / "wc").write_text("trusted.example\n203.0.113.0/24\n")
    (tmp_path / "wr").write_text("postmaster@\n")
    pipe = make_pipeline(tmp_path)
    d = decide(pipe, pipe.new_session(), T0, **attrs)
    assert d.action.verb == "DUNNO"
    assert pipe.ctx.resource("state", lambda: None).scan("gl:t:", T0) == []


def test_reply_text_template_and_non_ascii_domain(tmp_path):
    pipe = make_pipeline(tmp_path, greylist_reply_text="Greylisted for %s s, see https://help.example/%r")
    d = decide(pipe, pipe.new_session(), T0, recipient="u@exämple.org")
    assert d.action.render() == "DEFER_IF_PERMIT 4.7.1 Greylisted for 300 s, see https://help.example/ex?mple.org"


def test_store_down_is_a_temporary_failure_never_a_pass(tmp_path):
    pipe = make_pipeline(tmp_path)
    store = pipe.ctx.resource("state", lambda: None)

    def broken(*a, **k):
        raise StateUnavailable("redis down")
    store.get_many = broken
    d = decide(pipe, pipe.new_session(), T0)
    assert d.action.verb == "DEFER_IF_PERMIT" and d.action.reply.code == 451


class CountingStore:
    """Counts the reads of the check's store (memory misses)."""

    def __init__(self, check):
        self.calls = 0
        get_many = check.store.get_many

        def counted(keys, now):
            self.calls += 1
            return get_many(keys, now)
        check.store.get_many = counted


def _counted(pipe):
    check = pipe.by_state["RCPT"][0]
    check.counter = CountingStore(check)
    return check


def test_memory_answers_repeats_without_the_store(tmp_path):
    """Early retries, known triplets and auto-whitelisted clients come from memory for at most
    greylist_memory_ttl; the retry that passes always goes to the store."""
    pipe = make_pipeline(tmp_path, greylist_memory_ttl=60, greylist_auto_whitelist_clients=2)
    check = _counted(pipe)
    s = pipe.new_session()
    assert decide(pipe, s, T0).log["greylist"] == "new"
    assert check.counter.calls == 1
    d = decide(pipe, s, T0 + 30)
    assert d.action.render().endswith("in 270 seconds") and d.log["greylist"] == "early-retry"
    d = decide(pipe, s, T0 + 59.5)
    assert d.action.render().endswith("in 241 seconds")
    assert check.counter.calls == 1                        # both from memory
    decide(pipe, s, T0 + 61)                             # memory older than the ttl: store again
    assert check.counter.calls == 2
    decide(pipe, s, T0 + 120)                            # memory of T0+61, still waiting
    assert check.counter.calls == 2
    d = decide(pipe, s, T0 + 300, instance="p")          # delay over: only the store may pass it
    assert d.action.verb == "PREPEND" and check.counter.calls == 3
    assert decide(pipe, s, T0 + 310, instance="q").action.verb == "DUNNO"
    assert check.counter.calls == 3                        # known, from memory
    assert decide(pipe, s, T0 + 361, instance="r").action.verb == "DUNNO"
    assert check.counter.calls == 4                        # ttl over: the store refreshes its age


def test_memory_off_and_bounded(tmp_path):
    pipe = make_pipeline(tmp_path, greylist_memory_ttl=0)
    check = _counted(pipe)
    s = pipe.new_session()
    for i in range(3):
        decide(pipe, s, T0 + i)
    assert check.counter.calls == 3
    pipe = make_pipeline(tmp_path, greylist_memory_entries=2)
    check = _counted(pipe)
    s = pipe.new_session()
    for rcpt in ("a", "b", "c"):
        decide(pipe, s, T0, recipient=f"{rcpt}@example.org")
    assert len(check.memory) == 2
    decide(pipe, s, T0 + 1, recipient="a@example.org")   # the oldest was dropped: store again
    assert check.counter.calls == 4


def test_memory_of_two_daemons_sharing_a_store(tmp_path):
    """A triplet passed at one daemon is not passed early at the other because of memory, and
    a purge is seen by the other within the memory ttl."""
    from owlery.state.memory_store import MemoryStore
    shared = MemoryStore()
    a, b = make_pipeline(tmp_path), make_pipeline(tmp_path)
    for pipe in (a, b):
        pipe.by_state["RCPT"][0].store = shared
    sa, sb = a.new_session(), b.new_session()
    assert decide(a, sa, T0).log["greylist"] == "new"
    assert decide(b, sb, T0 + 10).log["greylist"] == "early-retry"
    assert decide(a, sa, T0 + 301).action.verb == "PREPEND"
    # b remembers "waiting since T0" only until T0 + 300: now it asks the store, which knows it passed
    assert decide(b, sb, T0 + 302).action.verb == "DUNNO"
    key = a.by_state["RCPT"][0].greylister.key("192.0.2.10", "a@sender.example", "u@example.org")
    shared.delete(key)                                    # `owlery greylist` removed it
    assert decide(b, sb, T0 + 303).action.verb == "DUNNO"          # memory, within the ttl
    assert decide(b, sb, T0 + 303 + 61).log["greylist"] == "new"   # after it: the store's answer
