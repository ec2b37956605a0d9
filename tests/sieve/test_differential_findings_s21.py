"""Findings of the twenty-first differential session against Pigeonhole's sieve-test (seeds
2101-2110, 4,000 pairs each with --shapes all, and more: see the session's report), each decided
by the RFC.

1. seed 2101 pair 3679, seed 2108 pair 3759: addheader with a value whose octets are not UTF-8 (a
   ${hex:c3}, or a match variable that '?' cut inside a character, RFC 5228 2.7.1) wrote those
   octets into an encoded word labelled utf-8 ("=?utf-8?b?W8Nd?="), which no reader can decode:
   RFC 2047 section 5 wants the encoded text in the charset it names, and octets that are not
   UTF-8 are no UTF-8 (RFC 3629 section 3). Pigeonhole 0.5.19 writes U+FFFD for each run of such
   octets ("=?utf-8?q?[=EF=BF=BD]?=", checked with sieve-test); Owlery now does too
   (sieve/extensions/editheader.py).
2. decoding probe seed 2104 case 1593: a UTF-8 text part whose decoded octets end "x\xe2\x82\xe9"
   (quoted-printable "x=E2=82=E9=") read "x" where Pigeonhole reads "x\ufffd" (body :text, extracttext).
   Dovecot takes \xe2 as a three-octet character, finds \xe9 no continuation octet and writes U+FFFD,
   then waits for the rest of the \xe9 character the text ends in (dropped); Owlery cut that \xe9
   and then also dropped the \xe2\x82 before it, as if it were waiting for them too. Octets that
   form no character are U+FFFD, never nothing (RFC 3629 3, RFC 5228 2.7.2 compares decoded text);
   the held \xe9 stays dropped as Dovecot drops it (sieve/message.py, _decode_marked).
"""

from __future__ import annotations

import email.header

import pytest

from tests.sieve.test_differential_fixes_s12 import _run
from tests.sieve.test_editheader_hostile import _added_field


def _decoded(field: bytes) -> str:
    """The added field's value as a reader decodes it (strict UTF-8: bad octets raise)."""
    value = field.split(b":", 1)[1].decode("ascii").strip()
    return "".join(
        part.decode(charset or "ascii") if isinstance(part, bytes) else part
        for part, charset in email.header.decode_header(value)
    )


# === 1. an added value whose octets are not UTF-8 ===============================================
#
# (value in the script, the field as Pigeonhole 0.5.19 writes it, decoded): one U+FFFD for each
# run of octets that are not UTF-8, whatever its length (checked with sieve-test)

NOT_UTF8_CASES = [
    (b"[${hex:c3}]", "[\ufffd]"),                      # a truncated two-octet sequence
    (b"[${hex:c3 c3 41}]", "[\ufffdA]"),               # two bad octets: one U+FFFD
    (b"[${hex:e6 97}]", "[\ufffd]"),                   # a truncated three-octet sequence
    (b"[${hex:ff 80 80 41}]", "[\ufffdA]"),            # octets never in UTF-8
    (b"[${hex:e6 97 e6 97 a5}]", "[\ufffd\u65e5]"),    # a cut character, then a whole one
    (b"[${hex:ed a0 80}]", "[\ufffd]"),                # a surrogate's encoding
    (b"[${hex:c0 80}]", "[\ufffd]"),                   # an overlong NUL
    (b"a ${hex:c3} b caf${hex:c3 a9}", "a \ufffd b caf\u00e9"),
]


@pytest.mark.parametrize(("value", "decoded"), NOT_UTF8_CASES)
def test_added_value_not_utf8_is_written_with_replacement_characters(value, decoded):
    r = _run(b'require ["editheader", "encoded-character"]; addheader "X-A" "' + value + b'"; keep;')
    field = _added_field(r.message, b"X-A")
    assert field.isascii(), field
    assert _decoded(field) == decoded


def test_match_value_that_cuts_a_character_is_written_with_a_replacement_character():
    # seed 2101 pair 3679, minimised: '?' takes one octet of "é" (RFC 5228 2.7.1): ${1} is the
    # first octet of it; the field written must decode as UTF-8
    src = ('require ["editheader", "variables"];'
           'if header :matches "Subject" "?*" { addheader "X-A" "[${1}]"; } keep;')
    r = _run(src, b"Subject: \xc3\xa9 x\r\nFrom: a@example.com\r\n\r\nbody\r\n")
    assert _decoded(_added_field(r.message, b"X-A")) == "[\ufffd]"


# === 2. text ending in octets that form no character, then an incomplete one =====================
#
# (quoted-printable body, what extracttext and body :text read), one-part and a multipart's part:
# Pigeonhole 0.5.19's readings, checked with sieve-test

HELD_CASES = [
    (b"x=E2=82=E9=", "x\ufffd"),           # seed 2104 case 1593: \xe2\x82 no character, \xe9 held
    (b"x=C3=E9=", "x\ufffd"),              # \xc3 no character, \xe9 held
    (b"x=E2=82=E9=C3=", "x\ufffd"),        # the same, \xe9\xc3 held
    (b"x=E2=82=41=E9=", "x\ufffdA"),       # (agreed before)
    (b"x=E2=E9=", "x"),                   # \xe2 announces three octets, two are left: all held
    (b"x=E9=", "x"),                      # only a held character
]


def _extracted(body: bytes, multipart: bool) -> str:
    import urllib.parse
    src = ('require ["variables", "foreverypart", "extracttext", "editheader", "enotify", "mime"];'
           'foreverypart { if header :mime :type "Content-Type" "text" { extracttext "t"; '
           'set :encodeurl "t" "${t}"; addheader "X-E" "${t}"; } }')
    part = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body
    if multipart:
        message = (b"From: a@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
                   b"Content-Type: multipart/mixed; boundary=\"P\"\r\n\r\n--P\r\n" + part + b"\r\n\r\n--P--\r\n")
    else:
        message = b"From: a@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n" + part + b"\r\n"
    r = _run(src, message)
    field = _added_field(r.message, b"X-E")
    return urllib.parse.unquote(field.split(b":", 1)[1].strip().decode("ascii"), errors="strict")


@pytest.mark.parametrize("multipart", [False, True])
@pytest.mark.parametrize(("body", "text"), HELD_CASES)
def test_octets_that_form_no_character_before_a_held_one_are_a_replacement_character(body, text, multipart):
    assert _extracted(body, multipart) == text


@pytest.mark.parametrize(("body", "found"), [(b"x=E2=82=E9=", True), (b"x=C3=E9=", True), (b"x=E9=", False)])
def test_body_text_sees_the_replacement_character(body, found):
    src = 'require ["body", "fileinto"]; if body :text :contains "\ufffd" { fileinto "Foo"; }'
    message = (b"From: a@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8"
               b"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body + b"\r\n")
    r = _run(src, message)
    assert ([a.mailbox for a in r.effective_actions()] == ["Foo"]) is found
