"""The log trail a postmaster greps (DESIGN.md convention 6: one line per decision, keyed by
the Postfix queue id): the lines each daemon writes for the decisions the audit found
unkeyed, unlogged, doubled or unbounded. The real-Postfix trail is in
tests/e2e/test_log_trail_s21.py.

- a decision line's values are bounded: a huge one (a recipient list, a file name) is cut,
  saying how long it was;
- policyd: a backend error is one WARNING decision line with the error's text; decision lines
  carry helo=<> as Postfix's own reject lines do; an idle connection closes without an info line;
- delivery: the vacation reply, the failed redirect and the notes of a delivery start with
  its queue id; the decision line says vacation=sent;
- lmtpd: a recipient refused or deferred at RCPT (unknown, directory down) has a line;
- milter: the decision line says what DKIM signing did and how many recipients;
- quarantine: a release or delete line carries the queue id the message was quarantined under.
"""

from __future__ import annotations

import logging

import pytest
from twisted.internet.testing import MemoryReactorClock

from owlery import log as owlery_log
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings, parse_text
from owlery.state.memory_store import MemoryStore
from policyd.checks import Check, CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from sieve import api
from sieve.delivery.executor import DeliveryExecutor, Plan
from sieve.delivery.lmtpd import LMTPApplication
from sieve.delivery.submission import SubmissionError
from sieve.delivery.users import MailUser
from tests.milters.session_driver import run_session

MSG = b"From: bob@remote.test\nTo: alice@example.org\nSubject: hi\nMessage-ID: <m1@remote.test>\n\nhello\n"


def lines(caplog, *loggers):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name in loggers]


# -- the line format ---------------------------------------------------------------------

def test_a_huge_value_is_cut_and_says_how_long_it_was():
    rcpts = ",".join(f"user{i}@example.test" for i in range(5000))
    line = owlery_log.format_decision("milter", "4F3A21C", "accept", to=rcpts, score="0")
    assert len(line) < 2 * owlery_log.VALUE_LENGTH_MAX
    assert f"...[{len(rcpts)} chars]> score=0" in line and line.startswith("milter: 4F3A21C: accept: to=<user0@")
    # the values beside it, and the lines with no huge value, are left as they are
    assert owlery_log.format_decision("policyd", None, "reject", head="RCPT from a[192.0.2.1]", to="b@c.test") \
        == "policyd: reject: RCPT from a[192.0.2.1]: to=<b@c.test>"


# -- policyd -----------------------------------------------------------------------------

class DirectoryDown(Check):
    name = "recipient"
    states = frozenset({"RCPT"})

    def evaluate(self, req, now):
        raise DirectoryUnavailable("LDAP ldap://127.0.0.1:389: connection refused")


def policy_request():
    from policyd.protocol import PolicyRequest
    return PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
                          "client_address": "192.0.2.10", "client_name": "mail.sender.test",
                          "helo_name": "mail.sender.test", "sender": "a@sender.test",
                          "recipient": "bob@example.test", "instance": "a1.b2.c3", "queue_id": "4F3A21C"})


def test_a_policy_backend_error_is_one_warning_decision_line_with_the_error(caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings()
    pipeline = Pipeline(settings, CheckContext(settings, MemoryReactorClock(), InlineExecutor()), {"RCPT": [DirectoryDown]})
    pipeline.decide(policy_request(), pipeline.new_session(), 0)
    [(level, line)] = lines(caplog, "owlery.policyd")
    assert level == logging.WARNING
    assert line.startswith("policyd: 4F3A21C: defer-if-permit: RCPT from mail.sender.test[192.0.2.10]: "
                           "DEFER_IF_PERMIT 4.3.0 ")
    assert ("from=<a@sender.test> to=<bob@example.test> helo=<mail.sender.test> check=recipient "
            "instance=a1.b2.c3 error=DirectoryUnavailable: LDAP ldap://127.0.0.1:389: connection refused") in line


# -- delivery ----------------------------------------------------------------------------

class Submitter:
    def __init__(self, fail=None):
        self.sent, self.fail = [], fail

    def send(self, env_from, rcpts, message):
        if self.fail is not None:
            raise self.fail
        self.sent.append((env_from, list(rcpts), message))


def executor(tmp_path, actions, submitter):
    ex = DeliveryExecutor(parse_text(""), submitter=submitter, state=MemoryStore(), program="lmtpd")
    ex.plan = lambda message, *a, **kw: Plan(actions=list(actions), keep=True, message=message)
    return ex, MailUser("alice@example.org", str(tmp_path / "Maildir"), None, None)


def test_a_vacation_reply_is_keyed_by_the_queue_id_and_named_in_the_decision(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    vacation = api.Vacation(to="bob@remote.test", reply=b"Subject: Auto: hi\n\naway\n", period=86400,
                            tracking_key="vacation:abc")
    ex, user = executor(tmp_path, [vacation], Submitter())
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user, queue_id="4F3A21C").ok
    got = [line for _, line in lines(caplog, "owlery.lmtpd", "owlery.delivery")]
    assert "lmtpd: 4F3A21C: sent vacation reply from <> to <bob@remote.test>" in got
    [decision] = [line for line in got if ": delivered: " in line]
    assert decision.startswith("lmtpd: 4F3A21C: delivered: ") and " vacation=sent " in decision


def test_a_failed_redirect_is_keyed_by_the_queue_id(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ex, user = executor(tmp_path, [api.Redirect(address="carol@elsewhere.test")],
                        Submitter(SubmissionError("451 4.3.0 try later", temporary=True)))
    ex.deliver(MSG, "bob@remote.test", "alice@example.org", user, queue_id="4F3A21C")
    failed = [line for _, line in lines(caplog, "owlery.delivery") if "redirect of" in line]
    assert failed and failed[0].startswith("lmtpd: 4F3A21C: redirect of alice@example.org's mail to "
                                           "<carol@elsewhere.test> failed: ")


# -- lmtpd at RCPT -----------------------------------------------------------------------

class Unknown:
    directory = None

    def expand(self, address):
        return None


class Down:
    directory = None

    def expand(self, address):
        raise DirectoryUnavailable("LDAP ldap://127.0.0.1:389: connection refused")


@pytest.mark.parametrize("resolver,level,expected", [
    (Unknown(), logging.INFO,
     "lmtpd: reject: RCPT: 550 5.1.1 <nobody@example.org> User unknown; to=<nobody@example.org> detail=no such user"),
    (Down(), logging.WARNING,
     "lmtpd: tempfail: RCPT: 451 4.3.0 <nobody@example.org> Recipient lookup temporarily unavailable; "
     "to=<nobody@example.org> detail=lookup failed: LDAP ldap://127.0.0.1:389: connection refused"),
])
def test_a_recipient_refused_or_deferred_at_rcpt_has_its_line(tmp_path, caplog, resolver, level, expected):
    caplog.set_level(logging.INFO)
    settings = parse_text('state_backend = "memory"\n'
                          f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n')
    app = LMTPApplication(settings, MemoryReactorClock(), resolver=resolver, threadpool=object())
    reply, _ = app.check_recipient("nobody@example.org")
    assert lines(caplog, "owlery.lmtpd") == [(level, expected)]
    assert str(reply) in expected


# -- milter ------------------------------------------------------------------------------

class SignedStage:
    name = "dkim_sign"

    def check(self, message, report):
        report.data["dkim_sign"] = "signed example.net/r1/rsa-sha256"


def test_the_milter_line_says_what_signing_did_and_how_many_recipients(caplog):
    caplog.set_level(logging.INFO)
    raw = b"From: <alice@example.net>\r\nTo: <bob@example.test>\r\nSubject: hi\r\n\r\nhello\r\n"
    run_session(Settings().replace(milter_internal_networks=[]), [SignedStage()], raw, rcpts=("bob@example.test", "carol@example.test"),
                queue_id="4F3A21C")
    [(_, line)] = lines(caplog, "owlery.milter")
    assert line.startswith("milter: 4F3A21C: accept: END-OF-MESSAGE from mx.sender.test[203.0.113.5]: ")
    assert "to=<bob@example.test,carol@example.test> nrcpt=2 stages=dkim_sign" in line
    assert line.endswith(" dkim_sign=signed example.net/r1/rsa-sha256")


# -- quarantine --------------------------------------------------------------------------

def test_a_quarantine_delete_is_keyed_by_the_queue_id_it_was_quarantined_under(tmp_path, caplog, monkeypatch):
    import dataclasses

    from owlery.app.cli import main
    from owlery.quarantine.directory import DirectoryStore
    from tests.milters.test_quarantine_cli import MSG as QMSG
    from tests.milters.test_quarantine_cli import record
    monkeypatch.setenv("SUDO_USER", "jo")
    audit = tmp_path / "audit.log"
    config = tmp_path / "owlery.toml"
    config.write_text(f'quarantine_directory = "{tmp_path / "q"}"\nquarantine_audit_log_path = "{audit}"\n')
    rec = dataclasses.replace(record(), queue_id="4F3A21C")
    DirectoryStore(str(tmp_path / "q")).put(rec, QMSG)
    assert main(["quarantine", "delete", "--config", str(config), rec.mail_id]) == 0
    assert f" quarantine: 4F3A21C: delete: quarantine_id={rec.mail_id} " in audit.read_text()


def test_an_idle_policy_connection_closes_without_an_info_line(caplog):
    # Routine: Postfix keeps a policy connection per smtpd process and lets it go idle.
    from twisted.internet import task
    from twisted.internet.testing import StringTransport

    from policyd.service import PolicyApp
    caplog.set_level(logging.INFO)
    settings = Settings().replace(policyd_idle_timeout=30)
    clock = task.Clock()
    proto = PolicyApp(settings, clock, executor=InlineExecutor()).factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    clock.advance(31)
    assert transport.disconnecting and lines(caplog, "owlery.policyd") == []


def test_a_release_in_the_web_ui_is_keyed_by_the_queue_id_it_was_quarantined_under(tmp_path, caplog):
    import dataclasses

    from tests.web.helpers import World, make_record
    world = World(tmp_path)
    rec = world.put(dataclasses.replace(make_record(), queue_id="5B2C9D1"))
    c = world.client()
    c.login("alice@example.test")
    with caplog.at_level(logging.INFO):
        assert c.post("/action", action="release", id=rec.mail_id).status == 303
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("web: ")]
    assert any(line.startswith(f"web: 5B2C9D1: release: quarantine_id={rec.mail_id} ") for line in lines), lines
