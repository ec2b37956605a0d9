"""Engine fixes from the differential session with the generator's opt-in shapes
(scripts/sieve-differential --shapes all): each test is a case whose outcome the RFC decides,
with the section named, and which Owlery got wrong before the fix."""

from __future__ import annotations

import datetime as dt

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, compile_script, run

NOW = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _folders(src: str, message: bytes) -> list[str]:
    settings = Settings()
    result = run(
        compile_script(src, settings=settings),
        message,
        Envelope("alice@example.com", "bob@example.org"),
        host=MemoryHost(("INBOX", "Foo")),
        settings=settings,
        environment={},
        now=NOW,
    )
    return [a.mailbox for a in result.actions if hasattr(a, "mailbox")]


QP_EQUALS_BARE_CR = (
    b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nx abc=\r\r\ndef y\r\n"
)


def test_qp_equals_before_a_bare_cr_is_not_a_soft_line_break():
    """RFC 2045 section 6.7: only '=' at the end of an encoded line (before its CRLF) is a soft
    line break; an '=' followed by a bare CR is neither that nor a hex pair, and rule (1)'s note
    has a robust decoder keep it as it is. Python's quopri joined 'abc' and 'def' (seed 94003
    pair 1494 of --shapes all: sieve-test keeps the '=')."""
    body = 'require ["body", "fileinto"]; if body :content "text" :contains "%s" { fileinto "Foo"; }'
    assert _folders(body % "abcdef", QP_EQUALS_BARE_CR) == []
    assert _folders(body % "abc=", QP_EQUALS_BARE_CR) == ["Foo"]
    # a real soft line break (CRLF or a bare LF) still joins the lines
    soft = QP_EQUALS_BARE_CR.replace(b"abc=\r\r\n", b"abc=\r\n")
    assert _folders(body % "abcdef", soft) == ["Foo"]
    assert _folders(body % "abcdef", soft.replace(b"\r\n", b"\n")) == ["Foo"]
