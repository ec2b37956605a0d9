"""include (RFC 6609) fixes found by the differential run's include shape (scripts/sieve-differential
--shapes include, tests/sieve/differential/test_differential_shapes.py): each expected outcome is
what Pigeonhole 0.5.19's sieve-test did with the same scripts.

- A `global` declaration after the name was read as a local (${name}) is a compile error, as one
  after a `set` of it already was ("conflicts with earlier local use").
- "." and ".." are script names (RFC 5804 1.6 allows them; so do Owlery's ManageSieve and
  Pigeonhole): a missing one is skipped by :optional, an existing one ("..sieve") is included.
- imap4flags' internal flags are one for the whole include tree: once a script that requires
  imap4flags has started, the implicit keep, and keep/fileinto in scripts without the extension,
  take the flags the run ends with; a store asked for before that has none; a duplicate store
  from a script without the extension leaves the first one's flags.
- Resolved at compile time (a loader: `owlery sieve check --include-dir`, the testsuite),
  `include :once` of a script that is being included is no loop: it does nothing, as at run time.
The tests that pin what stays as it was (a script with imap4flags takes the flags of the moment,
a store before any imap4flags script has none, a plain include loop does not compile) passed
before these fixes too: they keep the fixes from going further than Pigeonhole.
"""

from __future__ import annotations

import datetime as dt

import pytest

from owlery.settings import Settings
from owlery.state.memory_store import MemoryStore
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
MSG = b"From: a@example.com\r\nTo: rcpt@example.org\r\nSubject: hello\r\n\r\nbody\r\n"


def _run(main: str, **scripts: str):
    """Run `main` with personal scripts name=source (run-time includes, as delivery does)."""
    settings = Settings()
    host = MemoryHost(mailboxes=("INBOX", "Foo", "Bar"),
                      scripts={("personal", k): v.encode() for k, v in scripts.items()})
    return run(compile_script(main.encode(), name="t", settings=settings), MSG, Envelope(), host=host,
               settings=settings, now=NOW)


def _stores(result) -> list[tuple[str, tuple[str, ...]]]:
    assert result.status == "ok", result.errors
    return sorted((a.mailbox, tuple(sorted(a.flags))) for a in result.effective_actions())


# --- global after a local use -----------------------------------------------------------------

@pytest.mark.parametrize("use", [
    'if string "${x}" "" { keep; }',
    'fileinto "F${x}";',
    'set "y" "${X}";',
])
def test_global_after_the_name_was_read_as_local_does_not_compile(use):
    src = f'require ["include", "variables", "fileinto"];\n{use}\nglobal "x";\n'
    with pytest.raises(SieveCompileError) as e:
        compile_script(src.encode(), name="t", settings=Settings())
    assert any("conflicts with earlier local use" in d.message for d in e.value.diagnostics)


def test_global_before_the_reference_and_in_another_script_compile():
    r = _run('require ["include", "variables", "fileinto"]; global "x"; set "x" "Foo"; include "a";'
             'fileinto "${x}";',
             a='require ["include", "variables"]; set "y" "${x}"; global "z"; set "z" "${y}";')
    assert _stores(r) == [("Foo", ())]


def test_an_included_script_with_global_after_a_local_read_fails_the_run():
    r = _run('require ["include", "fileinto"]; fileinto "Foo"; include "a";',
             a='require ["include", "variables", "fileinto"]; fileinto "${x}"; global "x";')
    assert r.status == "error" and any("conflicts with earlier local use" in e for e in r.errors)


# --- "." and ".." -----------------------------------------------------------------------------

def test_dot_names_are_script_names_that_optional_skips_when_missing():
    r = _run('require ["include", "fileinto"]; include :optional "."; include :optional :global "..";'
             'fileinto "Foo";')
    assert _stores(r) == [("Foo", ())]
    r = _run('require "include"; include "..";')
    assert r.status == "error" and any("does not exist" in e for e in r.errors)


def test_a_dot_named_script_is_included():
    r = _run('require "include"; include ".."; include ".";',
             **{"..": 'require "fileinto"; fileinto "Foo";', ".": 'require "fileinto"; fileinto "Bar";'})
    assert _stores(r) == [("Bar", ()), ("Foo", ())]


def test_delivery_reads_a_dot_named_script_as_a_file_beside_the_active_one(tmp_path):
    user_dir = tmp_path / "carol" / "sieve"
    user_dir.mkdir(parents=True)
    (user_dir / "...sieve").write_text('require "fileinto"; fileinto "Dots";')
    (user_dir / "active.sieve").write_text('require "include"; include ".."; include :optional ".";')
    settings = Settings().replace(delivery_use_directory=False)
    ex = DeliveryExecutor(settings, state=MemoryStore(), program="test")
    user = MailUser("carol@example.org", str(tmp_path / "Maildir"), str(user_dir / "active.sieve"))
    try:
        outcome = ex.deliver(MSG, "a@example.com", "carol@example.org", user)
    finally:
        ex.close()
    assert outcome.ok
    assert sorted(p.name for p in (tmp_path / "Maildir").iterdir() if p.name.startswith(".")) == [".Dots"]


# --- imap4flags over the include tree ---------------------------------------------------------

def test_flags_set_in_an_included_script_reach_the_implicit_and_explicit_keep():
    lib = 'require "imap4flags"; addflag "X";'
    assert _stores(_run('require "include"; include "lib";', lib=lib)) == [("INBOX", ("X",))]
    assert _stores(_run('require "include"; include "lib"; keep;', lib=lib)) == [("INBOX", ("X",))]
    assert _stores(_run('require ["include", "fileinto"]; include "lib"; fileinto "Foo";', lib=lib)) == \
        [("Foo", ("X",))]


def test_a_store_in_a_script_without_imap4flags_takes_the_final_flags():
    # the flags added after the included script's fileinto still reach it
    r = _run('require ["include", "imap4flags"]; include "lib"; addflag "X";',
             lib='require "fileinto"; fileinto "Foo";')
    assert _stores(r) == [("Foo", ("X",))]
    r = _run('require ["include", "fileinto", "imap4flags"]; setflag "A"; include "lib"; addflag "Z";',
             lib='require "fileinto"; keep; fileinto "Bar";')
    assert _stores(r) == [("Bar", ("A", "Z")), ("INBOX", ("A", "Z"))]
    # two includes: a keep between them ends with both flags
    r = _run('require "include"; include "x"; keep; include "y";',
             x='require "imap4flags"; addflag "X";', y='require "imap4flags"; addflag "Y";')
    assert _stores(r) == [("INBOX", ("X", "Y"))]


def test_a_script_that_requires_imap4flags_still_takes_the_flags_of_the_moment():
    r = _run('require ["include", "fileinto", "imap4flags"]; include "lib"; addflag "Z"; keep;',
             lib='require ["imap4flags", "fileinto"]; addflag "X"; fileinto "Bar"; keep; removeflag "X";'
                 'addflag "Y";')
    assert _stores(r) == [("Bar", ("X",)), ("INBOX", ("Y", "Z"))]


def test_a_store_before_any_imap4flags_script_started_has_no_flags():
    r = _run('require ["include", "fileinto"]; fileinto "Foo"; include "lib";',
             lib='require "imap4flags"; addflag "X";')
    assert _stores(r) == [("Foo", ())]


def test_a_duplicate_store_from_a_script_without_imap4flags_leaves_the_first_flags():
    r = _run('require ["include", "fileinto", "imap4flags"]; keep; addflag "\\\\Seen"; include "lib";',
             lib='require "include"; keep; return;')
    assert _stores(r) == [("INBOX", ())]
    r = _run('require ["include", "fileinto"]; fileinto "Foo"; include "lib"; fileinto "Foo";',
             lib='require "imap4flags"; addflag "\\\\Seen";')
    assert _stores(r) == [("Foo", ())]


# --- include :once of a script that is running, resolved at compile time ----------------------

def _compile_time(main: str, **scripts: str):
    settings = Settings()
    sources = {("personal", k): v.encode() for k, v in scripts.items()}
    script = compile_script(main.encode(), name="t", settings=settings, loader=lambda n, loc: sources.get((loc, n)))
    return run(script, MSG, Envelope(), host=MemoryHost(mailboxes=("INBOX", "Foo", "Bar"), scripts=sources),
               settings=settings, now=NOW)


def test_include_once_of_a_running_script_is_no_loop_at_compile_time():
    # `owlery sieve check --include-dir` and the testsuite resolve includes while compiling:
    # :once of a script being included does nothing there, as at run time and in Pigeonhole
    r = _compile_time('require ["include", "fileinto"]; include "a"; fileinto "Bar";',
                      a='require ["include", "fileinto"]; include :once "a"; fileinto "Foo";')
    assert _stores(r) == [("Bar", ()), ("Foo", ())]
    r = _compile_time('require ["include", "variables", "fileinto"]; global "n"; include "a"; fileinto "N${n}";',
                      a='require ["include", "variables"]; global "n"; set "n" "${n}a"; include :once "b";',
                      b='require ["include", "variables"]; global "n"; set "n" "${n}b"; include :once "a";')
    assert _stores(r) == [("Nab", ())]


def test_a_plain_include_loop_still_does_not_compile():
    with pytest.raises(SieveCompileError) as e:
        _compile_time('require "include"; include :once "a";', a='require "include"; include "a";')
    assert any("circular include" in d.message for d in e.value.diagnostics)
