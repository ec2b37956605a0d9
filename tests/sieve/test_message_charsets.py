"""Sender-chosen charset labels never break header or body decoding (sieve.message).

A label may name a codec that is no text encoding (base64, zlib, rot13, hex, uu) or one that
cannot replace bad bytes (idna, punycode): each reads as UTF-8 (else Latin-1), like an unknown
label, instead of raising out of a header test and failing the user's script.
"""

from __future__ import annotations

import pytest

from sieve.message import Message, decode_2047, decode_charset

LABELS = ["idna", "punycode", "base64", "zlib", "rot13", "hex", "uu", "quopri", "bz2",
          "unicode_escape", "no-such-charset", "utf-8*en"]


@pytest.mark.parametrize("label", LABELS)
def test_encoded_word_with_odd_charset_decodes(label):
    out = decode_2047(f"=?{label}?q?caf=C3=A9_=FF?= tail")
    assert isinstance(out, str) and out.endswith(" tail")


@pytest.mark.parametrize("label", LABELS)
def test_body_with_odd_charset_decodes(label):
    raw = (f"Subject: x\r\nContent-Type: text/plain; charset={label}\r\n\r\ncaf\xc3\xa9 \xff\r\n").encode("latin-1")
    [part] = Message(raw).mime_parts(max_parts=10, max_depth=5)
    assert part.text().startswith("caf")


def test_decode_charset_falls_back_like_an_unknown_label():
    assert decode_charset("café".encode(), "idna") == "café"
    assert decode_charset(b"caf\xe9 x", "zlib") == "caf\ufffd x"   # not UTF-8: U+FFFD (Dovecot)
    assert decode_charset("ÿ".encode("latin-1"), "iso-8859-1") == "ÿ"
