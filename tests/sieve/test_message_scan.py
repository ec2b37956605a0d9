"""The encoded-word reader of sieve.message scans with str and bytes methods; these tests hold
each scan to the pattern it replaced (word runs, Q escapes, base64's stop, the bad-octet
replacement) on generated text, and check the word scan stays linear on hostile headers."""

from __future__ import annotations

import binascii
import random
import re
import time

import pytest

from sieve import message as M

EW_BODY = r"=\?([^?]++)\?([qQbB])\?([^?]*+)\?="
EW_RUN = re.compile(EW_BODY + r"(?:[ \t\r\n]++(?==\?[^?]++\?[qQbB]\?[^?]*+\?=))?")
Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})|_")
BAD_RUN = re.compile("\ufffd?[\ud800-\udfff]+")
PIECES = ["=?", "?=", "?", "=", "utf-8", "q", "Q", "b", "B", "?q?", "?B?", "_", " ", "\t", "\r\n", "\n", "4", "1",
          "E9", "=C3=A9", "w6k", "=?utf-8?q?x?=", "=?iso-8859-1?b?6Q==?=", "a", "é", "\udcff", "\ufffd"]


def old_base64(data: bytes) -> bytes:
    data = re.sub(rb"[ \t\r\n]+", b"", data)
    n = re.match(rb"[A-Za-z0-9+/]*", data).end()
    full = n - n % 4
    out = binascii.a2b_base64(data[:full]) if full else b""
    if n - full >= 2:
        out += binascii.a2b_base64(data[full:n] + b"=" * (4 - (n - full)))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_scans_agree_with_the_patterns(seed):
    rnd = random.Random(seed)
    words = 0
    for _ in range(30_000):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 12)))
        expected = [(m.start(), m.end(), m.group(1), m.group(2), m.group(3)) for m in EW_RUN.finditer(text)]
        assert list(M._word_runs(text)) == expected, text
        words += len(expected)
        raw = text.encode("utf-8", "surrogateescape")
        assert M._q_decoded(raw) == Q_ESCAPE.sub(lambda m: bytes.fromhex(m.group(1).decode()) if m.group(1) else b" ",
                                                 raw), raw
        assert M.decode_base64(raw) == old_base64(raw), raw
        assert M._replace_bad(text) == (text if text.isascii() else BAD_RUN.sub("\ufffd", text)), text
    assert words > 1000


def test_word_scan_is_linear_on_hostile_headers():
    for text in ("=?" * 200_000, "=?utf-8?q?" + "x" * 400_000, ("=?a?q?b?= " + " " * 50) * 5_000,
                 "=?a?q?b?=" + " " * 400_000 + "=?"):
        start = time.process_time()
        list(M._word_runs(text))
        assert time.process_time() - start < 20.0      # linear: well under 1 s; quadratic: hours
