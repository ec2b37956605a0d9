"""Headers PREPENDed at RCPT that wait for a later request: greylisting's X-Greylist beside SPF's headers.

Postfix takes one action per policy reply and ignores PREPEND at END-OF-MESSAGE, so a
header that cannot go out with its RCPT reply waits in the connection's session for DATA.
These transcripts play Postfix's side with exactly the requests the main.cf lines of
`owlery.app.postfix.main_cf` make it send (one per RCPT, one per check_policy_service of
smtpd_data_restrictions, one at END-OF-MESSAGE) and count the headers the message gets.
"""

from __future__ import annotations

import logging

import pytest
from twisted.internet import task

from owlery.app import postfix
from owlery.settings import Settings
from policyd import actions as A
from policyd.checks import Check, CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest
from tests.policyd.spf_zone import zone_lookup

T0 = 1_700_000_000.0
DELAY = 300
ZONE = {
    "pass.example": [{"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}],
    "helo.pass.example": [{"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}],
}
RCPT_SPF_GREYLIST = {"RCPT": ["spf", "greylist"]}


def make_settings(tmp_path, checks, **overrides):
    values = dict(policyd_checks=checks, state_backend="memory", greylist_delay=DELAY,
                  greylist_whitelist_clients=[str(tmp_path / "wc")],
                  greylist_whitelist_recipients=[str(tmp_path / "wr")],
                  greylist_hostname="mx.test", spf_authserv_id="mx.test")
    values.update(overrides)
    return Settings().replace(**values)


def make_pipeline(settings, checks=None):
    ctx = CheckContext(settings, task.Clock(), InlineExecutor(), resolver=zone_lookup(ZONE))
    return Pipeline(settings, ctx, checks=checks)


def decide(pipe, session, now, state, instance, **attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": state, "client_address": "192.0.2.10",
            "client_name": "mail.pass.example", "helo_name": "helo.pass.example", "sender": "a@pass.example",
            "recipient": "", "instance": instance, "queue_id": "4AB12"}
    base.update(attrs)
    out = []
    pipe.decide(PolicyRequest(base), session, now).addBoth(out.append)
    assert out, "decision did not complete with the inline executor"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0].action


def data_calls(settings) -> int:
    """How many DATA requests Postfix sends with the lines `owlery postfix` prints."""
    cf = dict(postfix.main_cf(settings, ["example.org"]))
    return cf.get("smtpd_data_restrictions", "").count("check_policy_service")


def deliver(pipe, session, now, instance, recipients, n_data):
    """One accepted message as Postfix asks about it; the header lines Postfix adds."""
    added = []
    for rcpt in recipients:
        action = decide(pipe, session, now, "RCPT", instance, recipient=rcpt)
        assert action.verb in ("PREPEND", "DUNNO"), action.render()
        added += [action.text] if action.verb == "PREPEND" else []
    # recipient is present at DATA and END-OF-MESSAGE for single-recipient mail only
    only = recipients[0] if len(recipients) == 1 else ""
    for _ in range(n_data):
        action = decide(pipe, session, now, "DATA", instance, recipient=only)
        assert action.verb in ("PREPEND", "DUNNO"), action.render()
        added += [action.text] if action.verb == "PREPEND" else []
    action = decide(pipe, session, now, "END-OF-MESSAGE", instance, recipient=only, size="1234")
    assert action.verb == "DUNNO", action.render()   # a PREPEND here would be ignored by Postfix
    return added


def names(lines):
    return sorted(line.split(":", 1)[0] for line in lines)


def greylisted_then_retried(pipe, session, recipients, n_data):
    """First attempt deferred for every recipient; the retry after the delay is accepted."""
    for i, rcpt in enumerate(recipients):
        first = decide(pipe, session, T0, "RCPT", f"first.{i}", recipient=rcpt)
        assert first.verb == "DEFER_IF_PERMIT" and first.reply.dsn == "4.7.1", first.render()
    return deliver(pipe, session, T0 + DELAY + 1, "retry", recipients, n_data)


# (policyd_checks, overrides, header names one accepted greylisted message must carry)
CONFIGS = [
    (RCPT_SPF_GREYLIST, {}, ["Received-SPF", "X-Greylist"]),
    ({"RCPT": ["greylist", "spf"]}, {}, ["Received-SPF", "X-Greylist"]),
    (RCPT_SPF_GREYLIST, {"spf_header_type": "authentication-results"},
     ["Authentication-Results", "X-Greylist"]),
    ({"RCPT": ["spf", "greylist"], "DATA": ["spf"]}, {}, ["Received-SPF", "X-Greylist"]),
    ({"RCPT": ["spf", "greylist"], "DATA": ["spf"]}, {"spf_header_type": "both"},
     ["Authentication-Results", "Received-SPF", "X-Greylist"]),
    (RCPT_SPF_GREYLIST, {"spf_header_type": "none"}, ["X-Greylist"]),
    ({"RCPT": ["greylist"]}, {}, ["X-Greylist"]),
    (RCPT_SPF_GREYLIST, {"greylist_header": ""}, ["Received-SPF"]),
]


@pytest.mark.parametrize("n_rcpt", [1, 2, 3])
@pytest.mark.parametrize("checks,overrides,expected", CONFIGS)
def test_greylisted_retry_carries_each_header_exactly_once(tmp_path, checks, overrides, expected, n_rcpt):
    settings = make_settings(tmp_path, checks, **overrides)
    pipe = make_pipeline(settings)
    recipients = [f"u{i}@example.org" for i in range(n_rcpt)]
    added = greylisted_then_retried(pipe, pipe.new_session(), recipients, data_calls(settings))
    assert names(added) == expected, added
    for line in added:
        if line.startswith("X-Greylist:"):
            assert line.startswith(f"X-Greylist: delayed {DELAY + 1} seconds by Owlery at mx.test; ")


def test_single_recipient_without_data_request_loses_the_greylist_header(tmp_path, caplog):
    """The reported bug, as Postfix saw it before `owlery postfix` printed smtpd_data_restrictions:
    SPF's header takes the RCPT reply, X-Greylist waits for END-OF-MESSAGE and is lost there
    (now with a warning that names the missing line)."""
    settings = make_settings(tmp_path, RCPT_SPF_GREYLIST)
    pipe = make_pipeline(settings)
    with caplog.at_level(logging.WARNING, logger="owlery.policyd"):
        added = greylisted_then_retried(pipe, pipe.new_session(), ["u@example.org"], n_data=0)
    assert names(added) == ["Received-SPF"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "4AB12: END-OF-MESSAGE from mail.pass.example[192.0.2.10]: PREPEND x-greylist dropped" in warning
    assert "smtpd_data_restrictions" in warning and "check=greylist instance=retry" in warning
    # ...and the lines `owlery postfix` prints now make Postfix ask at DATA
    assert data_calls(settings) == 1


def test_rcpt_transcript_greylist_pass_with_spf_then_data_then_eom(tmp_path):
    settings = make_settings(tmp_path, RCPT_SPF_GREYLIST)
    pipe = make_pipeline(settings)
    s = pipe.new_session()
    assert decide(pipe, s, T0, "RCPT", "m1", recipient="u@example.org").verb == "DEFER_IF_PERMIT"
    now = T0 + DELAY + 5
    rcpt = decide(pipe, s, now, "RCPT", "m2", recipient="u@example.org")
    assert rcpt.render().startswith("PREPEND Received-SPF: Pass (")
    assert rcpt.render().endswith("identity=mailfrom")
    data = decide(pipe, s, now, "DATA", "m2", recipient="u@example.org")
    assert data.render().startswith(f"PREPEND X-Greylist: delayed {DELAY + 5} seconds by Owlery at mx.test; ")
    assert decide(pipe, s, now, "END-OF-MESSAGE", "m2", recipient="u@example.org").render() == "DUNNO"
    # the next message of the same connection starts afresh: SPF's header again, X-Greylist no more
    assert decide(pipe, s, now, "RCPT", "m3", recipient="u@example.org").render().startswith(
        "PREPEND Received-SPF: ")
    assert decide(pipe, s, now, "DATA", "m3", recipient="u@example.org").render() == "DUNNO"


def test_multi_recipient_each_header_once(tmp_path):
    """Every RCPT of the retry passes greylisting and SPF: X-Greylist and Received-SPF each once,
    even with an extra DATA request that finds nothing left."""
    settings = make_settings(tmp_path, RCPT_SPF_GREYLIST)
    pipe = make_pipeline(settings)
    recipients = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]
    added = greylisted_then_retried(pipe, pipe.new_session(), recipients, n_data=2)
    assert names(added) == ["Received-SPF", "X-Greylist"]


def test_headers_of_interleaved_instances_stay_apart(tmp_path):
    """Two messages' requests on one connection (instances) keep their own pending headers."""
    settings = make_settings(tmp_path, RCPT_SPF_GREYLIST)
    pipe = make_pipeline(settings)
    s = pipe.new_session()
    for rcpt in ("x@example.org", "y@example.org"):
        assert decide(pipe, s, T0, "RCPT", "old", recipient=rcpt).verb == "DEFER_IF_PERMIT"
    now = T0 + DELAY + 1
    assert decide(pipe, s, now, "RCPT", "m1", recipient="x@example.org").text.startswith("Received-SPF:")
    assert decide(pipe, s, now, "RCPT", "m2", recipient="y@example.org").text.startswith("Received-SPF:")
    assert decide(pipe, s, now, "DATA", "m2", recipient="y@example.org").text.startswith("X-Greylist:")
    assert decide(pipe, s, now, "DATA", "m1", recipient="x@example.org").text.startswith("X-Greylist:")


def fixed(check_name, action, states=("RCPT", "DATA", "END-OF-MESSAGE")):
    class Fixed(Check):
        name = check_name

        def evaluate(self, req, now):
            return action
    Fixed.states = frozenset(states)
    return Fixed


def test_pending_prepend_at_end_of_message_does_not_block_a_warn_behind_it(tmp_path):
    """A header that can no longer be sent is dropped at END-OF-MESSAGE; the WARN queued
    after it (which Postfix accepts there) still goes out."""
    settings = make_settings(tmp_path, {"RCPT": ["recipient"]})
    header, warn = fixed("h", A.prepend("X-H: 1"), ("RCPT",)), fixed("w", A.warn("look at this"), ("RCPT",))
    pipe = make_pipeline(settings, checks={"RCPT": [fixed("first", A.prepend("X-First: 1"), ("RCPT",)),
                                                    header, warn]})
    s = pipe.new_session()
    assert decide(pipe, s, T0, "RCPT", "m", recipient="u@example.org").render() == "PREPEND X-First: 1"
    assert decide(pipe, s, T0, "END-OF-MESSAGE", "m").render() == "WARN look at this"
    assert decide(pipe, s, T0, "END-OF-MESSAGE", "m").render() == "DUNNO"
