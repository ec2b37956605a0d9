"""Owlery's own Sieve-language tests (tests/sieve/svtest/*.svtest: copy, ereject, ...),
run through the testsuite harness like the Pigeonhole corpus; every block must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from sieve.testsuite import run_file

HERE = Path(__file__).resolve().parent / "svtest"
FILES = sorted(HERE.glob("*.svtest"))


def test_there_are_svtests():
    assert FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_svtest(path):
    rep = run_file(str(path))
    bad = [f"{b.index} {b.name}: {b.reason}" for b in rep.blocks if b.status != "PASS"]
    assert rep.blocks and not bad and rep.case_error is None, (bad, rep.case_error, rep.output)
