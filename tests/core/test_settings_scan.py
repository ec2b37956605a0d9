"""owlery.settings.scan_flat: the line scan that spares a flat settings file tomllib (~5 ms per
in-process LDA run). Whatever it returns, tomllib.loads returns too; it gives up (None) on
everything else, and parse_text then reads the file with tomllib as before."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owlery.settings import SettingsError, parse_text, scan_flat

FLAT = [
    "",
    "# only a comment\n\n",
    'maildir_path_template = "/srv/{domain}/{localpart}/Maildir"\nlog_level = "warning"\n',
    "a = 'lit\"eral'  # note\nb = true\nc = false#x\nd = 0\ne = 123456789012345678\n",
    'l = ["unix:/a", \'tcp:h:1\',]  # two\nm = []\nn = [ "x" ]\n',
    'k = "a#b" \r\nj = "caf\u00e9"\n',
    'x="" # empty\n',
    "\t key\t=\t1\t\n",
]
NOT_FLAT = [
    'x = "a\\"b"\n',  # an escape
    'x = """\nmulti\n"""\n',  # multi-line string
    "x = '''a'''\n",
    "[table]\nx = 1\n",
    "x.y = 1\n",  # dotted key
    '"quoted" = 1\n',
    "x = 1.5\n",
    "x = -1\n",
    "x = +1\n",
    "x = 1_000\n",
    "x = 0x10\n",
    "x = 07\n",
    "x = 1234567890123456789\n",
    "x = 1979-05-27\n",
    "x = inf\n",
    "x = { a = 1 }\n",
    "x = [1, 2]\n",
    'x = [["a"]]\n',
    'x = ["a"\n, "b"]\n',
    "x = 1\nx = 2\n",  # duplicate: tomllib's error
    'x = "a" "b"\n',
    "x = truex\n",
    "x =\n",
    "= 1\n",
    "x\n",
    'x = "a\x01"\n',
    "# \x7f\n",
    "x = 1\ry = 2\n",
    "\ufeffx = 1\n",
    'x = ["a",,]\n',
    "x = [,]\n",
    'x = ["a" "b"]\n',
    'x = "unterminated\n',
]


@pytest.mark.parametrize("text", FLAT)
def test_flat_files_read_as_tomllib_reads_them(text):
    assert scan_flat(text) == tomllib.loads(text)


@pytest.mark.parametrize("text", NOT_FLAT)
def test_anything_else_is_left_to_tomllib(text):
    assert scan_flat(text) is None


def test_a_bad_file_still_gets_tomllib_s_error_with_its_line(tmp_path):
    with pytest.raises(SettingsError) as e:
        parse_text('log_level = "info"\nlog_level = "debug"\n', "x.toml")
    assert "not valid TOML" in str(e.value) and e.value.line == 2


ALPHABET = st.sampled_from(list("ab_-019 \t=\"'#[],.\\\n\r{}+x\u00e9\x01") + ["true", "false", "\r\n", '"""'])


@settings(max_examples=3000, deadline=None)
@given(st.lists(ALPHABET, max_size=30).map("".join))
def test_the_scan_never_disagrees_with_tomllib(text):
    got = scan_flat(text)
    if got is None:
        return
    assert got == tomllib.loads(text)  # raises (fails the test) if tomllib refuses the text


KEY = st.sampled_from(["a", "b_c", "x-1", "9", "a.b", '"q"', "a b", ""])
VALUE = st.sampled_from(
    [
        '"s"',
        "'l'",
        '""',
        "''",
        '"a#b"',
        "'\"'",
        "true",
        "false",
        "0",
        "42",
        "007",
        "-3",
        "1.0",
        "[\"u\", 'v']",
        "[]",
        '["a",]',
        "[1]",
        '"x',
        '"""m"""',
        "nope",
    ]
)
GAP = st.sampled_from(["", " ", "\t", "  "])
TAIL = st.sampled_from(["", " # c", "#c", " x", "\r"])
LINE = st.tuples(GAP, KEY, GAP, st.sampled_from(["=", ""]), GAP, VALUE, TAIL).map("".join) | st.sampled_from(
    ["", "# comment", "[t]", "  "]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(LINE, max_size=6), st.sampled_from(["\n", "\r\n"]))
def test_flat_looking_files_agree_with_tomllib(lines, nl):
    text = nl.join(lines)
    got = scan_flat(text)
    try:
        want = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert got is None
        return
    assert got is None or got == want
