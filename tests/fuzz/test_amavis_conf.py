"""Fuzz: the reader of amavisd.conf's Perl subset (milters/amavis_conf.py) fed hostile Perl.

Files are statements from a Perl vocabulary (assignments of numbers, strings with
interpolation, qw, qr, lists, [..] and {..}, ranges, arithmetic, table builders, subs,
backticks, system, BEGIN, do FILE, POD, __END__, and the statements that grow a value each
time they run: `@a = (@a, @a);`, `$t = [$t, $t];`, `$s = $s . $s;`, `$n = $n * $n;`), seeds of
tests/fuzz/corpus/amavis_conf/ (the hand-written files of tests/data/amavis/) under mutations,
or any text. Whatever a file holds, read_text:
- raises nothing (what it does not read is reported as not understood);
- runs nothing: no file is opened, no process started, no code compiled or run, no socket
  made while it reads (an audit hook watches);
- builds bounded values: no value has more than MAX_VALUE_ITEMS items (nested ones counted
  each time they appear, as a walk of it would meet them), no string more than
  MAX_VALUE_CHARS characters, no integer past Perl's 64 bits (beyond them Perl holds a
  double), and the work of a file stays within MAX_WORK;
- copies no more than a few times the text while lexing (a qr's flags were read from a copy
  of the rest of the file: 1 MiB of `qr//;` took minutes).
Found here and fixed in s21: tests/fuzz/test_fuzz_findings_s21.py (test_amavis_*).
"""

from __future__ import annotations

import sys

from hypothesis import example, given
from hypothesis import strategies as st

from milters import amavis_conf as ac
from tests.fuzz.fuzzlib import NUMBERS, budget, corpus, mutants

SEEDS = corpus("amavis_conf", ".conf")     # the link to tests/data/amavis/: its .conf files
# the reader's bounds (as numbers too: these properties held of the reader before it named them)
MAX_VALUE_ITEMS = getattr(ac, "MAX_VALUE_ITEMS", 100_000)
MAX_VALUE_CHARS = getattr(ac, "MAX_VALUE_CHARS", 1 << 20)
MAX_WORK = getattr(ac, "MAX_WORK", 2_000_000)
UV_MAX = (1 << 64) - 1
TOKENS = [b"qr/", b"qw(", b"q{", b"qq|", b"`", b"sub {", b"$x", b"@a", b"%h", b"\\@a", b"=>", b"..",
          b"\n=pod\n", b"\n=cut\n", b"__END__", b"${x}", b"\"$x\"", b"0x", b"1e999", "\u00b2".encode()]

# --- watching what reading does -------------------------------------------------------------------

_FORBIDDEN = ("open", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
              "exec", "compile", "socket.connect", "socket.bind", "os.remove", "os.rename", "os.mkdir",
              "os.chdir", "ctypes.dlopen", "os.listdir", "os.scandir")
_EVENTS: list[str] | None = None


def _audit(event, args):
    if _EVENTS is not None and event.startswith(_FORBIDDEN):
        _EVENTS.append(event)


sys.addaudithook(_audit)


def _check_value(value, seen: dict[int, int]) -> int:
    """Items of `value`, nested ones counted each time (memoized by id: a shared tree is not walked
    twice); AssertionError on a string or an integer past the bounds."""
    if isinstance(value, (list, tuple)):
        return 1 + sum(_check_value(v, seen) for v in value)
    if isinstance(value, (ac.Array, ac.Hash, ac.PerlCall)):
        if id(value) not in seen:
            items = value.items if isinstance(value, ac.Array) else value.pairs if isinstance(value, ac.Hash) \
                else value.args
            seen[id(value)] = 1 + sum(_check_value(v, seen) for v in items)
        return seen[id(value)]
    if isinstance(value, str):
        assert len(value) <= MAX_VALUE_CHARS
    if isinstance(value, int) and not isinstance(value, bool):
        assert -UV_MAX <= value <= UV_MAX, f"an integer of {len(str(value))} digits"
    return 1


class _CountingText(str):
    """Text that counts the characters its slices copy."""

    copied = 0

    def __getitem__(self, key):
        out = str.__getitem__(self, key)
        if isinstance(key, slice):
            _CountingText.copied += len(out)
        return out


def check(text: str) -> ac.Config:
    global _EVENTS
    config = ac.Config()
    counted = _CountingText(text)
    _CountingText.copied = 0
    _EVENTS = []
    try:
        ac.read_text(counted, "amavisd.conf", config)
        events = list(_EVENTS)
    finally:
        _EVENTS = None
    assert not events, f"reading ran {events}"
    assert _CountingText.copied <= 4 * len(text) + 4096, f"lexing copied {_CountingText.copied} characters"
    assert getattr(config, "work", 0) <= MAX_WORK
    seen: dict[int, int] = {}
    for table in (config.scalars, config.arrays, config.hashes, config.elements):
        for assigned in table.values():
            assert _check_value(assigned.value, seen) <= MAX_VALUE_ITEMS + 1
    for call, _where, _text in config.calls:
        assert _check_value(call, seen) <= MAX_VALUE_ITEMS + 1
    for n in config.not_understood:
        assert isinstance(n.reason, str) and n.reason
    return config


# --- Perl ----------------------------------------------------------------------------------------------

_SCALARS = ["$x", "$y", "$mydomain", "$Amavis::Conf::x", "${x}", "$main::y", "$n", "$s", "$t"]
_ARRAYS = ["@a", "@b", "@mynetworks", "@av_scanners"]
_HASHES = ["%h", "%bypass"]
_NUMS = [n.decode() for n in NUMBERS if n.isascii()] + ["4.5", "-999", "400*1024", "0x_", "0xFFFFFFFFFFFFFFFFFF",
                                                         "1_000", ".5", "1e308*10", "\u00b2", "\u0661", "7/0"]
_STRS = ["'example.org'", "\"mx.$mydomain\"", "\"postmaster\\@$x\"", "\"${x}y\"", "\"$a[0]\"", "\"@a\"", "\"$t\"",
         "\"$h{k}\"", "q{a{b}c}", "qq|$x|", "'it\\'s'", "\"\\x41\\n\"", "\"$x->{y}\"", "\"$undefined\""]


def _scalar_terms():
    return st.one_of(st.sampled_from(_NUMS), st.sampled_from(_STRS), st.sampled_from(_SCALARS),
                     st.sampled_from(["D_PASS", "D_REJECT()", "undef", "\\@a", "\\%h", "\\&ask_daemon",
                                      "qr/^a$/i", "qr'\\.exe$'", "sub { die }", "`id`", "system('id')",
                                      "-$x", "1..3", "1..100000", "$x..$y"]))


terms = st.recursive(
    _scalar_terms(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "(" + ", ".join(xs) + ")"),
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(["a", "'b c'", "1", "$x"]), inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k} => {v}" for k, v in kv) + "}"),
        st.tuples(inner, st.sampled_from([" . ", " + ", " - ", " * ", " / ", ", ", " => ", " x "]), inner).map("".join),
        st.tuples(st.sampled_from(["new_RE", "read_hash", "lc", "unlink", "open", "Amavis::Lookup::RE->new"]),
                  st.lists(inner, max_size=3)).map(lambda t: t[0] + "(" + ", ".join(t[1]) + ")"),
        st.lists(st.sampled_from(["a", "b", "127.0.0.0/8", "[::1]", ")"]), max_size=4).map(
            lambda xs: "qw(" + " ".join(xs) + ")"),
    ),
    max_leaves=12)

GROWING = ["@a = (@a, @a);", "$t = [$t, $t];", "$s = $s . $s;", "$n = $n * $n;", "%h = (%h, %h);",
           "@a = (@a, 1..10000);", "$t = {a => $t, b => $t};", "$s = \"$s$s\";", "@b = (@a);"]


@st.composite
def statement(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 4:
        target = draw(st.sampled_from(_SCALARS + _ARRAYS + _HASHES + ["$h{k}", "$h{$x}", "$a[1]", "my $x", "our @a"]))
        op = draw(st.sampled_from([" = ", " = ", " .= ", " ||= ", "="]))
        return f"{target}{op}{draw(terms)};"
    if kind == 5:
        return draw(st.sampled_from(GROWING)) * draw(st.integers(1, 70))
    if kind == 6:
        return draw(st.sampled_from(["use strict;", "use POSIX;", "1;", "BEGIN { system('id') }", "do 'x.pl';",
                                     "require 'x.pl';", "eval { 1 };", "dkim_key('a.test', 's', '/k.pem');",
                                     "include_config_files('/etc/passwd');", "sub f { 1 }", "$x = `id`;",
                                     "\n=pod\n$x = 1;\n=cut\n", "__END__\n$x = 1;", "# $x = 1;",
                                     "$x = $y = $z = 3;", "@a = (1) x 10;", "$x =~ s/a/b/;", "print 1;"]))
    if kind == 7:
        return draw(st.sampled_from(["$x = 'never closed;", "$x = qr{a{b};", "@a = (1, [2, {3", "$x = \"$",
                                     "@a = qw(a b", "$x = \"@{[ system('id') ]}\";", "$x = ${\\ `id`};"]))
    return f"{draw(terms)};"


files = st.lists(statement(), max_size=12).map("\n".join)


@budget(150)
@given(text=st.one_of(files, mutants(SEEDS, TOKENS).map(lambda b: b.decode("utf-8", "replace")),
                      st.text(max_size=200)))
@example(text="$x = 0x_; $y = \u00b2; $z = " + "9" * 5000 + "; $w = 1" + "0" * 400 + "/1;")
# (sizes that fail quickly on a reader without the bounds: 40 doublings took all memory)
@example(text="$t = [1];" + "$t = [$t, $t];" * 17 + "$u = \"$t\";")
@example(text="@a = (1, 1);" + "@a = (@a, @a);" * 20)
@example(text="$n = 9;" + "$n = $n * $n;" * 14 + "$m = \"$n\";")
def test_any_file(text):
    check(text)


def fuzz_one(data: bytes) -> None:
    """atheris entry: the bytes as a file (UTF-8, bad bytes replaced, as amavis_import reads it)."""
    check(data.decode("utf-8", "replace"))
