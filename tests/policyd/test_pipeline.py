"""The policy pipeline (policyd.pipeline): first decisive action, annotations, errors, per-state checks."""

import pytest
from twisted.internet import defer, task

from owlery.errors import DirectoryUnavailable, PermanentFailure, StateUnavailable
from owlery.reply import Reply
from owlery.settings import Settings, SettingsError, parse_text
from policyd import actions as A
from policyd.checks import CHECKS, Check, CheckContext, InlineExecutor, Verdict, default_checks
from policyd.pipeline import Pipeline

from policyd_testlib import ask, outcome, request


def fixed(check_name, action, states=("RCPT", "DATA", "END-OF-MESSAGE")):
    """A check class answering `action` (or raising it, if it is an exception)."""
    class Fixed(Check):
        name = check_name

        def evaluate(self, req, now):
            self.ctx.calls.append(check_name)
            if isinstance(action, BaseException):
                raise action
            if callable(action):
                return action(req)
            return action
    Fixed.states = frozenset(states)
    return Fixed


def pipeline(*check_classes, state="RCPT", clock=None):
    settings = Settings()
    clock = clock if clock is not None else task.Clock()
    ctx = CheckContext(settings, clock, InlineExecutor())
    ctx.calls = []
    return Pipeline(settings, ctx, {state: list(check_classes)})


REJECT = A.reject(A.USER_UNKNOWN)
PREPEND_A = A.prepend("X-A: 1")
PREPEND_B = A.prepend("X-B: 2")


@pytest.mark.parametrize("answers,expected,called", [
    ([], "DUNNO", []),
    ([A.DUNNO, A.DUNNO], "DUNNO", ["c0", "c1"]),
    ([A.DUNNO, REJECT, A.DUNNO], "550 5.1.1 User unknown", ["c0", "c1"]),      # first decisive wins
    ([REJECT, A.reject(A.MAILBOX_FULL)], "550 5.1.1 User unknown", ["c0"]),
    ([PREPEND_A, A.DUNNO], "PREPEND X-A: 1", ["c0", "c1"]),                    # annotation survives DUNNO
    ([PREPEND_A, REJECT], "550 5.1.1 User unknown", ["c0", "c1"]),             # decisive beats annotation
    ([A.DUNNO, Verdict(A.defer_if_permit(Reply(450, "4.7.1", "Greylisted")), {"delay": 3})],
     "DEFER_IF_PERMIT 4.7.1 Greylisted", ["c0", "c1"]),
    ([DirectoryUnavailable(), A.DUNNO],
     "DEFER_IF_PERMIT 4.3.0 Recipient lookup temporarily unavailable", ["c0"]),
    ([StateUnavailable(), A.DUNNO], "DEFER_IF_PERMIT 4.3.0 State store temporarily unavailable", ["c0"]),
    ([defer.TimeoutError(), A.DUNNO], "DEFER_IF_PERMIT 4.3.0 Lookup timed out, try again later", ["c0"]),
    ([PermanentFailure("x", Reply(554, "5.7.1", "No")), A.DUNNO], "554 5.7.1 No", ["c0"]),
])
def test_transcripts(answers, expected, called):
    p = pipeline(*[fixed(f"c{i}", a) for i, a in enumerate(answers)])
    assert ask(p) == expected
    assert p.ctx.calls == called


def test_internal_error_propagates_for_disconnect():
    p = pipeline(fixed("boom", KeyError("bug")))
    result = outcome(p.decide(request(), p.new_session(), 0))
    assert result.check(KeyError)


def test_non_action_is_an_internal_error():
    p = pipeline(fixed("odd", "OK"))
    assert outcome(p.decide(request(), p.new_session(), 0)).check(TypeError)


def test_other_state_runs_nothing():
    p = pipeline(fixed("c0", REJECT))
    assert ask(p, protocol_state="DATA") == "DUNNO"
    assert p.ctx.calls == []


def test_async_and_deferred_checks():
    waiting = defer.Deferred()

    class Slow(Check):
        name = "slow"
        states = frozenset({"RCPT"})

        async def evaluate(self, req, now):
            return await waiting
    p = pipeline(Slow)
    d = p.decide(request(), p.new_session(), 0)
    assert not d.called and p.in_flight == 1
    waiting.callback(A.reject(A.USER_UNKNOWN))
    assert outcome(d).action.render() == "550 5.1.1 User unknown"
    assert p.in_flight == 0


def test_second_prepend_waits_for_next_request_of_same_instance():
    p = pipeline(fixed("a", PREPEND_A), fixed("b", PREPEND_B))
    s = p.new_session()
    assert ask(p, s, recipient="r1@x.test") == "PREPEND X-A: 1"
    # next RCPT of the same message: X-A was sent already (dropped), the queued X-B goes out
    assert ask(p, s, recipient="r2@x.test") == "PREPEND X-B: 2"
    assert ask(p, s, recipient="r3@x.test") == "DUNNO"
    # a new message gets its headers again
    assert ask(p, s, recipient="r1@x.test", instance="other") == "PREPEND X-A: 1"


def test_prepend_never_at_end_of_message():
    p = pipeline(fixed("a", PREPEND_A), state="END-OF-MESSAGE")
    assert ask(p, protocol_state="END-OF-MESSAGE") == "DUNNO"


def test_warn_is_answered_when_all_pass():
    p = pipeline(fixed("a", A.DUNNO), fixed("w", A.warn("suspicious")))
    assert ask(p) == "WARN suspicious"


def test_session_forgets_old_instances():
    p = pipeline(fixed("a", PREPEND_A), fixed("b", PREPEND_B))
    s = p.new_session()
    for i in range(30):
        ask(p, s, instance=f"i{i}")
    assert len(s._pending) <= 20 and len(s._headers) <= 20


def test_policyd_checks_setting():
    s = parse_text('policyd_checks = { RCPT = ["recipient", "quota"], "end-of-message" = "quota" }')
    assert s.policyd_checks == {"RCPT": ("recipient", "quota"), "END-OF-MESSAGE": ("quota",)}


@pytest.mark.parametrize("text,why", [
    ('policyd_checks = { RCPT = ["nope"] }', "unknown check"),
    ('policyd_checks = { LATER = ["recipient"] }', "unknown protocol_state"),
    ('policyd_checks = ["recipient"]', "expected a table"),
])
def test_policyd_checks_setting_errors(text, why):
    with pytest.raises(SettingsError, match=why):
        parse_text(text)


def test_check_at_a_state_it_cannot_serve_is_refused():
    with pytest.raises(ValueError, match="cannot run at DATA"):
        Pipeline(Settings(), CheckContext(Settings(), task.Clock(), InlineExecutor()), {"DATA": ["recipient"]})


def test_default_pipeline_follows_registry_order():
    table = default_checks()
    assert table["RCPT"][:3] == ["recipient", "lists", "quota"]
    assert table["END-OF-MESSAGE"][0] == "quota"
    assert list(CHECKS)[:3] == ["recipient", "lists", "quota"]
