"""Hand-probed behaviours settled against Pigeonhole 0.5.19 (Debian's sieve-test) and the RFCs,
in areas the earlier probe rounds (test_pigeonhole_probes_s18.py) left out:

1. :matches with i;octet and i;ascii-casemap on 8-bit text: '?' takes one octet (RFC 5228
   2.7.1), so a match value may cut a UTF-8 character (sieve/match.py, do_match);
2. :length of such a value, which is not UTF-8: counted as Pigeonhole counts it
   (sieve/extensions/variables.py, _length);
3. special-use flags: any IMAP atom after the backslash, and specialuse_exists given a flag that
   is none at run time fails the run (sieve/extensions/special_use.py);
4. notify :importance with a variable in it: a compile error (sieve/extensions/enotify.py).

The other topics probed in this round agreed with sieve-test (lexer escapes, text: blocks,
number suffixes, test composition, include, mailbox and metadata names, imap4flags, mailto URIs,
environment items, body transforms, address parts) or are explained elsewhere
(deviations.toml, test_address_differential.py). Each case runs through Owlery's engine and
through sieve-test; where Pigeonhole and the RFC disagree, Owlery follows the RFC and the
ALLOWED_* tables say why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from owlery.settings import Settings
from sieve import api
from tests.sieve.differential import pigeonhole

SENDER = "sender@example.org"
USER = "user@example.net"
ENV = api.Envelope(mail_from=SENDER, rcpt_to=USER, orig_rcpt=USER)


def _message(subject: bytes) -> bytes:
    return b"From: a@example.org\r\nTo: " + USER.encode() + b"\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"


PLAIN = _message(b"hi")


def _owlery(script: str, message: bytes) -> tuple[str, bool]:
    """(status, filed into "Box") for Owlery's engine; status: ok, error or compile-error."""
    try:
        compiled = api.compile_script(script.encode(), settings=Settings())
    except api.SieveCompileError:
        return "compile-error", False
    # the mail store sieve-test has: INBOX and "Box"
    result = api.run(compiled, message, ENV, settings=Settings(), host=api.MemoryHost(mailboxes=("INBOX", "Box")))
    box = any(isinstance(a, api.FileInto) and a.mailbox == "Box" for a in result.actions)
    return ("ok" if result.status == "ok" else "error"), box and result.status == "ok"


def _pigeonhole(ph: pigeonhole.Pigeonhole, script: str, message: bytes) -> tuple[str, bool]:
    """The same for sieve-test (a failed run keeps into INBOX: nothing filed into "Box")."""
    raw = ph.run(script.encode(), message, SENDER, USER, USER)
    assert raw.status in ("ok", "error", "compile-error"), raw.log[-800:]
    return raw.status, any(box == "Box" for box, _, _ in raw.stored)


@pytest.fixture(scope="module")
def ph_box():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-s18b-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    try:
        yield pigeonhole.Pigeonhole(d / "ph", ("Box",))
    finally:
        shutil.rmtree(d, ignore_errors=True)


# === 1. '?' is one octet for i;octet and i;ascii-casemap =========================================
#
# RFC 5228 2.7.1: "?" matches a single character, "where the comparator that is used defines what
# a character is": i;octet and i;ascii-casemap define it as one octet, so '?' matches exactly one
# octet of the UTF-8 text ("é" is "??", "€" is "???"), a Unicode comparator a whole character.
# A header's octets that are not UTF-8 read as one U+FFFD (three octets) a run, as both engines
# decode them. (subject octets, comparator, key, does it match)

M1 = 'require ["fileinto", "variables"];\n'
OCTET_CASES = [
    ("é".encode(), "i;octet", "?", False),
    ("é".encode(), "i;octet", "??", True),
    ("é".encode(), "i;ascii-casemap", "??", True),
    ("€".encode(), "i;octet", "?", False),
    ("€".encode(), "i;octet", "???", True),
    ("a€b".encode(), "i;octet", "a?b", False),
    ("a€b".encode(), "i;ascii-casemap", "A???B", True),
    ("ÉTÉ".encode(), "i;ascii-casemap", "?t?", False),
    ("ÉTÉ".encode(), "i;ascii-casemap", "??t??", True),
    ("été x".encode(), "i;octet", "*??? x", True),
    (b"\xc9", "i;octet", "?", False),
    (b"\xc9", "i;octet", "???", True),
    (b"\xc9\xc9", "i;ascii-casemap", "???", True),
    (b"a\xc9b", "i;octet", "a???b", True),
]


def _octet_script(comparator: str, key: str) -> str:
    return M1 + f'if header :matches :comparator "{comparator}" "subject" "{key}" {{ fileinto "Box"; }}'


@pytest.mark.parametrize(("subject", "comparator", "key", "matches"), OCTET_CASES)
def test_question_mark_is_one_octet(subject, comparator, key, matches):
    assert _owlery(_octet_script(comparator, key), _message(subject)) == ("ok", matches)


def test_question_mark_is_one_octet_against_sieve_test(ph_box):
    for subject, comparator, key, matches in OCTET_CASES:
        got = _pigeonhole(ph_box, _octet_script(comparator, key), _message(subject))
        assert got == ("ok", matches), (subject, comparator, key)


# The match values of such a match hold the octets each wildcard took: the two halves of "é"
# joined again are "é" (RFC 5229 3.2), and each half alone is no character (section 2's :length).
VALUE_CASES = [
    ('if header :matches "subject" "?*" { if string :is "${1}${2}" "été" { fileinto "Box"; } }', True),
    ('if header :matches "subject" "??*" { if string :is "${1}${2}" "é" { fileinto "Box"; } }', True),
    ('if header :matches "subject" "?*" { set :length "n" "${1}"; if string :is "${n}" "0" '
     '{ fileinto "Box"; } }', True),
    ('if header :matches "subject" "*?" { set :length "n" "${1}"; if string :is "${n}" "2" '
     '{ fileinto "Box"; } }', True),
]


@pytest.mark.parametrize(("test", "true"), VALUE_CASES)
def test_match_values_hold_octets(test, true):
    assert _owlery(M1 + test, _message("été".encode())) == ("ok", true)


def test_match_values_hold_octets_against_sieve_test(ph_box):
    for test, true in VALUE_CASES:
        assert _pigeonhole(ph_box, M1 + test, _message("été".encode())) == ("ok", true), test


# === 2. :length of text that is not UTF-8 ========================================================
#
# RFC 5229 4.1.3 counts characters and RFC 5228 1 makes strings UTF-8; a value that is not (an
# octet match value, "${hex:c3}") has no characters to count, and the RFC is silent: Owlery counts
# as Pigeonhole does, each first octet together with the octets it claims (C2-DF two, E0-EF three,
# F0-F7 four, F8-FB five, FC-FD six, any other one), a sequence the string's end cuts as none.
# (the octets, their :length)

M2 = 'require ["fileinto", "variables", "encoded-character"];\n'
LENGTH_CASES = [
    ("c3", 0), ("c3 c3", 1), ("61 c3 62", 2), ("82 ac", 2), ("f0 61 62", 0), ("f0 61 62 63", 1),
    ("ff", 1), ("fe 61", 2), ("f8 61 62 63 64", 1), ("fc 61 62 63 64 65", 1), ("c0 80", 2),
    ("c1 61", 2), ("e0 61", 0), ("ed a0 80", 1), ("80 80 80", 3), ("c3 a9", 1),
]


def _length_script(octets: str, n: int) -> str:
    return M2 + f'set :length "n" "${{hex:{octets}}}"; if string :is "${{n}}" "{n}" {{ fileinto "Box"; }}'


@pytest.mark.parametrize(("octets", "n"), LENGTH_CASES)
def test_length_of_text_that_is_not_utf8(octets, n):
    assert _owlery(_length_script(octets, n), PLAIN) == ("ok", True)


def test_length_of_text_that_is_not_utf8_against_sieve_test(ph_box):
    for octets, n in LENGTH_CASES:
        assert _pigeonhole(ph_box, _length_script(octets, n), PLAIN) == ("ok", True), octets


# === 3. special-use flags ========================================================================
#
# RFC 8579 names a special-use attribute, RFC 6154 2: use-attr-ext = "\" atom, and RFC 3501 9's
# atom is one or more of any CHAR but ( ) { SP CTL % * " \ ]: "\1", "\a.b" and "\a[" are flags
# (as Pigeonhole reads them), "\a]" and "\é" are none. A flag that is none, built at run time, fails
# the run in specialuse_exists as in fileinto :specialuse (RFC 8579 4; a constant is a compile
# error). The flags are looked at in turn: a flag after one that no mailbox has is not reached.
# (the flag as the script's string spells it, is it a flag)

M3 = 'require ["fileinto", "special-use", "variables"];\n'
FLAG_CASES = [
    ("\\\\Junk", True), ("\\\\1", True), ("\\\\a.b", True), ("\\\\a+b", True), ("\\\\a[", True),
    ("\\\\a!#$&'+,-./:;<=>?@^_`|}~", True),
    ("Junk", False), ("", False), ("\\\\Junk\\\\Trash", False), ("\\\\Junk x", False), ("\\\\a]", False),
    ("\\\\a%", False), ("\\\\a*", False), ("\\\\a(b", False), ("\\\\a{b", False), ("\\\\é", False),
    ("\\\\", False),
]
# a lone backslash: Pigeonhole takes it as a flag
ALLOWED_FLAG = {"\\\\": "Pigeonhole takes a lone backslash as a special-use flag; RFC 6154 2 use-attr-ext is "
                       "a backslash and an atom, and RFC 3501 9 an atom is one or more ATOM-CHARs"}


def _flag_scripts(flag: str) -> list[str]:
    """Scripts that file into "Box" when `flag` is a flag and fail (or do not compile) when not."""
    return [
        M3 + f'set "f" "{flag}"; if not specialuse_exists "${{f}}" {{ fileinto "Box"; }}',
        M3 + f'set "f" "{flag}"; if not specialuse_exists "Box" "${{f}}" {{ fileinto "Box"; }}',
        M3 + f'set "f" "{flag}"; fileinto :specialuse "${{f}}" "Box";',
        M3 + f'fileinto :specialuse "{flag}" "Box";',
    ]


@pytest.mark.parametrize(("flag", "valid"), FLAG_CASES)
def test_special_use_flag_is_an_atom(flag, valid):
    for script in _flag_scripts(flag):
        status, box = _owlery(script, PLAIN)
        assert box is valid, script
        assert status == ("ok" if valid else "compile-error" if "${f}" not in script else "error"), script


def test_special_use_flag_is_an_atom_against_sieve_test(ph_box):
    differ = set()
    for flag, _valid in FLAG_CASES:
        for script in _flag_scripts(flag):
            if _pigeonhole(ph_box, script, PLAIN) != _owlery(script, PLAIN):
                assert flag in ALLOWED_FLAG, script
                differ.add(flag)
    assert differ == set(ALLOWED_FLAG), "stale allow-list entries"


def test_specialuse_exists_stops_at_the_first_flag_no_mailbox_has(ph_box):
    # "\\Junk" is a flag no mailbox has: the test is false before "Junk" is looked at
    script = M3 + 'set "f" "Junk"; if not specialuse_exists ["\\\\Junk", "${f}"] { fileinto "Box"; }'
    assert _owlery(script, PLAIN) == _pigeonhole(ph_box, script, PLAIN) == ("ok", True)


# === 4. notify :importance =======================================================================
#
# RFC 5435 3.3: the :importance argument is "1", "2" or "3". sievec takes it as a constant and
# refuses a string with a variable in it, whatever the variable would hold; so does Owlery.

M4 = 'require ["enotify", "variables", "fileinto"];\n'
IMPORTANCE_CASES = [
    ('notify :importance "1" "mailto:a@example.com"; fileinto "Box";', "ok"),
    ('notify :importance "0" "mailto:a@example.com"; fileinto "Box";', "compile-error"),
    ('set "i" "1"; notify :importance "${i}" "mailto:a@example.com"; fileinto "Box";', "compile-error"),
    ('set "i" "2"; notify :importance "${i}" "mailto:a@example.com"; fileinto "Box";', "compile-error"),
]


@pytest.mark.parametrize(("body", "status"), IMPORTANCE_CASES)
def test_notify_importance_is_a_constant(body, status):
    assert _owlery(M4 + body, PLAIN)[0] == status


def test_notify_importance_is_a_constant_against_sieve_test(ph_box):
    for body, status in IMPORTANCE_CASES:
        assert _pigeonhole(ph_box, M4 + body, PLAIN)[0] == status, body
