"""The variables extension scans ${...} references, names and numbers with str methods
(sieve.extensions.variables); these tests hold the scans to the patterns they replaced, on
generated strings, and check the reference scan stays linear on hostile text."""

from __future__ import annotations

import random
import re
import time

import pytest

from sieve.extensions import variables as V

REF = re.compile(r"\$\{([^{}]*)\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
NUM = re.compile(r"[0-9]+")
PIECES = ["$", "{", "}", "${", "a", "Z", "_", "0", "9", ".", "é", "١", " ", "env.x", "${1}", "${a.b}", "\\", "*", "?"]


@pytest.mark.parametrize("seed", range(3))
def test_scans_agree_with_the_patterns(seed):
    rnd = random.Random(seed)
    refs = 0
    for _ in range(30_000):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 12)))
        expected = [(m.start(), m.end(), m.group(1)) for m in REF.finditer(text)]
        assert list(V._references(text)) == expected, text
        refs += len(expected)
        assert V._is_name(text) == bool(NAME.fullmatch(text)), text
        assert V._is_number(text) == bool(NUM.fullmatch(text)), text
        assert V._quotewildcard(text) == re.sub(r"([*?\\])", r"\\\1", text)
        assert V._quoteregex(text) == re.sub(r"([.*+?^${}()|\[\]\\/])", r"\\\1", text)
    assert refs > 1000


def test_reference_scan_is_linear_on_hostile_text():
    # every "${" a candidate, none closed: each candidate's scan stops at the next "{"
    for text in ("${" * 200_000, "${" + "x" * 400_000 + "{", ("${" + "a" * 50) * 8_000):
        start = time.process_time()
        assert list(V._references(text)) == []
        assert time.process_time() - start < 20.0      # linear: well under 1 s; quadratic: hours
