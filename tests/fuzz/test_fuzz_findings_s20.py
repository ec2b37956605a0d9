"""Regressions of the long fuzz runs of session 20 (scripts/fuzz at 25-50x CI's budgets, atheris).

Each test is one finding, reproduced outside the fuzzer, that failed before its fix:
- ARC verification (milters/stages/arc_verify.py): an ARC-Message-Signature whose c= names no
  canonicalization (`c=rdlaxed`, found by the hunt profile as a mutated seed) raised dkimpy's
  InvalidCanonicalizationPolicyError, which is no DKIMException, out of the stage: the session
  logged an internal error and tempfailed the message (451 4.3.0), so every retry of it was
  deferred until the sender's MTA gave up. RFC 8617 5.2: a signature that does not validate
  makes the chain fail (arc=fail), nothing more.
- quarantine web (web/service.py): a Content-Length of more than 4300 digits (past Python's limit
  for int() of a str) raised ValueError out of Twisted's HTTPChannel.dataReceived: no answer,
  the connection dropped, an "Unhandled Error" traceback logged for every such request.
- banned attachments (milters/stages/banned.py): a message over milter_message_size_limit is
  kept only up to the limit, and the stage scanned that part and called the message clean, so an
  evil.exe after the limit passed (found with 682 small text parts before it, under the fuzz
  harness's 24k limit; 64M by default). Now the part not kept makes the message undecidable
  (banned_undecidable_action), as the antivirus stage treats it.
"""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from milters import effects as fx
from tests.fuzz import test_milter_session as ms
from tests.fuzz import test_web_http as wh

# --- ARC verification -----------------------------------------------------------------------------

ARC_SET = (b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.org; s=a1; t=1700000000; b=AAAA\r\n"
           b"ARC-Message-Signature: i=1; a=rsa-sha256; c=%s; d=example.org; s=a1;"
           b" h=from:to:subject; bh=AAAA; b=AAAA\r\n"
           b"ARC-Authentication-Results: i=1; mx.example.org; spf=pass smtp.mailfrom=example.net\r\n")
MESSAGE = b"From: Alice <alice@example.net>\r\nTo: bob@example.test\r\nSubject: files\r\n\r\nforwarded\r\n"


@pytest.mark.parametrize("canon", [b"rdlaxed", b"relaxed/x", b"rela +0000\rxed", b"", b"/", b"relaxed/relaxed/simple"])
def test_arc_message_signature_with_an_unknown_canonicalization_fails_the_chain(canon):
    outcome = ms.check(ARC_SET % canon + MESSAGE, ms.DEFAULT_ENV, ms.DEFAULT_DNS, known_bugs=False)
    assert outcome.action == fx.ACCEPT, outcome
    assert "ARC_INVALID" in {s.name for s in outcome.symbols}, outcome.symbols


# --- quarantine web -------------------------------------------------------------------------------

def _answer(data: bytes) -> bytes:
    """What the web application's real Twisted site answers `data` (one read, as in test_web_http)."""
    w = wh.world()
    w.sessions()
    proto = w.web.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(transport)
    try:
        proto.dataReceived(data)
        return transport.value()
    finally:
        proto.connectionLost(None)
        for call in w.clock.getDelayedCalls():
            if call.active():
                call.cancel()


LOGIN_FORM = b"csrf=x&username=alice%40example.test&password=alice-pw"


@pytest.mark.parametrize("length, status", [
    (b"9" * 5000, 413),                      # the fuzzer's: 5000 digits
    (b"1" + b"0" * 4300, 413),               # 4301 digits: the first past the limit
    (b"9" * 25, 413),                        # under the limit: refused as too large already
    (b"0" * 5000 + b"%d" % len(LOGIN_FORM), None),    # leading zeros: the length is the form's
])
def test_content_length_of_thousands_of_digits_is_answered(length, status):
    data = (b"POST /login HTTP/1.1\r\nHost: web.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + length + b"\r\n\r\n" + LOGIN_FORM)
    out = _answer(data)
    responses = wh.parse_responses(out)
    assert len(responses) == 1, out[:300]
    if status is None:
        assert responses[0][0] < 500 and responses[0][0] != 413, out[:300]
    else:
        assert responses[0][0] == status, out[:300]
    wh.check(data, [])


# --- banned attachments ---------------------------------------------------------------------------

EXE = (b"--b\r\nContent-Type: application/octet-stream; name=\"evil.exe\"\r\n"
       b"Content-Disposition: attachment; filename=\"evil.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       b"TVqQAAMAAAAEAAAA\r\n")


@pytest.mark.parametrize("texts", [681, 682, 2000])
def test_attachment_past_the_message_size_limit_is_not_called_clean(texts):
    raw = (b"From: Alice <alice@example.net>\r\nTo: bob@example.test\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * texts + EXE + b"--b--\r\n")
    outcome = ms.check(raw, ms.DEFAULT_ENV, ms.DEFAULT_DNS, known_bugs=False)
    # the harness's banned_undecidable_action is reject; 681 parts fit, the file itself is banned
    assert outcome.action == fx.REJECT, outcome
    names = {s.name for s in outcome.symbols}
    assert names & {"BANNED_ATTACHMENT", "BANNED_UNDECIDABLE"}, names
