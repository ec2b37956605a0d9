"""Reply validation and typed errors (owlery.reply, owlery.errors)."""

import pytest

from owlery.errors import DirectoryUnavailable, OwleryError, TemporaryFailure
from owlery.reply import Reply


@pytest.mark.parametrize("code,dsn,text", [
    (450, "4.7.1", "Greylisted, try again later"),
    (550, "5.1.1", "<nobody@example.org>: Recipient address rejected: User unknown"),
    (250, "2.0.0", "Ok"),
    (552, "5.2.2", ""),
    (421, "4.3.2", "x" * 500),
])
def test_valid_replies(code, dsn, text):
    reply = Reply(code, dsn, text)
    assert str(reply).startswith(f"{code} {dsn}")


@pytest.mark.parametrize("code,dsn,text,why", [
    (450, "5.1.1", "x", "disagrees"),          # DSN class 5 with a 4xx code
    (550, "4.7.1", "x", "disagrees"),          # DSN class 4 with a 5xx code
    (250, "4.0.0", "x", "disagrees"),
    (354, "3.0.0", "x", "not a 2xx"),          # intermediate replies are not decisions
    (600, "5.0.0", "x", "not a 2xx"),
    (99, "5.0.0", "x", "not a 2xx"),
    (True, "5.0.0", "x", "not a 2xx"),
    (550, "5.1", "x", "class.subject.detail"),
    (550, "5.1.1.1", "x", "class.subject.detail"),
    (550, "3.1.1", "x", "class.subject.detail"),
    (550, "5.1000.1", "x", "class.subject.detail"),
    (550, "5.1.1\n", "x", "class.subject.detail"),    # a regex's `$` took the newline
    (550, "5.1.1\r\nX-Injected: 1", "x", "class.subject.detail"),
    (550, "5.\u0661.1", "x", "class.subject.detail"),  # ARABIC-INDIC DIGIT ONE is not 0-9
    (550, "5..1", "x", "class.subject.detail"),
    (550, None, "x", "class.subject.detail"),
    (550, "5.1.1", "line\r\nbreak", "non-printable"),
    (550, "5.1.1", "tab\there", "non-printable"),
    (550, "5.1.1", "nul\x00", "non-printable"),
    (550, "5.1.1", "del\x7f", "non-printable"),
    (550, "5.1.1", "caf\u00e9", "non-ASCII"),
    (550, "5.1.1", "x" * 502, "SMTP allows 510"),
])
def test_invalid_replies(code, dsn, text, why):
    with pytest.raises(ValueError, match=why):
        Reply(code, dsn, text)


def test_reply_at_exact_limit():
    text = "x" * (510 - len("550 5.1.1 "))
    assert len(str(Reply(550, "5.1.1", text))) == 510


def test_safe_text():
    assert Reply.safe_text("a\r\nb\u00e9") == "a??b?"
    Reply(554, "5.7.1", Reply.safe_text("virus: \x1b[31mEvil\u2603" * 100))  # always valid


def test_errors_carry_their_reply():
    assert DirectoryUnavailable().reply.is_temporary
    assert issubclass(DirectoryUnavailable, TemporaryFailure)
    custom = OwleryError("boom", Reply(452, "4.2.2", "Mailbox full"))
    assert custom.reply.code == 452 and str(custom) == "boom"
