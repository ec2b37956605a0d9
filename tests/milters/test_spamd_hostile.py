"""spamd answers with numbers that are not ASCII 0-9 (or absurdly long): protocol errors, never a crash.

Sans-I/O: milters.clients.spamd.ResponseParser and SpamdResponse on scripted bytes. The
header block is read as latin-1, so spamd's byte 0xB2 is "²", which str.isdigit() accepts.
"""

import pytest

from milters.clients import ScannerUnavailable
from milters.clients.spamd import SpamdProtocolError, ResponseParser


def parse(raw):
    p = ResponseParser(max_body=4096)
    p.feed(raw)
    if not p.done:
        p.feed_eof()
    return p.response


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb2", b"\xb9\xb3", b"+5", b"-1", b"0x10", b"9" * 5000])
def test_bad_content_length_is_a_protocol_error(length):
    with pytest.raises(SpamdProtocolError, match="Content-length"):
        parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: " + length + b"\r\n\r\nbody")


def test_ascii_content_length_still_read():
    assert parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 4\r\n\r\nbody").body == b"body"
    assert parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length:  04 \r\n\r\nbody").body == b"body"


def test_protocol_error_is_scanner_unavailable():
    # what the spam stage catches (milter_stage_on_error): a 4xx or "continue", not a traceback
    assert issubclass(SpamdProtocolError, ScannerUnavailable)


@pytest.mark.parametrize("spam", [
    "True ; 1\xb2 / 5.0", "True ; 5.0 / \xb2", "True ; " + "9" * 400 + " / 5.0", "True ; 5.0 / 0." + "9" * 400,
])
def test_bad_spam_score_is_a_protocol_error(spam):
    r = parse(b"SPAMD/1.1 0 EX_OK\r\nSpam: " + spam.encode("latin-1") + b"\r\n\r\n")
    with pytest.raises(SpamdProtocolError, match="Spam header"):
        r.score


def test_huge_status_code_is_a_protocol_error():
    with pytest.raises(SpamdProtocolError, match="status line"):
        parse(b"SPAMD/1.1 " + b"9" * 5000 + b" EX_OK\r\n\r\n")


@pytest.mark.parametrize("line", ["١ GTUBE  Arabic-Indic one", "１ GTUBE  fullwidth one",
                                  "1\u0663 GTUBE  mixed", "9" * 400 + " GTUBE  huge"])
def test_rule_line_with_a_non_ascii_score_is_not_a_rule(line):
    body = ("Content analysis details:\n pts rule name  description\n---- ---------\n" + line + "\n").encode()
    r = parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: True ; 5.0 / 5.0\r\n\r\n" % len(body) + body)
    assert r.rules() == []


def test_ascii_rule_line_still_read():
    body = b"---- ---------\n 2.5 SOME_RULE  desc\n-0.1 OTHER  x\n"
    r = parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: True ; 2.4 / 5.0\r\n\r\n" % len(body) + body)
    assert [(h.name, h.score) for h in r.rules()] == [("SOME_RULE", 2.5), ("OTHER", -0.1)]
    assert (r.score, r.threshold) == (2.4, 5.0)
