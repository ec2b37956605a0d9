"""The Postfix queue id read without regular expressions (sieve.delivery.queueid) finds what
the patterns it replaced find, on generated Received values full of the tokens, white space,
word characters and non-ASCII letters that decide a match; and reading it loads no `re`."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sieve.delivery import queueid

ROOT = Path(__file__).resolve().parents[2]
BY = re.compile(r"\bby\s+\S+\s+\(Postfix\b[^)]*\)")
ID = re.compile(r"\bid\s+([0-9A-Za-z]{5,32})\b")
PIECES = ["by", "id", " ", "\t", "\n", "\u00a0", "\u2028", "mx.example.org", "(Postfix", "(Postfix)", ")", "(",
          "Postfix", "x", "_", "\u00e9", "\ufffd", "4QnT2x1234", "ABCDE", "abcd", "Z" * 33, "0" * 32, ";", "with",
          "ESMTPS", "for", "<a@b>", "from", "-"]


def by_the_patterns(value: str) -> str | None:
    by = BY.search(value)
    if not by:
        return None
    m = ID.search(value, by.end())
    return m.group(1) if m else None


def by_hand(value: str) -> str | None:
    end = queueid._postfix_by_end(value)
    return queueid._queue_id_after(value, end) if end >= 0 else None


@pytest.mark.parametrize("seed", range(4))
def test_hand_search_agrees_with_the_patterns(seed):
    rnd = random.Random(seed)
    found = 0
    for _ in range(25_000):
        if rnd.random() < 0.5:
            value = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 14)))
        else:       # a Received value, each part of it dropped or swapped for another piece now and then
            parts = ["from x", " ", "by", " ", "mx.example.org", " ", "(Postfix", ")", " with ESMTP ", "id", " ",
                     "4QnT2x1234", ";", " for <a@b>"]
            value = "".join(rnd.choice(PIECES) if rnd.random() < 0.12 else "" if rnd.random() < 0.04 else p
                            for p in parts)
        expected = by_the_patterns(value)
        assert by_hand(value) == expected, value
        found += expected is not None
    assert found > 100          # the generator reaches matches, not only misses


@pytest.mark.parametrize("value,expected", [
    ("from mx.example.org by mail.example.com (Postfix) with ESMTPS id 4QnT2x1234 for <a@b>", "4QnT2x1234"),
    ("by mail.example.com (Postfix, from userid 0) id 4QnT2x1234", "4QnT2x1234"),
    ("by mail.example.com (Postfixx) id 4QnT2x1234", None),          # not the word Postfix
    ("by mail.example.com (Postfix) id 4QnT2x1234_", None),          # the id must end a word
    ("by mail.example.com (Postfix) id 4QnT", None),                  # too short
    ("by mail.example.com (Postfix) id " + "A" * 33, None),           # too long
    ("by mail.example.com (Postfix) idx 12345 id 12345", "12345"),    # the first `id` that fits
    ("nearby mail (Postfix) id 12345", None),                         # `by` must start a word
    ("by\u00a0mail\u00a0(Postfix) id\u00a012345", "12345"),            # Unicode white space, as re's \s
    ("by mail (Postfix id 12345", None),                              # no closing parenthesis
])
def test_known_values(value, expected):
    assert by_hand(value) == expected == by_the_patterns(value)


def test_a_message_from_postfix_loads_no_re():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from sieve.delivery.queueid import postfix_queue_id; "
            "q = postfix_queue_id(b'Received: from a (a [192.0.2.1])\\r\\n\\tby mx.example.org (Postfix) with ESMTP"
            " id 4QnT2x1234\\r\\n\\tfor <u@example.org>; Sun, 6 Dec 2026 10:00:00 +0000\\r\\n\\r\\nbody'); "
            "print(q, 're' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["4QnT2x1234", "False"]
