"""LMTP state machine transcripts (RFC 2033): commands in, replies and actions out."""

from __future__ import annotations

import re

import pytest

from owlery.reply import Reply
from sieve.delivery import lmtp

OK_RCPT = Reply(250, "2.1.5", "Ok")


def run(lines, *, limits=lmtp.Limits(), answer_rcpt=None, answer_data=None):
    """Feed `lines` (bytes) one write each; answer lookups/deliveries; return (replies text, txns)."""
    m = lmtp.LMTPServer("mx.test", limits)
    out: list[bytes] = []
    txns = []

    def act(actions):
        for a in actions:
            if isinstance(a, lmtp.SendReply):
                out.append(a.data)
            elif isinstance(a, lmtp.CheckRecipient):
                reply = answer_rcpt(a.address) if answer_rcpt else OK_RCPT
                act(m.recipient_checked(reply, a.address))
            elif isinstance(a, lmtp.Deliver):
                txns.append(a.transaction)
                replies = answer_data(a.transaction) if answer_data else [
                    Reply(250, "2.0.0", f"<{r.address}> Saved") for r in a.transaction.recipients]
                act(m.delivered(replies))
            elif isinstance(a, lmtp.CloseConnection):
                out.append(b"<close>\r\n")

    act(m.start())
    for chunk in lines:
        act(m.feed(chunk))
    return b"".join(out).decode(), txns


def codes(text):
    return [line[:3] for line in text.split("\r\n") if line and not line.startswith("250-")]


def test_basic_session_with_two_recipients_gets_two_replies_after_data():
    text, txns = run([b"LHLO client\r\n", b"MAIL FROM:<bob@x.org> SIZE=10 BODY=8BITMIME\r\n",
                      b"RCPT TO:<a@d.test>\r\n", b"RCPT TO:<b@d.test>\r\n", b"DATA\r\n",
                      b"Subject: x\r\n\r\nhello\r\n.\r\n", b"QUIT\r\n"])
    assert codes(text) == ["220", "250", "250", "250", "250", "354", "250", "250", "221", "<cl"]
    assert "250-PIPELINING" in text and "250-ENHANCEDSTATUSCODES" in text and "250-8BITMIME" in text
    assert "<a@d.test> Saved" in text and "<b@d.test> Saved" in text
    assert txns[0].sender == "bob@x.org"
    assert [r.address for r in txns[0].recipients] == ["a@d.test", "b@d.test"]
    assert txns[0].message == b"Subject: x\n\nhello\n"


def test_pipelined_in_one_write_and_per_recipient_different_replies():
    def deliver(txn):
        return [Reply(250, "2.0.0", "ok"), Reply(552, "5.2.2", "<b@d.test> Mailbox full")]
    text, _ = run([b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@d.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\n",
                   b"x\r\n.\r\nQUIT\r\n"], answer_data=deliver)
    assert codes(text) == ["220", "250", "250", "250", "250", "354", "250", "552", "221", "<cl"]


@pytest.mark.parametrize("body, stored", [
    (b"..leading dot\r\n.\r\n", b".leading dot\n"),
    (b"a\r\n...\r\n.\r\n", b"a\n..\n"),
    (b"no final newline\r\n.\r\n", b"no final newline\n"),
    (b"bare\nlf\n.\n", b"bare\nlf\n"),
    (b"cr\rinside\r\n.\r\n", b"cr\rinside\n"),
    (b".\r\n", b""),
])
def test_dot_unstuffing_and_line_ends(body, stored):
    _, txns = run([b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<r@d>\r\nDATA\r\n", body])
    assert txns[0].message == stored


def test_data_split_at_every_byte():
    data = b"Subject: s\r\n\r\n..x\r\nline\r\n.\r\n"
    chunks = [b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<r@d>\r\nDATA\r\n"] + [bytes([b]) for b in data]
    _, txns = run(chunks)
    assert txns[0].message == b"Subject: s\n\n.x\nline\n"


def test_refused_recipient_is_not_delivered_and_data_needs_one_accepted():
    def rcpt(addr):
        return OK_RCPT if addr.startswith("a") else Reply(550, "5.1.1", f"<{addr}> User unknown")
    text, txns = run([b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<zz@d>\r\nDATA\r\n"], answer_rcpt=rcpt)
    assert codes(text) == ["220", "250", "250", "550", "503"]
    text, txns = run([b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<zz@d>\r\nRCPT TO:<a@d>\r\nDATA\r\nx\r\n.\r\n"],
                     answer_rcpt=rcpt)
    assert codes(text) == ["220", "250", "250", "550", "250", "354", "250"]
    assert [r.address for r in txns[0].recipients] == ["a@d"]


@pytest.mark.parametrize("line, code", [
    (b"HELO x\r\n", "500"), (b"EHLO x\r\n", "500"), (b"FOO\r\n", "500"),
    (b"MAIL FROM:<a@b>\r\n", "503"), (b"RCPT TO:<a@b>\r\n", "503"), (b"DATA\r\n", "503"),
    (b"NOOP\r\n", "250"), (b"RSET\r\n", "250"), (b"VRFY x\r\n", "252"), (b"LHLO\r\n", "501"),
])
def test_commands_before_a_transaction(line, code):
    text, _ = run([line])
    assert codes(text)[-1] == code


@pytest.mark.parametrize("line, code", [
    (b"MAIL FROM:<a@b> FOO=1\r\n", "555"), (b"MAIL FROM:<a@b> SIZE=999999999999\r\n", "552"),
    (b"MAIL FROM:a b c\r\n", "555"), (b"MAIL FROM:<a b>\r\n", "501"), (b"MAIL TO:<a@b>\r\n", "501"), (b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n", "555"),
    (b"MAIL FROM:<@relay:a@b>\r\n", "250"), (b"MAIL FROM: <a@b>\r\n", "250"),
])
def test_mail_parameters(line, code):
    text, _ = run([b"LHLO c\r\n", line])
    assert codes(text)[-1] == code


def test_nested_mail_and_rset():
    text, _ = run([b"LHLO c\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nRSET\r\nMAIL FROM:<a@b>\r\n"])
    assert codes(text) == ["220", "250", "250", "503", "250", "250"]


def test_long_command_line_is_refused_and_session_goes_on():
    limits = lmtp.Limits(command_line=512)
    text, _ = run([b"LHLO c\r\n", b"NOOP " + b"x" * 600, b"x" * 600 + b"\r\n", b"NOOP\r\n"], limits=limits)
    assert codes(text) == ["220", "250", "500", "250"]


def test_oversize_message_gets_552_per_recipient_and_no_delivery():
    limits = lmtp.Limits(message_size=100)
    text, txns = run([b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@d>\r\nRCPT TO:<b@d>\r\nDATA\r\n",
                      b"x" * 80 + b"\r\n" + b"y" * 80 + b"\r\n.\r\nNOOP\r\n"], limits=limits)
    assert codes(text) == ["220", "250", "250", "250", "250", "354", "552", "552", "250"]
    assert txns == []


def test_very_long_data_line_is_bounded_and_kept():
    limits = lmtp.Limits(message_size=10_000_000)
    big = b"z" * 200_000
    _, txns = run([b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@d>\r\nDATA\r\n", big[:70000], big[70000:] + b"\r\n.\r\n"],
                  limits=limits)
    assert txns[0].message == big + b"\n"


def test_too_many_errors_closes():
    limits = lmtp.Limits(errors=3)
    text, _ = run([b"X\r\nX\r\nX\r\nX\r\n"], limits=limits)
    assert codes(text) == ["220", "500", "500", "421", "<cl"]


def test_recipient_limit():
    limits = lmtp.Limits(recipients=1)
    text, _ = run([b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@d>\r\nRCPT TO:<b@d>\r\n"], limits=limits)
    assert codes(text) == ["220", "250", "250", "250", "452"]


def test_input_waits_while_a_lookup_is_pending():
    m = lmtp.LMTPServer("mx.test")
    m.start()
    m.feed(b"LHLO c\r\nMAIL FROM:<s@x>\r\n")
    acts = m.feed(b"RCPT TO:<a@d>\r\nNOOP\r\n")
    assert isinstance(acts[-1], lmtp.CheckRecipient) and m.waiting
    assert m.feed(b"RSET\r\n") == []        # buffered, not answered before the RCPT reply
    acts = m.recipient_checked(OK_RCPT, "user")
    sent = b"".join(a.data for a in acts if isinstance(a, lmtp.SendReply))
    assert sent == b"250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"


# --- trace helpers -------------------------------------------------------------------------

POSTFIX_SMTPD = (b"Received: from mail.remote.test (mail.remote.test [192.0.2.7])\n"
                 b"\tby mx.example.org (Postfix) with ESMTPS id 4WxYz12AbC\n"
                 b"\tfor <alice@example.org>; Sat, 21 Nov 2026 10:00:00 +0000 (UTC)\n")


@pytest.mark.parametrize("message,queue_id", [
    (POSTFIX_SMTPD + b"Subject: x\n\nbody\n", "4WxYz12AbC"),
    # The topmost Postfix one wins (an after-filter reinjection is the queue that delivers).
    (b"Received: by mx.example.org (Postfix, from userid 0)\r\n\tid 9F1A2B3C4D; Sat, 21 Nov 2026\r\n"
     + POSTFIX_SMTPD + b"\n", "9F1A2B3C4D"),
    # Another MTA's Received above it is skipped; Postfix's below is used.
    (b"Received: from a by b.test (Exim 4.96) with esmtp id 1tAbCd-000123-Xy\n" + POSTFIX_SMTPD + b"\n",
     "4WxYz12AbC"),
    (b"Received: from a by b.test (Exim 4.96) with esmtp id 1tAbCd-000123-Xy\nSubject: x\n\n", None),
    (b"Subject: no trace\n\n" + POSTFIX_SMTPD, None),     # in the body: not a header
    (b"Received: by mx.example.org (Postfix)\n\t; no id here\n\n", None),
    (b"", None),
])
def test_postfix_queue_id(message, queue_id):
    assert lmtp.postfix_queue_id(message) == queue_id


def test_received_header_per_rfc5321():
    h = lmtp.received_header(lhlo="mx.example.org", peer_ip="127.0.0.1", by="store.example.org",
                             recipient="alice@example.org", now=0).decode()
    lines = h.split("\n")
    assert lines[0] == "Received: from mx.example.org ([127.0.0.1])"
    assert lines[1] == "\tby store.example.org (Owlery) with LMTP"
    assert re.match(r"\tfor <alice@example.org>; \w{3}, \d\d \w{3} 19(69|70) \d\d:\d\d:\d\d [+-]\d{4}$", lines[2])
    assert h.endswith("\n") and lines[3] == ""
    v6 = lmtp.received_header(lhlo="x(evil)\r\nInjected: 1", peer_ip="::1", by="h", recipient="a@b",
                              now=0).decode()
    assert v6.startswith("Received: from xevil ([IPv6:::1])\n") and "Injected" not in v6
    unix = lmtp.received_header(lhlo="h", peer_ip=None, by="h", recipient="a@b", now=0).decode()
    assert unix.startswith("Received: from h\n\tby h (Owlery) with LMTP\n\tfor <a@b>; ")
