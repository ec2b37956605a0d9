"""ManageSieve literals at the edges: bounds by state, and the literal of a line that does not parse.

Each case is one input sent in one state (before or after login) followed by `NOOP "sync-N"`,
and what is compared is what test_dovecot_differential compares (the kind and code of each
response, whether the connection closed). Every case runs twice: as a plain unit test through a
sans-I/O session with the differential's limits (no Dovecot needed), and against the private
Dovecot managesieved of tests/managesieve/test_dovecot_differential.py and our daemon over
loopback, where Dovecot must answer what the table says it does.

(a) After login a literal that is not a script's is bounded by the line, as in Dovecot: the
command up to the literal's "}" plus its octets may fill max_line (8192 here), one octet more is
BYE at once, so "NOOP {4294967295+}" ends the session instead of skipping 4 GiB. A script
(PUTSCRIPT's second argument, CHECKSCRIPT's) over max_script_size is still refused with
QUOTA/MAXSIZE and its octets skipped.
(b) A line that does not parse and announces a literal ({n+} or {n}): Dovecot skips to the first
LF and runs the literal's octets as commands, in both states; we skip the octets with the line
and answer one NO (RFC 5804 section 4: the literal is part of the command; see
sieve.managesieve.protocol.CommandReader.next for why we keep this).
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest

from owlery.settings import Settings
from sieve.managesieve.backend import Accounts
from sieve.managesieve.session import ManageSieveSession
from sieve.managesieve.settings import SessionConfig
from tests.managesieve import test_dovecot_differential as diff
from tests.managesieve.helpers import Driver
from tests.managesieve.test_dovecot_differential import LIMITS, MAX_LINE, Step, Wire, login, run_step, servers  # noqa: F401
from tests.managesieve.test_session import PASSWORD, USER, StubAuth, StubResolver

CONFIG = SessionConfig(**{**SessionConfig.from_settings(Settings()).__dict__,
                          "max_line_length": MAX_LINE, "login_failure_delay": 0,
                          **{mine.removeprefix("managesieve_"): value for _, mine, value in LIMITS}})
LOGIN = b'AUTHENTICATE "PLAIN" "' + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b'"\r\n'
BEFORE, AFTER = "before", "after"
CLOSED, OPEN = True, False
BYE = ((("BYE", (), None),), CLOSED)
TIMEOUT = ((("TIMEOUT", (), None),), CLOSED)
NO = ("NO", (), None)
INNER = ("OK", ("TAG", b"inner"), None)


def _noop_literal(n: int, plus: bool = True) -> bytes:
    return b"NOOP {%d%s}\r\n" % (n, b"+" if plus else b"") + b"x" * n + b"\r\n"


def _tag(n: int) -> tuple:
    return ((("OK", ("TAG", b"x" * n), None),), OPEN)


# (a) bounds: (state, label, data, outcome on both servers)
BOUNDS = [
    (AFTER, "noop-fills-the-line", _noop_literal(MAX_LINE - len(b"NOOP {8180+}")), _tag(8180)),
    (AFTER, "noop-one-past-the-line", _noop_literal(8181), BYE),
    (AFTER, "noop-sync-fills-the-line", _noop_literal(8181, plus=False), _tag(8181)),     # "{8181}": one octet shorter
    (AFTER, "noop-sync-one-past-the-line", _noop_literal(8182, plus=False), BYE),
    (AFTER, "noop-past-script-size", _noop_literal(5000), _tag(5000)),
    (AFTER, "noop-number-max-minus-1", b"NOOP {4294967294+}\r\n", BYE),
    (AFTER, "noop-number-max", b"NOOP {4294967295+}\r\n", BYE),
    (AFTER, "noop-number-max-sync", b"NOOP {4294967295}\r\n", BYE),
    (AFTER, "noop-number-max-plus-1", b"NOOP {4294967296+}\r\n", BYE),
    (AFTER, "getscript-fills-the-line", b"GETSCRIPT {8175+}\r\n" + b"x" * 8175 + b"\r\n", (((NO),), OPEN)),
    (AFTER, "getscript-one-past", b"GETSCRIPT {8176+}\r\n" + b"x" * 8176 + b"\r\n", BYE),
    # the second literal counts the first, its octets and the CRLF after its announcement
    (AFTER, "second-literal-fills-the-line",
     b"RENAMESCRIPT {10+}\r\n" + b"y" * 10 + b" {8154+}\r\n" + b"x" * 8154 + b"\r\n",
     ((("NO", ("NONEXISTENT",), None),), OPEN)),
    (AFTER, "second-literal-one-past",
     b"RENAMESCRIPT {10+}\r\n" + b"y" * 10 + b" {8155+}\r\n" + b"x" * 8155 + b"\r\n", BYE),
    (AFTER, "literals-adding-up", b"NOOP " + b"".join(b"{2048+}\r\n" + b"k" * 2048 + b" " for _ in range(5)) + b'"x"\r\n',
     BYE),
    (AFTER, "putscript-name-past-the-line", b"PUTSCRIPT {9000+}\r\n" + b"x" * 9000 + b' "keep;"\r\n', BYE),
    # a script is bounded by the script size: refused and skipped, the session goes on
    (AFTER, "putscript-script-past-the-line", b'PUTSCRIPT "a" {9000+}\r\n' + b"#" * 9000 + b"\r\n",
     ((("NO", ("QUOTA/MAXSIZE",), None),), OPEN)),
    (AFTER, "checkscript-script-past-the-line", b"CHECKSCRIPT {9000+}\r\n" + b"#" * 9000 + b"\r\n",
     ((("NO", ("QUOTA/MAXSIZE",), None),), OPEN)),
    (BEFORE, "noop-1026-before-login", _noop_literal(1026), _tag(1026)),
    (BEFORE, "noop-past-the-line-before-login", _noop_literal(8193), BYE),
    (BEFORE, "noop-number-max-before-login", b"NOOP {4294967295+}\r\n", BYE),
    (BEFORE, "noop-number-max-plus-1-before-login", b"NOOP {4294967296+}\r\n", BYE),
]

# (b) a bad line announcing a literal whose octets are a command line ('NOOP "inner"', 14
# octets with its CRLF) and then the bad line's own end: (label, data, Dovecot's answers)
CARRIED = b'NOOP "inner"\r\n'
DOVECOT_RUNS_IT = ((NO, INNER, NO), OPEN)            # the bad line, the literal as a command, the empty rest
BAD_LINES = [
    ("bad-escape", b'NOOP "a\\q" '),
    ("bad-octet", b"NOOP \xff "),
    ("unknown-command", b"FOO "),
    ("after-a-literal", b"NOOP {3+}\r\nabc x"),
]
AFTER_ERROR = [(state, f"{label}-{form}-{state}", prefix + b"{14%s}\r\n" % plus + CARRIED + b"\r\n", DOVECOT_RUNS_IT)
               for state in (BEFORE, AFTER) for label, prefix in BAD_LINES
               for form, plus in (("nonsync", b"+"), ("sync", b""))]
OURS_AFTER_ERROR = (((NO),), OPEN)                   # one NO: the octets were part of the bad line


# -- our session, without sockets ------------------------------------------------------------


class Canned(Wire):
    """test_dovecot_differential's response reader over bytes already sent by a session."""

    def __init__(self, data: bytes, closed: bool):
        self.buf, self.closed, self._end_closed = data, False, closed

    def _fill(self) -> None:
        if self._end_closed:
            self.closed = True
            raise diff.Closed()
        raise diff.ReadTimeout()


def unit_outcome(state: str, data: bytes) -> tuple:
    """What our session answers to `data` (then NOOP "sync-1"), as run_step reports it."""
    with tempfile.TemporaryDirectory(prefix="owlery-ms-literal-") as home:
        backend = Accounts(Settings(), authenticator=StubAuth(), resolver=StubResolver(Path(home)))
        d = Driver(ManageSieveSession(CONFIG, backend, peer="127.0.0.1", local=True))
        d.take()
        if state == AFTER:
            d._do(d.session.receive(LOGIN))                  # noqa: SLF001 (as tests/fuzz does)
            assert d.take().endswith(b'OK "Logged in."\r\n')
        d._do(d.session.receive(data + b'NOOP "sync-1"\r\n'))  # noqa: SLF001
        w = Canned(d.take(), d.closed)
        got = []
        try:
            while True:
                r = w.response()
                if r.kind == "OK" and r.code == ("TAG", b"sync-1"):
                    break
                got.append(r)
                if r.kind == "BYE":
                    break
        except diff.Closed:
            pass
        except diff.ReadTimeout:
            got.append(diff.Resp("TIMEOUT", (), b"", ()))
            w.closed = True
        return diff.outcome("raw", got, w.closed or d.closed)


@pytest.mark.parametrize("state,label,data,expected", BOUNDS, ids=[c[1] for c in BOUNDS])
def test_literal_bounds(state, label, data, expected):
    assert unit_outcome(state, data) == expected


@pytest.mark.parametrize("state,label,data,dovecot", AFTER_ERROR, ids=[c[1] for c in AFTER_ERROR])
def test_a_bad_lines_literal_is_skipped_with_it(state, label, data, dovecot):
    assert unit_outcome(state, data) == OURS_AFTER_ERROR


def test_script_text_after_a_bad_name_never_runs():
    """The unsafe case Dovecot allows: a script uploaded under a name with a bad escape."""
    script = b'DELETESCRIPT "keep"\r\n'
    data = b'PUTSCRIPT "bad\\q" {%d+}\r\n' % len(script) + script + b"\r\n"
    assert unit_outcome(AFTER, data) == OURS_AFTER_ERROR


# -- against Dovecot's managesieved -------------------------------------------------------------


def _remote(port: int, state: str, data: bytes, n: int) -> tuple:
    w = login(port) if state == AFTER else Wire(port)
    try:
        return run_step(w, Step("raw", data, "literal-after-error"), n)
    finally:
        w.close()


@pytest.mark.parametrize("state,label,data,expected", BOUNDS, ids=[c[1] for c in BOUNDS])
def test_literal_bounds_as_dovecot(servers, state, label, data, expected):  # noqa: F811
    servers.wipe()
    assert _remote(servers.dovecot, state, data, 1) == expected, label
    servers.wipe()
    assert _remote(servers.ours, state, data, 2) == expected, label


@pytest.mark.parametrize("state,label,data,dovecot", AFTER_ERROR, ids=[c[1] for c in AFTER_ERROR])
def test_a_bad_lines_literal_dovecot_runs_we_skip(servers, state, label, data, dovecot):  # noqa: F811
    """Allowed difference (b): Dovecot runs the octets of a bad line's literal as commands;
    RFC 5804 section 4 makes them part of that command, and we skip them with it."""
    servers.wipe()
    assert _remote(servers.dovecot, state, data, 1) == dovecot, label
    assert _remote(servers.ours, state, data, 2) == OURS_AFTER_ERROR, label


def test_script_text_after_a_bad_name_runs_on_dovecot_only(servers):  # noqa: F811
    """Why (b) is kept: on Dovecot the text of a script sent under a bad name deletes a script."""
    script = b'DELETESCRIPT "keep"\r\n'
    bad_put = b'PUTSCRIPT "bad\\q" {%d+}\r\n' % len(script) + script + b"\r\n"
    for port, left in ((servers.dovecot, ()), (servers.ours, ((b"keep", False),))):
        servers.wipe()
        w = login(port)
        try:
            assert run_step(w, Step("PUTSCRIPT", b'PUTSCRIPT "keep" {6+}\r\nkeep;\n\r\n', "put"), 1)[0] == (
                ("OK", (), None),)
            run_step(w, Step("raw", bad_put, "bad-put"), 2)
            assert run_step(w, Step("LISTSCRIPTS", b"LISTSCRIPTS\r\n", "list"), 3) == (
                (("OK", (), left),), False), port
        finally:
            w.close()


def test_allowed_differences_in_the_bounds(servers):  # noqa: F811
    """Allowed differences, each pinned: (1) before login Dovecot's login process reads a
    literal of at most 1026 octets whatever its line limit (a fixed buffer); we allow
    managesieve_max_line_length (8192 here). (2) A script literal past 4,294,967,295 octets:
    not an RFC 5804 number, BYE here; Dovecot answers QUOTA/MAXSIZE at once and waits for the
    octets. (3) A script over the size limit: Dovecot answers QUOTA/MAXSIZE at the
    announcement, we once its octets are in (the same answer once they are)."""
    assert _remote(servers.dovecot, BEFORE, _noop_literal(1027), 1) == BYE
    assert _remote(servers.ours, BEFORE, _noop_literal(1027), 2) == _tag(1027)
    too_big = b'PUTSCRIPT "a" {4294967296+}\r\n'
    assert _remote(servers.ours, AFTER, too_big, 3) == BYE
    quota_then_wait = ((("NO", ("QUOTA/MAXSIZE",), None), ("TIMEOUT", (), None)), CLOSED)
    assert _remote(servers.dovecot, AFTER, too_big, 4) == quota_then_wait
    huge = b'PUTSCRIPT "a" {4294967295+}\r\n'
    assert _remote(servers.dovecot, AFTER, huge, 5) == quota_then_wait
    assert _remote(servers.ours, AFTER, huge, 6) == TIMEOUT
