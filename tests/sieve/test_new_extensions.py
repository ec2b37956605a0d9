"""Table tests for comparator-i;unicode-casemap (RFC 5051), replace and enclose (RFC 5703 5, 6)
through the public API (sieve.api); the Sieve-language tests are tests/sieve/svtest/
unicode-casemap.svtest and replace.svtest."""

from __future__ import annotations

import datetime as dt
import base64
import email

import pytest

from sieve.api import Envelope, FileInto, Keep, MemoryHost, SieveCompileError, compile_script, run
from sieve.match import unicode_fold

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ENV = Envelope(mail_from="alice@example.com", rcpt_to="bob@example.org")
MSG = (b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: =?utf-8?q?=C3=89t=C3=A9_Stra=C3=9Fe?=\r\n"
       b"Content-Type: text/plain\r\n\r\nOriginal body\r\n")


def _run(src, message=MSG):
    return run(compile_script(src), message, ENV, host=MemoryHost(), now=NOW)


@pytest.mark.parametrize("a,b,equal", [
    ("été", "ÉTÉ", True),
    ("e\u0301te\u0301", "ÉTÉ", True),          # decomposed = composed
    ("ΣΟΦΊΑ", "σοφία", True),
    ("σοφίας", "ΣΟΦΊΑΣ", True),                 # final sigma
    ("ｆｉｌｅ", "FILE", True),                  # compatibility (fullwidth)
    ("ǆ", "ǅ", True),                           # titlecase digraph
    ("Straße", "STRASSE", False),               # simple mappings only (RFC 5051 2)
    ("é", "e", False),
])
def test_unicode_fold(a, b, equal):
    assert (unicode_fold(a) == unicode_fold(b)) is equal


@pytest.mark.parametrize("test,matched", [
    ('header :comparator "i;unicode-casemap" :is "subject" "ÉTÉ STRAßE"', True),
    ('header :comparator "i;unicode-casemap" :contains "subject" "straß"', True),
    ('header :comparator "i;unicode-casemap" :matches "subject" "?t? *"', True),
    ('header :comparator "i;ascii-casemap" :is "subject" "ÉTÉ STRAßE"', False),
    ('header :comparator "i;unicode-casemap" :is "subject" "ete strasse"', False),
])
def test_unicode_casemap_matching(test, matched):
    r = _run(f'require "comparator-i;unicode-casemap";\nif {test} {{ discard; }}\n')
    assert r.ok
    assert (not r.implicit_keep) is matched


def test_unicode_casemap_match_values_are_original_text():
    r = _run('require ["comparator-i;unicode-casemap", "variables", "fileinto"];\n'
             'if header :comparator "i;unicode-casemap" :matches "subject" "ÉTÉ *" { fileinto "${1}"; }\n')
    assert [a.mailbox for a in r.actions if isinstance(a, FileInto)] == ["Straße"]


@pytest.mark.parametrize("src", [
    'if header :comparator "i;unicode-casemap" :is "subject" "x" { keep; }',                 # not required
    'require ["comparator-i;unicode-casemap", "regex"];\n'
    'if header :comparator "i;unicode-casemap" :regex "subject" "x" { keep; }',
    'replace "x";',                                                                         # not required
    'require "enclose";\nenclose :headers "bad name:" "x";',
    'require "enclose";\nenclose :subject "a";',                                            # no text
    'require "replace";\nreplace :from "a" :from "b" "x";',
    'require "replace";\nreplace ["a", "b"];',
])
def test_compile_errors(src):
    with pytest.raises(SieveCompileError):
        compile_script(src)


def test_replace_keep_before_and_after():
    r = _run('require ["replace", "fileinto"];\nfileinto "Before";\n'
             'replace :subject "Nouveau résumé" "New body";\nfileinto "After";\n')
    assert r.ok
    before, after = [a for a in r.actions if isinstance(a, FileInto)]
    assert r.message_for(before) == MSG
    m = email.message_from_bytes(r.message_for(after))
    assert m.get_payload(decode=True) == b"New body"
    assert str(email.header.make_header(email.header.decode_header(m["Subject"]))) == "Nouveau résumé"
    assert m["Original-Subject"] == "=?utf-8?q?=C3=89t=C3=A9_Stra=C3=9Fe?="
    assert m.get_content_type() == "text/plain"
    assert b"\xc3" not in r.message_for(after).split(b"\r\n\r\n")[0]      # header stays 7-bit
    assert r.message == r.message_for(after)                               # the implicit keep too


def test_enclose_builds_multipart_with_the_message_inside():
    r = _run('require "enclose";\nenclose :subject "Wrapped" :headers "To" "Look at this.";\nkeep;\n')
    assert r.ok
    (k,) = [a for a in r.actions if isinstance(a, Keep)]
    m = email.message_from_bytes(r.message_for(k))
    assert m.get_content_type() == "multipart/mixed"
    assert m["Subject"] == "Wrapped" and m["To"] == "bob@example.org"
    assert m["From"] == "<bob@example.org>" and m["Date"]
    text, inner = m.get_payload()
    assert text.get_payload(decode=True) == b"Look at this."
    assert inner.get_content_type() == "message/rfc822"
    assert inner.get_payload()[0].get_payload() == "Original body\r\n"


MULTI = (b"From: alice@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n"
         b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
         b"--b\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n"
         b"--b\r\nContent-Type: application/x-msdownload\r\n\r\nMZ\r\n"
         b"--b--\r\nepilogue\r\n")


def test_replace_inside_foreverypart_replaces_each_matching_part():
    r = _run('require ["replace", "foreverypart", "mime"];\n'
             'foreverypart { if header :mime :type "content-type" "application" { replace "Attachment removed."; } }\n',
             message=MULTI)
    assert r.ok, r.errors
    m = email.message_from_bytes(r.message)
    parts = m.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain"] * 3
    assert [p.get_payload(decode=True) for p in parts] == [b"hello", b"Attachment removed.", b"Attachment removed."]
    assert m["Subject"] == "parts"
    assert r.message.endswith(b"--b--\r\nepilogue\r\n")
    assert b"preamble" in r.message and b"UEsDBA" not in r.message and b"MZ" not in r.message


def test_replace_does_not_reach_into_a_base64_message_rfc822():
    # RFC 2046 5.2.1 allows no base64 for message/rfc822: such a part is read in place,
    # undecoded, as sieve-test reads it (tests/sieve/test_mime_differential.py), so no part
    # of the enclosed message is visited and nothing is replaced.
    inner = base64.b64encode(b"Subject: in\r\nContent-Type: text/plain\r\n\r\nx\r\n")
    msg = (b"Subject: out\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + inner + b"\r\n--b--\r\n")
    r = _run('require ["replace", "foreverypart", "mime"];\n'
             'foreverypart { if header :mime :subtype "content-type" "plain" { replace "x"; } }\n', message=msg)
    assert r.status == "ok"
    assert r.message == msg
