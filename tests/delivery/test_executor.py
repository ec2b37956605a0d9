"""Executing Sieve results: stores, flags, redirects (loop, failure, duplicates), vacation, reject,
quota, temporary failures and runtime errors. The script chain is replaced by a fixed Plan so
these tests pin the delivery rules independently of the engine."""

from __future__ import annotations


import pytest

from owlery.maildir import Quota
from owlery.settings import parse_text
from owlery.state.memory_store import MemoryStore
from sieve import api
from sieve.delivery.executor import DeliveryExecutor, Plan
from sieve.delivery.submission import SubmissionError
from sieve.delivery.users import MailUser

MSG = b"From: bob@remote.test\nTo: alice@example.org\nSubject: hi\nMessage-ID: <m1@remote.test>\n\nhello\n"


class FakeSubmitter:
    def __init__(self, fail=None):
        self.sent = []
        self.fail = fail

    def send(self, env_from, rcpts, message):
        if self.fail is not None:
            raise self.fail
        self.sent.append((env_from, list(rcpts), message))


def make(tmp_path, actions=(), *, keep=True, keep_flags=(), errors=(), tempfail=None, settings="",
         quota=None, submitter=None):
    s = parse_text(settings)
    sub = submitter or FakeSubmitter()
    ex = DeliveryExecutor(s, submitter=sub, state=MemoryStore(), program="test")

    def plan(message, *a, **kw):
        return Plan(actions=list(actions), keep=keep, keep_flags=tuple(keep_flags), message=message,
                    errors=list(errors), tempfail=tempfail)
    ex.plan = plan
    user = MailUser("alice@example.org", str(tmp_path / "Maildir"), None, quota)
    return ex, user, sub


def files(tmp_path, folder=""):
    out = []
    base = tmp_path / "Maildir" / folder if folder else tmp_path / "Maildir"
    for sub in ("new", "cur"):
        d = base / sub
        if d.exists():
            out += sorted(d.iterdir())
    return out


def test_keep_stores_in_inbox_with_trace_headers(tmp_path):
    ex, user, _ = make(tmp_path)
    o = ex.deliver(MSG, "bob@remote.test", "alice+x@example.org", user)
    assert o.ok and o.exit_code == 0 and str(o.reply).startswith("250 2.0.0")
    [f] = files(tmp_path)
    assert f.read_bytes() == b"Return-Path: <bob@remote.test>\nDelivered-To: alice+x@example.org\n" + MSG


def test_fileinto_with_flags_and_no_keep(tmp_path):
    ex, user, _ = make(tmp_path, [api.FileInto(mailbox="Lists.Owlery", flags=("\\Seen", "$Label1"))], keep=False)
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok
    assert files(tmp_path) == []
    [f] = files(tmp_path, ".Lists.Owlery")
    assert f.name.endswith(":2,Sa")


def test_same_mailbox_stored_once(tmp_path):
    ex, user, _ = make(tmp_path, [api.FileInto(mailbox="INBOX"), api.FileInto(mailbox="inbox")])
    ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert len(files(tmp_path)) == 1


def test_redirect_sends_with_loop_header_and_without_return_path(tmp_path):
    ex, user, sub = make(tmp_path, [api.Redirect(address="carol@other.test", envelope_from="bob@remote.test")],
                         keep=False)
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert o.ok and files(tmp_path) == []
    [(env_from, rcpts, message)] = sub.sent
    assert env_from == "bob@remote.test" and rcpts == ["carol@other.test"]
    assert message.startswith(b"X-Sieve-Redirected-From: alice@example.org\nDelivered-To:")
    assert b"Return-Path" not in message


def test_redirect_loop_is_stopped_and_message_kept(tmp_path):
    ex, user, sub = make(tmp_path, [api.Redirect(address="carol@other.test")], keep=False)
    looped = b"X-Sieve-Redirected-From: alice@example.org\n" + MSG
    o = ex.deliver(looped, "carol@other.test", "alice@example.org", user)
    assert o.ok and sub.sent == []
    assert len(files(tmp_path)) == 1


def test_redirect_is_not_repeated_when_delivery_is_retried(tmp_path):
    ex, user, sub = make(tmp_path, [api.Redirect(address="carol@other.test")], keep=False)
    ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert len(sub.sent) == 1


def test_failed_redirect_alone_is_a_temporary_failure(tmp_path):
    ex, user, _ = make(tmp_path, [api.Redirect(address="carol@other.test")], keep=False,
                       submitter=FakeSubmitter(SubmissionError("down")))
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert o.action == "tempfail" and o.exit_code == 75 and files(tmp_path) == []


def test_failed_redirect_with_a_store_keeps_the_message(tmp_path):
    ex, user, _ = make(tmp_path, [api.Redirect(address="c@o.test"), api.FileInto(mailbox="X")], keep=False,
                       submitter=FakeSubmitter(SubmissionError("down")))
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok
    assert len(files(tmp_path)) == 1 and len(files(tmp_path, ".X")) == 1


def test_tempfail_before_commit_delivers_nothing(tmp_path):
    ex, user, sub = make(tmp_path, [api.Redirect(address="c@o.test")], tempfail="state store down")
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert o.action == "tempfail" and str(o.reply).startswith("451 4.3.0")
    assert files(tmp_path) == [] and sub.sent == []


def test_runtime_error_keeps_into_inbox(tmp_path, caplog):
    ex, user, _ = make(tmp_path, [], keep=True, errors=["s.sieve: error: boom"])
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert o.ok and len(files(tmp_path)) == 1
    assert "sieve runtime error" in caplog.text


@pytest.mark.parametrize("conf, code, exit_code", [
    ("", "552 5.2.2", 77), ("delivery_quota_full_tempfail = true", "452 4.2.2", 75)])
def test_over_quota_reply(tmp_path, conf, code, exit_code):
    ex, user, sub = make(tmp_path, [api.Redirect(address="c@o.test")], settings=conf, quota=Quota(bytes=50))
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert str(o.reply).startswith(code) and o.exit_code == exit_code
    assert files(tmp_path) == [] and sub.sent == []      # checked before anything left


def test_ereject_refuses_in_the_dialogue(tmp_path):
    ex, user, _ = make(tmp_path, [api.Reject(reason="Not wanted", ereject=True)], keep=False)
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert str(o.reply) == "550 5.7.1 <alice@example.org> Not wanted" and o.exit_code == 77
    assert files(tmp_path) == []


def test_reject_sends_the_notice(tmp_path):
    ex, user, sub = make(tmp_path, [api.Reject(reason="No", mdn=b"MDN\n", mdn_to="bob@remote.test")], keep=False)
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok
    assert sub.sent == [("", ["bob@remote.test"], b"MDN\n")] and files(tmp_path) == []


def vacation():
    return api.Vacation(to="bob@remote.test", reply=b"Subject: Auto: hi\n\naway\n", period=86400,
                        tracking_key="vacation:abc")


def test_vacation_sent_from_the_null_sender_and_marked(tmp_path):
    ex, user, sub = make(tmp_path, [vacation()])
    ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert sub.sent[0][0] == "" and sub.sent[0][1] == ["bob@remote.test"]      # RFC 5230 5.1
    assert ex.state.get("sieve:alice@example.org:vacation:abc", ex.clock()) == "1"


@pytest.mark.parametrize("header", [b"List-Id: <l.x>\n", b"Precedence: bulk\n",
                                    b"Auto-Submitted: auto-replied\n"])
def test_vacation_never_answers_lists_or_automatic_mail(tmp_path, header):
    ex, user, sub = make(tmp_path, [vacation()])
    ex.deliver(header + MSG, "bob@remote.test", "alice@example.org", user)
    assert sub.sent == []


def test_vacation_not_to_mailer_daemon(tmp_path):
    ex, user, sub = make(tmp_path, [vacation()])
    ex.deliver(MSG, "MAILER-DAEMON@remote.test", "alice@example.org", user)
    ex.deliver(MSG, "", "alice@example.org", user)
    assert sub.sent == []


def test_bad_folder_falls_back_to_inbox(tmp_path):
    ex, user, _ = make(tmp_path, [api.FileInto(mailbox="a..b")], keep=False)
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok
    assert len(files(tmp_path)) == 1


def test_missing_folder_without_autocreate_goes_to_inbox(tmp_path):
    ex, user, _ = make(tmp_path, [api.FileInto(mailbox="Nope")], keep=False,
                       settings="delivery_mailbox_autocreate = false")
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok
    assert len(files(tmp_path)) == 1 and not (tmp_path / "Maildir/.Nope").exists()


def test_unwritable_maildir_is_a_temporary_failure(tmp_path):
    ex, user, _ = make(tmp_path)
    (tmp_path / "Maildir").write_text("not a directory")
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert o.action == "tempfail" and o.exit_code == 75


def test_unknown_user(tmp_path):
    ex, _, _ = make(tmp_path)
    o = ex.deliver(MSG, "bob@remote.test", "zz@example.org", None)
    assert str(o.reply).startswith("550 5.1.1") and o.exit_code == 67
