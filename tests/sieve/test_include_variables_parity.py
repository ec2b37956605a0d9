"""include / variables parity with Pigeonhole's sieve-test (black-box probes, RFC 5229 and
RFC 6609): a repeated `set` modifier is two modifiers of one precedence (a compile error), and
match variables hold no more than sieve_max_variable_size, as `set` variables do. What the
probes found equal (include :once/:optional, recursion and depth, `return`, `stop`, `global`
scoping, match variables after failed matches and in anyof/allof) is pinned here too."""

from __future__ import annotations

import datetime as dt

import pytest

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
REQ = 'require ["variables", "fileinto", "include", "editheader"];\n'


def _msg(subject: str = "a-b-c") -> bytes:
    return f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def _run(src: str, msg: bytes = b"", scripts=None):
    settings = Settings()
    script = compile_script((REQ + src).encode(), name="t", settings=settings)
    host = MemoryHost(
        mailboxes=("INBOX", "A", "B", "C"), scripts={("personal", k): v.encode() for k, v in (scripts or {}).items()}
    )
    return run(script, msg or _msg(), Envelope(), host=host, settings=settings, now=NOW)


def _xv(result) -> list[str]:
    import email

    return [str(v) for v in email.message_from_bytes(result.message).get_all("X-V", [])]


@pytest.mark.parametrize(
    "mods",
    [
        ":lower :lower",
        ":length :length",
        ":upperfirst :upperfirst",
        ":quotewildcard :quotewildcard",
        ":lower :upper",
        ":lowerfirst :upperfirst",
    ],
)
def test_repeated_or_same_precedence_modifiers_do_not_compile(mods):
    # RFC 5229 4: "It is an error to use two or more modifiers of the same precedence in a
    # single set action"; Pigeonhole: "modifiers :lower and :lower ... conflict having equal
    # precedence".
    with pytest.raises(SieveCompileError) as e:
        compile_script(f'require "variables"; set {mods} "v" "aB";'.encode(), name="t", settings=Settings())
    assert any("precedence" in d.message for d in e.value.diagnostics)


def test_modifiers_apply_by_precedence_not_order():
    r = _run(
        'set :upperfirst :lower "v" "hELLO wORLD"; set :length :quotewildcard "l" "a*b?";'
        'addheader :last "X-V" "${v}"; addheader :last "X-V" "${l}";'
    )
    assert _xv(r) == ["Hello world", "6"]


def test_match_variables_are_truncated_at_the_variable_size_limit():
    r = _run(
        'if header :matches "subject" "*" { set :length "l" "${1}"; set :length "z" "${0}"; }'
        'addheader :last "X-V" "${l}"; addheader :last "X-V" "${z}";',
        _msg("y" * 5000),
    )
    assert _xv(r) == ["4096", "4096"]


def test_long_match_variables_are_cut_between_utf8_characters():
    r = _run(
        'if header :matches "subject" "*" { set :length "l" "${1}"; }addheader :last "X-V" "${l}";',
        _msg("x" + "\u00e4" * 2100),
    )
    assert _xv(r) == ["2048"]  # 1 + 2047 two-byte characters = 4095 bytes


def test_match_variables_survive_a_failed_match_and_skip_short_circuited_tests():
    r = _run(
        'if header :matches "subject" "a-*" {} if header :matches "subject" "zz*" {}'
        'if anyof(header :matches "subject" "*-*", header :matches "from" "*@*") {}'
        'addheader :last "X-V" "${1}|${2}";'
    )
    assert _xv(r) == ["a|b-c"]


def test_globals_are_shared_and_other_variables_stay_local():
    r = _run(
        'global "x"; set "x" "A"; set "y" "B"; include "a"; fileinto "${x}"; fileinto "${y}";',
        scripts={"a": 'require ["variables", "include"]; global "X"; set "x" "C"; set "y" "A";'},
    )
    assert sorted(a.mailbox for a in r.actions) == ["B", "C"]


def test_return_and_stop_in_an_included_script():
    r = _run(
        'include "a"; fileinto "C";',
        scripts={"a": 'require ["fileinto", "include"]; fileinto "A"; return; fileinto "B";'},
    )
    assert sorted(a.mailbox for a in r.actions) == ["A", "C"]
    r = _run('include "a"; fileinto "C";', scripts={"a": 'require "fileinto"; fileinto "A"; stop; fileinto "B";'})
    assert [a.mailbox for a in r.actions] == ["A"]


@pytest.mark.parametrize(
    "scripts",
    [
        {"a": 'require "include"; include "a";'},
        {"a": 'require "include"; include "b";', "b": 'require "include"; include "a";'},
        {"a": "foo;"},
        {},
    ],
)
def test_a_broken_include_leaves_only_the_implicit_keep(scripts):
    # Pigeonhole refuses these at compile time; Owlery resolves includes at run time: either
    # way the run fails and delivery does only the implicit keep (the fileinto before the
    # include is not carried out: a failed run's actions are dropped).
    r = _run('fileinto "A"; include "a";', scripts=scripts)
    assert r.status == "error" and r.errors


def _globals(prefix: str, n: int) -> str:
    return "".join(f'global "{prefix}{i}";' for i in range(n))


def test_the_global_scope_is_bounded_over_every_included_script():
    # RFC 6609 3.3: one global scope for all scripts; Pigeonhole refuses the 256th distinct
    # global across the top script and its includes ("exceeds the limit (max variables: 255)").
    scripts = {"a": 'require ["variables", "include"];' + _globals("h", 100)}
    r = _run(_globals("g", 200) + 'include "a"; fileinto "A";', scripts=scripts)
    assert r.status != "ok" and any("global variables" in e for e in r.errors)
    # resolved at compile time (a loader), the same script does not compile
    with pytest.raises(SieveCompileError) as e:
        compile_script(
            (REQ + _globals("g", 200) + 'include "a";').encode(),
            name="t",
            settings=Settings(),
            loader=lambda name, loc: scripts[name].encode() if loc == "personal" else None,
        )
    assert any("global variables" in d.message for d in e.value.diagnostics)
    # 255 distinct names, some declared in both scripts, are fine
    scripts = {"a": 'require ["variables", "include"];' + _globals("g", 200) + _globals("h", 55)}
    r = _run(_globals("g", 200) + 'include "a"; fileinto "A";', scripts=scripts)
    assert r.status == "ok" and [a.mailbox for a in r.actions] == ["A"]
