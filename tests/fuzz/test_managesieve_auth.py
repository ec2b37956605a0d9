"""Fuzz: the ManageSieve session's login state machine and its output (sieve/managesieve/session.py, protocol.py).

tests/fuzz/test_managesieve.py checks the wire format; this checks what the state machine lets
through. Sessions are SASL exchanges (PLAIN and LOGIN, initial response or continuation, with
the right password, near misses of it: other case, a NUL or blank more, an authzid, the user's
name as password, truncated or bad base64, aborts with "*"), UNAUTHENTICATE, and commands of
the wire-format target's vocabulary, split into reads anywhere, before login from a local or a
remote client. Whatever arrives:
- the session is AUTHENTICATED only after the password check said yes to that login: each
  entry into the state takes one "yes" of the password check (a stub that says yes only to
  the exact user and password), so no exchange, abort, UNAUTHENTICATE or literal trick logs
  in without it;
- the output is bounded by the input: at most OUT_PER_BYTE bytes per byte read plus the
  greeting and the scripts it stored (GETSCRIPT hands back what PUTSCRIPT took);
- no exception leaves the session (test_managesieve.drive's checks hold too).
"""

from __future__ import annotations

import base64

from hypothesis import example, given
from hypothesis import strategies as st

from sieve.managesieve import session as s
from tests.fuzz import test_managesieve as ms
from tests.fuzz.fuzzlib import CUTS, budget, split
from tests.managesieve.test_session import PASSWORD, USER

OUT_PER_BYTE = 64        # "CAPABILITY" LF (11 bytes) is answered with about 590


class _Guard:
    """Counts the password check's yeses; the session's entries into AUTHENTICATED spend them."""

    yeses = 0
    entries = 0


class _WatchedSession(s.ManageSieveSession):
    @property
    def state(self):
        return self.__dict__["_watched_state"]

    @state.setter
    def state(self, value):
        if value == s.AUTHENTICATED and self.__dict__.get("_watched_state") != s.AUTHENTICATED:
            _Guard.entries += 1
            assert _Guard.entries <= _Guard.yeses, "AUTHENTICATED without the password check's yes"
        self.__dict__["_watched_state"] = value


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


_PASSWORDS = [PASSWORD.encode(), PASSWORD.upper().encode(), PASSWORD.encode() + b"\0", PASSWORD.encode() + b" ",
              b" " + PASSWORD.encode(), PASSWORD.encode()[:-1], b"", USER.encode(), b"*", PASSWORD.encode() + b"\0x"]
_USERS = [USER.encode(), USER.upper().encode(), b"", b"\0", USER.encode() + b"\0", b"other@example.test"]


@st.composite
def sasl(draw) -> bytes:
    user, password = draw(st.sampled_from(_USERS)), draw(st.sampled_from(_PASSWORDS))
    authz = draw(st.sampled_from([b"", b"", USER.encode(), b"admin"]))
    mech = draw(st.sampled_from([b'"PLAIN"', b'"LOGIN"', b'"plain"', b"PLAIN", b'"X"']))
    plain = _b64(authz + b"\0" + user + b"\0" + password)
    how = draw(st.integers(0, 5))
    if how == 0:
        return b"AUTHENTICATE " + mech + b' "' + plain + b'"\r\n'
    if how == 1:
        return b"AUTHENTICATE " + mech + b"\r\n" + b'"' + plain + b'"\r\n'
    if how == 2:
        return b"AUTHENTICATE " + mech + b"\r\n" + b'"' + _b64(user) + b'"\r\n"' + _b64(password) + b'"\r\n'
    if how == 3:
        return b"AUTHENTICATE " + mech + b" {%d+}\r\n" % len(plain) + plain + b"\r\n"
    if how == 4:
        return b"AUTHENTICATE " + mech + b'\r\n"*"\r\n'
    return b"AUTHENTICATE " + mech + b' "' + plain[:draw(st.integers(0, len(plain)))] + b'=="\r\n'


line = st.one_of(sasl(), sasl(), st.sampled_from([b"UNAUTHENTICATE\r\n", b"LOGOUT\r\n", b"CAPABILITY\r\n", b"NOOP\r\n",
                                                  b"LISTSCRIPTS\r\n", b"\r\n", b'"*"\r\n', b"{3+}\r\n\"*\"\r\n"]),
                 ms.command.map(lambda c: c + b"\r\n"))


def check(data: bytes, cuts, *, local: bool) -> None:
    original, ms.ManageSieveSession = ms.ManageSieveSession, _WatchedSession
    stub_check = ms.StubAuth.authenticate

    def counted(self, username, password):
        user = stub_check(self, username, password)
        if user is not None:
            _Guard.yeses += 1
        return user

    ms.StubAuth.authenticate = counted
    try:
        _Guard.yeses = _Guard.entries = 0
        sent, _closed = ms.drive(split(data, cuts), local=local)
    finally:
        ms.ManageSieveSession, ms.StubAuth.authenticate = original, stub_check
    assert len(sent) <= 1024 + OUT_PER_BYTE * len(data) + 8 * data.count(b"GETSCRIPT") * ms.SCRIPT_MAX, \
        f"{len(sent)} bytes out for {len(data)} in"


@budget(150)
@given(lines=st.lists(line, max_size=10), cuts=CUTS, local=st.booleans())
@example(lines=[b'AUTHENTICATE "PLAIN" "' + _b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode() + b"\0") + b'"\r\n'],
         cuts=[], local=True)
@example(lines=[ms.LOGIN, b"UNAUTHENTICATE\r\n", b"LISTSCRIPTS\r\n", b'AUTHENTICATE "PLAIN"\r\n', b'"*"\r\n',
                b"LISTSCRIPTS\r\n"], cuts=[], local=True)
def test_login_needs_the_password(lines, cuts, local):
    check(b"".join(lines), cuts, local=local)


def fuzz_one(data: bytes) -> None:
    """atheris entry: byte 0 bit 7 set: a remote client; its low bits: the read size (0: all at once)."""
    if not data:
        return
    size = data[0] & 0x7F
    stream = data[1:]
    check(stream, list(range(size, len(stream), size)) if size else [], local=not data[0] & 0x80)
