"""ihave (RFC 5463): what may not be switched on through ihave (RFC 5463 4: encoded-character,
variables: the test fails and the extension stays off), what ihave loads staying loaded after
its block, unknown capabilities skipping their block, and a variable in the argument (taken as
written, so false, as Pigeonhole's sieve-test does). Expected actions were checked against
Pigeonhole 0.5.19's sieve-test."""

from __future__ import annotations

import datetime as dt

import pytest

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
MSG = b"From: a@example.org\nTo: b@example.org\nSubject: x\n\nbody\n"


def folders(src: str) -> list[str]:
    script = compile_script(src.encode(), name="t", settings=Settings())
    r = run(script, MSG, Envelope(), host=MemoryHost(), settings=Settings(), now=NOW)
    assert r.status == "ok", r.errors
    return [a.mailbox for a in r.actions if hasattr(a, "mailbox")]


def test_string_changing_extensions_are_refused_others_loaded():
    assert folders('''require ["ihave", "fileinto"];
if ihave "variables" { fileinto "V"; }
if ihave "encoded-character" { fileinto "E"; }
if ihave "vnd.dovecot.testsuite" { fileinto "T"; }
if ihave "comparator-i;ascii-numeric" { fileinto "C"; }
if ihave "date" { fileinto "D"; }
if ihave "ihave" { fileinto "H"; }
if ihave ["date", "frop"] { fileinto "DF"; }''') == ["C", "D", "H"]


def test_variables_refused_through_ihave_stay_off():
    # The block is skipped, and ${x} is not expanded afterwards: variables was never enabled.
    assert folders('''require ["ihave", "fileinto"];
if ihave "variables" { set "x" "1"; }
fileinto "${x}";''') == ["${x}"]


def test_an_extension_loaded_by_ihave_can_be_used_after_its_block():
    assert folders('require "ihave"; if ihave "fileinto" { keep; } fileinto "Outside";') == ["INBOX", "Outside"]


def test_an_unknown_capability_skips_its_block_unvalidated():
    assert folders('require "ihave"; if ihave "frop" { frop "x"; frop2; } keep;') == ["INBOX"]


def test_the_else_of_an_unknown_capability_is_validated():
    with pytest.raises(SieveCompileError):
        compile_script(b'require "ihave"; if ihave "frop" { keep; } else { frop; }', name="t", settings=Settings())


def test_a_variable_in_the_capability_is_taken_as_written():
    script = compile_script(b'''require ["ihave", "variables", "fileinto"];
set "x" "fileinto";
if ihave "${x}" { fileinto "Var"; } else { fileinto "NotVar"; }''', name="t", settings=Settings())
    assert any("not expanded" in w.message for w in script.warnings)
    r = run(script, MSG, Envelope(), host=MemoryHost(), settings=Settings(), now=NOW)
    assert [a.mailbox for a in r.actions] == ["NotVar"]


def test_ihave_itself_needs_require():
    with pytest.raises(SieveCompileError):
        compile_script(b'if ihave "fileinto" { keep; }', name="t", settings=Settings())


def test_error_fails_the_run_with_its_message():
    script = compile_script(b'require "ihave"; error "custom failure";', name="t", settings=Settings())
    r = run(script, MSG, Envelope(), host=MemoryHost(), settings=Settings(), now=NOW)
    assert r.status == "error" and any("custom failure" in e for e in r.errors)
