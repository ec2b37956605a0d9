"""`owlery lmtpd` against hostile clients on real loopback connections: drips, floods, caps, bugs.

lmtpd may listen on TCP, and what it delivers is written by strangers: a client may send one
byte at a time, pipeline thousands of commands and read none of the answers, open connection
after connection, send lines without end or messages no mailer would write. Each test starts
the real daemon (tests/delivery/daemon.py maildir_lmtpd: templates, no directory, so any
address is a mailbox) with short timeouts and small limits, talks to it over raw sockets and
bounds its own time: waits are on conditions with deadlines (a select() on the socket paces a
drip), and the daemon's memory is read from /proc. A bug cannot be injected into the real
daemon from outside: those few tests run the adapter on an in-memory transport
(tests/delivery/test_lmtp_hostile.py's way).
"""

from __future__ import annotations

import logging
import select
import socket
import time
from contextlib import ExitStack

import pytest

from tests.delivery.daemon import maildir_lmtpd
from tests.harness import raw_client
from tests.harness.raw_client import TCP_CLOSE, TCP_CLOSE_WAIT, closed_within, drip, read_until, tcp_state

MB = 1 << 20
HELLO = b"LHLO client.test\r\nMAIL FROM:<sender@remote.test>\r\n"


@pytest.fixture
def daemons():
    """start(**settings) -> (work, daemon): a real lmtpd with those settings, stopped afterwards."""
    with ExitStack() as stack:
        def start(**settings):
            lines = "".join(f"{k} = {v!r}\n" if isinstance(v, str) else f"{k} = {v}\n" for k, v in settings.items())
            return stack.enter_context(maildir_lmtpd("owlery-lmtpd-s20-", "daemon_drain_timeout = 1\n" + lines))
        yield start


def connect(port, rcvbuf=None, sndbuf=None, greeting=True) -> socket.socket:
    sock = raw_client.connect(port, rcvbuf=rcvbuf, sndbuf=sndbuf)
    if greeting:
        assert read_until(sock, b"LMTP ready\r\n").startswith(b"220 ")
    return sock



def lines_until(sock, n: int, timeout=20.0) -> list[bytes]:
    """The next `n` reply lines."""
    return read_until(sock, b"\r\n", timeout, count=n).split(b"\r\n")[:n]


def status(daemon, field: str) -> int:
    with open(f"/proc/{daemon.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def reset_peak(daemon) -> int:
    """Start the daemon's peak resident memory (VmHWM) again from now; its resident memory now."""
    with open(f"/proc/{daemon.proc.pid}/clear_refs", "w") as f:
        f.write("5")
    return status(daemon, "VmRSS")


def stored(work, user="alice") -> list[bytes]:
    new = work / "mail" / "example.org" / user / "Maildir" / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []


# -- 1. slow drip -----------------------------------------------------------------------------

def test_a_command_dripped_byte_by_byte_is_cut_off(daemons):
    # Every byte restarted Twisted's idle timer: one byte every 0.3 s held a connection for ever.
    work, d = daemons(lmtpd_idle_timeout=1.5)
    sock = connect(d.port)
    started = time.monotonic()
    said = drip(sock, b"LHLO client.test\r\n", every=0.3, timeout=8)
    assert said is not None, "a client sending one byte every 0.3 s was never cut off"
    assert said.endswith(b"421 4.4.2 Idle timeout, closing connection\r\n"), said
    assert time.monotonic() - started < 5


def test_whole_commands_keep_a_connection_but_a_dripped_message_does_not(daemons):
    work, d = daemons(lmtpd_idle_timeout=1.5)          # lmtpd_data_min_rate: its default, 1 kB/s
    sock = connect(d.port)
    # Whole commands keep a connection alive past its idle timeout (an MTA's cached connection) ...
    started = time.monotonic()
    while time.monotonic() - started < 3:
        sock.sendall(b"NOOP\r\n")
        read_until(sock, b"250 2.0.0 Ok\r\n")
        select.select([sock], [], [], 0.4)             # (paces the NOOPs; nothing is sent back)
    sock.sendall(HELLO + b"RCPT TO:<alice@example.org>\r\nDATA\r\n")
    read_until(sock, b"354 ")
    # ... a message dripped a line of two bytes at a time does not, whatever its length.
    started = time.monotonic()
    said = drip(sock, b"x\n", every=0.15, timeout=10)
    assert said is not None, "a message dripped two bytes every 0.3 s (a byte every 0.15 s) was never cut off"
    assert said.endswith(b"421 4.4.2 Idle timeout, closing connection\r\n"), said
    assert time.monotonic() - started < 5
    assert stored(work) == []


def test_a_message_sent_at_the_minimum_rate_outlasts_the_idle_timeout(daemons):
    # DATA's deadline grows with what arrives: lmtpd_idle_timeout plus size / lmtpd_data_min_rate.
    work, d = daemons(lmtpd_idle_timeout=1)            # lmtpd_data_min_rate: its default, 1 kB/s
    sock = connect(d.port)
    sock.sendall(HELLO + b"RCPT TO:<alice@example.org>\r\nDATA\r\n")
    read_until(sock, b"354 ")
    sock.sendall(b"Subject: slow\r\n\r\n")
    line = b"y" * 198 + b"\r\n"
    started = time.monotonic()
    for _ in range(25):                                # 5 kB over 2 s: 2.5 kB/s
        sock.sendall(line)
        readable, _, _ = select.select([sock], [], [], 0.08)
        assert not readable, sock.recv(1000)
    sock.sendall(b".\r\n")
    assert read_until(sock, b"\r\n").startswith(b"250 2.0.0 <alice@example.org>")
    assert time.monotonic() - started > 1.5
    assert len(stored(work)) == 1


@pytest.mark.parametrize("events,expires", [
    ([], 10.0),                                                 # connected at 0: idle 10 s
    ([(9.0, 0, 0)], 10.0),                                      # nothing consumed: no more time
    ([(9.0, 1, 0)], 19.0),                                      # a whole line: idle from then
    ([(2.0, 1, 0), (3.0, 0, 2048)], 14.0),                      # DATA: +2 s for 2 kB at 1 kB/s
    ([(2.0, 1, 0)] + [(2.0 + i, 0, 1) for i in range(1, 9)], 12.0 + 8 / 1024),  # a drip earns ~nothing
])
def test_the_deadline_counts_whole_lines_and_data_octets(events, expires):
    from sieve.delivery.lmtpd_core import ClientDeadline
    deadline = ClientDeadline(10.0, 1024.0, now=0.0)
    for now, commands, octets in events:
        deadline.progress(now, commands=commands, data_octets=octets)
    assert deadline.expires == pytest.approx(expires)


# -- 2. caps ------------------------------------------------------------------------------------

def test_connections_are_capped_in_all(daemons):
    work, d = daemons(lmtpd_max_connections=3)
    held = [connect(d.port) for _ in range(3)]
    extra = connect(d.port, greeting=False)
    said = closed_within(extra, 5)
    assert said == b"421 4.3.2 Too many connections, try again later\r\n", said
    for sock in held:                                  # those in are served as before
        sock.sendall(b"NOOP\r\n")
        read_until(sock, b"250 2.0.0 Ok\r\n")
    held[0].close()
    deadline = time.monotonic() + 5
    while True:                                        # the slot comes back once the close is seen
        again = connect(d.port, greeting=False)
        said = read_until(again, b"\r\n")
        if said.startswith(b"220 "):
            break
        assert time.monotonic() < deadline, said
        again.close()
    d.wait_log("lmtpd_max_connections reached")


def test_ten_thousand_pipelined_rcpts_get_their_replies_in_order(daemons):
    # A recipient looked up without I/O answered within the same call: each pipelined RCPT
    # nested the next one's handling, and ~200 of them overflowed Python's stack
    # (RecursionError: the connection hung until its idle timeout, nobody answered).
    work, d = daemons()
    sock = connect(d.port)
    rcpts = b"".join(b"RCPT TO:<alice@Example.ORG>\r\n" for _ in range(10_000))
    started = time.monotonic()
    sock.sendall(HELLO + rcpts + b"DATA\r\n")
    got = lines_until(sock, 6 + 1 + 10_000 + 1)        # LHLO, MAIL, the RCPTs, DATA
    assert got[6] == b"250 2.1.0 Ok"
    assert got[7:7 + 1000] == [b"250 2.1.5 <alice@Example.ORG> Ok"] * 1000          # lmtpd_recipient_limit
    assert got[7 + 1000:7 + 10_000] == [b"452 4.5.3 Too many recipients"] * 9000
    assert got[-1].startswith(b"354 ")
    sock.sendall(b"Subject: many\r\n\r\nhi\r\n.\r\n")
    answers = lines_until(sock, 1000)                  # one per accepted RCPT, one copy stored
    assert all(a.startswith(b"250 2.0.0 <alice@Example.ORG>") for a in answers), set(answers)
    assert time.monotonic() - started < 15
    assert len(stored(work)) == 1
    assert "RecursionError" not in d.log()


def test_copies_for_many_recipients_are_not_built_all_at_once(daemons):
    # Each recipient's copy (its Received header + the message) was built before any delivery
    # started and held until its turn: 40 recipients of 1 MB held 40 MB at once.
    work, d = daemons(lmtpd_delivery_threads=2)
    sock = connect(d.port)
    sock.sendall(HELLO + b"".join(b"RCPT TO:<u%d@example.org>\r\n" % i for i in range(40)) + b"DATA\r\n")
    read_until(sock, b"354 ")
    base = reset_peak(d)
    sock.sendall(b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 1024 + b".\r\n")
    answers = lines_until(sock, 40)
    assert all(a.startswith(b"250 2.0.0 ") for a in answers), answers[:3]
    peak = status(d, "VmHWM") - base
    assert peak < 24 * MB, f"delivering 1 MB to 40 recipients took {peak >> 20} MB more at its peak"


def test_a_line_without_end_is_never_buffered(daemons):
    work, d = daemons()
    sock = connect(d.port)
    base = status(d, "VmRSS")
    sock.sendall(b"NOOP " + b"x" * (32 * MB) + b"\r\nNOOP\r\n")
    said = read_until(sock, b"250 2.0.0 Ok\r\n")
    assert said == b"500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n", said
    assert status(d, "VmRSS") - base < 16 * MB


def test_an_oversized_message_is_dropped_as_it_comes(daemons):
    work, d = daemons(lmtpd_message_size_limit="1M")
    sock = connect(d.port)
    sock.sendall(HELLO + b"RCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    read_until(sock, b"354 ")
    base = status(d, "VmRSS")
    sock.sendall(b"Subject: huge\r\n\r\n" + (b"w" * 998 + b"\r\n") * (32 * 1024) + b"x" * (4 * MB) + b"\r\n.\r\n")
    assert lines_until(sock, 2) == [b"552 5.3.4 Message too big for system"] * 2
    assert status(d, "VmRSS") - base < 16 * MB
    sock.sendall(b"NOOP\r\n")
    read_until(sock, b"250 2.0.0 Ok\r\n")
    assert stored(work) == [] and stored(work, "bob") == []


# -- 3. back-pressure ---------------------------------------------------------------------------

def _flood(daemon, sock, unit: bytes, total: int) -> int:
    """Send `unit` again and again without reading, up to `total` bytes or until the server stops
    reading (the socket stays unwritable for 1 s) or drops the connection; the daemon's memory growth."""
    sock.setblocking(False)
    base = status(daemon, "VmRSS")
    sent = 0
    chunk = unit * max(1, 16384 // len(unit))
    while sent < total:
        _, writable, _ = select.select([], [sock], [], 1.0)
        if not writable:
            break
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):   # dropped already (its idle timeout)
            break
    return status(daemon, "VmRSS") - base


@pytest.mark.parametrize("unit", [b"NOOP\r\n", b"RSET\r\n", b"LHLO x\r\n"])
def test_a_client_that_reads_nothing_is_read_from_no_more_and_dropped(daemons, unit):
    # Memory stayed bounded (the protocol is its transport's producer), but at the idle timeout
    # the 421 went behind the unread replies and the close waited for them for ever.
    work, d = daemons(lmtpd_idle_timeout=1.5)
    sock = connect(d.port, rcvbuf=4096, sndbuf=4096)
    growth = _flood(d, sock, unit, total=8 * MB)
    assert growth < 32 * MB, f"the server buffered {growth >> 20} MB for a client that reads nothing"
    other = connect(d.port)                            # others are served meanwhile
    other.sendall(b"NOOP\r\n")
    read_until(other, b"250 2.0.0 Ok\r\n", timeout=2)
    deadline = time.monotonic() + 10
    while tcp_state(sock) not in (TCP_CLOSE, TCP_CLOSE_WAIT):
        assert time.monotonic() < deadline, "the server kept a client that reads nothing"
        select.select([], [], [], 0.1)


def test_pipelined_rcpts_from_a_client_that_reads_nothing_stay_bounded(daemons):
    work, d = daemons(lmtpd_idle_timeout=1.5)
    sock = connect(d.port, rcvbuf=4096, sndbuf=4096)
    sock.sendall(HELLO)
    growth = _flood(d, sock, b"RCPT TO:<alice@example.org>\r\n", total=8 * MB)
    assert growth < 32 * MB, f"the server buffered {growth >> 20} MB for a client that reads nothing"
    deadline = time.monotonic() + 10
    while tcp_state(sock) not in (TCP_CLOSE, TCP_CLOSE_WAIT):
        assert time.monotonic() < deadline, "the server kept a client that reads nothing"
        select.select([], [], [], 0.1)


# -- 4. broken messages and bugs ----------------------------------------------------------------

@pytest.fixture(scope="module")
def one_lmtpd():
    with maildir_lmtpd("owlery-lmtpd-s20m-", "lmtpd_idle_timeout = 10\n") as (work, d):
        yield work, d


@pytest.mark.parametrize("name,data", [
    ("nul", b"Subject: a\x00b\r\n\r\nbody \x00 here\r\n.\r\n"),
    ("bare cr", b"Subject: x\rFrom: evil@x\r\n\r\nbo\rdy\r\n.\r\n"),
    ("bare lf", b"Subject: x\nTo: y\n\nbody\nmore\r\n.\r\n"),
    ("8-bit headers", "Subject: Grüße \udcff\r\nFrom: Jörg <j@x>\r\n\r\nhi\r\n.\r\n".encode("utf-8", "surrogateescape")),
    ("no separator", b"Subject: x\r\nnot a header line\r\nbody\r\n.\r\n"),
    ("header only", b"Subject: x\r\n.\r\n"),
    ("empty", b".\r\n"),
    ("bare lf before the dot", b"Subject: x\r\n\r\nlast line\n.\r\n"),
    ("lf terminator", b"Subject: x\r\n\r\nlast\r\n.\n"),
    ("long header", b"Subject: " + b"s" * 200_000 + b"\r\n\r\nhi\r\n.\r\n"),
    ("folded for ever", b"Subject: x\r\n" + b"\t y\r\n" * 20_000 + b"\r\nhi\r\n.\r\n"),
    ("dots", b"..\r\n...\r\n. \r\n.x\r\n.\r\n"),
    ("mime junk", b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n.\r\n"),
])
def test_a_broken_message_is_delivered_or_tempfailed_and_the_session_goes_on(one_lmtpd, name, data):
    work, d = one_lmtpd
    sock = connect(d.port)
    sock.sendall(HELLO + b"RCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    read_until(sock, b"354 ")
    sock.sendall(data)
    answers = lines_until(sock, 2)
    for a in answers:
        assert a.startswith((b"250 2.0.0 ", b"451 ", b"452 ")), (name, answers)
    sock.sendall(b"NOOP\r\nQUIT\r\n")
    assert read_until(sock, b"221 2.0.0 Bye\r\n").startswith(b"250 2.0.0 Ok\r\n")


class _Resolver:
    def __init__(self, tmp_path):
        self.tmp = tmp_path

    def expand(self, address):
        from sieve.delivery.users import MailUser
        return MailUser(address.lower(), str(self.tmp / "Maildir"), None)


def _connections(tmp_path, n=2):
    from twisted.internet import defer
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from owlery.settings import parse_text
    from sieve.delivery.lmtpd import LMTPApplication

    app = LMTPApplication(parse_text(""), MemoryReactorClock(), resolver=_Resolver(tmp_path), threadpool=object())
    app.in_thread = lambda f, *a, **kw: defer.maybeDeferred(f, *a, **kw)
    out = []
    for _ in range(n):
        proto = app.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        transport.clear()
        out.append((proto, transport))
    return out


def _errors(caplog) -> list[str]:
    return [r.getMessage().split("\n")[0] for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_bug_preparing_the_delivery_tempfails_each_recipient_and_the_session_goes_on(
        tmp_path, caplog, monkeypatch):
    # An exception while preparing the deliveries (in the reactor thread) left dataReceived:
    # no reply at all, Twisted's "Unhandled Error", and the connection dropped.
    from sieve.delivery import lmtp
    (first, t1), (second, t2) = _connections(tmp_path)

    def broken(message):
        raise RuntimeError("bug in the queue id reader")
    monkeypatch.setattr(lmtp, "postfix_queue_id", broken)
    with caplog.at_level(logging.ERROR, logger="owlery.lmtpd"):
        first.dataReceived(HELLO + b"RCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
                           b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n")
    assert t1.value().endswith(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"
                               b"451 4.3.0 <alice@example.org> Internal error, try again later\r\n"
                               b"451 4.3.0 <bob@example.org> Internal error, try again later\r\n"
                               b"250 2.0.0 Ok\r\n"), t1.value()
    assert not t1.disconnecting
    assert len(_errors(caplog)) == 1, _errors(caplog)
    assert not (tmp_path / "Maildir").exists()
    second.dataReceived(b"NOOP\r\n")
    assert t2.value() == b"250 2.0.0 Ok\r\n"


def test_a_bug_reading_a_command_says_421_and_logs_once(tmp_path, caplog, monkeypatch):
    from sieve.delivery import lmtp
    (first, t1), (second, t2) = _connections(tmp_path)

    def broken(self, raw):
        raise IndexError("bug in the command reader")
    monkeypatch.setattr(lmtp.LMTPServer, "_command", broken)
    with caplog.at_level(logging.ERROR, logger="owlery.lmtpd"):
        first.dataReceived(b"NOOP\r\n")
    assert t1.value() == b"421 4.3.0 Internal error, closing connection\r\n" and t1.disconnecting
    assert len(_errors(caplog)) == 1, _errors(caplog)
    monkeypatch.undo()
    second.dataReceived(b"NOOP\r\n")
    assert t2.value() == b"250 2.0.0 Ok\r\n"


def test_a_delivery_that_raises_tempfails_its_recipient_only(tmp_path, caplog, monkeypatch):
    (first, t1), = _connections(tmp_path, 1)
    executor = first.app.executor
    real = executor.deliver

    def deliver(message, sender, rcpt, user, **kw):
        if rcpt.startswith("bob"):
            raise OSError("disk on fire")
        return real(message, sender, rcpt, user, **kw)
    monkeypatch.setattr(executor, "deliver", deliver)
    with caplog.at_level(logging.ERROR, logger="owlery.lmtpd"):
        first.dataReceived(HELLO + b"RCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
                           b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
    assert t1.value().endswith(b"250 2.0.0 <alice@example.org> Saved\r\n"
                               b"451 4.3.0 <bob@example.org> Internal error, try again later\r\n"), t1.value()
    assert len(_errors(caplog)) == 1, _errors(caplog)
