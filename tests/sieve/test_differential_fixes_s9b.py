"""Engine fixes from the differential session s9b against Pigeonhole's sieve-test (seeds
93001-93004, tests/sieve/differential/): each test is a script whose outcome the RFC decides,
with the section named, and which Owlery got wrong before the fix."""

from __future__ import annotations

import datetime as dt

import pytest

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"


def _folders(src: str) -> list[str]:
    settings = Settings()
    script = compile_script(src, name="t", settings=settings)
    r = run(script, MSG, Envelope(), host=MemoryHost(("INBOX", "G")), settings=settings, environment={}, now=NOW)
    assert r.status == "ok", r.errors
    return [a.mailbox for a in r.actions if hasattr(a, "mailbox")]


# --- ihave (RFC 5463) -----------------------------------------------------------------------
# RFC 5463 (abstract, section 4): ihave lets a script "take advantage of optional Sieve features
# but still run when those optional features are not available". In an allof, the tests after
# an ihave that is false are never evaluated, so they are guarded by it exactly as its block is:
# `allof(ihave "x", <test of x>)` must compile where x is missing. Seed 93002 pair 911 was
# `allof(ihave ["enotify", "variables"], envelope :regex ...)` without "regex" required: false
# (variables cannot be enabled through ihave), and sieve-test runs the script.


@pytest.mark.parametrize(
    "cond",
    [
        'allof(ihave "vnd.example.nosuch", nosuch "x")',  # unknown test after it
        'allof(ihave "vnd.example.nosuch", header :nosuch "x" "y")',  # unknown tag after it
        'allof(ihave ["enotify", "variables"], envelope :regex "from" "x")',  # seed 93002 #911
        'allof(exists "Subject", ihave "vnd.example.nosuch", nosuch)',  # tests before it run
        'allof(allof(ihave "vnd.example.nosuch"), nosuch)',  # a nested false allof is false
    ],
)
def test_tests_an_allof_guards_with_a_false_ihave_are_not_validated(cond):
    src = f'require ["ihave", "envelope", "fileinto"];\nif {cond} {{ nosuchcommand; fileinto "G"; }}\nkeep;\n'
    assert _folders(src) == ["INBOX"]


def test_a_true_ihave_in_allof_still_validates_what_follows():
    # only a false ihave guards: a mistake after a true one is still an error (RFC 5228 8.2)
    with pytest.raises(SieveCompileError, match="nosuch"):
        compile_script('require "ihave";\nif allof(ihave "fileinto", nosuch) { keep; }\n', settings=Settings())


def test_a_false_ihave_in_anyof_guards_nothing():
    # anyof goes on after a false test: what follows is evaluated, so validated (as sieve-test)
    with pytest.raises(SieveCompileError, match="nosuch"):
        compile_script(
            'require "ihave";\nif anyof(ihave "vnd.example.nosuch", nosuch) { keep; }\n', settings=Settings()
        )


def test_tests_before_a_false_ihave_are_still_validated():
    with pytest.raises(SieveCompileError, match="nosuch"):
        compile_script(
            'require "ihave";\nif allof(nosuch, ihave "vnd.example.nosuch") { keep; }\n', settings=Settings()
        )


@pytest.mark.parametrize(
    "chain",
    [
        'if not ihave "vnd.example.nosuch" { keep; } else { nosuch; }',
        'if not ihave "vnd.example.nosuch" { keep; } elsif nosuch { nosuch; } else { keep :nosuch; }',
        'if anyof(not ihave "vnd.example.nosuch", nosuch) { keep; } else { nosuch; }',
        'if exists "X-None" { } elsif not allof(ihave "vnd.example.nosuch", nosuch) { keep; } else { nosuch; }',
    ],
)
def test_what_follows_an_if_a_false_ihave_makes_always_true_is_not_validated(chain):
    # `not ihave "x"` is always true where x is missing: the elsif/else after it never run
    # (RFC 5463; sieve-test runs such scripts)
    assert _folders(f'require "ihave";\n{chain}\n') == ["INBOX"]


def test_literal_true_still_leaves_the_else_validated():
    # deviations.toml dead-code-not-validated: only ihave guards, a literal `true` does not
    with pytest.raises(SieveCompileError, match="nosuch"):
        compile_script("if true { keep; } else { keep :nosuch; }\n", settings=Settings())
