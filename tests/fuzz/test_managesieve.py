"""Fuzz: the ManageSieve server core (sieve/managesieve/protocol.py, session.py) fed hostile byte streams.

The session runs on the real backend glue (sieve.managesieve.backend.Accounts: our Sieve
validator, Pigeonhole-layout storage in a temporary home) with the stub password check and
user resolver of tests/managesieve/test_session.py, driven by tests/managesieve/helpers.Driver
(Calls run at once, Waits are recorded), with small limits so that inputs reach them. Sessions
are command lines (quoted strings, {n+} and {n} literals, huge counts, bad UTF-8, NULs, CRLF or
LF) from a vocabulary, seeds of tests/fuzz/corpus/managesieve/ under mutations, or any bytes,
before and after a login. Whatever the input and however it is cut into reads:
- no exception leaves the session, and it never answers "Internal error" (its catch-all for a
  bug) nor logs one (found by atheris: a compile warning quoting a non-UTF-8 byte did);
- everything it sends parses as RFC 5804 server output: lines of quoted strings (no CR,
  LF or NUL, only \\" and \\\\ escaped), literals {n} and atoms, CRLF-ended; a response line is
  OK, NO or BYE with an optional response code of RFC 5804's (or TAG with a string) and an
  optional string of UTF-8 text (found by atheris: compile errors echoed a script's raw
  bytes); nothing follows BYE, and the connection closes exactly after a BYE or the
  OK of LOGOUT;
- the transcript is the same for every way of cutting the input (STARTTLS is off, so nothing
  depends on what arrived when), and sending more after the close gives nothing;
- bounded memory: after each read the reader keeps at most one line's worth of unread bytes
  and one literal in progress, and no command it hands over holds more literal octets than
  the script size limit plus the line length limit (nor a line longer than the line limit).

Found here and fixed (sieve/managesieve/protocol.py, session.py): the {n+} announced at the end
of a bad line was lost when a read ended inside it, so its octets ran as commands; one command
could keep any number of literals (with the defaults ~800 x 256 KiB after login, ~1000 x 8 KiB
before it); compile errors echoed a script's non-UTF-8 bytes, and a warning holding one ended
the session with "Internal error". The test_regression_* tests keep them fixed.
"""

from __future__ import annotations

import base64
import logging
import re
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from owlery.settings import Settings
from sieve.managesieve import protocol as p
from sieve.managesieve.backend import Accounts
from sieve.managesieve.session import ManageSieveSession
from sieve.managesieve.settings import SessionConfig
from tests.fuzz.fuzzlib import CUTS, budget, corpus, mutants, split
from tests.managesieve.helpers import Driver
from tests.managesieve.test_session import PASSWORD, USER, StubAuth, StubResolver

SETTINGS = Settings()
CONFIG = SessionConfig(**{**SessionConfig.from_settings(SETTINGS).__dict__,
                          "max_line_length": 512, "max_script_size": 2048, "max_storage": 4096, "max_scripts": 3,
                          "max_name_length": 16, "max_bad_commands": 6, "max_bad_commands_before_login": 3,
                          "login_failures_max": 2})
LINE_MAX, SCRIPT_MAX = CONFIG.max_line_length, CONFIG.max_script_size
SEEDS = corpus("managesieve")
LOGIN = b'AUTHENTICATE "PLAIN" "' + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b'"\r\n'
TOKENS = [b"\r\n", b"\n", b"\r", b" ", b'"', b"\\", b"{", b"}", b"{0+}\r\n", b"{1}\r\n", b"{5+}\r\n", b"{513+}\r\n",
          b"{2049+}\r\n", b"{4294967295+}\r\n", b"{4294967296}\r\n", b"{99999999999999999999+}\r\n", b"\x00", b"\xff",
          b"\xc3(", b"PUTSCRIPT ", b"CHECKSCRIPT ", b"GETSCRIPT ", b"SETACTIVE ", b"HAVESPACE ", b"RENAMESCRIPT ",
          b"DELETESCRIPT ", b"LISTSCRIPTS\r\n", b"NOOP ", b"LOGOUT\r\n", b"UNAUTHENTICATE\r\n", b"CAPABILITY\r\n",
          b"STARTTLS\r\n", b'AUTHENTICATE "LOGIN"\r\n', b'AUTHENTICATE "PLAIN"\r\n', b'"*"\r\n', LOGIN, b"keep;",
          b'"s"', b'"active"', b"A" * 600]
# Response codes of RFC 5804 1.3 (and TAG, 2.15); ours send no other.
CODES = {b"AUTH-TOO-WEAK", b"ENCRYPT-NEEDED", b"QUOTA", b"QUOTA/MAXSCRIPTS", b"QUOTA/MAXSIZE", b"TRANSITION-NEEDED",
         b"TRYLATER", b"ACTIVE", b"NONEXISTENT", b"ALREADYEXISTS", b"WARNINGS", b"TAG"}
_ATOM = re.compile(rb"[\x21\x23-\x27\x2a-\x5b\x5d-\x7a\x7c\x7e]+")


class Internal(logging.Handler):
    """Collects the session's "internal error" log records (a bug reached its catch-all)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(record.getMessage())


INTERNAL = Internal()
logging.getLogger("owlery.managesieve").addHandler(INTERNAL)


# --- the server output grammar ------------------------------------------------------------------

def _string(out: bytes, i: int) -> tuple[bytes, int]:
    """A quoted string or a literal starting at out[i]: (value, index after it)."""
    if out[i:i + 1] == b'"':
        value = bytearray()
        i += 1
        while True:
            c = out[i:i + 1]
            assert c, "unterminated quoted string"
            if c == b'"':
                return bytes(value), i + 1
            assert c not in (b"\r", b"\n", b"\0"), f"CR, LF or NUL in a quoted string: {out[i - 20:i + 5]!r}"
            if c == b"\\":
                assert out[i + 1:i + 2] in (b'"', b"\\"), "bad escape in a quoted string"
                c = out[i + 1:i + 2]
                i += 1
            value += c
            i += 1
    m = re.compile(rb"\{(0|[1-9][0-9]{0,9})\}\r\n").match(out, i)
    assert m, f"not a string: {out[i:i + 30]!r}"
    end = m.end() + int(m.group(1))
    assert end <= len(out), "literal longer than the output"
    return out[m.end():end], end


def parse_output(out: bytes) -> list[list]:
    """Server output as lines of tokens (bytes for atoms, ("s", value) for strings,
    ("code", atom, value|None) for a response code); AssertionError unless it is well-formed."""
    lines, i = [], 0
    while i < len(out):
        tokens: list = []
        while True:
            c = out[i:i + 1]
            if c in (b'"', b"{"):
                value, i = _string(out, i)
                tokens.append(("s", value))
            elif c == b"(":
                m = _ATOM.match(out, i + 1)
                assert m, f"bad response code: {out[i:i + 30]!r}"
                i, value = m.end(), None
                if out[i:i + 1] == b" ":
                    value, i = _string(out, i + 1)
                assert out[i:i + 1] == b")", f"unterminated response code: {out[i - 30:i + 5]!r}"
                tokens.append(("code", m.group(0), value))
                i += 1
            else:
                m = _ATOM.match(out, i)
                assert m, f"no token at {out[i:i + 30]!r} in {out[max(0, i - 60):i]!r}"
                tokens.append(m.group(0))
                i = m.end()
            if out[i:i + 2] == b"\r\n":
                i += 2
                break
            assert out[i:i + 1] == b" ", f"tokens not separated by one space: {out[i - 20:i + 20]!r}"
            i += 1
        lines.append(tokens)
    return lines


def check_output(out: bytes, closed: bool) -> None:
    lines = parse_output(out)
    for n, line in enumerate(lines):
        head = line[0]
        if head in (b"OK", b"NO", b"BYE"):
            rest = line[1:]
            if rest and rest[0][0] == "code":
                _, code, value = rest.pop(0)
                assert code in CODES, f"unknown response code {code!r}"
                assert (value is not None) == (code == b"TAG"), line
            assert len(rest) <= 1 and all(t[0] == "s" for t in rest), f"bad response line {line!r}"
            if rest:
                rest[0][1].decode("utf-8")          # RFC 5804: the human-readable text is UTF-8
            if head == b"BYE":
                assert n == len(lines) - 1, "output after BYE"
        else:
            # capabilities, LISTSCRIPTS, GETSCRIPT's literal, a SASL challenge: strings (and ACTIVE)
            assert isinstance(head, tuple) and head[0] == "s", f"line without a string: {line!r}"
            assert all(isinstance(t, tuple) and t[0] == "s" or t == b"ACTIVE" for t in line[1:]), line
    if closed:
        assert lines and (lines[-1][0] == b"BYE" or lines[-1][:2] == [b"OK", ("s", b"Logout completed.")]), \
            f"closed after {lines[-1:]!r}"
    else:
        assert not any(line[0] == b"BYE" for line in lines), "BYE without closing"


# --- driving ------------------------------------------------------------------------------------

class Watched(p.CommandReader):
    """The session's reader, checked: what each item holds, and what stays buffered."""

    def next(self):
        item = super().next()
        tokens = getattr(item, "tokens", ())
        literal = sum(len(t.data) for t in tokens if isinstance(t, p.String) and t.literal)
        other = sum(len(t.data) if isinstance(t, p.String) else len(t.text) for t in tokens) - literal
        assert other <= self.max_line, f"a command of {other} bytes outside literals"
        assert literal <= self.literal_max + self.max_line, f"a command holding {literal} literal octets"
        return item

    def check_bounds(self) -> None:
        held = sum(len(t.data) for t in self._tokens if isinstance(t, p.String)) + len(self._literal)
        assert self.buffered <= self.max_line, f"{self.buffered} unread bytes kept"
        assert held <= self.literal_max + self.max_line, f"{held} bytes of a command kept"


def drive(chunks: list[bytes], *, local: bool = True) -> tuple[bytes, bool]:
    """Run a session over these reads in a fresh home; (all it sent, closed)."""
    INTERNAL.records.clear()
    with tempfile.TemporaryDirectory(prefix="owlery-fuzz-ms-") as home:
        backend = Accounts(SETTINGS, authenticator=StubAuth(), resolver=StubResolver(Path(home)))
        session = ManageSieveSession(CONFIG, backend, peer="127.0.0.1" if local else "192.0.2.7", local=local,
                                     login_timeout=60, idle_timeout=1800)
        reader = Watched(CONFIG.max_line_length)
        reader.long_line_fatal = session.reader.long_line_fatal
        reader.set_limits(session.reader.literal_max, session.reader.skip_max)
        session.reader = reader
        d = Driver(session)
        sent = d.take()
        for chunk in chunks:
            was_closed, before = d.closed, len(d.sent)
            d._do(session.receive(chunk))                           # noqa: SLF001 (Driver.say without its take)
            if was_closed:
                assert len(d.sent) == before, "output after the close"
            reader.check_bounds()
        sent += d.take()
        assert d.closed == session.closed
    assert not INTERNAL.records, INTERNAL.records
    assert b"Internal error" not in sent
    check_output(sent, d.closed)
    return sent, d.closed


def check(data: bytes, cuts, *, local: bool = True) -> None:
    whole = drive([data], local=local)
    assert drive(split(data, cuts), local=local) == whole, "the transcript depends on how the input was cut"


def _quoted(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _literal(value: bytes, plus: bool) -> bytes:
    return b"{%d%s}\r\n" % (len(value), b"+" if plus else b"") + value


NAMES = [b"s", b"active", b"a b", b"..", b"x/y", b"\xc3\xa9t\xc3\xa9", b"\xff", b"a\x00b", b"", b"n" * 17, b"."]
SCRIPTS = [b"keep;", b'require "fileinto"; fileinto "x";', b"if true {", b"\xff\xfe", b"", b"keep;\r\n" * 300,
           b'require "vacation"; vacation "x";', b"stop;\0"]
argument = st.one_of(
    st.sampled_from(NAMES + SCRIPTS).map(_quoted),
    st.builds(_literal, st.sampled_from(NAMES + SCRIPTS), st.booleans()),
    st.builds(_literal, st.binary(max_size=40), st.booleans()),
    st.sampled_from([b"0", b"10", b"4294967295", b"4294967296", b"-1", b"\xc2\xb2", b"{3+}", b"{99999+}\r\n", b'"\\x"',
                     b'"a', b"(", b"ACTIVE", b'"*"', b'"' + base64.b64encode(b"\0" + USER.encode() + b"\0bad") + b'"',
                     b'"' + base64.b64encode(USER.encode()) + b'"', b'"' + base64.b64encode(PASSWORD.encode()) + b'"',
                     b'"PLAIN"', b'"LOGIN"', b'"X"']),
)
command = st.one_of(
    st.builds(lambda verb, args, sep: verb + b"".join(b" " + a for a in args) if args else verb,
              st.sampled_from([b"PUTSCRIPT", b"CHECKSCRIPT", b"GETSCRIPT", b"SETACTIVE", b"HAVESPACE", b"RENAMESCRIPT",
                               b"DELETESCRIPT", b"LISTSCRIPTS", b"NOOP", b"LOGOUT", b"UNAUTHENTICATE", b"CAPABILITY",
                               b"STARTTLS", b"AUTHENTICATE", b"putscript", b"BOGUS", b""]),
              st.lists(argument, max_size=3), st.none()),
    st.sampled_from([LOGIN.rstrip(b"\r\n"), b"", b"  ", b"\x00", b"\xff", b"A" * 600, b'"a" "b"', b"{3+}"]),
)
sessions = st.builds(lambda login, lines, eol: (LOGIN if login else b"") + b"".join(line + eol for line in lines),
                     st.booleans(), st.lists(command, max_size=12), st.sampled_from([b"\r\n", b"\n"]))


@budget(200)
@given(data=st.one_of(sessions, mutants(SEEDS, TOKENS), st.binary(max_size=200)), cuts=CUTS, local=st.booleans())
@example(data=LOGIN + b"PUTSCRIPT \"s\" {5+}\r\nkeep; {5+}\r\nkeep;\r\n", cuts=[], local=True)
@example(data=b"NOOP \xff {3+}\r\nabc {5+}\r\nLOGOUT\r\n", cuts=[16, 17], local=True)
@example(data=b"NOOP \xff {3+}\r\nabc {5+}\r\nLOGOUT\r\n", cuts=[19], local=True)
@example(data=b"X" * 600 + b"\r\nLOGOUT\r\n", cuts=[100], local=True)
@example(data=LOGIN + b"X" * 600 + b"\r\nLOGOUT\r\n", cuts=[100], local=True)
@example(data=b"PUTSCRIPT {4294967296+}\r\n", cuts=[], local=True)
def test_any_input_any_split(data, cuts, local):
    check(data, cuts, local=local)


def test_regression_literal_announced_across_reads_after_a_bad_line():
    """A bad line's trailing {n+} literal split across two reads (" {5" and "+}"): the first
    part was dropped, so the literal's octets ("LOGOU") ran as a command."""
    data = b"NOOP \xff {3+}\r\nabc {5+}\r\nLOGOUT\r\nNOOP\r\n"
    whole, _ = drive([data])
    assert drive(split(data, [19]))[0] == whole
    assert whole.endswith(b'ready."\r\nNO "Syntax error: unexpected character."\r\nOK "Done"\r\n')


def test_regression_many_literals_in_one_command_are_bounded():
    """Forty 2 KiB literals in one PUTSCRIPT line (each under the script limit, the line under
    its limit) were all kept: with the defaults ~800 x 256 KiB per command after login and
    ~1000 x 8 KiB before it. Now the literals past literal_max + max_line are dropped and the
    command answered as oversized."""
    many = b"".join(b"{2048+}\r\n" + b"k" * 2048 + b" " for _ in range(40))
    out, closed = drive([LOGIN + b'PUTSCRIPT "s" ' + many + b'"x"\r\nLISTSCRIPTS\r\n'])
    assert out.endswith(b'OK "Logged in."\r\nNO (QUOTA/MAXSIZE) "Script is too large (max 2048 bytes)."\r\n'
                        b'OK "Listscripts completed."\r\n') and not closed
    small = b"".join(b"{500+}\r\n" + b"k" * 500 + b" " for _ in range(40))
    out, closed = drive([b"NOOP " + small + b'"x"\r\nNOOP\r\n'])          # before login
    assert out.endswith(b'ready."\r\nNO "Argument too long."\r\nOK "Done"\r\n') and not closed


def _lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def test_regression_script_bytes_in_compile_errors_and_warnings():
    """Found by atheris: a compile error quoting a script's non-UTF-8 bytes was sent as is
    (RFC 5804 strings are UTF-8), and a warning holding one raised UnicodeEncodeError, so the
    session answered BYE "Internal error"."""
    out, closed = drive([LOGIN + b'CHECKSCRIPT ' + _lit(b'require "fi\xe2einto";\r\n') + b"\r\n"
                         + b'CHECKSCRIPT ' + _lit(b'require ["date", "relational"]; if date :zone "\xff" :value "ge" '
                                                  b'"date" "date" "2020" { keep; }') + b"\r\nNOOP\r\n"])
    assert out.endswith(b'NO "script:1:9: error: require command: unknown Sieve capability `fi?einto\'"\r\n'
                        b'OK (WARNINGS) "script:1:47: warning: specified :zone argument \'\xef\xbf\xbd\' is not a '
                        b'valid timezone"\r\nOK "Done"\r\n')
    assert not closed


def fuzz_one(data: bytes) -> None:
    """atheris entry: the first byte's low bit logs in first (the next: a remote client), the
    second is the read size, the rest the client's bytes."""
    if len(data) < 2:
        return
    size = data[1] + 1
    stream = (LOGIN if data[0] & 1 else b"") + data[2:]
    check(stream, list(range(size, len(stream), size)), local=not data[0] & 2)
