"""A command's own checks (match type, comparator, regex) run only once its arguments, sub-tests
and block passed, as in Pigeonhole's validator (sieve/validator.py `bind`). Found by the random
syntax-recovery differential at seed 2218 (tests/sieve/test_syntax_recovery_differential.py):
Owlery reported the bad regular expression too, two errors where sievec 0.5.19 reports one.
"""

from __future__ import annotations

import pytest

from owlery.settings import Settings
from sieve.errors import SieveCompileError
from sieve.validator import compile_source

SETTINGS = Settings()


@pytest.mark.parametrize("source,only", [
    # sievec: "missing semicolon ';' after header test."
    (b'require "regex"; if header :regex "subject" "[0-" from "x" { keep; }',
     "missing semicolon ';' after header test"),
    (b'require ["regex", "editheader"]; deleteheader :regex "x" "[0-" keep;',
     "missing semicolon ';' after deleteheader command"),
    (b'require ["regex", "editheader"]; deleteheader :regex "x" "[0-" { keep; }',
     "the deleteheader command does not accept a command block, but one is specified anyway"),
    (b'require "comparator-i;ascii-numeric"; if header :contains :comparator "i;ascii-numeric" "a" "b" c { keep; }',
     "missing semicolon ';' after header test"),
])
def test_one_error_when_the_sub_tests_or_block_failed(source, only):
    with pytest.raises(SieveCompileError) as e:
        compile_source(source, name="script", settings=SETTINGS)
    assert [d.message for d in e.value.diagnostics if d.message != "validation failed"] == [only]
