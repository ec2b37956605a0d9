"""Fuzz: the Maildir++ maildirsize reader (owlery/maildirsize.py) on arbitrary bytes and text.

Oracle: a line-by-line reference reader written here from the module's documented rules
(definition "<digits>S,<digits>C", parts optional; "<bytes> <messages>" delta lines, ASCII
only, of 1 to 20 digits, optionally negative; anything else, an empty or blank line included, is
a bad line; a last line without its LF is a bad line, not counted; an empty file is one bad line;
negative totals read 0).
`parse` must agree with it on every input (its one-regex fast path included), never raise,
and `read` must give what `parse` gives on the file's bytes, whatever they are.
"""

from __future__ import annotations

import os
import re
import tempfile

from hypothesis import example, given
from hypothesis import strategies as st

from owlery import maildirsize
from owlery.maildirsize import MaildirSize
from tests.fuzz.fuzzlib import budget, corpus, mutants

SEEDS = corpus("maildirsize")
TOKENS = [b"\n", b"\r\n", b" ", b"\t", b"-", b"S", b"C", b",", b"0", b"99999999999999999999", b"1" * 21,
          "\u00b2".encode(), "\u0661".encode(), b"\x0b", b"\x0c", b"\x1c", b"\x1f", b"\xc2\x85", "\u2028".encode(),
          b"\xa0", b"_", b"+1"]
DIGITS = re.compile(r"-?[0-9]{1,20}")
LIMIT = re.compile(r"([0-9]{1,20})([SC])")


def reference(text: str) -> MaildirSize:
    lines = text.splitlines()
    if not lines:
        return MaildirSize(None, None, 0, 0, 1)
    size = count = None
    bad = junk = 0
    if not text.endswith("\n"):
        bad += 1
        lines = lines[:-1] if len(lines) > 1 else lines
    for part in lines[0].split(","):
        part = part.strip()
        if not part:
            continue
        m = LIMIT.fullmatch(part)
        if m is None:
            junk = 1
        elif m.group(2) == "S":
            size = int(m.group(1)) or None
        else:
            count = int(m.group(1)) or None
    bad += junk
    used_b = used_m = 0
    for line in lines[1:]:
        fields = line.split()
        if len(fields) == 2 and line.isascii() and all(DIGITS.fullmatch(f) for f in fields):
            used_b += int(fields[0])
            used_m += int(fields[1])
        else:
            bad += 1
    return MaildirSize(size, count, max(used_b, 0), max(used_m, 0), bad,
                       negative_total=used_b < 0 or used_m < 0)


def check_text(text: str) -> None:
    got = maildirsize.parse(text)
    assert got == reference(text)
    assert got.used_bytes >= 0 and got.used_messages >= 0
    assert got.limit_bytes is None or 0 < got.limit_bytes < 10 ** 20
    assert got.limit_messages is None or 0 < got.limit_messages < 10 ** 20
    assert got.suspect == (got.bad_lines > 0 or got.negative_total)


def check_bytes(data: bytes) -> None:
    check_text(data.decode("ascii", "replace"))
    check_text(data.decode("utf-8", "surrogateescape"))
    check_text(data.decode("latin-1"))


text_soup = st.lists(st.one_of(st.sampled_from(["\n", " ", "\t", "-", "S", "C", ",", "\r", "\x0b", "\x1f", "\u00a0",
                                                "\u2028", "\u00b2", "\u0661", "_", "+"]),
                               st.integers(-10 ** 21, 10 ** 21).map(str)), max_size=30).map("".join)


@budget(400)
@given(data=st.one_of(mutants(SEEDS, TOKENS), st.binary(max_size=200)))
@example(data=b"1000S\n" + b"1 1\n" * 1000 + b"x\n")
def test_any_bytes(data):
    check_bytes(data)


@budget(300)
@given(text=st.one_of(text_soup, st.text(max_size=80)))
@example(text="10S\n5\x1f1\n")
def test_any_text(text):
    check_text(text)


@budget(50)
@given(data=st.one_of(mutants(SEEDS, TOKENS), st.binary(max_size=100)))
def test_read_gives_what_parse_gives(data):
    with tempfile.TemporaryDirectory() as maildir:
        with open(os.path.join(maildir, "maildirsize"), "wb") as f:
            f.write(data)
        assert maildirsize.read(maildir) == maildirsize.parse(data.decode("ascii", "replace"))


def test_read_stops_at_the_read_limit():
    line = b"1" * 20 + b" 1\n"
    data = b"0S\n" + line * (maildirsize.MAILDIRSIZE_READ_MAX // len(line) + 10)
    with tempfile.TemporaryDirectory() as maildir:
        with open(os.path.join(maildir, "maildirsize"), "wb") as f:
            f.write(data)
        got = maildirsize.read(maildir)
    assert got == maildirsize.parse(data[:maildirsize.MAILDIRSIZE_READ_MAX].decode("ascii"))
    assert got.used_messages < (len(data) - 3) // len(line)


def fuzz_one(data: bytes) -> None:
    check_bytes(data)
