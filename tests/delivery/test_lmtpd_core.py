"""lmtpd's decisions without Twisted (sieve/delivery/lmtpd_core.py, and how the LMTP machine of
sieve/delivery/lmtp.py ends a connection): recipient replies, the per-user concurrency limit
on an injected clock, delivery results, idle timeout and internal error."""

from __future__ import annotations

import pytest

from owlery.errors import DirectoryUnavailable
from owlery.reply import Reply
from sieve.delivery import lmtp, lmtpd_core
from sieve.delivery.executor import tempfail


@pytest.mark.parametrize("found, is_group, refuse, expected, delivers", [
    (None, False, False, "550 5.1.1 <a@x.test> User unknown", False),
    ("entry", False, False, "250 2.1.5 <a@x.test> Ok", True),
    ("group", True, False, "250 2.1.5 <a@x.test> Ok", True),
    ("group", True, True, "550 5.1.1 <a@x.test> is an alias or group", False),
    ("entry", False, True, "250 2.1.5 <a@x.test> Ok", True),
])
def test_recipient_reply(found, is_group, refuse, expected, delivers):
    reply, target = lmtpd_core.recipient_reply("a@x.test", found, is_group=is_group, refuse_groups=refuse)
    assert str(reply).startswith(expected)
    assert (target == found) if delivers else target is None


def test_lookup_failures_are_never_5xx():
    down = lmtpd_core.lookup_failed("a@x.test", DirectoryUnavailable("ldap down"))
    bug = lmtpd_core.lookup_failed("a@x.test", ImportError("No module named 'ldap3'"))
    assert down.is_temporary and down.text.startswith("<a@x.test> ")
    assert str(bug) == "451 4.3.0 <a@x.test> Temporary lookup failure"


def test_delivery_reply():
    outcome = tempfail("a@x.test", "disk")
    assert lmtpd_core.delivery_reply("a@x.test", outcome) is outcome.reply
    ok = Reply(250, "2.0.0", "ok")
    assert lmtpd_core.delivery_reply("a@x.test", ok) is ok
    assert str(lmtpd_core.delivery_reply("a@x.test", RuntimeError("x"))) == \
        "451 4.3.0 <a@x.test> Internal error, try again later"


def test_user_slots_limit_per_user_on_the_given_clock():
    slots = lmtpd_core.UserSlots(2)
    a1, a2 = slots.admit("a", 10.0), slots.admit("a", 11.0)
    assert a1 and a2 and slots.admit("a", 12.0) is None        # a third for the same user: 451
    assert slots.admit("b", 12.0) is not None                   # others are not held up
    assert slots.oldest(15.0) == 5.0
    assert slots.release(a1, 16.0) == 6.0
    assert slots.running("a") == 1 and slots.admit("a", 17.0) is not None
    slots.release(a2, 20.0)
    assert len(slots) == 2                                      # b's and the last a's


def test_user_slots_without_limit_and_a_lowered_limit():
    slots = lmtpd_core.UserSlots(0)
    tickets = [slots.admit("a", 0.0) for _ in range(50)]
    assert all(tickets) and slots.running("a") == 50
    slots.limit = 1                                             # a reload lowered it
    assert slots.admit("a", 1.0) is None
    for t in tickets:
        slots.release(t, 2.0)
    assert slots.running("a") == 0 and len(slots) == 0 and slots.admit("a", 3.0) is not None


def _wait_for_lookup(machine):
    machine.start()
    machine.feed(b"LHLO mta\r\n")
    machine.feed(b"MAIL FROM:<s@x.test>\r\n")
    return machine.feed(b"RCPT TO:<a@x.test>\r\n")


def test_idle_timeout_says_421_when_no_answer_is_pending():
    m = lmtp.LMTPServer("mx")
    m.start()
    assert m.idle_timeout() == [lmtp.SendReply(b"421 4.4.2 Idle timeout, closing connection\r\n"),
                                lmtp.CloseConnection()]
    assert m.feed(b"NOOP\r\n") == []


def test_idle_timeout_while_an_answer_is_pending_closes_without_a_reply():
    # a reply now would be taken for the pending RCPT's answer
    m = lmtp.LMTPServer("mx")
    assert isinstance(_wait_for_lookup(m)[0], lmtp.CheckRecipient)
    assert m.idle_timeout() == [lmtp.CloseConnection()]


def test_internal_error_closes_once():
    m = lmtp.LMTPServer("mx")
    m.start()
    assert m.internal_error() == [lmtp.SendReply(b"421 4.3.0 Internal error, closing connection\r\n"),
                                  lmtp.CloseConnection()]
    assert m.internal_error() == []
