"""Sieve :regex (draft-ietf-sieve-regex) on a linear-time engine: hostile patterns finish,
POSIX ERE features and match variables work, comparators fold case as RFC 4790 says,
bad patterns are compile errors (constant) or a reported no-match (from a variable), and
compiling and matching are charged to the CPU step budget.

The wall-clock bounds below are guards only (a backtracking engine takes seconds to
hours on these inputs); what the tests pin down is the result and that it comes back.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run
from sieve.match import RegexError, compile_regex
from sieve.message import decode_2047

NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ENV = Envelope("sender@example.com", "rcpt@example.org")
GUARD_SECONDS = 2.0


def _msg(subject: str | bytes) -> bytes:
    if isinstance(subject, str):
        subject = subject.encode("utf-8")
    return b"From: sender@example.com\r\nTo: rcpt@example.org\r\nSubject: " + subject + b"\r\n\r\nBody\r\n"


def _run(src: str, message: bytes = b"", settings: Settings | None = None):
    settings = settings or Settings()
    script = compile_script(src, settings=settings)
    return run(script, message or _msg("hello world"), ENV, host=MemoryHost(), settings=settings, now=NOW)


def _timed_run(src: str, message: bytes, settings: Settings | None = None):
    t0 = time.monotonic()
    r = _run(src, message, settings)
    return r, time.monotonic() - t0


def _compile_error(src: str, settings: Settings | None = None) -> list[str]:
    with pytest.raises(SieveCompileError) as e:
        compile_script(src, settings=settings or Settings())
    return [str(d) for d in e.value.diagnostics if d.message != "validation failed"]


def _q(s: str) -> str:
    """A Sieve quoted string's content for s."""
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _match_values(pattern: str, subject: str, comparator: str = "i;octet", n: int = 9):
    """None when `string :regex` does not match, else [${0}, ..., ${n}] as the script saw them
    (read back from header fields the script adds, one per match variable)."""
    adds = " ".join('addheader "X-Out-%d" "${%d}";' % (i, i) for i in range(n + 1))
    src = (f'require ["regex", "variables", "editheader"];\n'
           f'if string :regex :comparator "{comparator}" "{_q(subject)}" "{_q(pattern)}" {{ {adds} }}\n')
    r = _run(src)
    assert r.ok, r.errors
    fields = {}
    for line in r.message.split(b"\r\n"):
        name, _, value = line.decode("utf-8").partition(":")
        if name.startswith("X-Out-"):
            fields[int(name[6:])] = decode_2047(value.strip())
    return [fields[i] for i in range(n + 1)] if fields else None


# --- hostile patterns finish, in time linear in the input ---------------------------------

@pytest.mark.parametrize("length", [500, 20_000])
def test_dot_star_chain_on_long_header_is_linear(length):
    src = 'require "regex"; if header :regex "subject" ".*.*.*x" { discard; }'
    r, took = _timed_run(src, _msg("a" * length))
    assert r.ok and r.implicit_keep                  # no x: no match
    assert took < GUARD_SECONDS
    r, took = _timed_run(src, _msg("a" * length + "x"))
    assert r.ok and not r.implicit_keep              # and it does match when it should
    assert took < GUARD_SECONDS


@pytest.mark.parametrize("length", [34, 2_000])
def test_alternation_in_big_interval_is_linear(length):
    src = 'require "regex"; if header :regex "subject" "(a|aa){1,1000}x" { discard; }'
    r, took = _timed_run(src, _msg("a" * length))
    assert r.ok and r.implicit_keep
    assert took < GUARD_SECONDS
    r, took = _timed_run(src, _msg("a" * length + "x"))
    assert r.ok and not r.implicit_keep
    assert took < GUARD_SECONDS


def test_hostile_pattern_from_a_variable_finishes_and_sets_match_variables():
    src = ('require ["regex", "variables", "fileinto"]; set "p" "(a|aa){1,1000}(x)"; '
           'if header :regex "subject" "${p}" { fileinto "INBOX.${2}"; }')
    r, took = _timed_run(src, _msg("a" * 3000 + "x"))
    assert r.ok and [a.mailbox for a in r.actions] == ["INBOX.x"]
    assert took < GUARD_SECONDS


# --- the CPU step budget ---------------------------------------------------------------------

def test_match_cost_is_charged_before_matching():
    # 60k characters against a 6000-instruction program: past the default budget, so the
    # run stops with a resource limit (error keep) before spending the time
    src = 'require "regex"; if header :regex "subject" "(a|aa){1,1000}x" { discard; }'
    r, took = _timed_run(src, _msg("a" * 60_000))
    assert r.status == "resource_limit" and "CPU" in r.errors[0]
    assert took < GUARD_SECONDS
    # the charge is a function of the sizes alone: 5000 characters fit 1M steps, not 100k
    r = _run(src, _msg("a" * 5_000), Settings().replace(sieve_max_cpu_steps=100_000))
    assert r.status == "resource_limit"
    r = _run(src, _msg("a" * 5_000), Settings().replace(sieve_max_cpu_steps=1_000_000))
    assert r.ok and r.implicit_keep


def test_runtime_compilation_is_charged():
    s = Settings().replace(sieve_max_cpu_steps=2000)
    cheap = 'require ["regex", "variables"]; set "p" "(a|b)x"; if header :regex "subject" "${p}" { discard; }'
    assert _run(cheap, settings=s).ok
    big = ('require ["regex", "variables"]; set "p" "(a|b){1,1000}x"; '
           'if header :regex "subject" "${p}" { discard; }')
    r = _run(big, settings=s)
    assert r.status == "resource_limit"


def test_each_runtime_pattern_is_compiled_once_per_test_not_per_value():
    # 200 To addresses, one pattern from a variable: one compilation charge, not 200
    to = ", ".join(f"u{i}@example.org" for i in range(200))
    msg = f"From: a@example.com\r\nTo: {to}\r\nSubject: x\r\n\r\n".encode()
    src = ('require ["regex", "variables"]; set "p" "(b|c){1,1000}zz"; '
           'if address :regex :all "to" "${p}" { discard; }')
    s = Settings().replace(sieve_max_cpu_steps=200_000)
    r = _run(src, msg, s)
    assert r.ok and r.implicit_keep, r.errors


# --- POSIX ERE features and match variables ---------------------------------------------------

@pytest.mark.parametrize("pattern,subject,expected", [
    # anchors
    ("^abc", "abcdef", ["abc"]),
    ("def$", "abcdef", ["def"]),
    ("^def", "abcdef", None),
    ("abc$", "abcdef", None),
    ("^$", "", [""]),
    # classes
    ("[[:alpha:]]+", "123abcXYZ456", ["abcXYZ"]),
    ("[[:digit:]]+", "abc123", ["123"]),
    ("[[:upper:]][[:lower:]]+", "xx Hello", ["Hello"]),
    ("[^[:space:]]+@[[:alnum:].-]+", "mail bob@mx-1.example.com now", ["bob@mx-1.example.com"]),
    ("[[:xdigit:]]{4}", "zz0aF9zz", ["0aF9"]),
    ("[[:punct:]]+", "ab!?,cd", ["!?,"]),
    ("[]a]+", "x]a]x", ["]a]"]),                       # ] first in a bracket is literal
    ("[a-]+", "x-a-x", ["-a-"]),                       # - last in a bracket is literal
    ("[^]a]+", "]]bc]", ["bc"]),
    ("[\\]+", "a\\\\b", ["\\\\"]),                     # backslash is literal in a bracket
    ("[[.-.]x]+", "a-x-b", ["-x-"]),                   # collating symbol
    ("[[=e=]]", "abe", ["e"]),                         # equivalence class
    (".", "", None),
    ("a.c", "xa c", ["a c"]),
    # alternation and groups: leftmost-longest (POSIX), unmatched group = ""
    ("(foo|bar)baz", "xbarbaz", ["barbaz", "bar"]),
    ("a|ab|abc", "abcd", ["abc"]),
    ("(a)(b)?(c)", "ac", ["ac", "a", "", "c"]),
    ("((a)(b))", "ab", ["ab", "ab", "a", "b"]),
    ("(a)(b)(c)(d)(e)(f)(g)(h)(i)", "abcdefghi", ["abcdefghi"] + list("abcdefghi")),
    ("()x", "x", ["x", ""]),
    # intervals
    ("a{2,3}", "aaaa", ["aaa"]),
    ("^(ab){2}$", "abab", ["abab", "ab"]),
    ("^(ab){2}$", "ababab", None),
    ("x{2,}", "xxxxx", ["xxxxx"]),
    ("x{0}y", "xy", ["y"]),
    ("b{1}c?", "abbc", ["b"]),
    ("a+?", "aaa", ["aaa"]),                           # POSIX has no lazy repeats: (a+)?
    ("a**", "aaa", ["aaa"]),
    # escapes
    ("a\\.b", "a.b", ["a.b"]),
    ("a\\.b", "axb", None),
    ("\\(x\\)", "(x)", ["(x)"]),
    ("\\$\\^\\*\\+\\?\\{\\}\\|\\[", "$^*+?{}|[", ["$^*+?{}|["]),
    ("a)", "a)", ["a)"]),                              # an unmatched ) is an ordinary character
    ("\\w+", "  ab_9  ", ["ab_9"]),
    ("\\bis\\b", "this is", ["is"]),
    ("\\`a", "aa", ["a"]),
    # non-ASCII text and patterns
    ("caf.", "un café", ["café"]),
    ("(é+)", "aééb", ["éé", "éé"]),
    ("[à-ÿ]+", "xçàx", ["çà"]),
])
def test_ere_features_and_match_values(pattern, subject, expected):
    got = _match_values(pattern, subject)
    assert (got[: len(expected)] if got else got) == expected
    if got:
        assert all(v == "" for v in got[len(expected):])


def test_quoteregex_round_trips_every_special_character():
    text = "a.b*c+d?e^f$g{1}h(i)j|k[l]m\\n/o"
    src = ('require ["regex", "variables"]; '
           f'set :quoteregex "q" "{_q(text)}"; '
           f'if string :regex :comparator "i;octet" "x{_q(text)}y" "^x${{q}}y$" {{ discard; }}')
    r = _run(src)
    assert r.ok and not r.implicit_keep


def test_match_variables_from_header_and_more_than_nine_groups():
    src = ('require ["regex", "variables", "fileinto"]; '
           'if header :regex "subject" "^\\\\[([a-z-]+)\\\\] (.*)$" { fileinto "INBOX.${1}.${2}"; }')
    r = _run(src, _msg("[owlery-dev] release"))
    assert [a.mailbox for a in r.actions] == ["INBOX.owlery-dev.release"]
    twelve = "".join(f"({c})" for c in "abcdefghijkl")
    got = _match_values(twelve, "abcdefghijkl", n=12)
    assert got[9] == "i" and got[11] == "k" and got[12] == "l"


# --- comparators -------------------------------------------------------------------------------

@pytest.mark.parametrize("comparator,pattern,subject,expected", [
    ("i;ascii-casemap", "hello", "HeLLo World", ["HeLLo"]),     # ${0} keeps the original case
    ("i;octet", "hello", "HeLLo World", None),
    ("i;octet", "HeLLo", "HeLLo World", ["HeLLo"]),
    ("i;ascii-casemap", "[a-c]+", "xABCD", ["ABC"]),
    ("i;ascii-casemap", "[^a]+", "AaAbB", ["bB"]),               # a negated set excludes both cases
    ("i;ascii-casemap", "[[:lower:]]+", "12ABC", ["ABC"]),       # upper/lower both mean alpha
    ("i;octet", "[[:lower:]]+", "12ABCd", ["d"]),
    ("i;ascii-casemap", "[X-c]+", "wxyzABCD", ["xyzABC"]),       # range across the letters
    ("i;ascii-casemap", "(X)\\W", "ax!", ["x!", "x"]),
    # only ASCII folds (RFC 4790 9.2): no é/É, no Kelvin sign or long s
    ("i;ascii-casemap", "é", "É", None),
    ("i;ascii-casemap", "k", "\u212a", None),
    ("i;ascii-casemap", "s", "\u017f", None),
    ("i;octet", "é", "É", None),
])
def test_comparators_fold_only_ascii(comparator, pattern, subject, expected):
    got = _match_values(pattern, subject, comparator)
    assert (got[: len(expected)] if got else got) == expected


def test_default_comparator_is_ascii_casemap_and_numeric_is_refused():
    r = _run('require "regex"; if header :regex "subject" "^HELLO" { discard; }', _msg("hello world"))
    assert r.ok and not r.implicit_keep
    errors = _compile_error('require ["regex", "comparator-i;ascii-numeric"];\n'
                            'if header :regex :comparator "i;ascii-numeric" "subject" "1" { keep; }')
    assert any("i;octet and i;ascii-casemap" in e for e in errors)


def test_latin1_header_and_surrogates():
    src = 'require ["regex", "variables", "fileinto"]; if header :regex "subject" "(caf.)" { fileinto "INBOX.${1}"; }'
    r = _run(src, _msg(b"un caf\xe9 noir"))                 # not UTF-8: U+FFFD, as Dovecot
    assert [a.mailbox for a in r.actions] == ["INBOX.caf\ufffd"]
    rx = compile_regex("a(.)b", "i;octet", 512)
    assert rx.search("xa\udcffbx", True) == ["a\udcffb", "\udcff"]


# --- bad patterns --------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,why", [
    ("a{2", "unmatched \\{"),
    ("a{3,2}", "invalid content of \\{\\}"),
    ("(ab", "unmatched ( or \\("),
    ("[abc", "unmatched [, [^"),
    ("[[:alpah:]]", "class"),
    ("[z-a]", "range"),
    ("*a", "invalid preceding regular expression"),
    ("(+a)", "invalid preceding regular expression"),
    ("a|*b", "invalid preceding regular expression"),
    ("^*", "invalid preceding regular expression"),
    ("(a)\\1", "back-reference"),
    ("\\<word\\>", "not supported"),
    ("a\\", "backslash"),
    ("a{1001}", "too large"),
    ("(a{100}){100}", "too large"),
])
def test_invalid_constant_pattern_is_a_compile_error_with_line(pattern, why):
    src = ('require "regex";\n'
           'if true { keep; }\n'
           f'if header :regex "subject" "{_q(pattern)}" {{ discard; }}\n')
    errors = _compile_error(src)
    assert len(errors) == 1
    assert errors[0].startswith("script:3:"), errors
    assert "invalid regular expression" in errors[0] and why in errors[0], errors


def test_program_size_bound_is_a_setting():
    src = 'require "regex"; if header :regex "subject" "(abcdefghij){1000}" { discard; }'
    compile_script(src, settings=Settings())                         # fits the default
    s = Settings().replace(sieve_max_regex_memory="32k")
    errors = _compile_error(src, s)
    assert "too large" in errors[0] and "sieve_max_regex_memory" in errors[0]
    # a tiny setting still bounds the program (RE2 treats a tiny budget as "no limit")
    s = Settings().replace(sieve_max_regex_memory=1)
    assert "too large" in _compile_error(src, s)[0]


def test_invalid_pattern_from_a_variable_is_no_match_and_a_reported_warning(caplog):
    src = ('require ["regex", "variables", "fileinto"];\n'
           'set "p" "[";\n'
           'if header :regex "subject" ["${p}", "^hello"] { fileinto "INBOX.second-key"; }\n'
           'if header :regex "subject" "${p}" { discard; }\n')
    with caplog.at_level(logging.WARNING, logger="owlery.sieve"):
        r = _run(src)
    # the run goes on (Pigeonhole: the key is skipped, one error reported); the other key matches
    assert r.ok and [a.mailbox for a in r.actions] == ["INBOX.second-key"]
    assert len(r.errors) == 1 and "invalid regular expression '['" in r.errors[0]
    assert any("invalid regular expression" in m for m in caplog.messages)


def test_too_large_pattern_from_a_variable_is_no_match():
    src = ('require ["regex", "variables"]; set "p" "(a{100}){100}"; '
           'if header :regex "subject" "${p}" { discard; }')
    r = _run(src)
    assert r.ok and r.implicit_keep
    assert len(r.errors) == 1 and "too large" in r.errors[0]


def test_compile_regex_api_errors():
    with pytest.raises(RegexError):
        compile_regex("(", "i;octet", 512)
    with pytest.raises(RegexError, match="longer than"):
        compile_regex("a" * 20, "i;octet", 10)


# --- differential: whether a match exists does not depend on the engine -------------------------

_ATOMS = st.sampled_from(["a", "b", "c", ".", "[ab]", "[^a]", "[[:alpha:]]", "[a-c]", "\\.", "A", "B"])
_REPEATS = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,2}", "{0,}"])


def _ere(depth: int = 0):
    piece = _ATOMS
    if depth < 2:
        sub = _ere(depth + 1)
        piece = st.one_of(_ATOMS, sub.map(lambda s: f"({s})"),
                          st.tuples(sub, sub).map(lambda t: f"({t[0]}|{t[1]})"))
    branch = st.lists(st.tuples(piece, _REPEATS).map("".join), min_size=1, max_size=3).map("".join)
    return st.tuples(st.sampled_from(["", "^"]), branch, st.sampled_from(["", "$"])).map("".join)


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_ere(), subject=st.text(alphabet="abcAB.x\n", max_size=8),
       comparator=st.sampled_from(["i;octet", "i;ascii-casemap"]))
def test_match_existence_and_length_agree_with_a_backtracking_reference(pattern, subject, comparator):
    # Python's re on the same pattern (ERE and Python agree on this subset once $ is \Z and
    # [:alpha:] is spelt out) is the reference: same answer, and the POSIX leftmost-longest
    # match is never shorter than the leftmost-first one
    ref_text = pattern.replace("[[:alpha:]]", "[a-zA-Z]").replace("$", r"\Z")
    flags = re.S | (re.I | re.A if comparator == "i;ascii-casemap" else 0)
    ref = re.search(ref_text, subject, flags)
    got = compile_regex(pattern, comparator, 512).search(subject, True)
    assert (got is None) == (ref is None)
    if got is not None:
        assert len(got[0]) >= len(ref.group(0))
        assert len(got) == 1 + re.compile(ref_text).groups
