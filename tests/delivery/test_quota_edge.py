"""Delivery at the quota edge: a message accepted at SMTP time is delivered, not bounced.

`delivery_quota_overrun_allowance` (Maildir++ soft quota): a mailbox still under its byte
limit takes one last message that overruns it by at most the allowance (and at most a tenth
of the limit); the next message is then refused at RCPT by the policy daemon's quota check.
The LMTP dialogue is the real state machine (sieve.delivery.lmtp) answered by the real
UserResolver and DeliveryExecutor on a files directory; the policy check is the real pipeline.
"""

from __future__ import annotations

import pytest
from twisted.internet import task

from owlery.directory import open_directory
from owlery.maildir import Maildir, Quota, QuotaExceeded, Usage
from owlery.reply import Reply
from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest
from sieve.delivery import lmtp
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import DELIVERY_QUOTA_OVERRUN_ALLOWANCE, UserResolver

LIMIT = 1_048_576
FREE = 1000
# What the milter adds after the policy check: about 800 bytes of trace and result headers.
MILTER_HEADERS = (
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.test; s=mx;\n"
    b"\th=from:to:subject:date:message-id; bh=" + b"A" * 44 + b";\n\tb=" + b"B" * 344 + b"\n"
    b"Authentication-Results: mx.example.org; dkim=pass header.d=sender.test;\n"
    b"\tspf=pass smtp.mailfrom=sender.test; dmarc=pass header.from=sender.test\n"
    b"X-Spam-Status: No, score=0.1 required=5.0 tests=BAYES_00,DKIM_SIGNED,DKIM_VALID\n"
    b"X-Spam-Score: 0.1\nX-Spam-Level: \n"
)


def settings_for(tmp_path, **over) -> Settings:
    (tmp_path / "mailboxes").write_text("edge@example.org example.org/edge\n")
    (tmp_path / "quotas").write_text(f"edge@example.org {LIMIT}S\n")
    values = dict(files_mailboxes=str(tmp_path / "mailboxes"), files_quotas=str(tmp_path / "quotas"),
                  files_maildir_base=str(tmp_path / "mail"),
                  maildir_path_template=str(tmp_path / "mail/{domain}/{localpart}"),
                  delivery_sieve_script_template=str(tmp_path / "sieve/{localpart}.sieve"),
                  state_sqlite_path=str(tmp_path / "state.sqlite"), maildir_fsync="never")
    values.update(over)
    return Settings().replace(**values)


def fill(tmp_path, free: int) -> None:
    """A mailbox `free` bytes short of its limit (as our LDA or Dovecot would keep it)."""
    d = tmp_path / "mail/example.org/edge"
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    # Messages on disk that sum to the file (empty files named with their S= sizes): a file that
    # says full is checked against the Maildir, as Dovecot does.
    (d / f"cur/1.M1P1.fill,S={LIMIT - free - 5000}:2,S").write_bytes(b"")
    (d / "cur/2.M1P1.fill,S=5000:2,S").write_bytes(b"")
    (d / "maildirsize").write_text(f"{LIMIT}S\n{LIMIT - free - 5000} 1\n5000 1\n")


def lmtp_session(settings, message: bytes) -> list[str]:
    """One LMTP transaction for edge@example.org; the reply lines, first digits first."""
    resolver = UserResolver(settings, open_directory(settings))
    executor = DeliveryExecutor(settings, program="lmtpd")
    server = lmtp.LMTPServer("mx.example.org", lmtp.Limits())
    out: list[bytes] = []

    def act(actions):
        for a in actions:
            if isinstance(a, lmtp.SendReply):
                out.append(a.data)
            elif isinstance(a, lmtp.CheckRecipient):
                user = resolver.lookup(a.address)
                reply = Reply(250, "2.1.5", "Ok") if user else Reply(550, "5.1.1", "unknown")
                act(server.recipient_checked(reply, user))
            elif isinstance(a, lmtp.Deliver):
                act(server.delivered([executor.deliver(a.transaction.message, a.transaction.sender,
                                                       r.address, r.user).reply
                                      for r in a.transaction.recipients]))

    act(server.start())
    act(server.feed(b"LHLO mx.example.org\r\nMAIL FROM:<someone@sender.test>\r\n"
                    b"RCPT TO:<edge@example.org>\r\nDATA\r\n"))
    act(server.feed(message.replace(b"\n", b"\r\n") + b".\r\nQUIT\r\n"))
    return [line for line in b"".join(out).decode().split("\r\n") if line and not line.startswith("250-")]


def policy(settings, **attrs) -> str:
    clock = task.Clock()
    ctx = CheckContext(settings, clock, InlineExecutor(), directory=open_directory(settings, clock=clock.seconds))
    p = Pipeline(settings, ctx, {"RCPT": ["quota"], "END-OF-MESSAGE": ["quota"]})
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
            "client_address": "192.0.2.10", "client_name": "mail.sender.test", "sender": "someone@sender.test",
            "recipient": "edge@example.org", "instance": "a1", "size": "0"}
    base.update({k: str(v) for k, v in attrs.items()})
    out = []
    p.decide(PolicyRequest(base), p.new_session(), clock.seconds()).addBoth(out.append)
    return out[0].action.render()


def message(body_len: int) -> bytes:
    """A message as the client sent it (what Postfix counts), and as the milter leaves it."""
    sent = b"From: someone@sender.test\nTo: edge@example.org\nSubject: edge\n\n" + b"x" * body_len + b"\n"
    return sent, MILTER_HEADERS + sent


def test_headers_push_it_over_by_less_than_the_allowance_delivered_then_next_refused_at_rcpt(tmp_path):
    s = settings_for(tmp_path)
    fill(tmp_path, FREE)
    sent, as_delivered = message(FREE - 150)
    assert len(sent) <= FREE < len(as_delivered) + 80      # fits as sent; not with milter and trace headers
    replies = lmtp_session(s, as_delivered)
    assert replies[-2].startswith("250 2.0.0 <edge@example.org>"), replies       # not 552: no bounce
    stored = list((tmp_path / "mail/example.org/edge/new").iterdir())
    assert len(stored) == 1
    used = Maildir(str(tmp_path / "mail/example.org/edge")).usage(Quota(LIMIT))
    assert LIMIT < used.bytes < LIMIT + s.delivery_quota_overrun_allowance
    # the mailbox is now over its limit: the next message is refused in the SMTP dialogue
    assert policy(s, size=0) == "552 5.2.2 Mailbox full"
    assert policy(s, size=10, protocol_state="END-OF-MESSAGE", recipient_count=1) == "552 5.2.2 Mailbox full"
    # and were it accepted anyway (a race), delivery no longer takes it: no second overrun
    replies = lmtp_session(s, message(10)[1])
    assert replies[-2].startswith("552 5.2.2"), replies


def test_the_policy_check_now_refuses_that_message_at_end_of_message(tmp_path):
    s = settings_for(tmp_path)
    fill(tmp_path, FREE)
    sent, _ = message(FREE - 150)
    assert policy(s, size=len(sent), protocol_state="END-OF-MESSAGE", recipient_count=1) \
        == "552 5.2.2 Mailbox full"


def test_overrun_beyond_the_allowance_is_still_refused(tmp_path):
    s = settings_for(tmp_path, delivery_quota_overrun_allowance="2k")
    fill(tmp_path, FREE)
    replies = lmtp_session(s, message(FREE + 2048)[1])
    assert replies[-2].startswith("552 5.2.2"), replies
    assert not list((tmp_path / "mail/example.org/edge/new").iterdir())


def test_allowance_zero_is_a_hard_quota(tmp_path):
    s = settings_for(tmp_path, delivery_quota_overrun_allowance=0)
    fill(tmp_path, FREE)
    replies = lmtp_session(s, message(FREE - 150)[1])
    assert replies[-2].startswith("552 5.2.2"), replies


def test_the_setting_names_its_rcpt_time_partner():
    assert "quota_headers_allowance" in DELIVERY_QUOTA_OVERRUN_ALLOWANCE.doc
    assert Settings().delivery_quota_overrun_allowance == 65536


M = Maildir._over


@pytest.mark.parametrize("quota,used,size,over", [
    (Quota(1000, 0, 64), Usage(900, 1), 164, False),    # over by 64: within
    (Quota(1000, 0, 64), Usage(900, 1), 165, True),     # over by 65
    (Quota(1000, 0, 64), Usage(999, 1), 65, False),     # still under: one last message
    (Quota(1000, 0, 64), Usage(1000, 1), 1, True),      # at the limit: full, no grace
    (Quota(1000, 0, 64), Usage(1010, 2), 1, True),      # already over (the last one went in)
    (Quota(1000, 0, 0), Usage(900, 1), 101, True),      # no allowance: hard
    (Quota(1000, 0, 0), Usage(900, 1), 100, False),
    (Quota(1000, 0, 4096), Usage(0, 0), 1101, True),    # capped at a tenth of the limit (100)
    (Quota(1000, 0, 4096), Usage(0, 0), 1100, False),
    (Quota(0, 5, 4096), Usage(10**9, 4), 10**6, False),  # no byte limit
    (Quota(0, 5, 4096), Usage(0, 5), 1, True),          # message count: no grace
    (Quota(1000, 5, 64), Usage(900, 5), 1, True),
])
def test_over_rule(quota, used, size, over):
    assert M(quota, used, size) is over


def test_overrun_is_not_part_of_the_definition(tmp_path):
    # maildirsize keeps "<bytes>S": a quota with an allowance equals the file's definition,
    # so delivery does not recount (and rewrite) maildirsize at each message
    assert Quota(1000, 0, 64) == Quota(1000) and Quota(1000, 0, 64).definition() == "1000S"
    md = Maildir(str(tmp_path / "Maildir"), fsync="never")
    q = Quota(1000, 0, 64)
    md.deliver(b"x" * 899 + b"\n", quota=q)
    (tmp_path / "Maildir/maildirsize").write_text("1000S\n900 1\n")
    md.deliver(b"y" * 149 + b"\n", quota=q)                 # 1050: over by 50
    assert (tmp_path / "Maildir/maildirsize").read_text() == "1000S\n900 1\n150 1\n"
    with pytest.raises(QuotaExceeded):
        md.deliver(b"z\n", quota=q)
