"""Differential test of the generator's opt-in shapes (`--shapes all` of scripts/sieve-differential:
ihave guards, variables modifiers on match variables, HTML parts): a seeded run with them on must
show no difference tests/sieve/differential/deviations.toml does not explain. CI runs PAIRS pairs
of SEED, all of them whatever the machine's load (about 7 s on two idle cores). The shapes are
drawn from a second random stream, so the cases a seed gives without them stay what they were
(test_differential.py's seed, and the deviations found on old seeds, depend on that).
"""

from __future__ import annotations

import argparse
import hashlib

import pytest

from tests.sieve.differential.generator import SHAPES_ALL, make_case
from tests.sieve.differential.runner import parse_shapes
from tests.sieve.differential.test_differential import agreed_run, scratch_runner

SEED = 20261206
PAIRS = 1000

# sha256 over the first 300 cases of test_differential.SEED without shapes, as the generator gave
# them before the shapes existed: a change here changes what every old seed generates.
OLD_SEED, OLD_CASES = 20240917, 300
OLD_DIGEST = "8ae0759d7a72edc16ebfaefd96ca8f17ac816bfbb39b9354828c96dbc2e157b9"


@pytest.fixture(scope="module")
def runner():
    yield from scratch_runner(SHAPES_ALL)


def test_generated_pairs_with_new_shapes_agree_with_pigeonhole(runner):
    rep = agreed_run(runner, SEED, PAIRS)
    # every shape is exercised by the run
    for shape in SHAPES_ALL:
        assert rep.features["shape:" + shape] > PAIRS // 4, dict(rep.features)


def test_without_shapes_old_seeds_generate_what_they_did():
    h = hashlib.sha256()
    for i in range(OLD_CASES):
        c = make_case(OLD_SEED, i)
        h.update(repr((c.script, c.message, c.mail_from, c.rcpt_to, c.orig_rcpt)).encode())
    assert h.hexdigest() == OLD_DIGEST


def test_shapes_change_the_cases_and_stay_a_pure_function():
    a, b = make_case(SEED, 5, SHAPES_ALL), make_case(SEED, 5, SHAPES_ALL)
    assert (a.script, a.message) == (b.script, b.message)
    plain = [make_case(SEED, i) for i in range(20)]
    shaped = [make_case(SEED, i, SHAPES_ALL) for i in range(20)]
    assert sum(p.script != s.script for p, s in zip(plain, shaped)) > 10
    assert any(b"text/html" in s.message and b"</html>" in s.message for s in shaped)
    assert any(b"ihave" in s.script for s in shaped)


def test_shapes_option_parses_names_and_all():
    assert parse_shapes("all") == SHAPES_ALL
    assert parse_shapes("ihave, html") == {"ihave", "html"}
    with pytest.raises(argparse.ArgumentTypeError):
        parse_shapes("ihave,nosuch")
