"""`owlery managesieve` against hostile clients on real loopback connections: drips, floods, caps.

Port 4190 faces the internet: a client may send one byte at a time, never read its answers,
open connection after connection, guess passwords over many connections or send bytes no
client would. Each test starts the real daemon (tests/managesieve/helpers.py ManageSieveDaemon)
with short timeouts and small limits, talks to it over raw sockets, and bounds its own time:
waits are on conditions with deadlines (a select() on the socket paces a drip), and the
daemon's memory is read from /proc.
"""

from __future__ import annotations

import base64
import select
import socket
import time

import pytest

from tests.harness import raw_client
from tests.harness.raw_client import TCP_CLOSE, TCP_CLOSE_WAIT, closed_within, drip, tcp_state
from tests.managesieve.helpers import ManageSieveDaemon, plain

USER, PASSWORD = "alice@example.org", "pw"
BIG = 200 * 1024                     # a stored script GETSCRIPT sends again and again
MB = 1 << 20


def start(tmp_path, **settings) -> ManageSieveDaemon:
    """The daemon with a passwd file holding alice (plain password) and her script big.sieve."""
    sieve = tmp_path / "mail" / "example.org" / "alice" / "sieve"
    sieve.mkdir(parents=True)
    (sieve / "big.sieve").write_bytes(b"# padding\r\n" * (BIG // 11))
    (tmp_path / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::\n")
    (tmp_path / "mailboxes").write_text(f"{USER} example.org/alice/Maildir\n")
    settings = {"managesieve_login_failure_delay": 0.05, **settings}
    lines = [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in settings.items()]
    return ManageSieveDaemon(tmp_path, f"""
daemon_allow_root = true
daemon_drain_timeout = 1
files_passwords = "{tmp_path}/passwd"
files_passwords_plain = true
files_mailboxes = "{tmp_path}/mailboxes"
files_maildir_base = "{tmp_path}/mail"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
""" + "\n".join(lines) + "\n").start()


@pytest.fixture
def daemons():
    started = []
    yield started
    for d in started:
        d.stop()


def connect(port, source="127.0.0.1", rcvbuf=None, sndbuf=None, greeting=True) -> socket.socket:
    sock = raw_client.connect(port, source=source, rcvbuf=rcvbuf, sndbuf=sndbuf)
    if greeting:
        assert b"OK " in read_until(sock, b'ManageSieve ready."\r\n')
    return sock


def read_until(sock, end: bytes, timeout=5.0) -> bytes:
    """What the server sent up to and with `end`; fails after `timeout` or on the server's close."""
    deadline = time.monotonic() + timeout
    got = b""
    while not got.endswith(end):
        left = deadline - time.monotonic()
        assert left > 0, f"no {end!r} within {timeout} s; got {got[-300:]!r}"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, f"closed before {end!r}; got {got[-300:]!r}"
        got += chunk
    return got


def login(sock) -> None:
    sock.sendall(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode())
    assert read_until(sock, b"\r\n").startswith(b"OK"), "login failed"


def rss(daemon) -> int:
    """The daemon's resident memory in bytes."""
    with open(f"/proc/{daemon.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- 1. slow drip -----------------------------------------------------------------------------

def test_a_command_dripped_before_login_is_cut_off(tmp_path, daemons):
    # Each byte restarted Twisted's idle timer: one byte every 0.3 s held the connection for ever.
    d = start(tmp_path, managesieve_login_timeout=1.5)
    daemons.append(d)
    sock = connect(d.port)
    started = time.monotonic()
    said = drip(sock, b"NOOP", every=0.3, timeout=8)
    assert said is not None, "a client sending one byte every 0.3 s was never cut off"
    assert b'BYE "Disconnected for inactivity."' in said and time.monotonic() - started < 5


def test_a_command_dripped_after_login_is_cut_off_but_real_commands_keep_it(tmp_path, daemons):
    d = start(tmp_path, managesieve_idle_timeout=1.5)
    daemons.append(d)
    sock = connect(d.port)
    login(sock)
    # Whole commands keep an idle session alive past its idle timeout (RFC 5804's idle client) ...
    started = time.monotonic()
    while time.monotonic() - started < 3:
        sock.sendall(b"NOOP\r\n")
        assert read_until(sock, b'OK "Done"\r\n')
        select.select([sock], [], [], 0.4)             # (paces the NOOPs; nothing is sent back)
    # ... a command dripped a byte at a time does not.
    said = drip(sock, b'PUTSCRIPT "x" {100+}\r\n' + b"#" * 100, every=0.3, timeout=8)
    assert said is not None, "a PUTSCRIPT dripped one byte every 0.3 s was never cut off"
    assert b'BYE "Disconnected for inactivity."' in said


# -- 2. connection caps -----------------------------------------------------------------------

def test_connections_not_logged_in_are_capped_per_client(tmp_path, daemons):
    d = start(tmp_path, managesieve_max_connections_per_client=3)
    daemons.append(d)
    held = [connect(d.port) for _ in range(3)]
    extra = connect(d.port, greeting=False)
    said = closed_within(extra, 5)
    assert said is not None and said.startswith(b"BYE"), said
    # Another client is served; a logged-in connection no longer counts for its client.
    other = connect(d.port, source="127.0.0.2")
    other.sendall(b"NOOP\r\n")
    assert read_until(other, b'OK "Done"\r\n')
    login(held[0])
    fourth = connect(d.port)
    fourth.sendall(b"NOOP\r\n")
    assert read_until(fourth, b'OK "Done"\r\n')
    held[1].close()
    deadline = time.monotonic() + 5
    while True:                                        # the slot comes back once the close is seen
        again = connect(d.port, greeting=False)
        said = read_until(again, b"\r\n")
        if said.startswith(b'"IMPLEMENTATION"'):
            break
        assert time.monotonic() < deadline, said
        again.close()
    assert "managesieve_max_connections_per_client reached" in d.log()


def test_connections_are_capped_in_all(tmp_path, daemons):
    d = start(tmp_path, managesieve_max_connections=4, managesieve_max_connections_per_client=100)
    daemons.append(d)
    held = [connect(d.port, source=f"127.0.0.{i + 1}") for i in range(4)]
    extra = connect(d.port, source="127.0.0.9", greeting=False)
    said = closed_within(extra, 5)
    assert said == b'BYE "Too many connections, try again later."\r\n', said
    for sock in held:                                  # those in are served as before
        sock.sendall(b"NOOP\r\n")
        assert read_until(sock, b'OK "Done"\r\n')


def test_logins_as_one_user_are_capped_per_client(tmp_path, daemons):
    # One account (stolen, or a runaway script) could fill every slot of the daemon; Dovecot
    # caps a user's connections per client address (mail_max_userip_connections).
    d = start(tmp_path, managesieve_max_userip_connections=2)
    daemons.append(d)
    first, second, third = (connect(d.port) for _ in range(3))
    login(first)
    login(second)
    third.sendall(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode())
    assert read_until(third, b"\r\n") == b'NO "Maximum number of connections from user+IP exceeded."\r\n'
    third.sendall(b"LISTSCRIPTS\r\n")                 # still not logged in
    assert read_until(third, b"\r\n").startswith(b"NO")
    elsewhere = connect(d.port, source="127.0.0.2")    # the same user from another client is let in
    login(elsewhere)
    second.sendall(b"UNAUTHENTICATE\r\n")
    assert read_until(second, b"\r\n").startswith(b"OK")
    login(third)                                        # the slot came back
    first.close()
    deadline = time.monotonic() + 5
    while True:                                         # and comes back once a close is seen
        again = connect(d.port)
        again.sendall(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode())
        if read_until(again, b"\r\n").startswith(b"OK"):
            break
        assert time.monotonic() < deadline
        again.close()
    assert "managesieve_max_userip_connections" in d.log()


# -- 3. memory bounds -------------------------------------------------------------------------

def _flood(daemon, sock, unit: bytes, total: int, grew: int) -> tuple[int, int]:
    """Send `unit` again and again without reading, up to `total` bytes, until the server stops
    reading (the socket stays unwritable for 1 s) or its memory grows by `grew` bytes; (bytes
    sent, growth)."""
    sock.setblocking(False)
    base = rss(daemon)
    sent = 0
    chunk = unit * max(1, 16384 // len(unit))
    while sent < total:
        _, writable, _ = select.select([], [sock], [], 1.0)
        growth = rss(daemon) - base
        if growth > grew:
            return sent, growth
        if not writable:
            return sent, growth
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            continue
    return sent, rss(daemon) - base


def test_a_client_that_reads_nothing_is_read_from_no_more(tmp_path, daemons):
    # GETSCRIPT after GETSCRIPT from a client that reads nothing: every 200 kB answer piled up
    # in the server's write buffer (100 MB for 500 of them).
    d = start(tmp_path, managesieve_idle_timeout=2)
    daemons.append(d)
    sock = connect(d.port, rcvbuf=4096, sndbuf=4096)
    login(sock)
    sent, growth = _flood(d, sock, b'GETSCRIPT "big"\r\n', total=2 * MB, grew=64 * MB)
    assert growth < 64 * MB, f"the server buffered {growth >> 20} MB for a client that reads nothing"
    # Others are served meanwhile ...
    other = connect(d.port)
    other.sendall(b"NOOP\r\n")
    assert read_until(other, b'OK "Done"\r\n', timeout=2)
    # ... and the silent one is dropped at its idle timeout, its answers unread.
    deadline = time.monotonic() + 10
    while tcp_state(sock) not in (TCP_CLOSE, TCP_CLOSE_WAIT):
        assert time.monotonic() < deadline, "the server kept a client that reads nothing"
        select.select([], [], [], 0.1)


def test_capability_flood_before_login_does_not_pile_up(tmp_path, daemons):
    # 12 bytes of "CAPABILITY\r\n" ask for ~500 bytes of answer, before any login; the answers
    # to a whole read (64 kB) were joined one by one (quadratic): over a second of the
    # reactor's time per read, while every other client waited.
    d = start(tmp_path)
    daemons.append(d)
    sock = connect(d.port, rcvbuf=4096, sndbuf=4096)
    sent, growth = _flood(d, sock, b"CAPABILITY\r\n", total=4 * MB, grew=64 * MB)
    assert growth < 64 * MB, f"the server buffered {growth >> 20} MB of answers for {sent} bytes"
    started = time.monotonic()
    other = connect(d.port)
    other.sendall(b"NOOP\r\n")
    assert read_until(other, b'OK "Done"\r\n', timeout=5)
    assert time.monotonic() - started < 1.5, f"another client waited {time.monotonic() - started:.1f} s"


@pytest.mark.parametrize("logged_in", [False, True])
def test_a_huge_literal_is_never_buffered(tmp_path, daemons, logged_in):
    d = start(tmp_path, managesieve_max_script_size=1024)
    daemons.append(d)
    sock = connect(d.port)
    if logged_in:
        login(sock)
        sock.sendall(b'PUTSCRIPT "x" {%d+}\r\n' % (32 * MB))
        base = rss(d)
        sock.sendall(b"#" * (32 * MB) + b"\r\n")        # read and dropped as it comes
        assert read_until(sock, b"\r\n").startswith(b'NO (QUOTA/MAXSIZE)')
        assert rss(d) - base < 16 * MB
        sock.sendall(b'NOOP {4294967295+}\r\n')        # not a script: bounded by the line, BYE
    else:
        sock.sendall(b'AUTHENTICATE "PLAIN" {4294967295+}\r\n')
    said = closed_within(sock, 5)
    assert said is not None and b'BYE "Connection closed: literal too large."' in said, said


def test_a_line_without_end_is_never_buffered(tmp_path, daemons):
    d = start(tmp_path)
    daemons.append(d)
    sock = connect(d.port)
    login(sock)
    base = rss(d)
    sock.sendall(b"NOOP " + b"x" * (32 * MB) + b"\r\nNOOP\r\n")
    said = read_until(sock, b'OK "Done"\r\n')
    assert said.startswith(b'NO "Syntax error: line too long."'), said
    assert rss(d) - base < 16 * MB


@pytest.mark.parametrize("sasl", [
    b'AUTHENTICATE "PLAIN" {20000+}\r\n' + b"A" * 20000 + b"\r\n",           # a blob past the line limit
    b'AUTHENTICATE "LOGIN"\r\n"' + b"QQ==" * 3000 + b'"\r\n',                # a response past it
])
def test_an_enormous_sasl_response_ends_the_connection(tmp_path, daemons, sasl):
    d = start(tmp_path)
    daemons.append(d)
    sock = connect(d.port)
    sock.sendall(sasl)
    said = closed_within(sock, 5)
    assert said is not None and b"BYE" in said, said


def test_sasl_login_asks_twice_and_no_more(tmp_path, daemons):
    # An endless continuation: after the user name and the password the exchange is over, and
    # what follows is read as commands (three bad ones close a connection not logged in).
    d = start(tmp_path)
    daemons.append(d)
    sock = connect(d.port)
    user = base64.b64encode(b"nobody@example.org")
    sock.sendall(b'AUTHENTICATE "LOGIN"\r\n"' + user + b'"\r\n"' + user + b'"\r\n' + (b'"' + user + b'"\r\n') * 5)
    said = closed_within(sock, 5)
    assert said is not None and said.count(b"\r\n") < 10 and said.endswith(b'BYE "Too many invalid commands."\r\n')


@pytest.mark.parametrize("command", [
    b'GETSCRIPT "a\x00b"', b'GETSCRIPT {3+}\r\na\x00b', b'GETSCRIPT "\xff\xfe"', b'GETSCRIPT {2+}\r\n\xff\xfe',
    b'PUTSCRIPT {3+}\r\na\x00b {4+}\r\nkeep', b'PUTSCRIPT {2+}\r\n\xc3\x28 {4+}\r\nkeep',
    b'RENAMESCRIPT "big" {5+}\r\nb\x00ig2', b'SETACTIVE {1+}\r\n\x00', b"NOOP \x00", b"GET\x00SCRIPT",
    b'DELETESCRIPT {9+}\r\n../passwd', b'HAVESPACE "\xed\xa0\x80" 1',
])
def test_nul_and_invalid_utf8_are_refused_and_the_session_goes_on(tmp_path, daemons, command):
    d = start(tmp_path)
    daemons.append(d)
    sock = connect(d.port)
    login(sock)
    sock.sendall(command + b"\r\nNOOP\r\n")
    said = read_until(sock, b'OK "Done"\r\n')
    assert said.startswith(b"NO"), said
    assert sorted(p.name for p in (tmp_path / "mail" / "example.org" / "alice" / "sieve").iterdir()) == ["big.sieve"]
    assert (tmp_path / "passwd").exists()


# -- 4. failed logins -------------------------------------------------------------------------

def _try(sock, user, password) -> bytes:
    sock.sendall(f'AUTHENTICATE "PLAIN" "{plain(user, password)}"\r\n'.encode())
    return read_until(sock, b"\r\n")


def test_failed_logins_count_across_connections(tmp_path, daemons):
    # Three guesses per connection, then BYE: a new connection started the count again, so a
    # guesser had as many guesses as it opened connections.
    d = start(tmp_path, managesieve_login_failures_per_client=4)
    daemons.append(d)
    sock = connect(d.port)
    assert [_try(sock, USER, "guess")[:2] for _ in range(2)] == [b"NO", b"NO"]
    assert _try(sock, USER, "guess").startswith(b'BYE "Too many failed logins."')
    sock = connect(d.port)
    assert _try(sock, "bob@example.org", "guess") == b'NO "Authentication failed."\r\n'
    # The client's budget is spent: even the right password is not checked now.
    assert _try(sock, USER, PASSWORD).startswith(b"NO"), "a fifth guess from one client was checked"
    other = connect(d.port, source="127.0.0.2")
    assert _try(other, USER, PASSWORD).startswith(b"OK")
    assert "too many failed logins (limit=client)" in d.log()


def test_a_strangers_guesses_do_not_lock_the_user_out_of_a_client_they_used(tmp_path, daemons):
    # The per-login limit was a lock anyone could turn: two wrong guesses from anywhere kept
    # alice out of her own webmail for the whole window.
    d = start(tmp_path, managesieve_login_failures_per_user=2)
    daemons.append(d)
    assert _try(connect(d.port, source="127.0.0.3"), USER, PASSWORD).startswith(b"OK")
    for _ in range(2):
        assert _try(connect(d.port, source="127.0.0.2"), USER, "guess") == b'NO "Authentication failed."\r\n'
    refused = b'NO "Too many failed logins, try again later."\r\n'
    assert _try(connect(d.port, source="127.0.0.4"), USER, PASSWORD) == refused
    assert _try(connect(d.port, source="127.0.0.3"), USER, PASSWORD).startswith(b"OK")


def test_a_login_that_does_not_exist_counts_like_a_wrong_password(tmp_path, daemons):
    d = start(tmp_path, managesieve_login_failures_per_user=2)
    daemons.append(d)
    answers = {}
    for user in ("ghost@example.org", USER):
        for i in range(2):                             # over two connections from two clients
            sock = connect(d.port, source=f"127.0.0.{i + 2}")
            answers.setdefault(user, []).append(_try(sock, user, "guess"))
            sock.close()
    assert answers["ghost@example.org"] == answers[USER] == [b'NO "Authentication failed."\r\n'] * 2
    for user, password in (("ghost@example.org", "guess"), (USER, PASSWORD)):
        sock = connect(d.port, source="127.0.0.5")
        assert _try(sock, user, password) == b'NO "Too many failed logins, try again later."\r\n'


def test_a_login_that_does_not_exist_answers_as_late_as_a_wrong_password(tmp_path, daemons):
    # The NO came login_failure_delay after the password check: an unknown name (a dummy hash
    # of 5000 rounds) answered sooner than a wrong password for alice (her hash, 800,000 rounds).
    from owlery.directory.auth import sha_crypt
    d = start(tmp_path, managesieve_login_failure_delay=1.0)
    daemons.append(d)
    (tmp_path / "passwd").write_text(f"{USER}:{{SHA512-CRYPT}}{sha_crypt(b'pw', '$6$rounds=800000$salt$')}::::\n")
    took = {}
    for i, user in enumerate((USER, "ghost@example.org", USER, "ghost2@example.org")):
        sock = connect(d.port, source=f"127.0.0.{i + 2}")
        started = time.monotonic()
        assert _try(sock, user, "guess") == b'NO "Authentication failed."\r\n'
        took.setdefault(user.startswith("ghost"), []).append(time.monotonic() - started)
    wrong, unknown = min(took[False]), min(took[True])
    assert 0.9 < unknown and 0.9 < wrong and abs(wrong - unknown) < 0.25, took


# -- 5. errors --------------------------------------------------------------------------------

def test_an_unreadable_script_answers_no_and_others_go_on(tmp_path, daemons):
    d = start(tmp_path)
    daemons.append(d)
    sieve = tmp_path / "mail" / "example.org" / "alice" / "sieve"
    (sieve / "dir.sieve").mkdir()                      # a script that is a directory
    (sieve / "loop.sieve").symlink_to("loop.sieve")    # and one that is a symlink loop
    sock = connect(d.port)
    login(sock)
    for name in (b"dir", b"loop"):
        sock.sendall(b'GETSCRIPT "' + name + b'"\r\n')
        said = read_until(sock, b"\r\n")
        assert said.startswith(b"NO"), said
    sock.sendall(b"LISTSCRIPTS\r\n")
    assert read_until(sock, b'OK "Listscripts completed."\r\n')
    other = connect(d.port)
    login(other)


class _Broken:
    """A backend with a bug: every login and compile raises what nobody catches on purpose."""

    def login(self, username, password):
        raise RuntimeError("bug in login")

    def check(self, source, name, storage=None, upload=False):
        raise RuntimeError("bug in check")


def test_an_internal_error_says_bye_logs_once_and_spares_the_others(caplog):
    # A backend cannot be broken from outside the real daemon: the adapter runs here on an
    # in-memory transport with a bug injected (tests/managesieve/test_service.py's way).
    from twisted.internet import defer
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from owlery.settings import Settings
    from sieve.managesieve.service import ManageSieveApplication

    app = ManageSieveApplication(Settings(), Clock(), backend=_Broken(), threadpool=object())
    app.in_thread = lambda f: defer.maybeDeferred(f)
    connections = []
    for port in (40000, 40001):
        proto = app.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        proto.makeConnection(transport)
        transport.clear()
        connections.append((proto, transport))
    (first, t1), (second, t2) = connections
    with caplog.at_level("ERROR", logger="owlery.managesieve"):
        first.dataReceived(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode())
    assert t1.value() == b'BYE "Internal error, closing connection."\r\n' and t1.disconnecting
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "managesieve: internal error (client 127.0.0.1)"]
    second.dataReceived(b"NOOP\r\n")
    assert t2.value() == b'OK "Done"\r\n'


def test_an_internal_error_reading_a_command_says_bye(caplog, monkeypatch):
    # A bug in the command reader raised out of dataReceived: no BYE, and Twisted's
    # "Unhandled Error" instead of our one log line.
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from owlery.settings import Settings
    from sieve.managesieve import protocol
    from sieve.managesieve.service import ManageSieveApplication

    app = ManageSieveApplication(Settings(), Clock(), backend=_Broken(), threadpool=object())
    proto = app.factory.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(transport)
    transport.clear()

    def broken(self):
        raise IndexError("bug in the reader")
    monkeypatch.setattr(protocol.CommandReader, "next", broken)
    with caplog.at_level("ERROR", logger="owlery.managesieve"):
        proto.dataReceived(b"NOOP\r\n")
    assert transport.value() == b'BYE "Internal error, closing connection."\r\n' and transport.disconnecting
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1

