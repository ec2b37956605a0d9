"""Compile errors cost linear time, and a caller may stop the compile after a few.

- A script of many bad commands used to take quadratic time in the validator (it counted its
  errors by walking every diagnostic, once per command): 20,000 `fileinto 1;` lines (240 KB,
  under managesieve_max_script_size) took ~15 s of CPU on one of ManageSieve's threads.
- `compile_script(max_errors=N)` stops validating after N errors and reports those
  (managesieve_max_compile_errors; the real-server comparison with Dovecot is
  tests/managesieve/test_dovecot_differential.py::test_compile_errors_are_capped_as_in_dovecot).
"""

from __future__ import annotations

import time

import pytest

from owlery.settings import Settings
from sieve.api import SieveCompileError, compile_script

SETTINGS = Settings()

HOSTILE = {
    # each line one error of a different kind of check
    "bad-argument": b'require "fileinto";\n' + b"fileinto 1;\n" * 20_000,
    "match-variable": b'require "variables";\n' + b'set "a" "${99}";\n' * 20_000,
    "unknown-command": b"".join(b"frob%d;\n" % i for i in range(20_000)),
    "test-as-command": b"true;\n" * 20_000,
    "bad-include": b'require "include";\n' + b'include :personal "../x";\n' * 20_000,
}


def _errors(source: bytes, **kw) -> list:
    with pytest.raises(SieveCompileError) as e:
        compile_script(source, settings=SETTINGS, **kw)
    return [d for d in e.value.diagnostics if d.severity == "error" and d.line > 0]


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_many_errors_cost_linear_time(shape):
    t0 = time.process_time()
    found = _errors(HOSTILE[shape])
    spent = time.process_time() - t0
    assert len(found) >= 20_000, (shape, len(found))
    assert spent < 5.0, (shape, spent)       # was 15-60 s for the first three shapes


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_max_errors_stops_the_compile(shape):
    found = _errors(HOSTILE[shape], max_errors=5)
    assert len(found) == 5
    assert [d.line for d in found] == [found[0].line + i for i in range(5)]


def test_max_errors_counts_errors_not_warnings():
    # an unknown capability in a false ihave branch warns nothing; a warning-only script still
    # compiles with max_errors=1 (warnings never stop the compile)
    src = b'require "fileinto";\nfileinto :copy "x";\nfileinto 1;\nfileinto 2;\n'
    found = _errors(src, max_errors=1)
    assert len(found) == 1 and found[0].line == 2


def test_max_errors_zero_reports_every_error():
    src = b"".join(b"frob%d;\n" % i for i in range(60))
    assert len(_errors(src)) == 60 == len(_errors(src, max_errors=0))


def test_syntax_errors_are_capped_too():
    # the parser stops at its own parser.MAX_ERRORS (50); max_errors trims the report further
    src = b"keep;\n" + b"\x01;\n" * 20
    assert len(_errors(src)) >= 2              # sievec: the character, then "end of file"
    assert len(_errors(src, max_errors=1)) == 1


def test_errors_of_an_included_script_count_toward_the_cap():
    bad = b"".join(b"frob%d;\n" % i for i in range(10))

    def loader(name, location):
        return bad if name == "bad" else None

    src = b'require "include";\ninclude :personal "bad";\nfrob;\n'
    every = _errors(src, loader=loader)
    assert len(every) >= 11
    capped = _errors(src, loader=loader, max_errors=3)
    assert len(capped) == 3
