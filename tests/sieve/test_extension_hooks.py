"""The registry's hooks are the only route by which an extension changes another's command or
the run: sieve/validator.py and sieve/interpreter.py name no extension, and taking a hook out
of the registry takes its behaviour away (issue 14 item 6).
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from sieve import extensions
from sieve.api import Envelope, FileInto, Keep, MemoryHost, Redirect, SieveCompileError, compile_script, run

ROOT = Path(__file__).resolve().parents[2]
MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
ENV = Envelope(mail_from="a@example.org", rcpt_to="b@example.org")
NOW = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)


def _run(src: str):
    host = MemoryHost(mailboxes=("INBOX", "x"), special_use={"\\junk": "x"})
    return run(compile_script(src), MSG, ENV, host=host, now=NOW)


def _code_words(path: Path) -> set[str]:
    """String constants (docstrings left out) and imported module names of the code: where a
    rule about an extension would name it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    words: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            words.add(n.value)
        elif isinstance(n, ast.alias):
            words.update(n.name.split("."))
        elif isinstance(n, ast.ImportFrom) and n.module:
            words.update(n.module.split("."))
    return words


@pytest.mark.parametrize("module", ["sieve/validator.py", "sieve/interpreter.py"])
def test_the_validator_and_the_interpreter_name_no_extension(module):
    names = {n for n in extensions.REGISTRY if n != "core"}
    names |= {n.replace("-", "_") for n in names}
    commands = {c.name for n, e in extensions.REGISTRY.items() if n != "core" for c in e.commands}
    found = _code_words(ROOT / module) & (names | commands)
    # "test" (a test as opposed to a command) and "error" (a diagnostic's severity) are the
    # diagnostics' words, not the testsuite's `test` or ihave's `error` command; "execute" is the
    # interpreter's entry point (its __all__), not vnd.dovecot.execute's command
    assert found - {"test", "error", "execute"} == set()


def test_tags_added_to_fileinto_reach_its_action_through_the_hooks():
    r = _run('require ["fileinto", "copy", "imap4flags", "mailbox", "special-use"];\n'
             'fileinto :copy :flags "\\\\Seen" :create :specialuse "\\\\Junk" "x";')
    (a,) = [a for a in r.actions if isinstance(a, FileInto)]
    assert (a.copy, a.flags, a.create, a.special_use) == (True, ("\\Seen",), True, "\\Junk")
    assert r.implicit_keep          # :copy keeps the implicit keep


def test_the_implicit_keep_gets_the_flags_at_the_end_of_the_run():
    r = _run('require "imap4flags"; addflag "\\\\Flagged"; addflag "\\\\Seen";')
    assert [a.flags for a in r.effective_actions() if isinstance(a, Keep)] == [("\\Flagged", "\\Seen")]


def test_taking_the_copy_hook_out_of_the_registry_takes_copy_away(monkeypatch):
    src = 'require "copy"; redirect :copy "c@example.org";'
    assert [a.copy for a in _run(src).actions if isinstance(a, Redirect)] == [True]
    index = dict(extensions._FOR_COMMAND["action_hooks"])
    index["redirect"] = tuple(h for h in index["redirect"] if h[0] != "copy")
    monkeypatch.setitem(extensions._FOR_COMMAND, "action_hooks", index)
    r = _run(src)
    assert [a.copy for a in r.actions if isinstance(a, Redirect)] == [False] and not r.implicit_keep


def test_last_without_index_is_checked():
    """The index extension's rule, run through the registry's early_checks."""
    with pytest.raises(SieveCompileError) as e:
        compile_script('require "index"; if header :last "subject" "x" { keep; }')
    assert "the :last tag for the header test cannot be specified without the :index tag" in str(e.value.diagnostics)


def test_mime_tags_are_checked_once_the_arguments_are_bound():
    with pytest.raises(SieveCompileError) as e:
        compile_script('require "mime"; if header :anychild "subject" "x" { keep; }')
    assert "the :anychild tag for the header test cannot be specified without the :mime tag" \
        in str(e.value.diagnostics)
    with pytest.raises(SieveCompileError) as e:
        compile_script('require "foreverypart"; break;')
    assert "the break command is not placed inside a foreverypart loop" in str(e.value.diagnostics)


def test_match_types_come_from_their_extensions():
    assert extensions.MATCH_TYPES["count"][0] == "relational"
    assert extensions.MATCH_TYPES["regex"][0] == "regex"
    assert compile_script('require "relational"; if header :count "lt" "x" "1" { keep; }').tree
    with pytest.raises(SieveCompileError) as e:
        compile_script('require "relational"; if header :count "about" "subject" "1" { keep; }')
    assert 'one of "gt", "ge", "lt", "le", "eq" or "ne", but "about" was found' in str(e.value.diagnostics)
    with pytest.raises(SieveCompileError) as e:
        compile_script('require "regex"; if header :regex "subject" "[" { keep; }')
    assert "invalid regular expression '['" in str(e.value.diagnostics)
