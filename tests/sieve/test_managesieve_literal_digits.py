"""ManageSieve literal sizes written with leading zeros or many digits (sieve/managesieve/protocol.py).

RFC 5804 section 4: literal-c2s = "{" number "+}" CRLF *OCTET, number = 1*DIGIT (RFC 3501's
number: at most 4,294,967,295). A size is its value: "{00000000005+}" announces 5 octets, as
Dovecot's managesieved reads it (checked below against a private Dovecot on loopback), and
only a value past 4,294,967,295 is too large. However many digits are sent, the reader keeps
no more than an announcement's worth of them while it skips a bad line.
"""

from __future__ import annotations

import pytest

from sieve.managesieve.protocol import NUMBER_MAX, Atom, Bad, CommandReader, Fatal, Line, Oversized, String
from tests.managesieve.test_dovecot_differential import Step, Wire, login, run_step, servers  # noqa: F401
from tests.managesieve.test_protocol import items

NOOP = Line((Atom("NOOP"),))
ZEROS = b"0" * 5000                     # more digits than int() takes (4300)


@pytest.mark.parametrize("announce", [b"{00000000005+}", b"{00000000005}", b"{" + ZEROS + b"5+}",
                                      b"{0000000000000000000000000000000000005}"])
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_leading_zeros_announce_the_digits_value(announce, chunk):
    reader = CommandReader(max_line=8192, literal_max=100, skip_max=1000)
    assert items(b"NOOP " + announce + b"\r\nhello\r\nNOOP\r\n", reader, chunk) == [
        Line((Atom("NOOP"), String(b"hello", literal=True))), NOOP]


@pytest.mark.parametrize("chunk", [None, 1])
def test_an_empty_literal_in_zeros(chunk):
    assert items(b"CHECKSCRIPT {0000000000000+}\r\n\r\n", chunk=chunk) == [
        Line((Atom("CHECKSCRIPT"), String(b"", literal=True)))]


def test_the_bound_is_on_the_value_not_the_digits():
    reader = CommandReader(max_line=200, literal_max=100, skip_max=100)
    reader.set_limits(100, NUMBER_MAX)
    # 4,294,967,295 in 21 digits is a literal to skip (Oversized once its octets are in) ...
    out = items(b"PUTSCRIPT {00000000004294967295+}\r\n" + b"x" * 5000, reader)
    assert out == [] and reader.buffered == 0
    for announce in (b"{4294967296+}", b"{00000000004294967296+}", b"{" + ZEROS + b"4294967296+}",
                     b"{" + b"9" * 5000 + b"}", b"{18446744073709551616+}"):
        reader = CommandReader(max_line=8192, literal_max=100, skip_max=100)
        reader.set_limits(100, NUMBER_MAX)
        # ... one past it is too large however it is written, and ends the session
        assert items(b"PUTSCRIPT " + announce + b"\r\nNOOP\r\n", reader) == [Fatal("literal too large")], announce


def test_an_oversized_literal_in_zeros_is_skipped_and_named_by_its_value():
    out = items(b'PUTSCRIPT "a" {000000000000000000500+}\r\n' + b"#" * 500 + b"\r\nNOOP\r\n")
    assert out == [Oversized((Atom("PUTSCRIPT"), String(b"a")), 500), NOOP]


@pytest.mark.parametrize("chunk", [None, 1, 2, 5])
def test_a_bad_line_ending_in_a_zero_padded_literal_skips_its_octets(chunk):
    # the octets are part of the bad command: skipped, never run as commands
    out = items(b'NOOP "a\\q" {0000000000000008+}\r\nLOGOUT\r\n\r\nNOOP\r\n', chunk=chunk)
    assert out == [Bad("bad escape in quoted string"), NOOP]


# A bad line with a literal in it is skipped to its end after that literal (no line length
# bounds what follows): a literal announced at its end is read as it comes.
BAD_THEN_SKIPPED = b'NOOP "a\\q" {1+}\r\nx {'


@pytest.mark.parametrize("chunk", [None, 1, 3, 64, 4096])
def test_zeros_cut_by_reads_while_skipping_stay_bounded(chunk):
    # 100000 zeros arriving in pieces are held as at most one short announcement
    data = BAD_THEN_SKIPPED + b"0" * 100_000 + b"3+}\r\nabc\r\nNOOP\r\n"
    peak: list[int] = []
    out = items(data, chunk=chunk, peak=peak)
    assert out == [Bad("bad escape in quoted string"), NOOP]
    if chunk is not None:
        assert max(peak) <= chunk + 16, max(peak)


@pytest.mark.parametrize("chunk", [None, 1, 3, 4096])
def test_many_digits_past_the_bound_cut_by_reads_end_the_session(chunk):
    peak: list[int] = []
    data = BAD_THEN_SKIPPED + b"0" * 50_000 + b"1" + b"0" * 50_000 + b"+}\r\nNOOP\r\n"
    assert items(data, chunk=chunk, peak=peak) == [Fatal("literal too large")]
    if chunk is not None:
        assert max(peak) <= chunk + 16, max(peak)


# -- through a session: the octets of a bad line's literal never run as commands ---------

SYNTAX_THEN_DONE = b'NO "Syntax error: unexpected character."\r\nOK "Done"\r\n'


def test_a_session_skips_a_zero_padded_literal_of_a_bad_line_however_reads_cut_it():
    from tests.fuzz.fuzzlib import split
    from tests.fuzz.test_managesieve import LOGIN, drive

    for first in (b"", LOGIN):
        for data in (first + b"NOOP \xff {00000000005+}\r\nLOGOUT\r\nNOOP\r\n",
                     first + b"NOOP \xff {" + b"0" * 300 + b"5}\r\nLOGOUT\r\nNOOP\r\n",
                     first + b"NOOP \xff {3+}\r\nabc {00000000000005+}\r\nLOGOUT\r\nNOOP\r\n"):
            # 5 octets ("LOGOU") are part of the bad command, "T" ends it: one NO, then NOOP
            whole = drive([data])
            assert whole[0].endswith(b'ready."\r\n' + (b'OK "Logged in."\r\n' if first else b"")
                                     + SYNTAX_THEN_DONE) and not whole[1], whole
            for cut in range(len(first), len(data)):
                assert drive(split(data, [cut])) == whole, cut
            assert drive(split(data, list(range(len(first) + 1, len(data))))) == whole


# -- against Dovecot's managesieved -----------------------------------------------------

STATES = ("before", "after")
SAME_AS_DOVECOT = [
    ("noop-zeros", b"NOOP {00000000005+}\r\nhello\r\n"),
    ("noop-zeros-sync", b"NOOP {00000000005}\r\nhello\r\n"),
    ("noop-300-zeros", b"NOOP {" + b"0" * 300 + b"5+}\r\nhello\r\n"),
    ("noop-empty-zeros", b"NOOP {0000000000000+}\r\n\r\n"),
    ("noop-past-number-zeros", b"NOOP {00000000004294967296+}\r\n"),
    ("havespace-zeros", b'HAVESPACE "a" 00000000000000000005\r\n'),
]
SAME_AS_DOVECOT_AFTER_LOGIN = [
    ("putscript-zeros", b'PUTSCRIPT "a" {000000000000000000006+}\r\nkeep;\n\r\nGETSCRIPT "a"\r\n'),
    ("putscript-zeros-sync", b'PUTSCRIPT "b" {00000000006}\r\nkeep;\n\r\nGETSCRIPT "b"\r\n'),
    ("checkscript-zeros", b"CHECKSCRIPT {0000000000000006+}\r\nkeep;\n\r\n"),
]


def _outcome(port: int, state: str, data: bytes, n: int) -> tuple:
    w = login(port) if state == "after" else Wire(port)
    try:
        return run_step(w, Step("raw", data, "literal-digits"), n)
    finally:
        w.close()


@pytest.mark.parametrize("state,label,data", [(s, label, d) for s in STATES for label, d in SAME_AS_DOVECOT]
                         + [("after", label, d) for label, d in SAME_AS_DOVECOT_AFTER_LOGIN])
def test_same_answers_as_dovecot(servers, state, label, data):  # noqa: F811
    servers.wipe()
    ours = _outcome(servers.ours, state, data, 1)
    servers.wipe()
    dov = _outcome(servers.dovecot, state, data, 1)
    assert ours == dov, label
    assert not ours[1] or label == "noop-past-number-zeros", ours     # only a size past 2^32-1 ends it


def test_past_64_bits_dovecot_wraps_and_we_end_the_session(servers):  # noqa: F811
    """Allowed difference: Dovecot keeps the size in a 64-bit counter and, when it would wrap,
    answers the line as a syntax error (NO) and reads on; any size past 4,294,967,295 (RFC 5804
    number) is too large for us, as it is for Dovecot up to 2^64 - 1: BYE."""
    data = b"NOOP {18446744073709551616+}\r\n"
    for state in STATES:
        assert _outcome(servers.dovecot, state, b"NOOP {18446744073709551615+}\r\n", 2)[1] is True
        assert _outcome(servers.dovecot, state, data, 3) == ((("NO", (), None),), False)
        assert _outcome(servers.ours, state, data, 4) == ((("BYE", (), None),), True)
