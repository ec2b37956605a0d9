"""Every Sieve limit setting, and hostile scripts: deep nesting, huge strings, regex
bombs, include loops, CPU exhaustion. Each must end in a clean error, quickly."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from owlery.settings import Settings
from sieve.api import (Envelope, FileInto, MemoryHost, Redirect, SieveCompileError, compile_script,
                       run)

NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ENV = Envelope("sender@example.com", "rcpt@example.org")
MSG = b"From: sender@example.com\r\nTo: rcpt@example.org\r\nSubject: hello world\r\n\r\nBody\r\n"


def _run(src, settings=None, message=MSG, host=None):
    settings = settings or Settings()
    script = compile_script(src, settings=settings)
    return run(script, message, ENV, host=host or MemoryHost(), settings=settings, now=NOW)


def _compile_error(src, settings=None) -> str:
    with pytest.raises(SieveCompileError) as e:
        compile_script(src, settings=settings or Settings())
    return "\n".join(str(d) for d in e.value.diagnostics)


def test_max_script_size():
    s = Settings().replace(sieve_max_script_size=100)
    assert "too large" in _compile_error(b"keep;" + b" " * 200, s)


def test_max_nesting_blocks_and_tests():
    s = Settings().replace(sieve_max_nesting=5)
    deep = "if true { " * 6 + "keep;" + " }" * 6
    assert "cannot nest command blocks deeper than 5 levels" in _compile_error(deep, s)
    deep_tests = "if " + "not " * 20 + "true { keep; }"
    assert "cannot nest tests deeper than 5 levels" in _compile_error(deep_tests, s)


def test_hostile_nesting_is_a_clean_error():
    # far past Python's recursion limit: must be a compile error, not RecursionError
    deep = "if true { " * 5000 + "keep;" + " }" * 5000
    assert "cannot nest command blocks deeper than" in _compile_error(deep)
    deep_tests = "if " + "anyof(" * 5000 + "true" + ")" * 5000 + " { keep; }"
    assert "cannot nest tests deeper than" in _compile_error(deep_tests)


def test_max_string_length_literal_and_expanded():
    s = Settings().replace(sieve_max_string_length=1000)
    assert "too long" in _compile_error('keep; redirect "' + "a" * 2000 + '@example.org";', s)
    assert "too long" in _compile_error("require \"fileinto\"; fileinto text:\n" + "a" * 2000 + "\n.\n;", s)
    src = ('require "variables"; set "a" "' + "x" * 900 + '"; set "b" "${a}${a}";')
    r = _run(src, s.replace(sieve_max_variable_size=5000))
    assert r.status == "error" and "too long" in r.errors[0]
    assert r.effective_actions()[0].mailbox == "INBOX"


def test_max_string_list():
    s = Settings().replace(sieve_max_string_list=10)
    keys = ", ".join(f'"{i}"' for i in range(20))
    assert "string list too long" in _compile_error(f'if header :is "subject" [{keys}] {{ keep; }}', s)


def test_max_actions():
    s = Settings().replace(sieve_max_actions=3)
    src = 'require "fileinto";' + "".join(f'fileinto "INBOX.f{i}";' for i in range(5))
    r = _run(src, s)
    assert r.status == "resource_limit" and "actions" in r.errors[0]
    assert [a.mailbox for a in r.effective_actions()] == ["INBOX"]


def test_max_redirects():
    s = Settings().replace(sieve_max_redirects=2)
    src = "".join(f'redirect "u{i}@example.org";' for i in range(3))
    r = _run(src, s)
    assert r.status == "resource_limit" and "redirect" in r.errors[0]
    r = _run('redirect "a@example.org"; redirect "a@EXAMPLE.org";', s)
    assert r.ok and [type(a) for a in r.actions] == [Redirect]       # duplicates merge (domain without case, RFC 5321 2.4)


def test_max_cpu_steps_stops_exhaustion():
    s = Settings().replace(sieve_max_cpu_steps=5000)
    many = b"".join(b"X-H: value %d\r\n" % i for i in range(3000))
    keys = ", ".join(f'"*{i}*x*y*"' for i in range(50))
    src = f'if header :matches "x-h" [{keys}] {{ discard; }}'
    t0 = time.monotonic()
    r = _run(src, s, message=many + b"\r\nbody\r\n")
    assert r.status == "resource_limit" and "CPU" in r.errors[0]
    assert time.monotonic() - t0 < 5


def test_max_match_values():
    s = Settings().replace(sieve_max_match_values=3)
    # RFC 5229 6: a reference past the supported match variables is a syntax error at compile time
    assert "match value index 4 out of range (max: 3)" in _compile_error(
        'require "variables"; if header :matches "subject" "*?*?*?*" { set "n" "${4}"; }', s)
    # within the limit the values are recorded, and a match records no more than the limit
    src = ('require ["variables", "fileinto"]; if header :matches "subject" "*?*?*?*" '
           '{ fileinto "INBOX.${1}-${2}-${3}"; }')
    r = _run(src, s)
    assert r.ok and [a.mailbox for a in r.actions] == ["INBOX.-h-"]


def test_match_values_kept_within_limit():
    src = ('require ["variables", "fileinto"]; if header :matches "subject" "* *" { fileinto "INBOX.${2}"; }')
    r = _run(src)
    assert [a.mailbox for a in r.actions] == ["INBOX.world"]


def test_include_limits_and_loops():
    host = MemoryHost(scripts={("personal", "a"): b'require "include"; include "b";',
                               ("personal", "b"): b'require "include"; include "a";',
                               ("personal", "deep"): b'require "include"; include "deep2";',
                               ("personal", "deep2"): b'require "include"; include "deep3";',
                               ("personal", "deep3"): b"keep;"})
    r = _run('require "include"; include "a";', host=host)
    assert r.status in ("error", "resource_limit") and "include" in r.errors[0]
    s = Settings().replace(sieve_max_include_depth=2)
    r = _run('require "include"; include "deep";', s, host=host)
    assert r.status == "resource_limit"
    s = Settings().replace(sieve_max_includes=1)
    r = _run('require "include"; include "deep";', s, host=host)
    assert r.status == "resource_limit"
    # compile-time resolution reports the loop as a compile error
    with pytest.raises(SieveCompileError) as e:
        compile_script(b'require "include"; include "a";',
                       loader=lambda name, loc: host.load_script(name, loc))
    assert "circular" in str(e.value.diagnostics)


def test_max_variables_and_size_and_name():
    s = Settings().replace(sieve_max_variables=3)
    src = 'require "variables";' + "".join(f'set "v{i}" "x";' for i in range(5))
    assert "number of variables" in _compile_error(src, s)
    s = Settings().replace(sieve_max_variable_size=10)
    r = _run('require ["variables", "fileinto"]; set "a" "0123456789abcdef"; fileinto "INBOX.${a}";', s)
    assert r.actions[0].mailbox == "INBOX.0123456789"
    s = Settings().replace(sieve_max_variable_name=8)
    assert "too long" in _compile_error('require "variables"; set "averyverylongname" "x";', s)


def test_max_header_size_editheader():
    s = Settings().replace(sieve_max_header_size=1024)      # Pigeonhole's smallest allowed value
    assert "too large" in _compile_error('require "editheader"; addheader "X-A" "' + "v" * 1100 + '";', s)
    r = _run('require ["editheader", "variables"]; set "v" "' + "v" * 1050 + '"; addheader "X-A" "${v}";', s)
    assert r.status == "error"


def test_max_notifications():
    s = Settings().replace(sieve_max_notifications=1)
    r = _run('require "enotify"; notify "mailto:a@example.org"; notify "mailto:b@example.org";', s)
    assert r.status == "resource_limit"


@pytest.mark.parametrize("pattern,matches", [("(a+)+$", False), ("(a*)*b", False), ("(a|aa)*c", False),
                                             ("(x+x+)+y", False), ("((a+))+", True), ("(.*)*", True)])
def test_regex_bombs_run_in_linear_time(pattern, matches):
    # :regex runs on RE2 (tests/sieve/test_regex_safety.py): backtracking bombs are ordinary
    # patterns there, compiled and matched in time linear in the text
    src = f'require "regex"; if header :regex "subject" "{pattern}" {{ discard; }}'
    t0 = time.monotonic()
    r = _run(src, message=b"Subject: " + b"a" * 5000 + b"?\r\n\r\n")
    assert r.ok and r.implicit_keep is not matches
    assert time.monotonic() - t0 < 2


def test_regex_bomb_at_runtime_is_not_a_hang():
    src = ('require ["regex", "variables"]; set "p" "(a+)+$"; '
           'if header :regex "subject" "${p}" { discard; }')
    t0 = time.monotonic()
    r = _run(src, message=b"Subject: " + b"a" * 5000 + b"!\r\n\r\n")
    assert r.ok and r.implicit_keep and not r.errors
    assert time.monotonic() - t0 < 2


def test_regex_length_limit_and_subject_limit():
    s = Settings().replace(sieve_max_regex_length=10)
    assert "longer than" in _compile_error('require "regex"; if header :regex "subject" "aaaaaaaaaaaaaaaa" { keep; }', s)
    s = Settings().replace(sieve_max_match_subject=10)
    r = _run('require "regex"; if header :regex "subject" "world$" { discard; }', s)
    assert r.implicit_keep                     # "hello world" cut to 10 chars: no match


def test_matches_is_linear_on_hostile_glob():
    src = 'if header :matches "subject" "*a*a*a*a*a*a*a*a*a*a*b" { discard; }'
    t0 = time.monotonic()
    r = _run(src, message=b"Subject: " + b"a" * 20000 + b"\r\n\r\n")
    assert r.ok and r.implicit_keep
    assert time.monotonic() - t0 < 2


def test_mime_parts_and_depth_limits():
    nested = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for i in range(20):
        nested = (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) + nested
                  + b"\r\n--b%d--\r\n" % i)
    s = Settings().replace(sieve_max_mime_depth=10)
    r = _run('require "body"; if body :text :contains "leaf" { discard; }', s, message=nested)
    assert r.ok and r.implicit_keep               # the leaf is past the depth limit
    r = _run('require "body"; if body :text :contains "leaf" { discard; }', message=nested)
    assert r.ok and not r.implicit_keep


def test_fileinto_copy_keeps_implicit_keep():
    r = _run('require ["fileinto", "copy"]; fileinto :copy "INBOX.a"; redirect :copy "x@example.org";')
    assert r.implicit_keep
    assert [type(a) for a in r.effective_actions()][:2] == [FileInto, Redirect]


def test_malformed_regex_at_runtime_matches_nothing_and_is_reported():
    r = _run('require ["regex", "variables"]; set "p" "["; '
             'if header :regex "subject" "${p}" { discard; }')
    assert r.status == "ok" and r.implicit_keep
    assert "invalid regular expression" in r.errors[0]
