"""Hand-probed behaviours settled against Pigeonhole 0.5.19 (Debian's sieve-test) and the RFCs,
in areas the earlier rounds (test_pigeonhole_probes_s19.py and before, the differential's
generators) left out or reached only at random:

1. the i;ascii-numeric comparator (RFC 4790 9.1.1, RFC 5228 2.7.3) on leading zeros, numbers past
   2^64, strings that start with no digit (positive infinity) and empty strings, with :is, :value
   and :count in header, address, envelope, string and date tests, what :count counts; :contains,
   :matches and :regex with it are compile errors in every test that takes a comparator
   (agreement pins; :is on an empty value is deviations.toml's is-empty-value-numeric,
   allow-listed here);
2. :contains, :matches and :is on empty keys and values, wildcards beside escapes, case folding of
   non-ASCII text under i;ascii-casemap (US-ASCII letters only), and the match variables after
   :matches with many stars, after a failed match (the old values stay), in anyof/allof/not and
   elsif (agreement pins; the two Pigeonhole panics are allow-listed);
3. test composition: empty allof()/anyof() are compile errors, not/anyof/allof nesting, elsif
   chains with stop, misplaced else/elsif and require, odd case of commands and tests (agreement
   pins);
4. the lexer: bracketed comments with "*/" and stars, text: with comments, dot-stuffing and CRLF,
   CR-only and mixed line ends, numbers with K/M/G and past 2^32 or 2^64, identifiers, tags in odd
   case, invalid UTF-8, BOM, NUL, separators that are no white space (agreement pins);
5. exists and header with empty or invalid field names (also given at run time), address with
   non-address headers, and the five address parts and :count of malformed addresses, "<>" and
   groups (agreement pins; the fields tests/sieve/test_address_differential.py explains are left
   out); the envelope test's parts of odd valid envelope addresses (agreement pins);
6. variables: set modifiers combined and repeated, names in odd case, at the length limit, with
   digits and dots, references with spaces, leading zeros (${0010}), past ${9} and past the 32
   match values, escapes inside "${...}", 255 and 256 variables, values at 4096 octets
   (agreement pins; references past ${32} and into unknown namespaces, which Pigeonhole compiles
   with an error logged, and a cut inside a UTF-8 character are allow-listed);
7. relational ordering under i;ascii-casemap and i;octet (agreement pins: both engines fold
   i;ascii-casemap to lower case for ordering, where RFC 4790 9.2.1 says upper case; this differs
   for "[", "\\", "]", "^", "_" and "`" only and is left as both engines have it).

Fixed (sieve/extensions/variables.py, template): a reference whose name has a number after the
namespace (${a.1}, ${a.b.1}, ${a.1.b}, ${hex.41}; RFC 5229 3: sub-namespace = variable-name ".",
variable-name = num-variable / identifier) was read as text and written out as "${a.1}"; it is a
reference, so into a namespace the script did not require it is a compile error, as ${a.b} is,
and into global. or env. (whose names are no numbers) an invalid name. Pigeonhole logs those
errors ("referring to variable in unknown namespace", "encountered numeric variable name") but
compiles the script anyway and expands the reference to "" (allow-listed, as ${a.b} is in
deviations.toml's unknown-namespace).

Each topic has fixed expectations checked against Owlery alone and a `_against_sieve_test` test
that checks Pigeonhole gives the same, one sieve-test run a case. Where Pigeonhole and the RFC
disagree, Owlery follows the RFC and the ALLOWED_* tables say why (but in 7, where both engines
read the RFC alike and otherwise than it says).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.sieve.differential import pigeonhole, runner
from tests.sieve.differential.generator import FOLDERS, Case
from tests.sieve.differential.normalise import from_pigeonhole
from tests.sieve.test_pigeonhole_probes_s19 import PLAIN, SENDER, SETTINGS, USER, _added

N = ':comparator "i;ascii-numeric"'


@pytest.fixture(scope="module")
def ph():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-s20-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    try:
        yield pigeonhole.Pigeonhole(d / "ph", FOLDERS)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _bytes(script: str | bytes) -> bytes:
    return script.encode() if isinstance(script, str) else script


def _ours(script: str | bytes, message: bytes):
    """Owlery's outcome, as the differential runner reads it (a script may be bytes: invalid UTF-8)."""
    return runner.run_owlery(Case(0, 0, _bytes(script), message, SENDER, USER, USER, frozenset()), SETTINGS)


def _theirs(ph, script: str | bytes, message: bytes):
    return from_pigeonhole(ph.run(_bytes(script), message, SENDER, USER, USER))


# Every case's expected value is checked against Owlery in full (the test_<table> tests); the
# `_against_sieve_test` runs confirm those values live on every allowed case and every
# LIVE_STRIDE-th other one (one sieve-test process each: the live runs were a minute of the
# suite). By hand, every case: OWLERY_LIVE_STRIDE=1 .venv/bin/python -m pytest tests/sieve -k against_sieve_test
LIVE_STRIDE = int(os.environ.get("OWLERY_LIVE_STRIDE", "3"))


def live_sample(names: list[str], allowed: dict) -> set[str]:
    """The names a live comparison runs: every allowed one and every LIVE_STRIDE-th of the rest."""
    others = [n for n in names if n not in allowed]
    return set(allowed) | set(others[::LIVE_STRIDE])


def _compare(ph, cases, allowed: dict, seen=None) -> None:
    """Pigeonhole shows each sampled case's expected `seen` (this file's `_seen` unless another
    round passes its own), but the `allowed` ones, which show the value listed there (and no
    other case may differ). Names are unique within a table. Sampled: live_sample."""
    seen = seen or _seen
    assert len({c[0] for c in cases}) == len(cases)
    sample = live_sample([c[0] for c in cases], allowed)
    differ = {}
    for name, script, message, expected in cases:
        if name not in sample:
            continue
        got = seen(_theirs(ph, script, message))
        if got != expected:
            differ[name] = got
    assert differ == {name: value for name, (value, _reason) in allowed.items()}


def _msg(fields) -> bytes:
    """PLAIN for None, else a message of a Subject and these header lines."""
    if fields is None:
        return PLAIN
    return ("Subject: hi\r\n" + "".join(f + "\r\n" for f in fields) + "\r\nbody\r\n").encode()


def _seen(o) -> str:
    """What a case shows: its status when the run did not end well, else the X-R field it added,
    else the mailboxes it stored into."""
    if o.status != "ok":
        return o.status
    added = _added(o, "x-r")
    return added if added is not None else " ".join(box for box, _ in o.stores)


def _cases(prefix: str, rows) -> list:
    """(name, script, message, expected) for rows of (body, expected) or (body, fields, expected)."""
    out = []
    for row in rows:
        body, fields, expected = row if len(row) == 3 else (row[0], None, row[1])
        name = body if isinstance(body, str) else body.decode("latin-1")
        if fields is not None:
            name += " | " + " | ".join(fields)
        script = prefix + body if isinstance(body, str) else prefix.encode() + body
        out.append((name, script, _msg(fields), expected))
    return out


def _ids(cases) -> list[str]:
    return [c[0][:80] for c in cases]


# === 1. i;ascii-numeric ===========================================================================
#
# RFC 4790 9.1.1: a string's value is the number its leading digits write (any length: no 2^32 or
# 2^64 bound), leading zeros counting for nothing; a string that does not start with a digit is
# positive infinity, equal to any other such string (the empty one too). The header test compares
# a value without the white space around it (RFC 5228 5.7). The comparator has no substring
# operation, so :contains, :matches and :regex with it are compile errors (RFC 4790 9.1, RFC 5228
# 2.7.3). A model of 9.1.1 gives the expectations of the :is and :value matrices.

NR = 'require ["fileinto", "relational", "comparator-i;ascii-numeric", "variables", "envelope", "date", "regex"];\n'
NUMERIC_VALUES = ("5", "05", "0005", "5abc", " 5", "+5", "-5", "", "abc", "0", "00", "18446744073709551621",
                  "000018446744073709551621", "18446744073709551622", "99999999999999999999999999999999", "\u0665",
                  "5.0", "5 6")
NUMERIC_KEYS = ("5", "0", "", "abc", "x", "18446744073709551621", "18446744073709551622", "4294967301", "00")


def _number(s: str) -> int | None:
    """RFC 4790 9.1.1: the value of s, None for positive infinity."""
    digits = ""
    for c in s:
        if c not in "0123456789":
            break
        digits += c
    return int(digits) if digits else None


def _relation(rel: str, a: str, b: str) -> bool:
    x, y = _number(a), _number(b)
    order = (x is not None, y is not None)
    cmp = 0 if x == y else -1 if order == (True, False) or (None not in (x, y) and x < y) else 1
    return {"eq": cmp == 0, "ne": cmp != 0, "lt": cmp < 0, "le": cmp <= 0, "gt": cmp > 0, "ge": cmp >= 0}[rel]


NUMERIC_IS = [(f"X-N: {v!r} :is {k!r}", NR + f'if header :is {N} "X-N" "{k}" {{ fileinto "Foo"; }}', _msg([f"X-N: {v}"]),
               "Foo" if _relation("eq", v.strip(), k) else "INBOX") for v in NUMERIC_VALUES for k in NUMERIC_KEYS]
NUMERIC_VALUE = [(f"{v!r} :value {rel} {k!r}", NR + f'if string :value "{rel}" {N} "{v}" "{k}" {{ fileinto "Foo"; }}',
                  PLAIN, "Foo" if _relation(rel, v, k) else "INBOX")
                 for v in ("5", "", "abc", "18446744073709551622", "05") for rel in ("lt", "gt", "eq", "ne", "le", "ge")
                 for k in ("5", "abc", "", "18446744073709551621")]
NUMERIC_OTHER_CASES = [
    ('if header :contains :comparator "i;ascii-numeric" "X-N" "5" { fileinto "Foo"; }', ('X-N: 5',), 'compile-error'),
    ('if header :matches :comparator "i;ascii-numeric" "X-N" "5" { fileinto "Foo"; }', ('X-N: 5',), 'compile-error'),
    ('if header :regex :comparator "i;ascii-numeric" "X-N" "5" { fileinto "Foo"; }', ('X-N: 5',), 'compile-error'),
    ('if string :contains :comparator "i;ascii-numeric" "5" "5" { fileinto "Foo"; }', 'compile-error'),
    ('if string :matches :comparator "i;ascii-numeric" "5" "*" { fileinto "Foo"; }', 'compile-error'),
    ('if address :contains :comparator "i;ascii-numeric" "from" "1" { fileinto "Foo"; }', 'compile-error'),
    ('if envelope :matches :comparator "i;ascii-numeric" "from" "*" { fileinto "Foo"; }', 'compile-error'),
    ('if date :contains :comparator "i;ascii-numeric" "date" "year" "2" { fileinto "Foo"; }',
     ('Date: Tue, 1 Jul 2003 10:52:37 +0200',),
     'compile-error'),
    ('if address :is :comparator "i;ascii-numeric" :localpart "From" "0042" { fileinto "Foo"; }', ('From: 42@example.org',), 'Foo'),
    ('if address :is :comparator "i;ascii-numeric" :all "From" "42" { fileinto "Foo"; }', ('From: 42@example.org',), 'Foo'),
    ('if address :is :comparator "i;ascii-numeric" :domain "From" "7" { fileinto "Foo"; }', ('From: a@7.example',), 'Foo'),
    ('if envelope :is :comparator "i;ascii-numeric" :localpart "from" "abc" { fileinto "Foo"; }', 'Foo'),
    ('if envelope :value "gt" :comparator "i;ascii-numeric" :localpart "from" "99999999999999999999999" '
     '{ fileinto "Foo"; }',
     'Foo'),
    ('if date :value "ge" :comparator "i;ascii-numeric" "date" "year" "02000" { fileinto "Foo"; }',
     ('Date: Tue, 1 Jul 2003 10:52:37 +0200',),
     'Foo'),
    ('if date :is :comparator "i;ascii-numeric" "date" "month" "7" { fileinto "Foo"; }',
     ('Date: Tue, 1 Jul 2003 10:52:37 +0200',),
     'Foo'),
    ('if date :is :comparator "i;ascii-numeric" "date" "zone" "200" { fileinto "Foo"; }',
     ('Date: Tue, 1 Jul 2003 10:52:37 +0200',),
     'INBOX'),
    ('if date :is :comparator "i;ascii-numeric" "date" "zone" "abc" { fileinto "Foo"; }',
     ('Date: Tue, 1 Jul 2003 10:52:37 -0200',),
     'Foo'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-N" "02" { fileinto "Foo"; }',
     ('X-N: a', 'X-N: b'),
     'Foo'),
    ('if header :count "eq" "X-N" "02" { fileinto "Foo"; }', ('X-N: a', 'X-N: b'), 'INBOX'),
    ('if header :count "lt" :comparator "i;octet" "X-N" "10" { fileinto "Foo"; }', ('X-N: a', 'X-N: b'), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-N" "abc" { fileinto "Foo"; }',
     ('X-N: a', 'X-N: b'),
     'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-N" "" { fileinto "Foo"; }', ('X-N: a', 'X-N: b'), 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-numeric" ["1", "abc"] ["5", "x"] { fileinto "Foo"; }', 'Foo'),
    ('if exists :comparator "i;ascii-numeric" "X-N" { fileinto "Foo"; }', ('X-N: 5',), 'compile-error'),
    ('set "a" "0010"; if string :is :comparator "i;ascii-numeric" "${a}" "10" { fileinto "Foo"; }', 'Foo'),
    ('if header :is :comparator "i;ascii-numeric" :comparator "i;ascii-numeric" "X-N" "5" { fileinto '
     '"Foo"; }',
     ('X-N: 5',),
     'compile-error'),
    ('if header :is :comparator "I;ASCII-NUMERIC" "X-N" "05" { fileinto "Foo"; }', ('X-N: 5',), 'Foo'),
    ('if header :is :comparator "i;nosuch" "X-N" "05" { fileinto "Foo"; }', ('X-N: 5',), 'compile-error'),
    ('if header :is :comparator "i;ascii-numeric" "X-N" ["", "7"] { fileinto "Foo"; }', ('X-N:',), 'Foo'),
    ('if header :value "eq" :comparator "i;ascii-numeric" "X-N" "abc" { fileinto "Foo"; }', ('X-N:',), 'Foo'),
    ('if header :value "lt" :comparator "i;ascii-numeric" "X-N" "abc" { fileinto "Foo"; }', ('X-N:',), 'INBOX'),
    ('if string :is :comparator "i;ascii-numeric" "abc" "" { fileinto "Foo"; }', 'Foo'),
]
NUMERIC = NUMERIC_IS + NUMERIC_VALUE + _cases(NR, NUMERIC_OTHER_CASES)
ALLOWED_NUMERIC = {
    f"X-N: '' :is {k!r}": ("INBOX", "deviations.toml is-empty-value-numeric: Pigeonhole's :is never matches an empty "
                           "value with a non-empty key; RFC 4790 9.1.1: both are positive infinity, so equal")
    for k in NUMERIC_KEYS if k and _number(k) is None
}


@pytest.mark.parametrize("name, script, message, expected", NUMERIC, ids=_ids(NUMERIC))
def test_numeric_comparator(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_numeric_comparator_against_sieve_test(ph):
    _compare(ph, NUMERIC, ALLOWED_NUMERIC)


# Every test that takes a comparator refuses :contains, :matches and :regex with i;ascii-numeric,
# and takes :is, :value and :count (no flags, no spam score, 1 body part or environment item).
NTR = ('require ["fileinto", "variables", "relational", "comparator-i;ascii-numeric", "imap4flags", "environment", '
       '"body", "spamtest", "virustest", "mime", "foreverypart", "date", "index", "regex"];\n')
_NUMERIC_MATCH_TYPES = (":contains", ":matches", ":regex", ":is", ':value "eq"', ':count "eq"')
NUMERIC_TEST_CASES = [
    # test (with {mt}), what :is, :value "eq" and :count "eq" do (the others: compile errors)
    ('hasflag {mt} {N} "1"', ("INBOX", "INBOX", "INBOX")),
    ('environment {mt} {N} "name" "1"', ("INBOX", "INBOX", "Foo")),
    ('body {mt} {N} "1"', ("INBOX", "INBOX", "Foo")),
    ('spamtest {mt} {N} "1"', ("INBOX", "INBOX", "Foo")),
    ('virustest {mt} {N} "1"', ("INBOX", "INBOX", "Foo")),
    ('header :mime :anychild {mt} {N} "content-type" "1"', ("INBOX", "INBOX", "INBOX")),
    ('currentdate {mt} {N} "year" "2"', ("INBOX", "INBOX", "INBOX")),
    ('string {mt} {N} "1" "1"', ("Foo", "Foo", "Foo")),
]
NUMERIC_TESTS = _cases(NTR, [
    (f'if {test.format(mt=mt, N=N)} {{ fileinto "Foo"; }}', expected)
    for test, others in NUMERIC_TEST_CASES
    for mt, expected in zip(_NUMERIC_MATCH_TYPES, ("compile-error",) * 3 + others)])


@pytest.mark.parametrize("name, script, message, expected", NUMERIC_TESTS, ids=_ids(NUMERIC_TESTS))
def test_numeric_comparator_in_every_test(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_numeric_comparator_in_every_test_against_sieve_test(ph):
    _compare(ph, NUMERIC_TESTS, {})

# :count (RFC 5231 4.2) under i;ascii-numeric: `string` counts its non-empty strings (RFC 5229 5),
# header and envelope every value of every name listed (a name listed twice twice), date the
# fields that hold a date; a key that is no number is infinity, more than any count; no value
# is a count of 0. :value with a list on either side is true when any pair is.
CNTR = ('require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric", "envelope", '
        '"date", "index"];\n')


def _count_of(test: str) -> str:
    """Sets X-R to the count (0-5) `test` (with {k} for the key) finds equal."""
    return "".join(f'if {test.replace("{k}", str(k))} {{ set "c" "{k}"; }} ' for k in range(6)) + \
        'addheader "X-R" "[${c}]";'


_DATES = ("Date: Tue, 1 Jul 2003 10:52:37 +0200", "Date: Wed, 2 Jul 2003 10:52:37 +0200")
COUNT_CASES = [
    (_count_of(f'string :count "eq" {N} ["", "a", "", "b"] "{{k}}"'), "[2]"),
    (_count_of(f'string :count "eq" {N} ["", ""] "{{k}}"'), "[0]"),
    ('set "e" "";' + _count_of(f'string :count "eq" {N} ["${{e}}", "${{nosuch}}", "x"] "{{k}}"'), "[1]"),
    (_count_of(f'string :count "eq" {N} [" ", "a"] "{{k}}"'), "[2]"),
    (_count_of(f'header :count "eq" {N} "X-A" "{{k}}"'), ("X-A:", "X-A: v", "X-A:  "), "[3]"),
    (_count_of(f'header :count "eq" {N} ["X-A", "X-B", "X-A"] "{{k}}"'), ("X-A: 1", "X-B: 2"), "[3]"),
    (_count_of(f'header :count "eq" {N} ["X-A", "x-a"] "{{k}}"'), ("X-A: 1",), "[2]"),
    (_count_of(f'envelope :count "eq" {N} ["from", "to", "from"] "{{k}}"'), "[3]"),
    (_count_of(f'envelope :count "eq" {N} :all ["to"] "{{k}}"'), "[1]"),
    (_count_of(f'date :count "eq" {N} "date" "year" "{{k}}"'), _DATES, "[1]"),
    (_count_of(f'date :count "eq" {N} "date" "year" "{{k}}"'), ("Date: junk", _DATES[1]), "[0]"),
    (_count_of(f'date :count "eq" {N} :index 2 "date" "year" "{{k}}"'), _DATES, "[1]"),
    (_count_of(f'header :count "eq" {N} :index 1 "X-A" "{{k}}"'), ("X-A: 1", "X-A: 2"), "[1]"),
    (_count_of(f'header :count "eq" {N} :index 1 :last "X-A" "{{k}}"'), ("X-A: 1", "X-A: 2"), "[1]"),
    ('if exists ["X-A", "x-a", "X-A"] { fileinto "Foo"; }', ("X-A: 1",), "Foo"),
    (f'if header :value "gt" {N} "X-A" "5" {{ fileinto "Foo"; }}', ("X-A: 1", "X-A: 7"), "Foo"),
    (f'if header :value "ne" {N} "X-A" ["1", "7"] {{ fileinto "Foo"; }}', ("X-A: 1", "X-A: 7"), "Foo"),
    (f'if string :value "eq" {N} ["1", "2"] ["2", "3"] {{ fileinto "Foo"; }}', "Foo"),
    (f'if string :count "eq" {N} ["a", "b"] ["5", "2"] {{ fileinto "Foo"; }}', "Foo"),
    (f'if string :count "eq" {N} ["a", "b"] ["x"] {{ fileinto "Foo"; }}', "INBOX"),
    (f'if string :count "ne" {N} ["a", "b"] "x" {{ fileinto "Foo"; }}', "Foo"),
    (f'if string :count "lt" {N} ["a", "b"] "x" {{ fileinto "Foo"; }}', "Foo"),
    (f'if header :count "eq" {N} "X-Nope" "0" {{ fileinto "Foo"; }}', "Foo"),
    (f'if header :count "lt" {N} "X-Nope" "1" {{ fileinto "Foo"; }}', "Foo"),
    ('if header :count "eq" "X-Nope" "00" { fileinto "Foo"; }', "INBOX"),
    (f'if string :value "eq" {N} "5" " 5" {{ fileinto "Foo"; }}', "INBOX"),
    (f'if string :value "lt" {N} "a" "b" {{ fileinto "Foo"; }}', "INBOX"),
    (f'if string :value "ge" {N} "a" "b" {{ fileinto "Foo"; }}', "Foo"),
]
COUNTS = _cases(CNTR, COUNT_CASES)


@pytest.mark.parametrize("name, script, message, expected", COUNTS, ids=_ids(COUNTS))
def test_numeric_counts(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_numeric_counts_against_sieve_test(ph):
    _compare(ph, COUNTS, {})

# === 2. :contains, :matches, :is and match variables ==============================================
#
# RFC 5228 2.7.1: "*" takes any run of characters, "?" one (one octet under i;octet and
# i;ascii-casemap, 2.7.1), "\\" before a character makes it literal; a key's lone backslash at the
# end stands for itself in Owlery (sieve-test panics on it: allow-listed). :contains has no
# wildcards. An empty key is contained in every value; an absent header has no value, so no key
# matches it. i;ascii-casemap folds US-ASCII letters only
# (RFC 4790 9.2: "É" is not "é", "K" (Kelvin) is not "k", "ß" is not "ss"). RFC 5229 3.2: a
# successful :matches sets ${0}..${N}, a failed test leaves the old values, :is/:contains/:count/
# :value do not touch them; anyof stops at the first true test, allof at the first false one. A
# string test naming no comparator is deviations.toml's string-test-default-comparator: these
# name theirs.

MR = 'require ["fileinto", "variables", "editheader", "relational"];\n'
MATCH_KEYS_CASES = [
    ('if string :contains :comparator "i;ascii-casemap" "" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;octet" "" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;octet" "" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;ascii-casemap" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;octet" "a" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "" "*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "" "*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "" "*" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "" "*" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "" "*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "" "*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "" "**" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "" "**" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "" "**" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "" "**" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "" "**" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "" "**" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a*b" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "a*b" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "a*b" "a\\\\*b" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "a*b" "a\\\\*b" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "a*b" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "a*b" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "axb" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "axb" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "axb" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "axb" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "axb" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "axb" "a\\\\*b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a?b" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "a?b" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "a?b" "a\\\\?b" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "a?b" "a\\\\?b" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "a?b" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "a?b" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "axb" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "axb" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "axb" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "axb" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "axb" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "axb" "a\\\\?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a\\\\b" "a\\\\\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "a\\\\b" "a\\\\\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "a\\\\b" "a\\\\\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "a\\\\b" "a\\\\\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "a\\\\b" "a\\\\\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "a\\\\b" "a\\\\\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a\\\\b" "a\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;octet" "a\\\\b" "a\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "a\\\\b" "a\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "a\\\\b" "a\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "a\\\\b" "a\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;octet" "a\\\\b" "a\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;ascii-casemap" "ab" "a\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "ab" "a\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "ab" "a\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "ab" "a\\\\b" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "ab" "a\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "ab" "a\\\\b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a*" "*\\\\*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "a*" "*\\\\*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "a*" "*\\\\*" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "a*" "*\\\\*" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "a*" "*\\\\*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "a*" "*\\\\*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "\\\\" "\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "\\\\" "\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "\\\\" "\\\\\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "\\\\" "\\\\\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "\\\\" "\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "\\\\" "\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "ÉTÉ" "été" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "ÉTÉ" "été" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "ÉTÉ" "été" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "ÉTÉ" "été" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "ÉTÉ" "été" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "ÉTÉ" "été" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "ÉTÉ" "*T*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "ÉTÉ" "*T*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "ÉTÉ" "*T*" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "ÉTÉ" "*T*" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "ÉTÉ" "*T*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "ÉTÉ" "*T*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "é" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "é" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "é" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "é" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "é" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "é" "?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "é" "??" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "é" "??" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "é" "??" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "é" "??" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "é" "??" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "é" "??" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "CAFÉ" "cafÉ" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;octet" "CAFÉ" "cafÉ" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "CAFÉ" "cafÉ" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "CAFÉ" "cafÉ" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "CAFÉ" "cafÉ" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;octet" "CAFÉ" "cafÉ" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "ABC" "a?C" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "ABC" "a?C" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "ABC" "a?C" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "ABC" "a?C" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "ABC" "a?C" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "ABC" "a?C" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "ABC" "*b*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "ABC" "*b*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "ABC" "*b*" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "ABC" "*b*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "ABC" "*b*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "ABC" "*b*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "abc" "a*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "abc" "a*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "abc" "a*c*" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "abc" "a*c*" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "abc" "a*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "abc" "a*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "abc" "*a*b*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "abc" "*a*b*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "abc" "*a*b*c*" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "abc" "*a*b*c*" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "abc" "*a*b*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "abc" "*a*b*c*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "abc" "a**c" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "abc" "a**c" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "abc" "a**c" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "abc" "a**c" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "abc" "a**c" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "abc" "a**c" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "abc" "?*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "abc" "?*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "abc" "?*?" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "abc" "?*?" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "abc" "?*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "abc" "?*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "aaa" "*a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "aaa" "*a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "aaa" "*a" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "aaa" "*a" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "aaa" "*a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "aaa" "*a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a\\\\" "*\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "a\\\\" "*\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "a\\\\" "*\\\\\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "a\\\\" "*\\\\\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "a\\\\" "*\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "a\\\\" "*\\\\\\\\" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "[abc]" "[a*]" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "[abc]" "[a*]" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "[abc]" "[a*]" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "[abc]" "[a*]" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "[abc]" "[a*]" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "[abc]" "[a*]" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "a.b" "a?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "a.b" "a?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "a.b" "a?b" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "a.b" "a?b" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "a.b" "a?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "a.b" "a?b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "x\\\\" "x\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;octet" "x\\\\" "x\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "x\\\\" "x\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "x\\\\" "x\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "x\\\\" "x\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;octet" "x\\\\" "x\\\\" { fileinto "Foo"; }', 'Foo'),
    ('if string :contains :comparator "i;ascii-casemap" "abc" "???*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "abc" "???*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "abc" "???*" { fileinto "Foo"; }', 'Foo'),
    ('if string :matches :comparator "i;octet" "abc" "???*" { fileinto "Foo"; }', 'Foo'),
    ('if string :is :comparator "i;ascii-casemap" "abc" "???*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "abc" "???*" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "" "*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "" "*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "" "*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "" "*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "" "*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "" "*?" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;ascii-casemap" "K" "k" { fileinto "Foo"; }', 'INBOX'),
    ('if string :contains :comparator "i;octet" "K" "k" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;ascii-casemap" "K" "k" { fileinto "Foo"; }', 'INBOX'),
    ('if string :matches :comparator "i;octet" "K" "k" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "K" "k" { fileinto "Foo"; }', 'INBOX'),
    ('if string :is :comparator "i;octet" "K" "k" { fileinto "Foo"; }', 'INBOX'),
]
MATCH_VARS_CASES = [
    ('if string :matches :comparator "i;ascii-casemap" "abcdefghijkl" "*b*d*f*h*j*l*" { fileinto "Foo"; '
     '} addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "abcdefghijkl" "*b*d*f*h*j*l*" { fileinto "Foo"; } '
     'addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "abcdefghijklmnop" "?*?*?*?*?*?*?*?*?*?*?" { '
     'fileinto "Foo"; } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "abcdefghijklmnop" "?*?*?*?*?*?*?*?*?*?*?" { fileinto '
     '"Foo"; } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "abc" "???" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "abc" "???" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "a.b.c.d.e.f.g.h.i.j.k.l" '
     '"*.*.*.*.*.*.*.*.*.*.*.*" { fileinto "Foo"; } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] '
     '3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "a.b.c.d.e.f.g.h.i.j.k.l" "*.*.*.*.*.*.*.*.*.*.*.*" { '
     'fileinto "Foo"; } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "x*y" "*\\\\**" { fileinto "Foo"; } addheader '
     '"X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "x*y" "*\\\\**" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "x?y" "*\\\\?*" { fileinto "Foo"; } addheader '
     '"X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "x?y" "*\\\\?*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "x\\\\y" "*\\\\\\\\*" { fileinto "Foo"; } '
     'addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "x\\\\y" "*\\\\\\\\*" { fileinto "Foo"; } addheader '
     '"X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "" "*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "" "*" { fileinto "Foo"; } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "" "**" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "" "**" { fileinto "Foo"; } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "ABC" "a*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "ABC" "a*" { fileinto "Foo"; } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[] 1=[] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches :comparator "i;ascii-casemap" ["zzz", "abc"] "a*" { fileinto "Foo"; } '
     'addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" ["zzz", "abc"] "a*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "abc" ["z*", "?b*"] { fileinto "Foo"; } '
     'addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "abc" ["z*", "?b*"] { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "aXbXc" "*X*" { fileinto "Foo"; } addheader '
     '"X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "aXbXc" "*X*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "aXbXc" "*X*X*" { fileinto "Foo"; } addheader '
     '"X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "aXbXc" "*X*X*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "aaaa" "*a*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "aaaa" "*a*" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "aaaa" "?*a" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "aaaa" "?*a" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;ascii-casemap" "héllo" "h?llo" { fileinto "Foo"; } addheader '
     '"X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[] 1=[] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches :comparator "i;octet" "héllo" "h?llo" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[] 1=[] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches :comparator "i;ascii-casemap" "héllo" "h*?" { fileinto "Foo"; } addheader '
     '"X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches :comparator "i;octet" "héllo" "h*?" { fileinto "Foo"; } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     'Foo'),
    ('if string :matches "abc" "a*" { } if string :matches "xyz" "q*" { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[abc] 1=[bc] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "abc" "a*" { } if string :matches "xyz" "x*" { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[xyz] 1=[yz] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "abc" "a*" { } if string :is "xyz" "xyz" { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[abc] 1=[bc] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "abc" "a*" { } if string :contains "xyz" "y" { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[abc] 1=[bc] 2=[] 3=[] 4=[] 9=[]'),
    ('if anyof(string :matches "abc" "a*", string :matches "xyz" "x*") { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[abc] 1=[bc] 2=[] 3=[] 4=[] 9=[]'),
    ('if anyof(string :matches "abc" "q*", string :matches "xyz" "x*") { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[xyz] 1=[yz] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "old" "o*" {} if anyof(string :matches "abc" "q*", string :matches "xyz" "q*") '
     '{ } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[old] 1=[ld] 2=[] 3=[] 4=[] 9=[]'),
    ('if allof(string :matches "abc" "a*", string :matches "xyz" "x*") { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[xyz] 1=[yz] 2=[] 3=[] 4=[] 9=[]'),
    ('if allof(string :matches "abc" "a*", string :matches "xyz" "q*") { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[abc] 1=[bc] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "old" "o*" {} if allof(string :matches "abc" "q*", string :matches "xyz" "x*") '
     '{ } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[old] 1=[ld] 2=[] 3=[] 4=[] 9=[]'),
    ('if not string :matches "abc" "a*" { } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] '
     '4=[${4}] 9=[${9}]";',
     '0=[abc] 1=[bc] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "old" "o*" {} if not string :matches "abc" "q*" { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[old] 1=[ld] 2=[] 3=[] 4=[] 9=[]'),
    ('if header :matches "X-A" "v*" { } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] '
     '9=[${9}]";',
     ('X-A: zz', 'X-A: v1', 'X-A: v2'),
     '0=[v1] 1=[1] 2=[] 3=[] 4=[] 9=[]'),
    ('if header :matches ["X-B", "X-A"] "v*" { } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] '
     '4=[${4}] 9=[${9}]";',
     ('X-A: v1', 'X-B: v2'),
     '0=[v2] 1=[2] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "abc" ["*c", "a*"] { } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] '
     '4=[${4}] 9=[${9}]";',
     '0=[abc] 1=[ab] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "old" "o*" {} if string :count "eq" ["a","b"] "2" { } addheader "X-R" '
     '"0=[${0}] 1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[old] 1=[ld] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "old" "o*" {} if string :value "eq" "abc" "abc" { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[old] 1=[ld] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "abc" "a*" { set "0" "x"; } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] '
     '3=[${3}] 4=[${4}] 9=[${9}]";',
     'compile-error'),
    ('if string :matches "abc" "q*" { } elsif string :matches "xyz" "x*" { } addheader "X-R" "0=[${0}] '
     '1=[${1}] 2=[${2}] 3=[${3}] 4=[${4}] 9=[${9}]";',
     '0=[xyz] 1=[yz] 2=[] 3=[] 4=[] 9=[]'),
    ('if header :matches "X-A" "?" { fileinto "Foo"; } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] '
     '3=[${3}] 4=[${4}] 9=[${9}]";',
     ('X-A: =?utf-8?q?=C3=A9?=',),
     '0=[] 1=[] 2=[] 3=[] 4=[] 9=[]'),
    ('if header :matches "X-A" "é*" { fileinto "Foo"; } addheader "X-R" "0=[${0}] 1=[${1}] 2=[${2}] '
     '3=[${3}] 4=[${4}] 9=[${9}]";',
     ('X-A: =?utf-8?q?=C3=89T=C3=89?=',),
     '0=[] 1=[] 2=[] 3=[] 4=[] 9=[]'),
    ('if string :matches "abc" "a*" { } addheader "X-R" "[${00}][${01}][${001}][${0010}][${10}]";',
     '[abc][bc][bc][][]'),
    ('if string :matches "abc" "a*" { } addheader "X-R" "[${ 1 }][${1 }]";', '[${ 1 }][${1 }]'),
    ('if string :matches "abc" [] { fileinto "Foo"; }', 'compile-error'),
    ('if string :contains [] "a" { fileinto "Foo"; }', 'compile-error'),
    ('if header :contains "X-A" "" { fileinto "Foo"; }', ('X-A:',), 'Foo'),
    ('if header :contains "X-Q" "" { fileinto "Foo"; }', 'INBOX'),
    ('if header :matches "X-Q" "*" { fileinto "Foo"; }', 'INBOX'),
    ('if header :is "X-Q" "" { fileinto "Foo"; }', 'INBOX'),
    ('if not header :contains "X-Q" "" { fileinto "Foo"; }', 'Foo'),
    ('if header :contains "X-A" "é" { fileinto "Foo"; }', ('X-A: =?utf-8?q?=C3=89T=C3=89?=',), 'INBOX'),
    ('if string :is :comparator "i;ascii-casemap" "STRASSE" "straße" { fileinto "Foo"; }', 'INBOX'),
]
MATCH_PANICS = [
    ('if string :matches "x" "x\\\\" { fileinto "Foo"; }', "INBOX"),
    ('if string :matches "ab" "???*" { fileinto "Foo"; }', "INBOX"),
    ('if string :matches "a" "*??" { fileinto "Foo"; }', "INBOX"),
]
MATCHES = _cases(MR, MATCH_KEYS_CASES + MATCH_VARS_CASES + MATCH_PANICS)
_PANIC = "sieve-test panics (a key ending in a backslash, or a value shorter than the key's '?'s around a '*'); " \
         "RFC 5228 2.7.1 makes the test true or false"
ALLOWED_MATCHES = {
    'if string :matches :comparator "i;ascii-casemap" "x\\\\" "x\\\\" { fileinto "Foo"; }': ("crash", _PANIC),
    'if string :matches :comparator "i;octet" "x\\\\" "x\\\\" { fileinto "Foo"; }': ("crash", _PANIC),
    **{body: ("crash", _PANIC) for body, _ in MATCH_PANICS},
}


@pytest.mark.parametrize("name, script, message, expected", MATCHES, ids=_ids(MATCHES))
def test_match_types(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_match_types_against_sieve_test(ph):
    _compare(ph, MATCHES, ALLOWED_MATCHES)


# === 3. test composition ==========================================================================
#
# RFC 5228 3.1 and 5.2/5.3: allof and anyof take a test-list of one test or more (8.2: "(" test
# *("," test) ")"), not takes one test; elsif and else follow an if or elsif; require comes first
# (3.2) and names extensions exactly (case matters in strings); identifiers are case-insensitive
# (8.1). stop ends the script wherever it is (3.3).

CR = 'require ["fileinto", "variables", "editheader"];\n'
COMPOSITION_CASES = [
    ('if allof() { fileinto "Foo"; }', 'compile-error'),
    ('if anyof() { fileinto "Foo"; }', 'compile-error'),
    ('if not allof() { fileinto "Foo"; }', 'compile-error'),
    ('if allof(true) { fileinto "Foo"; }', 'Foo'),
    ('if anyof(true,) { fileinto "Foo"; }', 'compile-error'),
    ('if anyof(,true) { fileinto "Foo"; }', 'compile-error'),
    ('if anyof true { fileinto "Foo"; }', 'compile-error'),
    ('if allof(anyof(false, true), not false, allof(true, not not true)) { fileinto "Foo"; }', 'Foo'),
    ('if not not not false { fileinto "Foo"; }', 'Foo'),
    ('if not { fileinto "Foo"; }', 'compile-error'),
    ('if not (true) { fileinto "Foo"; }', 'compile-error'),
    ('if not true, false { fileinto "Foo"; }', 'compile-error'),
    ('if (true) { fileinto "Foo"; }', 'compile-error'),
    ('if { fileinto "Foo"; }', 'compile-error'),
    ('if true false { fileinto "Foo"; }', 'compile-error'),
    ('if true "x" { fileinto "Foo"; }', 'compile-error'),
    ('if true :is { fileinto "Foo"; }', 'compile-error'),
    ('if false() { fileinto "Foo"; }', 'compile-error'),
    ('if TRUE { fileinto "Foo"; }', 'Foo'),
    ('if AllOf(true, True) { fileinto "Foo"; }', 'Foo'),
    ('if NOT false { fileinto "Foo"; }', 'Foo'),
    ('IF true { FILEINTO "Foo"; }', 'Foo'),
    ('if false { } ElsIf true { fileinto "Foo"; } ELSE { fileinto "Bar"; }', 'Foo'),
    ('else { fileinto "Foo"; }', 'compile-error'),
    ('elsif true { fileinto "Foo"; }', 'compile-error'),
    ('if false { } else { } elsif true { fileinto "Foo"; }', 'compile-error'),
    ('if false { } else { } else { fileinto "Foo"; }', 'compile-error'),
    ('if false { } keep; elsif true { fileinto "Foo"; }', 'compile-error'),
    ('if true { fileinto "Foo"; };', 'compile-error'),
    ('if true fileinto "Foo";', 'compile-error'),
    ('if true { }', 'INBOX'),
    ('{ fileinto "Foo"; }', 'compile-error'),
    ('if false { } elsif true { fileinto "Foo"; stop; } elsif true { fileinto "Bar"; } fileinto "Junk";', 'Foo'),
    ('if true { if true { fileinto "Foo"; stop; } fileinto "Bar"; } fileinto "Junk";', 'Foo'),
    ('if false { } else { stop; } fileinto "Foo";', 'INBOX'),
    ('stop "x";', 'compile-error'),
    ('stop { }', 'compile-error'),
    ('keep "x";', 'compile-error'),
    ('discard; stop; keep;', ''),
    ('if false {} elsif false {} elsif false {} elsif true { fileinto "Foo"; } elsif true { fileinto '
     '"Bar"; } else { fileinto "Junk"; }',
     'Foo'),
    ('if anyof(string :matches "ab" "a*", string :matches "xy" "x*") { } addheader "X-R" "1=[${1}] '
     '2=[${2}]";',
     '1=[b] 2=[]'),
    ('if allof(string :matches "ab" "q*", string :matches "xy" "x*") { } addheader "X-R" "1=[${1}] '
     '2=[${2}]";',
     '1=[] 2=[]'),
    ('if not anyof(string :matches "ab" "a*") { } addheader "X-R" "1=[${1}] 2=[${2}]";', '1=[b] 2=[]'),
    ('if anyof(not header :is "subject" "hi", header :contains "from" "example") { fileinto "Foo"; }', 'Foo'),
    ('if not not not not not not not not not not not not not not not not not not not not not not not '
     'not not not not not not not false { fileinto "Foo"; }',
     'INBOX'),
    ('if '
     'allof(allof(allof(allof(allof(allof(allof(allof(allof(allof(allof(allof(allof(al'
     'lof(allof(allof(allof(allof(allof(allof(true)))))))))))))))))))) '
     '{ fileinto "Foo"; }',
     'Foo'),
    ('{{{{{{{{{{}}}}}}}}}}', 'compile-error'),
    ('if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true '
     '{if true {if true {if true {if true {if true {if true {if true {if true {if true {fileinto '
     '"Foo";}}}}}}}}}}}}}}}}}}}}',
     'Foo'),
]
REQUIRES_CASES = [
    ('if true { require "fileinto"; fileinto "Foo"; }', 'compile-error'),
    ('keep; require "fileinto"; fileinto "Foo";', 'compile-error'),
    ('require []; keep;', 'compile-error'),
    ('require "fileinto"; require "fileinto"; fileinto "Foo";', 'Foo'),
    ('require "FILEINTO"; fileinto "Foo";', 'compile-error'),
    ('require "fileinto" fileinto "Foo";', 'compile-error'),
    ('require 1; keep;', 'compile-error'),
    ('require :x "fileinto"; keep;', 'compile-error'),
    ('', 'INBOX'),
    ('# c', 'INBOX'),
    (';', 'compile-error'),
    ('keep; keep;', 'INBOX'),
]
# Nesting limits (RFC 5228 leaves them to the implementation): both engines take 30 tests in
# tests (not/allof/anyof; 30 nots are in COMPOSITION_CASES) and 31 blocks in blocks, and refuse
# one more; lists of tests, strings and elsif chains have no such limit.
NESTING_CASES = [
    ("if " + "not " * 31 + 'false { fileinto "Foo"; }', "compile-error"),
    ("if " + "allof(" * 30 + "true" + ")" * 30 + ' { fileinto "Foo"; }', "Foo"),
    ("if " + "allof(" * 31 + "true" + ")" * 31 + ' { fileinto "Foo"; }', "compile-error"),
    ("if true {" * 31 + 'fileinto "Foo";' + "}" * 31, "Foo"),
    ("if true {" * 32 + 'fileinto "Foo";' + "}" * 32, "compile-error"),
    ("if true {" * 30 + 'if not true { } else { fileinto "Foo"; }' + "}" * 30, "Foo"),
    ("if anyof(" + "false, " * 200 + 'true) { fileinto "Foo"; }', "Foo"),
    ('if string :is "x" [' + '"a", ' * 2000 + '"x"] { fileinto "Foo"; }', "Foo"),
    ("if false {}" + " elsif false {}" * 200 + ' else { fileinto "Foo"; }', "Foo"),
]
COMPOSITION = _cases(CR, COMPOSITION_CASES + NESTING_CASES) + _cases("", REQUIRES_CASES)


@pytest.mark.parametrize("name, script, message, expected", COMPOSITION, ids=_ids(COMPOSITION))
def test_composition(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_composition_against_sieve_test(ph):
    _compare(ph, COMPOSITION, {})


# === 4. lexer =====================================================================================
#
# RFC 5228 2.3: a bracketed comment ends at the first "*/" (no nesting), a hash comment at CRLF
# (a CR alone does not end it in either engine); 2.4.2: "text:" may be followed by white space and
# a hash comment only, a line "." ends it, ".." at a line's start is "."; 2.4.1: a number may carry
# K, M or G (either case), and a value past what the implementation holds is an error (both engines
# take 2^32 and refuse 10^20); 2.6.2: tags are identifiers, case-insensitive; 8.1: white space is
# SP, HTAB and CRLF (a form feed, VT, NBSP or BOM is none), identifiers start with a letter or "_".
# Strings are UTF-8 (1 and 2.4.2); a mailbox name that is not is refused, other invalid octets pass.

LR = 'require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric"];\n'
LEXER_CASES = [
    ('/* a */ */ keep;', 'compile-error'),
    ('/** a **/ keep;', 'INBOX'),
    ('/* /* a */ keep;', 'INBOX'),
    ('/* a keep;', 'compile-error'),
    ('fileinto /* x */ "Foo" /* y */;', 'Foo'),
    ('fileinto [/*x*/"Foo"/*y*/];', 'compile-error'),
    ('/*\n * a\n */ fileinto "Foo";', 'Foo'),
    ('# /* \nfileinto "Foo"; # */', 'Foo'),
    ('/***/ fileinto "Foo";', 'Foo'),
    ('/*/ fileinto "Foo"; */ keep;', 'INBOX'),
    ('if header :is/**/"subject" "hi" { fileinto "Foo"; }', 'Foo'),
    ('if header:is"subject""hi"{fileinto"Foo";}', 'Foo'),
    ('if size :over 1K{fileinto"Foo";}', 'INBOX'),
    ('set "v" text: # comment\nline1\n.\n; addheader "X-R" "[${v}]";', '[line1 ]'),
    ('set "v" text:   \nline1\n.\n; addheader "X-R" "[${v}]";', '[line1 ]'),
    ('set "v" text:\t\nline1\n.\n; addheader "X-R" "[${v}]";', '[line1 ]'),
    ('set "v" text: /* c */\nline1\n.\n; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set "v" text: x\nline1\n.\n; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set "v" text:\n..a\n...\n.b\n.\n; addheader "X-R" "[${v}]";', '[.a .. .b ]'),
    ('set "v" text:\na\n. \n.\n; addheader "X-R" "[${v}]";', '[a . ]'),
    ('set "v" text:\n.\n; addheader "X-R" "[${v}]";', '[]'),
    ('set "v" text:\na\n', 'compile-error'),
    ('set :length "v" text:\nab\ncd\n.\n; addheader "X-R" "[${v}]";', '[8]'),
    ('set "x" "X"; set "v" text:\n${x}\n.\n; addheader "X-R" "[${v}]";', '[X ]'),
    ('set "v" text:\na\\\\b\\"c\n.\n; addheader "X-R" "[${v}]";', '[a\\\\b\\"c ]'),
    ('set "v" text:\na\n.', 'compile-error'),
    ('set "v" text:\na\n.; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set "v" "a\nb"; set :length "l" "${v}"; addheader "X-R" "[${l}]";', '[4]'),
    ('if size :under 4294967296 { fileinto "Foo"; }', 'Foo'),
    ('if size :under 4294967295 { fileinto "Foo"; }', 'Foo'),
    ('if size :under 4G { fileinto "Foo"; }', 'Foo'),
    ('if size :under 3G { fileinto "Foo"; }', 'Foo'),
    ('if size :under 4194304K { fileinto "Foo"; }', 'Foo'),
    ('if size :under 4194303K { fileinto "Foo"; }', 'Foo'),
    ('if size :under 99999999999999999999K { fileinto "Foo"; }', 'compile-error'),
    ('if size :over 99999999999999999999 { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 1k { fileinto "Foo"; }', 'Foo'),
    ('if size :under 1m { fileinto "Foo"; }', 'Foo'),
    ('if size :under 1T { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 0001K { fileinto "Foo"; }', 'Foo'),
    ('if size :over 0 { fileinto "Foo"; }', 'Foo'),
    ('if size :under 0 { fileinto "Foo"; }', 'INBOX'),
    ('if size :under "1K" { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 1K :over 1 { fileinto "Foo"; }', 'compile-error'),
    ('if size 1K { fileinto "Foo"; }', 'compile-error'),
    ('if size :over 1 :over 2 { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 1 K { fileinto "Foo"; }', 'compile-error'),
    ('if size :over -1 { fileinto "Foo"; }', 'compile-error'),
    ('if size :over 108 { fileinto "Foo"; } elsif size :over 107 { fileinto "Bar"; }', 'INBOX'),
    ('if size :under 109 { fileinto "Foo"; } elsif size :under 110 { fileinto "Bar"; }', 'Foo'),
    ('set "a1_b2" "x"; addheader "X-R" "[${a1_b2}]";', '[x]'),
    ('set "1a" "x"; addheader "X-R" "[${1a}]";', 'compile-error'),
    ('set "_a" "x"; addheader "X-R" "[${_a}]";', '[x]'),
    ('set "a-b" "x"; addheader "X-R" "[${a-b}]";', 'compile-error'),
    ('keep2;', 'compile-error'),
    ('_keep;', 'compile-error'),
    ('if header :IS "subject" "hi" { fileinto "Foo"; }', 'Foo'),
    ('if header :Contains "subject" "h" { fileinto "Foo"; }', 'Foo'),
    ('if header :COMPARATOR "i;octet" :is "subject" "hi" { fileinto "Foo"; }', 'Foo'),
    ('if size :Over 1 { fileinto "Foo"; }', 'Foo'),
    ('if address :LocalPart "from" "a" { fileinto "Foo"; }', 'Foo'),
    ('set :Lower "v" "AB"; addheader "X-R" "[${v}]";', '[ab]'),
    ('if string :Value "eq" "a" "a" { fileinto "Foo"; }', 'Foo'),
    ('if header : is "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('if header :is1 "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('fileinto "F\x00oo";', 'compile-error'),
    ('# a\x00b\nfileinto "Foo";', 'compile-error'),
    ('set "v" "\\a\\b\\\\\\""; addheader "X-R" "[${v}]";', '[ab\\"]'),
    ('set "v" "abc;', 'compile-error'),
    ('fileinto [];', 'compile-error'),
    ('fileinto ["Foo",];', 'compile-error'),
    ('fileinto ["Foo" "Bar"];', 'compile-error'),
    ('fileinto 1;', 'compile-error'),
    ('fileinto [text:\nFoo\n.\n];', 'compile-error'),
    ('if size :over [1] { fileinto "Foo"; }', 'compile-error'),
    ('fileinto Foo;', 'compile-error'),
    ('fileinto "Foo"', 'compile-error'),
    ('fileinto\x0c"Foo";', 'compile-error'),
    ('fileinto\x0b"Foo";', 'compile-error'),
    ('fileinto\xa0"Foo";', 'compile-error'),
]
LEXER_WHOLE_CASES = [
    ('require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric"];\r\n'
     'set "v" text:\r\na\r\n..b\r\n.\r\n; addheader "X-R" "[${v}]";',
     '[a .b ]'),
    ('require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric"];\rif '
     'true { fileinto "Foo"; }',
     'Foo'),
    ('require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric"];\nif '
     'true\r{ fileinto "Foo"; }',
     'Foo'),
    ('require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric"];\nset '
     '"v" "a\rb"; addheader "X-R" "[${v}]";',
     'compile-error'),
    ('require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric"];\nset '
     '"v" "a\r\nb"; set :length "l" "${v}"; addheader "X-R" "[${l}]";',
     '[4]'),
    ('require "fileinto";\r\nif true\n{\r\n fileinto "Foo";\n}\r\n', 'Foo'),
    ('require "fileinto"; # c\rfileinto "Foo";', 'INBOX'),
    (LR.encode() + b'if header :contains "subject" "h\xff" { fileinto "Foo"; }', 'INBOX'),
    (LR.encode() + b'# \xff\nfileinto "Foo";', 'Foo'),
    (LR.encode() + b'/* \xff */ fileinto "Foo";', 'Foo'),
    (LR.encode() + b'fileinto "F\xffoo";', 'compile-error'),
    (LR.encode() + b'set "v" text:\n\xe9\n.\n;', 'INBOX'),
    (LR.encode() + b'set "v" "\xc0\xaf";', 'INBOX'),
    (LR.encode() + b'set "v" "\xed\xa0\x80";', 'INBOX'),
    ('\ufeffrequire ["fileinto", "variables", "editheader", "relational", '
     '"comparator-i;ascii-numeric"];\nfileinto "Foo";',
     'compile-error'),
    ('require\t["fileinto",\t"variables",\t"editheader",\t"relational",\t'
     '"comparator-i;ascii-numeric"];\nfileinto\t"Foo";',
     'Foo'),
]
# the same with index, date, vacation and imap4flags: numbers in their arguments, and more
LR2 = ('require ["fileinto", "variables", "editheader", "relational", "comparator-i;ascii-numeric", "index", '
       '"date", "vacation", "imap4flags"];\n')
LEXER_MORE_CASES = [
    ('if /* c */ true { fileinto "Foo"; }', 'Foo'),
    ('if # c\n true { fileinto "Foo"; }', 'Foo'),
    ('if true /* c */ { fileinto "Foo"; }', 'Foo'),
    ('if header :/**/is "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('fileinto "Foo" /* c */ ;', 'Foo'),
    ('fileinto "Foo" # c\n;', 'Foo'),
    ('if anyof(/*a*/true/*b*/,/*c*/false/*d*/) { fileinto "Foo"; }', 'Foo'),
    ('if size :over 1Kfoo { fileinto "Foo"; }', 'compile-error'),
    ('if size :over 1KK { fileinto "Foo"; }', 'compile-error'),
    ('if size :over 01K { fileinto "Foo"; }', 'INBOX'),
    ('if size :over 0k { fileinto "Foo"; }', 'Foo'),
    ('if size :under 1g { fileinto "Foo"; }', 'Foo'),
    ('if size :over 4G { fileinto "Foo"; }', 'INBOX'),
    ('if size :under 5G { fileinto "Foo"; }', 'Foo'),
    ('if size :under 17179869184K { fileinto "Foo"; }', 'Foo'),
    ('if size :under 18446744073709551615 { fileinto "Foo"; }', 'Foo'),
    ('if size :under 18446744073709551616 { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 18014398509481984K { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 17592186044416M { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 17179869184G { fileinto "Foo"; }', 'compile-error'),
    ('if size :under 17179869183G { fileinto "Foo"; }', 'Foo'),
    ('if header :index 0 :is "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('if header :index 1K :is "subject" "hi" { fileinto "Foo"; }', 'INBOX'),
    ('if header :index 1 :is "subject" "hi" { fileinto "Foo"; }', 'Foo'),
    ('vacation :days 0 "x";', 'INBOX'),
    ('vacation :days 99999999999 "x";', 'INBOX'),
    ('vacation :days 1G "x";', 'INBOX'),
    ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
     'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
     'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;',
     'compile-error'),
    ('if header '
     ':aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
     'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
     'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa '
     '"subject" "hi" { keep; }',
     'compile-error'),
    ('set "v" "a\\\r\nb"; set :length "l" "${v}"; addheader "X-R" "[${l}]";', '[4]'),
    ('set "v" "a\\nb"; addheader "X-R" "[${v}]";', '[anb]'),
    ('set "v" "a\\tb"; addheader "X-R" "[${v}]";', '[atb]'),
    ('if header :matches "subject" text:\nh*\n.\n { fileinto "Foo"; }', 'INBOX'),
    ('if header :matches "subject" [text:\nh*\n.\n] { fileinto "Foo"; }', 'INBOX'),
    ('set "v" text:\na\rb\n.\n; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set "v" text:\n.a\n.\n; addheader "X-R" "[${v}]";', '[.a ]'),
    ('set "v" text:\na\n.\r\n; addheader "X-R" "[${v}]";', '[a ]'),
    ('set "v" text: #x\n#y\n.\n; addheader "X-R" "[${v}]";', '[#y ]'),
    ('set "v" text:\n"q"\n.\n; addheader "X-R" "[${v}]";', '["q" ]'),
    ('set "a" "A"; set "v" text:\n${a}${a}\n.\n; addheader "X-R" "[${v}]";', '[AA ]'),
    ('if header :is "subject" "" { fileinto "Foo"; }', 'INBOX'),
    ('set "v" text:\n x\n.\n; addheader "X-R" "[${v}]";', '[ x ]'),
    ('set "v" TEXT:\nx\n.\n; addheader "X-R" "[${v}]";', '[x ]'),
    ('set "v" Text:\nx\n.\n; addheader "X-R" "[${v}]";', '[x ]'),
    ('set "v" text :\nx\n.\n; addheader "X-R" "[${v}]";', 'compile-error'),
    ('/* x **/ fileinto "Foo";', 'Foo'),
    ('/* # */ fileinto "Foo";', 'Foo'),
    ('# /*\nfileinto "Foo";\n# */', 'Foo'),
    ('/* " */ fileinto "Foo";', 'Foo'),
    ('# "\nfileinto "Foo";', 'Foo'),
    ('setflag text:\n\\\\Seen\n.\n; keep;', 'INBOX'),
    ('addflag;', 'compile-error'),
    ('if size :over +1 { fileinto "Foo"; }', 'compile-error'),
    ('if size :over 1 K { fileinto "Foo"; }', 'compile-error'),
    ('if header "subject" :is "hi" { fileinto "Foo"; }', 'compile-error'),
    ('if header "subject" "hi" :is { fileinto "Foo"; }', 'compile-error'),
    ('if header :is :is "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('if header :is :contains "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('if header :comparator :is "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('if header :comparator ["i;octet"] "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
    ('if header :comparator "i;octet" :comparator "i;octet" "subject" "hi" { fileinto "Foo"; }', 'compile-error'),
]
REQUIRES_MORE_CASES = [
    ('require []; keep;', 'compile-error'),
    ('require /* x */ "fileinto"; fileinto "Foo";', 'Foo'),
    ('require text:\nfileinto\n.\n; fileinto "Foo";', 'compile-error'),
    ('require ["encoded-character", "fil${hex:65}into"]; fileinto "Foo";', 'compile-error'),
    ('require "comparator-i;nosuch"; keep;', 'compile-error'),
    ('require ["comparator-i;octet", "comparator-i;ascii-casemap", "fileinto"]; fileinto "Foo";', 'Foo'),
    ('require "comparator-I;ASCII-NUMERIC"; keep;', 'compile-error'),
]
LEXER = (_cases(LR, LEXER_CASES) + _cases("", LEXER_WHOLE_CASES) + _cases(LR2, LEXER_MORE_CASES)
         + _cases("", REQUIRES_MORE_CASES))


@pytest.mark.parametrize("name, script, message, expected", LEXER, ids=_ids(LEXER))
def test_lexer(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_lexer_against_sieve_test(ph):
    _compare(ph, LEXER, {})


# === 5. field names and address parts ============================================================
#
# RFC 5228 5.5 and 5.7: exists and header name fields; a name that is no field-name (RFC 5322
# 3.6.8: printable US-ASCII but ":" and SP) written in the script is a compile error, one that a
# variable gives at run time names no field. 5.1: the address test reads address headers only
# (To, Cc, From, Resent-*, ... and no X- field). 2.7.4: :localpart, :domain, :all, and
# subaddress's :user and :detail (RFC 5233) of each address, "" where the part is empty, no value
# where the address has no such part; a group gives its members.

FR = ('require ["fileinto", "variables", "editheader", "envelope", "subaddress", "relational", '
      '"comparator-i;ascii-numeric"];\n')
SHOW_PARTS = "".join(
    f'if address {part} :is "to" "" {{ set "{v}" "E"; }} elsif address {part} :matches "to" "*" {{ set "{v}" "${{1}}"; }} '
    for part, v in ((":all", "a"), (":localpart", "l"), (":domain", "d"), (":user", "u"), (":detail", "t"))
) + (f'if address :count "eq" {N} "to" "0" {{ set "c" "0"; }} elsif address :count "eq" {N} "to" "1" {{ set "c" "1"; }} '
     'else { set "c" "n"; } addheader "X-R" "a=[${a}] l=[${l}] d=[${d}] u=[${u}] t=[${t}] c=${c}";')
FIELD_NAMES_CASES = [
    ('if exists "" { fileinto "Foo"; }', ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'), 'INBOX'),
    ('if exists ["X-A", ""] { fileinto "Foo"; }', ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'), 'INBOX'),
    ('if exists "X-A:" { fileinto "Foo"; }', ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'), 'INBOX'),
    ('if exists "X A" { fileinto "Foo"; }', ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'), 'INBOX'),
    ('if exists "X-é" { fileinto "Foo"; }', ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'), 'INBOX'),
    ('set "n" ""; if exists "${n}" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('set "n" "X-A:"; if exists "${n}" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('set "n" "X-A"; if exists ["${n}", "nosuch"] { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('if exists [] { fileinto "Foo"; }', ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'), 'compile-error'),
    ('if exists "x-a" { fileinto "Foo"; }', ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'), 'Foo'),
    ('if header :contains "" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('if header :contains "X-A:" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('if header :contains "X A" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('if header :contains "X\\tA" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('set "n" "X-A:"; if header :contains "${n}" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('set "n" ""; if header :contains "${n}" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('set "n" "X A"; if header :contains "${n}" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('if header :is "X B" "v" { fileinto "Foo"; }', ('X B: v',), 'Foo'),
    ('if header :is "X-B" "v" { fileinto "Foo"; }', ('X-B : v',), 'Foo'),
    ('if exists "X-B" { fileinto "Foo"; }', ('X-B : v',), 'Foo'),
    ('if address :contains "" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'compile-error'),
    ('set "n" "from:"; if address :contains "${n}" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'INBOX'),
    ('if address :contains "subject" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'compile-error'),
    ('if address :contains "X-A" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'compile-error'),
    ('if address :is "resent-from" "r@x" { fileinto "Foo"; }', ('Resent-From: r@x',), 'Foo'),
    ('set "n" "subject"; if address :contains "${n}" "" { fileinto "Foo"; }',
     ('From: a@example.org', 'To: rcpt@example.org', 'X-A: v'),
     'Foo'),
]
ADDRESS_PARTS_CASES = [
    ('<>', 'a=[<>] l=[] d=[] u=[] t=[] c=1'),
    ('"" <>', 'a=["" <>] l=[] d=[] u=[] t=[] c=1'),
    ('a', 'a=[a] l=[] d=[] u=[] t=[] c=1'),
    ('@x', 'a=[@x] l=[] d=[] u=[] t=[] c=1'),
    ('a@', 'a=[a@] l=[] d=[] u=[] t=[] c=1'),
    ('@', 'a=[@] l=[] d=[] u=[] t=[] c=1'),
    ('"a b"@x', 'a=["a b"@x] l=[a b] d=[x] u=[a b] t=[] c=1'),
    ('"a\\"b"@x', 'a=["a\\"b"@x] l=[a"b] d=[x] u=[a"b] t=[] c=1'),
    ('"a@b"@x', 'a=["a@b"@x] l=[a@b] d=[x] u=[a@b] t=[] c=1'),
    ('a(c)@x', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('a@(c)x', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('a @ x', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('(c) a@x (d)', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('g: a@x;', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('g:;', 'a=[g:;] l=[] d=[] u=[] t=[] c=1'),
    ('g: <>;', 'a=[g: <>;] l=[] d=[] u=[] t=[] c=1'),
    ('<a@x', 'a=[<a@x] l=[] d=[] u=[] t=[] c=1'),
    ('<<a@x>>', 'a=[<<a@x>>] l=[] d=[] u=[] t=[] c=1'),
    ('<@r:a@x>', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('=?utf-8?q?N?= <a@x>', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('é@x', 'a=[é@x] l=[] d=[] u=[] t=[] c=1'),
    ('a@éx.example', 'a=[a@éx.example] l=[a] d=[éx.example] u=[a] t=[] c=1'),
    ('a@xn--bcher-kva.example', 'a=[a@xn--bcher-kva.example] l=[a] d=[xn--bcher-kva.example] u=[a] t=[] c=1'),
    ('a@[1.2.3.4]', 'a=[a@[1.2.3.4]] l=[a] d=[[1.2.3.4]] u=[a] t=[] c=1'),
    ('a@[IPv6:::1]', 'a=[a@[IPv6:::1]] l=[a] d=[[IPv6:::1]] u=[a] t=[] c=1'),
    ('a+b@x', 'a=[a+b@x] l=[a+b] d=[x] u=[a] t=[b] c=1'),
    ('a+@x', 'a=[a+@x] l=[a+] d=[x] u=[a] t=[E] c=1'),
    ('+b@x', 'a=[+b@x] l=[+b] d=[x] u=[E] t=[b] c=1'),
    ('a++b@x', 'a=[a++b@x] l=[a++b] d=[x] u=[a] t=[+b] c=1'),
    ('"a+b"@x', 'a=[a+b@x] l=[a+b] d=[x] u=[a] t=[b] c=1'),
    ('A+B@X', 'a=[A+B@X] l=[A+B] d=[X] u=[A] t=[B] c=1'),
    ('a.b.@x', 'a=["a.b."@x] l=[a.b.] d=[x] u=[a.b.] t=[] c=1'),
    ('.a@x', 'a=[".a"@x] l=[.a] d=[x] u=[.a] t=[] c=1'),
    ('a..b@x', 'a=["a..b"@x] l=[a..b] d=[x] u=[a..b] t=[] c=1'),
    ('a@x.', 'a=[a@x.] l=[] d=[] u=[] t=[] c=1'),
    ('a@.x', 'a=[a@.x] l=[] d=[] u=[] t=[] c=1'),
    ('a@x..y', 'a=[a@x..y] l=[] d=[] u=[] t=[] c=1'),
    ('a@x, ', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    (', a@x', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('a;b@x', 'a=[a;b@x] l=[] d=[] u=[] t=[] c=1'),
    ('a,b@x', 'a=[b@x] l=[b] d=[x] u=[b] t=[] c=1'),
    ('a\\b@x', 'a=[a\\b@x] l=[] d=[] u=[] t=[] c=1'),
    ('<a@x> (c)', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
    ('a@x (c', 'a=[a@x (c] l=[] d=[] u=[] t=[] c=1'),
    ('a@x\t', 'a=[a@x] l=[a] d=[x] u=[a] t=[] c=1'),
]
FIELDS = _cases(FR, FIELD_NAMES_CASES) + _cases(FR, [(SHOW_PARTS, ("From: s@example.org", f"To: {to}"), expected)
                                                     for to, expected in ADDRESS_PARTS_CASES])


@pytest.mark.parametrize("name, script, message, expected", FIELDS, ids=_ids(FIELDS))
def test_field_names_and_address_parts(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_field_names_and_address_parts_against_sieve_test(ph):
    _compare(ph, FIELDS, {})


# The envelope test (RFC 5228 5.4) on the same parts of odd but valid envelope addresses (sieve-test
# refuses an invalid -f or -r, so those are not compared): the quotes of a quoted local part are
# no part of it, a domain literal and the case are kept, "+b" has an empty :user and "a+" an empty
# :detail (RFC 5233 4), "a+b+c" splits at the first "+". The sender is the recipient too.
ENVELOPE_SHOW = "".join(
    f'if envelope {part} :is "{e}" "" {{ set "{v}{e[0]}" "E"; }} '
    f'elsif envelope {part} :matches "{e}" "*" {{ set "{v}{e[0]}" "${{1}}"; }} '
    for e in ("from", "to") for part, v in ((":all", "a"), (":localpart", "l"), (":domain", "d"), (":user", "u"),
                                            (":detail", "t"))
) + 'addheader "X-R" "a=[${af}] l=[${lf}] d=[${df}] u=[${uf}] t=[${tf}] | a=[${at}] l=[${lt}] d=[${dt}] u=[${ut}] t=[${tt}]";'
ENVELOPE_CASES = [
    ("a+b@example.com", "a=[a+b@example.com] l=[a+b] d=[example.com] u=[a] t=[b]"),
    ("A@EXAMPLE.COM", "a=[A@EXAMPLE.COM] l=[A] d=[EXAMPLE.COM] u=[A] t=[]"),
    ('"a b"@example.com', 'a=["a b"@example.com] l=[a b] d=[example.com] u=[a b] t=[]'),
    ("a@[1.2.3.4]", "a=[a@[1.2.3.4]] l=[a] d=[[1.2.3.4]] u=[a] t=[]"),
    ("a+b+c@x.example", "a=[a+b+c@x.example] l=[a+b+c] d=[x.example] u=[a] t=[b+c]"),
    ("+b@x.example", "a=[+b@x.example] l=[+b] d=[x.example] u=[E] t=[b]"),
    ("a+@x.example", "a=[a+@x.example] l=[a+] d=[x.example] u=[a] t=[E]"),
    ("a.b@x.example", "a=[a.b@x.example] l=[a.b] d=[x.example] u=[a.b] t=[]"),
]
ER = 'require ["envelope", "subaddress", "variables", "editheader"];\n'


@pytest.mark.parametrize("address, expected", ENVELOPE_CASES, ids=[c[0] for c in ENVELOPE_CASES])
def test_envelope_parts(address, expected):
    case = Case(0, 0, (ER + ENVELOPE_SHOW).encode(), PLAIN, address, address, address, frozenset())
    assert _seen(runner.run_owlery(case, SETTINGS)) == f"{expected} | {expected}"


def test_envelope_parts_against_sieve_test(ph):
    differ = {}
    for address, expected in ENVELOPE_CASES:
        got = _seen(from_pigeonhole(ph.run((ER + ENVELOPE_SHOW).encode(), PLAIN, address, address, address)))
        if got != f"{expected} | {expected}":
            differ[address] = got
    assert differ == {}

# === 6. variables =================================================================================
#
# RFC 5229 4.1: modifiers apply by precedence (40 case, 30 first letter, 20 quotewildcard, 15
# encodeurl, 10 length), two of one precedence (the same one twice too) are an error; 3: names
# are case-insensitive identifiers, a reference that is no variable-ref ("${ v }", "${1a}", "${a.}")
# is text, a number's leading zeros count for nothing; 6: 32 match variables here (Pigeonhole's
# too), and a reference past them MUST be a syntax error; a name may have 64 characters in both
# (6: at least 32), not 65; a value is cut at 4096 octets (sieve_max_variable_size). 3: a reference into a
# namespace no require brought in MUST be an error; a number may follow a namespace in the
# grammar (${a.1}), so that is such a reference too (the fix).

VR = ('require ["fileinto", "variables", "editheader", "encoded-character", "enotify", "relational", '
      '"comparator-i;ascii-numeric"];\n')
VARIABLES_CASES = [
    ('set :lower :upper "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lower :upper "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lower :upper "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upper :lower "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upper :lower "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upper :lower "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lower :lowerfirst "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[ab*c?d\\\\]'),
    ('set :lower :lowerfirst "v" ""; addheader "X-R" "[${v}]";', '[]'),
    ('set :lower :lowerfirst "v" "xY"; addheader "X-R" "[${v}]";', '[xy]'),
    ('set :upperfirst :upper "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[AB*C?D\\\\]'),
    ('set :upperfirst :upper "v" ""; addheader "X-R" "[${v}]";', '[]'),
    ('set :upperfirst :upper "v" "xY"; addheader "X-R" "[${v}]";', '[XY]'),
    ('set :lowerfirst :upperfirst "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lowerfirst :upperfirst "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lowerfirst :upperfirst "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upper :upperfirst "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[AB*C?D\\\\]'),
    ('set :upper :upperfirst "v" ""; addheader "X-R" "[${v}]";', '[]'),
    ('set :upper :upperfirst "v" "xY"; addheader "X-R" "[${v}]";', '[XY]'),
    ('set :lower :upperfirst :quotewildcard :length "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[12]'),
    ('set :lower :upperfirst :quotewildcard :length "v" ""; addheader "X-R" "[${v}]";', '[0]'),
    ('set :lower :upperfirst :quotewildcard :length "v" "xY"; addheader "X-R" "[${v}]";', '[2]'),
    ('set :length :quotewildcard "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[12]'),
    ('set :length :quotewildcard "v" ""; addheader "X-R" "[${v}]";', '[0]'),
    ('set :length :quotewildcard "v" "xY"; addheader "X-R" "[${v}]";', '[2]'),
    ('set :quotewildcard :encodeurl "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";',
     '[aB%5C%2Ac%5C%3FD%5C%5C%5C%5C]'),
    ('set :quotewildcard :encodeurl "v" ""; addheader "X-R" "[${v}]";', '[]'),
    ('set :quotewildcard :encodeurl "v" "xY"; addheader "X-R" "[${v}]";', '[xY]'),
    ('set :encodeurl :upper "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[AB%2AC%3FD%5C%5C]'),
    ('set :encodeurl :upper "v" ""; addheader "X-R" "[${v}]";', '[]'),
    ('set :encodeurl :upper "v" "xY"; addheader "X-R" "[${v}]";', '[XY]'),
    ('set :length :length "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :length :length "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :length :length "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lower :lower "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lower :lower "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lower :lower "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upper :upper "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upper :upper "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upper :upper "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :quotewildcard :quotewildcard "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :quotewildcard :quotewildcard "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :quotewildcard :quotewildcard "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lowerfirst :lowerfirst "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lowerfirst :lowerfirst "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lowerfirst :lowerfirst "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :encodeurl :encodeurl "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :encodeurl :encodeurl "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :encodeurl :encodeurl "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :LENGTH "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[8]'),
    ('set :LENGTH "v" ""; addheader "X-R" "[${v}]";', '[0]'),
    ('set :LENGTH "v" "xY"; addheader "X-R" "[${v}]";', '[2]'),
    ('set :Upper "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[AB*C?D\\\\]'),
    ('set :Upper "v" ""; addheader "X-R" "[${v}]";', '[]'),
    ('set :Upper "v" "xY"; addheader "X-R" "[${v}]";', '[XY]'),
    ('set :upperfirst :lowerfirst "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upperfirst :lowerfirst "v" ""; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :upperfirst :lowerfirst "v" "xY"; addheader "X-R" "[${v}]";', 'compile-error'),
    ('set :lower :length "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[8]'),
    ('set :lower :length "v" ""; addheader "X-R" "[${v}]";', '[0]'),
    ('set :lower :length "v" "xY"; addheader "X-R" "[${v}]";', '[2]'),
    ('set :upperfirst :length "v" "aB*c?D\\\\\\\\"; addheader "X-R" "[${v}]";', '[8]'),
    ('set :upperfirst :length "v" ""; addheader "X-R" "[${v}]";', '[0]'),
    ('set :upperfirst :length "v" "xY"; addheader "X-R" "[${v}]";', '[2]'),
    ('set "V" "val"; addheader "X-R" "[${V}|${v}]";', '[val|val]'),
    ('set "v" "val"; addheader "X-R" "[${V}|${v}]";', '[val|val]'),
    ('set "_" "val"; addheader "X-R" "[${V}|${v}]";', '[|]'),
    ('set "a_1" "val"; addheader "X-R" "[${V}|${v}]";', '[|]'),
    ('set "a.b" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "env.x" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "1" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "0" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "a b" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "a-b" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "é" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "a" "b" "c" "val"; addheader "X-R" "[${V}|${v}]";', 'compile-error'),
    ('set "abc" "val"; addheader "X-R" "[${V}|${v}]";', '[|]'),
    ('set "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "val"; addheader "X-R" "[${V}|${v}]";', '[|]'),
    ('set "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "val"; addheader "X-R" "[${V}|${v}]";', '[|]'),
    ('set "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "val"; addheader "X-R" '
     '"[${V}|${v}]";',
     '[|]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${V}]";', '[val]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${ v }]";', '[${ v }]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${v }]";', '[${v }]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${ v}]";', '[${ v}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${v]";', '[${v]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[$v]";', '[$v]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${}]";', '[${}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${ }]";', '[${ }]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[$${v}]";', '[$val]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${${v}}]";', '[${val}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${0}]";', '[abc]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${00}]";', '[abc]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${0010}]";', '[]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${010}]";', '[]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${9}]";', '[]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${10}]";', '[]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${.a}]";', '[${.a}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${a.}]";', '[${a.}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${a..b}]";', '[${a..b}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${1a}]";', '[${1a}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${_}]";', '[U]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${v.}]";', '[${v.}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[\\${v}]";', '[val]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${\\v}]";', '[val]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[$\\{v}]";', '[val]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${v\\}]";', '[val]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${V}${v}]";', '[valval]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${v}${]";', '[val${]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[$}]";', '[$}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${{v}}]";', '[${{v}}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${hex:41}]";', '[A]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${unicode:41}]";', '[A]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${Hex:41}]";', '[A]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${x]";', '[${x]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${ 0 }]";', '[${ 0 }]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${-1}]";', '[${-1}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${+1}]";', '[${+1}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${1.5}]";', '[${1.5}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${é}]";', '[${é}]'),
    ('set "v" "val"; set "_" "U"; if string :matches "abc" "*b*" {} addheader "X-R" "[${env}]";', '[]'),
    ('set 1 "x";', 'compile-error'),
    ('set ["a"] "x";', 'compile-error'),
    ('set "a" ["x"];', 'compile-error'),
    ('set "a";', 'compile-error'),
    ('set "a" "b" "c";', 'compile-error'),
    ('set :foo "a" "b";', 'compile-error'),
    ('set "n" "v"; set "${n}" "x";', 'compile-error'),
    ('if string :matches "abc" "*b*" { set "1" "z"; } addheader "X-R" "[${1}]";', 'compile-error'),
    ('set "10" "z";', 'compile-error'),
    ('set "env.x" "z";', 'compile-error'),
    ('set "v" "x"; addheader "X-R" "[${aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]";', '[]'),
    ('if string :matches "abcdefghijklm" "?????????????" {} addheader "X-R" "[${9}|${10}|${11}]";', '[i|j|k]'),
    ('set "v" "ab"; set "v" "${v}${v}"; set "v" "${v}${v}"; set "v" "${v}${v}"; addheader "X-R" '
     '"[${v}]";',
     '[abababababababab]'),
    ('set "v" "a\\${b}"; addheader "X-R" "[${v}]";', '[a]'),
    ('set "v" "a$"; addheader "X-R" "[${v}]";', '[a$]'),
    ('set "" "x"; addheader "X-R" "[${}]";', 'compile-error'),
    ('set "a" ""; if string :count "eq" :comparator "i;ascii-numeric" ["${a}", "${nosuch}", "x"] "1" { '
     'fileinto "Foo"; }',
     'Foo'),
    ('if string :is "${nosuch}" "" { fileinto "Foo"; }', 'Foo'),
    ('set "c" "i;octet"; if string :comparator "${c}" "a" "a" { fileinto "Foo"; }', 'compile-error'),
    ('set "h" "subject"; if header :is "${h}" "hi" { fileinto "Foo"; }', 'Foo'),
    ('set "r" "eq"; if string :value "${r}" "a" "a" { fileinto "Foo"; }', 'compile-error'),
    ('set "v" ":all"; if address "${v}" "from" "a" { fileinto "Foo"; }', 'compile-error'),
    ('set :quotewildcard "q" "a*b"; if string :matches :comparator "i;octet" "a*b" "${q}" { fileinto '
     '"Foo"; } if string :matches :comparator "i;octet" "axxb" "${q}" { fileinto "Bar"; }',
     'Foo'),
    ('set :upperfirst "v" "_a"; addheader "X-R" "[${v}]";', '[_a]'),
    ('if string :matches "héllo" "h*o" { set :length "l" "${1}"; } addheader "X-R" "[${l}]";', '[3]'),
    ('set "hex.41" "x";', 'compile-error'),
    ('set "a.1" "x";', 'compile-error'),
    ('set "a.b.1" "x";', 'compile-error'),
    ('set "a.1.b" "x";', 'compile-error'),
    ('set "global.1" "x";', 'compile-error'),
    ('set "a.b.c.d.e" "x";', 'compile-error'),
    ('set "1.a" "x";', 'compile-error'),
    ('set "a." "x";', 'compile-error'),
    ('set "a..b" "x";', 'compile-error'),
    ('set ".a" "x";', 'compile-error'),
    ('set "a.b-c" "x";', 'compile-error'),
    ('set "a .b" "x";', 'compile-error'),
    ('set "a. b" "x";', 'compile-error'),
    ('set "v" "' + "x" * 5000 + '"; set :length "l" "${v}"; addheader "X-R" "[${l}]";', "[4096]"),
    ('set "' + "a" * 65 + '" "val";', "compile-error"),
    ("".join(f'set "v{i}" "{i}";' for i in range(300)) + ' addheader "X-R" "[${v299}]";', "compile-error"),
]


def _contexts(ref: str) -> list[str]:
    """A reference in an added field, a set value, a test's key and a mailbox name."""
    return [f'if string :matches "abc" "*b*" {{}} addheader "X-R" "[{ref}]";',
            f'set "v" "{ref}"; addheader "X-R" "[${{v}}]";',
            f'if string :is "" "{ref}" {{ fileinto "Foo"; }} else {{ fileinto "Bar"; }}',
            f'fileinto "Foo{ref}";']


# what Pigeonhole shows in each context when it expands the reference to "" (or to ${1}, "a")
_AS_EMPTY = ("[]", "[]", "Foo", "Foo")
_AS_ONE = ("[a]", "[]", "Foo", "Foo")
_MATCH_INDEX = ("Pigeonhole logs 'match value index N out of range (max: 32)' but compiles the script and expands "
                "the reference to ''; RFC 5229 6: a reference past the supported match variables MUST be a syntax "
                "error, found at compile time")
_UNKNOWN_NS = ("Pigeonhole logs 'referring to variable in unknown namespace' but compiles the script and expands "
               "the reference to ''; RFC 5229 3: a namespace the script did not require MUST cause an error "
               "(deviations.toml unknown-namespace)")
# reference -> (Owlery in each context, Pigeonhole when it differs, why)
REFERENCES = {
    "${9}": (("[]", "[]", "Foo", "Foo"), None, ""),
    "${10}": (("[]", "[]", "Foo", "Foo"), None, ""),
    "${32}": (("[]", "[]", "Foo", "Foo"), None, ""),
    "${0032}": (("[]", "[]", "Foo", "Foo"), None, ""),
    "${33}": (("compile-error",) * 4, _AS_EMPTY, _MATCH_INDEX),
    "${00000000000000000033}": (("compile-error",) * 4, _AS_EMPTY, _MATCH_INDEX),
    "${99999999999999999999}": (("compile-error",) * 4, _AS_EMPTY, _MATCH_INDEX),
    "${4294967297}": (("compile-error",) * 4, _AS_ONE,
                      "Pigeonhole reads the index modulo 2^32 (${1}) without a word; RFC 5229 6: a syntax error"),
    "${a.b}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS),
    "${env.b}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS + ", env. without vnd.dovecot.environment"),
    "${a.b.c.d.e}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS),
    "${envelope.from}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS),
    # the fix: a number after the namespace
    "${a.1}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS),
    "${a.b.1}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS),
    "${a.1.b}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS),
    "${hex.41}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS + " (hex. is a namespace, hex: an encoded character)"),
    "${global.1}": (("compile-error",) * 4, _AS_EMPTY, _UNKNOWN_NS + ", global. without include"),
    # no reference: text
    "${1.a}": (("[${1.a}]", "[${1.a}]", "Bar", "error"), None, ""),
    "${a.}": (("[${a.}]", "[${a.}]", "Bar", "error"), None, ""),
    "${.a}": (("[${.a}]", "[${.a}]", "Bar", "error"), None, ""),
    "${a..b}": (("[${a..b}]", "[${a..b}]", "Bar", "error"), None, ""),
    "${a.b-c}": (("[${a.b-c}]", "[${a.b-c}]", "Bar", "error"), None, ""),
    "${a .b}": (("[${a .b}]", "[${a .b}]", "Bar", "error"), None, ""),
}
VARIABLES = _cases(VR, VARIABLES_CASES) + _cases(VR, [
    (body, seen) for ref, (ours, _, _) in REFERENCES.items() for body, seen in zip(_contexts(ref), ours)])
ALLOWED_VARIABLES = {
    body: (theirs_seen, why)
    for ref, (_, theirs, why) in REFERENCES.items() if theirs for body, theirs_seen in zip(_contexts(ref), theirs)
}


@pytest.mark.parametrize("name, script, message, expected", VARIABLES, ids=_ids(VARIABLES))
def test_variables(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_variables_against_sieve_test(ph):
    _compare(ph, VARIABLES, ALLOWED_VARIABLES)


# RFC 5229 6: at least 128 variables, names of 32 characters, values of 4000 characters; both
# engines take 255 variables (set or global; a reference alone creates none) and refuse the 256th
# at compile time, and cut a value at 4096 octets (sieve_max_variable_size), a match value too. An
# added field longer than the header limit fails the run in both.
VLR = 'require ["fileinto", "variables", "editheader", "include"];\n'


def _sets(n: int) -> str:
    return "".join(f'set "v{i}" "{i}";' for i in range(n)) + f' addheader "X-R" "[${{v{n - 1}}}]";'


def _length_of(value_setup: str) -> str:
    return value_setup + ' set :length "l" "${v}"; addheader "X-R" "[${l}]";'


VARIABLE_LIMITS_CASES = [
    (_sets(254), "[253]"), (_sets(255), "[254]"), (_sets(256), "compile-error"),
    ("".join(f'if string "${{r{i}}}" "" {{}}' for i in range(256)) + ' addheader "X-R" "[x]";', "[x]"),
    ("".join(f'global "g{i}";' for i in range(255)) + ' addheader "X-R" "[x]";', "[x]"),
    ("".join(f'global "g{i}";' for i in range(256)) + ' addheader "X-R" "[x]";', "compile-error"),
    (_length_of('set "v" "' + "x" * 4095 + '";'), "[4095]"),
    (_length_of('set "v" "' + "x" * 4096 + '";'), "[4096]"),
    (_length_of('set "v" "' + "x" * 4097 + '";'), "[4096]"),
    (_length_of('set "a" "' + "x" * 4087 + '"; set "v" "${a}0123456789";'), "[4096]"),
    (_length_of('set "v" "' + "\u00e9" * 2049 + '";'), "[2048]"),
    (_length_of('if header :matches "X-L" "*" { set "v" "${1}"; }'), ("X-L: " + "y" * 5000,), "[4096]"),
    (_length_of('if header :matches "X-L" "*" { } set "v" "${1}";'), ("X-L: " + "y" * 5000,), "[4096]"),
    ('set "v" "' + "x" * 3000 + '"; addheader "X-Long" "${v}${v}";', "error"),
]
VARIABLE_LIMITS = _cases(VLR, VARIABLE_LIMITS_CASES)
ALLOWED_VARIABLE_LIMITS = {
    VARIABLE_LIMITS[10][0]: ("[2047]", "deviations.toml variable-truncation-utf8-boundary: Owlery keeps the 2048 "
                             "two-octet characters that fit in 4096 octets, Pigeonhole 2047; RFC 5229 6 leaves the cut "
                             "to the implementation"),
}


@pytest.mark.parametrize("name, script, message, expected", VARIABLE_LIMITS, ids=_ids(VARIABLE_LIMITS))
def test_variable_limits(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_variable_limits_against_sieve_test(ph):
    _compare(ph, VARIABLE_LIMITS, ALLOWED_VARIABLE_LIMITS)

# Namespaces the script did require: global. (include) and env. (vnd.dovecot.environment) hold
# named variables only (RFC 6609 3.3: `global` names identifiers; environment items have names),
# so a number after them is an invalid name. Pigeonhole logs "invalid variable name within global
# namespace: encountered numeric variable name" (the same for env.) but compiles and expands it
# to "".
NSR = 'require ["fileinto", "variables", "editheader", "include", "vnd.dovecot.environment", "environment"];\n'
NAMESPACES_CASES = [
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${global.1}]";', 'compile-error'),
    ('fileinto "Foo${global.1}";', 'compile-error'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${global.a.1}]";',
     'compile-error'),
    ('fileinto "Foo${global.a.1}";', 'compile-error'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${global.01}]";', 'compile-error'),
    ('fileinto "Foo${global.01}";', 'compile-error'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${env.1}]";', 'compile-error'),
    ('fileinto "Foo${env.1}";', 'compile-error'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${env.a.1}]";', 'compile-error'),
    ('fileinto "Foo${env.a.1}";', 'compile-error'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${env.1.a}]";', 'compile-error'),
    ('fileinto "Foo${env.1.a}";', 'compile-error'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${env.name}]";',
     '[Pigeonhole Sieve]'),
    ('fileinto "Foo${env.name}";', 'error'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${global.a}]";', '[A]'),
    ('fileinto "Foo${global.a}";', 'Foo'),
    ('global "a"; set "a" "A"; if string :matches "abc" "*b*" {} addheader "X-R" "[${env.a.b}]";', '[]'),
    ('fileinto "Foo${env.a.b}";', 'Foo'),
    ('global "1";', 'compile-error'),
    ('global "a.1";', 'compile-error'),
    ('set "global.1" "x";', 'compile-error'),
    ('set "global.a" "x"; addheader "X-R" "[${global.a}]";', '[x]'),
]
NAMESPACES = _cases(NSR, NAMESPACES_CASES)
_NUMBERED = ("Pigeonhole logs 'encountered numeric variable name' but compiles the script and expands the reference "
             "to ''; RFC 5229 3 with RFC 6609 3.3: the namespace holds no such variable, an error")
ALLOWED_NAMESPACES = {
    name: ("[]" if "X-R" in name else "Foo", _NUMBERED)
    for name, _, _, expected in NAMESPACES if expected == "compile-error" and "${" in name
}


@pytest.mark.parametrize("name, script, message, expected", NAMESPACES, ids=_ids(NAMESPACES))
def test_numbered_names_in_required_namespaces(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_numbered_names_in_required_namespaces_against_sieve_test(ph):
    _compare(ph, NAMESPACES, ALLOWED_NAMESPACES)


# === 7. ordering under i;ascii-casemap and i;octet ================================================
#
# RFC 5231 4-5: :value compares with the comparator's ordering, :count compares the number of
# values written in decimal, as strings under i;ascii-casemap and i;octet ("10" is less than "9":
# 10 values are :count "lt" "9", 8 values are not :count "lt" "10"). i;octet orders by octets (UTF-8: "é" after "z"); a prefix sorts first.
# Both engines order i;ascii-casemap as i;octet after a-z are made lower case ("_" and "`" sort
# before "a" and "A"), where RFC 4790 9.2.1 makes them upper case ("_" after "A"): pinned as both
# do it, a difference only for the six characters between "Z" and "a".

OR = 'require ["fileinto", "relational", "variables", "comparator-i;ascii-numeric"];\n'
ORDERING_CASES = [
    ('if string :value "lt" :comparator "i;ascii-casemap" "_" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "_" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "_" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "_" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "_" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "_" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "a" { fileinto "Foo"; }', ('X-A: _',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "_" "A" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "_" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "_" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "_" "A" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "_" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "_" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "A" { fileinto "Foo"; }', ('X-A: _',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "[" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "[" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "[" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "[" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "[" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "[" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "a" { fileinto "Foo"; }', ('X-A: [',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "a" "B" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "a" "B" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "a" "B" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "a" "B" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "a" "B" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "a" "B" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "B" { fileinto "Foo"; }', ('X-A: a',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "A" "b" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "A" "b" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "A" "b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "A" "b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "A" "b" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "A" "b" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "b" { fileinto "Foo"; }', ('X-A: A',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "abc" "ABD" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "abc" "ABD" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "abc" "ABD" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "abc" "ABD" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "abc" "ABD" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "abc" "ABD" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "ABD" { fileinto "Foo"; }', ('X-A: abc',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "é" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "lt" :comparator "i;octet" "é" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "é" "z" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;octet" "é" "z" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "é" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "é" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "z" { fileinto "Foo"; }', ('X-A: é',), 'INBOX'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "É" "é" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "É" "é" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "É" "é" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "É" "é" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "É" "é" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "É" "é" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "é" { fileinto "Foo"; }', ('X-A: É',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "a" { fileinto "Foo"; }', ('X-A: ',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "lt" :comparator "i;octet" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "a" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;octet" "a" "" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "a" "" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "" { fileinto "Foo"; }', ('X-A: a',), 'INBOX'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "ab" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "lt" :comparator "i;octet" "ab" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "ab" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;octet" "ab" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "ab" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "ab" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "a" { fileinto "Foo"; }', ('X-A: ab',), 'INBOX'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "a" "ab" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "a" "ab" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "a" "ab" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "a" "ab" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "a" "ab" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "a" "ab" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "ab" { fileinto "Foo"; }', ('X-A: a',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "`" "A" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "lt" :comparator "i;octet" "`" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "`" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;octet" "`" "A" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "`" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "`" "A" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "A" { fileinto "Foo"; }', ('X-A: `',), 'Foo'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "{" "Z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "lt" :comparator "i;octet" "{" "Z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "{" "Z" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;octet" "{" "Z" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "{" "Z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "{" "Z" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "Z" { fileinto "Foo"; }', ('X-A: {',), 'INBOX'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "~" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "lt" :comparator "i;octet" "~" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "~" "z" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;octet" "~" "z" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "~" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "~" "z" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "z" { fileinto "Foo"; }', ('X-A: ~',), 'INBOX'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "aé" "AÉ" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "lt" :comparator "i;octet" "aé" "AÉ" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "aé" "AÉ" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;octet" "aé" "AÉ" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "aé" "AÉ" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "aé" "AÉ" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "AÉ" { fileinto "Foo"; }', ('X-A: aé',), 'INBOX'),
    ('if string :value "lt" :comparator "i;ascii-casemap" "Z" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "lt" :comparator "i;octet" "Z" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;ascii-casemap" "Z" "a" { fileinto "Foo"; }', 'Foo'),
    ('if string :value "gt" :comparator "i;octet" "Z" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;ascii-casemap" "Z" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if string :value "eq" :comparator "i;octet" "Z" "a" { fileinto "Foo"; }', 'INBOX'),
    ('if header :value "lt" "X-A" "a" { fileinto "Foo"; }', ('X-A: Z',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;octet" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;octet" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;octet" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;octet" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-A" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-Nope" "" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;octet" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;octet" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;octet" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;octet" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;octet" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-A" "0" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-Nope" "0" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;octet" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;octet" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;octet" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;octet" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-A" "1" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-Nope" "1" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;octet" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;octet" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;octet" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-A" "01" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-Nope" "01" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;octet" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;octet" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-A" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-Nope" "2" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-casemap" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;octet" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "eq" :comparator "i;ascii-numeric" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-casemap" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;octet" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;octet" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" :comparator "i;ascii-numeric" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-casemap" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;octet" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "gt" :comparator "i;ascii-numeric" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'INBOX'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-casemap" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;octet" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-A" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "ne" :comparator "i;ascii-numeric" "X-Nope" "a" { fileinto "Foo"; }', ('X-A: 1',), 'Foo'),
    ('if header :count "lt" "X-A" "9" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'Foo'),
    ('if header :count "lt" "X-A" "10" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'INBOX'),
    ('if header :count "lt" "X-A" "9" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'INBOX'),
    ('if header :count "lt" "X-A" "10" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'INBOX'),
    ('if header :count "lt" "X-A" "9" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'Foo'),
    ('if header :count "lt" "X-A" "10" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'INBOX'),
    ('if header :count "lt" "X-A" "9" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'Foo'),
    ('if header :count "lt" "X-A" "10" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'INBOX'),
    ('if header :count "lt" "X-A" "9" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'Foo'),
    ('if header :count "lt" "X-A" "10" { fileinto "Foo"; }',
     ('X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1', 'X-A: 1'),
     'INBOX'),
]
ORDERING = _cases(OR, ORDERING_CASES)


@pytest.mark.parametrize("name, script, message, expected", ORDERING, ids=_ids(ORDERING))
def test_ordering(name, script, message, expected):
    assert _seen(_ours(script, message)) == expected


def test_ordering_against_sieve_test(ph):
    _compare(ph, ORDERING, {})
