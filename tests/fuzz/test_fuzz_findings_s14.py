"""Regressions of the coverage-guided and hand-made hostile-input runs of session 14 (scripts/fuzz --atheris).

Each test is one finding, reproduced outside the fuzzer, that failed before its fix:
- ManageSieve (sieve/managesieve/protocol.py): a literal announced at the end of a bad line
  with more than 10 digits ({00000000005+}, 20 digits) was not seen as one, so its octets
  ran as commands (a good line with the same announcement ends the session, "literal too
  large"); cut by a read inside its digits, the same went for one the reader had begun.
- LMTP (sieve/delivery/lmtp.py): each command line taken off the input copied the rest of it,
  so pipelined commands cost time quadratic in the input held (1 MiB of NOOPs held while a
  RCPT lookup was pending took ~6 s to answer, ~0.6 s now).
- socketmap (socketmap/protocol.py): the PERM reason for a broken netstring length (leading
  zeros, 20 digits) depended on how the reads cut it.
- milter session (milters/session.py): a header name that is not ASCII raised out of
  end_of_message.
"""

from __future__ import annotations

import time

from owlery.reply import Reply
from sieve.delivery import lmtp
from socketmap.protocol import SocketmapRequestDecoder
from tests.fuzz.fuzzlib import split
from tests.fuzz.test_managesieve import LOGIN, drive

TOO_LARGE = b'BYE "Connection closed: literal too large."\r\n'
SYNTAX = b'NO "Syntax error: unexpected character."\r\n'


# --- ManageSieve ----------------------------------------------------------------------------------

def test_managesieve_long_literal_announcement_on_a_bad_line_is_not_run_as_commands():
    for login in (b"", LOGIN):
        data = login + b"NOOP \xff {99999999999999999999+}\r\nLOGOUT\r\nNOOP\r\n"
        out, closed = drive([data])
        # as for the same announcement on a good line: the size is past RFC 3501's number, the session ends
        assert out.endswith(TOO_LARGE), (login, out[-120:])
        assert closed
        assert drive([login + b"NOOP {99999999999999999999+}\r\nLOGOUT\r\n"])[0].endswith(TOO_LARGE)
    # leading zeros do not count (as Dovecot reads them: tests/sieve/test_managesieve_literal_digits.py):
    # the octets are skipped, never run as commands, and the session goes on
    for announce in (b"{0000000005+}", b"{00000000005+}", b"{00000000005}", b"{" + b"0" * 300 + b"5+}"):
        data = b"NOOP \xff " + announce + b"\r\nLOGOUT\r\nNOOP\r\n"
        out, closed = drive([data])
        assert out.endswith(b'ready."\r\n' + SYNTAX + b'OK "Done"\r\n') and not closed, (announce[:20], out[-120:])
        assert drive(split(data, [20, 21, 22])) == (out, closed)


def test_managesieve_long_announcement_after_a_bad_lines_literal_cut_by_reads():
    """In the rest of a bad line (after one of its literals) only the last bytes are kept until
    the LF: a longer announcement lost its "{" when a read ended inside it."""
    for login in (b"", LOGIN):
        data = login + b"NOOP \xff {3+}\r\nabc {000000000004294967296+}\r\nLOGOUT\r\nNOOP\r\n"
        whole = drive([data])
        assert whole[0].endswith(TOO_LARGE) and whole[1]
        for cut in range(len(login), len(data)):
            assert drive(split(data, [cut])) == whole, cut
        for size in range(1, 24):
            assert drive(split(data, list(range(size, len(data), size)))) == whole, size


# --- LMTP -----------------------------------------------------------------------------------------

def _answer_all(server: lmtp.LMTPServer, actions: list) -> int:
    """Answer every question at once; the number of replies sent."""
    replies, i = 0, 0
    while i < len(actions):
        action = actions[i]
        i += 1
        if isinstance(action, lmtp.SendReply):
            replies += action.data.count(b"\r\n")
        elif isinstance(action, lmtp.CheckRecipient):
            actions += server.recipient_checked(Reply(250, "2.1.5", "Ok"), action.address)
    return replies


def _pipelined(noops: bytes, held: bool) -> tuple[float, int]:
    """Time to answer `noops`: held (one read while a RCPT lookup is pending, answered after it)
    or not (4 KiB reads, each answered as it comes)."""
    server = lmtp.LMTPServer("mx.example.test", lmtp.Limits(pipeline_buffer=4 << 20))
    server.start()
    server.feed(b"LHLO x\r\nMAIL FROM:<a@example.org>\r\n")
    pending = server.feed(b"RCPT TO:<b@example.net>\r\n")          # a lookup outstanding
    assert isinstance(pending[-1], lmtp.CheckRecipient)
    # CPU time of this process, not wall time: other processes on the machine (a parallel test
    # run, a build) take wall time from it, not CPU time (the test's ratio failed once so)
    started = time.process_time()
    replies = 0
    if held:
        assert server.feed(noops) == [] and server.buffered == len(noops)
        replies += _answer_all(server, pending)
    else:
        replies += _answer_all(server, pending)
        for i in range(0, len(noops), 4096):
            replies += _answer_all(server, server.feed(noops[i:i + 4096]))
    return time.process_time() - started, replies


def test_lmtp_pipelined_commands_are_taken_in_linear_time():
    """The same 1 MiB of NOOP lines fed as one read held during a lookup, and in 4 KiB reads
    (linear either way: little is buffered): before the fix the first took ~10x the second."""
    noops = b"NOOP\r\n" * ((1 << 20) // 6)
    lines = noops.count(b"\n")
    small, n_small = min(_pipelined(noops, held=False) for _ in range(3))
    big, n_big = min(_pipelined(noops, held=True) for _ in range(3))     # the best of three each
    assert n_small == n_big == lines + 1            # the RCPT's 250 and one per NOOP
    assert big < 3 * small + 0.2, f"{big:.2f} s held vs {small:.2f} s in small reads"


# --- socketmap ------------------------------------------------------------------------------------

def test_socketmap_bad_length_reason_does_not_depend_on_the_reads():
    """The PERM reason sent to Postfix for a broken length depended on where a read cut it:
    twenty digits with leading zeros were "longer than the limit" in one read, "a leading
    zero" byte by byte. Now the first fault in the stream names it, however it is cut."""
    for data in (b"00000000000000000005:hello,", b"0000000:", b"00x:", b"0x:", b"1234567890:", b"99999999999999999999:"):
        whole = SocketmapRequestDecoder(100000).feed(data)
        assert len(whole) == 1 and whole[0].fatal, (data, whole)
        for cut in range(1, len(data)):
            decoder = SocketmapRequestDecoder(100000)
            got = [item for chunk in split(data, [cut]) for item in decoder.feed(chunk)]
            assert got == whole, (data, cut, got, whole)
        decoder = SocketmapRequestDecoder(100000)
        assert [item for c in data for item in decoder.feed(bytes([c]))] == whole, data
    assert SocketmapRequestDecoder(100000).feed(b"00000000000000000005:hello,")[0].reason == \
        "netstring length with a leading zero"


# --- milter session -------------------------------------------------------------------------------

def test_milter_header_name_that_is_not_ascii_does_not_break_end_of_message():
    """A header name holding a non-ASCII character (pymilter decodes names as UTF-8; Postfix's
    is_header never passes one, another MTA may) made Header.raw raise UnicodeEncodeError out of
    end_of_message (the adapter then tempfailed every such message with an internal error)."""
    from milters import effects as fx
    from milters.session import Header, MilterSession
    from tests.fuzz import test_milter_session as ms

    assert Header("Subj\u00e9ct", b" x").raw == "Subj\u00e9ct: x\r\n".encode()
    assert Header("X-\udcff", b" y").raw == b"X-\xff: y\r\n"
    ms.RESOLVER.records = dict(ms.BASE_RECORDS)
    session = MilterSession(ms.SETTINGS, ms.PIPELINE, now=lambda: ms.NOW)
    session.connect("mx.example.net", "192.0.2.10", {"j": "mx.owlery.test"})
    session.helo("mx.example.net", {})
    session.mail_from("<alice@example.net>", (), {})
    session.rcpt("<bob@example.test>", (), {"i": "4ABCDE1"})
    session.data({"i": "4ABCDE1"})
    session.header("From", b" alice@example.net")
    session.header("Subj\u00e9ct", b" hello")
    session.end_of_headers({})
    session.body(b"hi\r\n")
    outcome = session.end_of_message({"i": "4ABCDE1"})
    assert "internal error" not in outcome.reason
    assert outcome.action == fx.ACCEPT, outcome
