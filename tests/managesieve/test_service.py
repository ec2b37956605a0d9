"""The Twisted adapter (sieve/managesieve/service.py) on an in-memory transport and a task.Clock:
the failed-login delay runs on the reactor clock, reading stops while a blocking call runs,
timeouts say BYE, and STARTTLS works end to end with an in-memory TLS client."""

import ssl

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from owlery.settings import Settings
from sieve.managesieve.service import ManageSieveApplication, tls_context
from sieve.managesieve.session import Account, CheckResult
from sieve.managesieve.storage import ScriptStorage
from tests.managesieve.helpers import make_certificate, plain

USER, PASSWORD = "alice@example.org", "s3cret"


class Backend:
    def __init__(self, home):
        self.home = home
        self.logins = []

    def login(self, username, password):
        self.logins.append(username)
        if (username, password) != (USER, PASSWORD):
            return None
        return Account(USER, ScriptStorage(str(self.home / "sieve"), str(self.home / "sieve" / "active.sieve")))

    def check(self, source, name, storage=None, upload=False):
        return CheckResult()


class Pool:
    """Stands in for the thread pool: calls wait in `pending` until the test runs them."""

    def __init__(self, auto=True):
        self.auto = auto
        self.pending = []

    def run(self, f):
        if self.auto:
            return defer.maybeDeferred(f)
        d = defer.Deferred()
        self.pending.append((f, d))
        return d

    def finish_all(self):
        while self.pending:
            f, d = self.pending.pop(0)
            d.callback(f())


@pytest.fixture
def certs(tmp_path):
    return make_certificate(tmp_path / "tls")


def make_app(tmp_path, certs=None, pool=None, **over):
    settings = Settings().replace(managesieve_login_failure_delay=2, **over)
    if certs is not None:
        settings = settings.replace(managesieve_tls_cert_file=str(certs[1]), managesieve_tls_key_file=str(certs[2]))
    clock = Clock()
    app = ManageSieveApplication(settings, clock, backend=Backend(tmp_path / "home"), threadpool=object())
    pool = pool or Pool()
    app.in_thread = pool.run
    return app, clock, pool


def connect(app, host="127.0.0.1"):
    proto = app.factory.buildProtocol(None)
    peer = IPv4Address("TCP", host, 40000) if host else UNIXAddress("/run/x.sock")
    transport = StringTransport(peerAddress=peer)
    proto.makeConnection(transport)
    return proto, transport


def said(transport) -> bytes:
    out = transport.value()
    transport.clear()
    return out


def test_failed_login_waits_on_the_reactor_clock(tmp_path):
    app, clock, _ = make_app(tmp_path)
    proto, t = connect(app)
    said(t)
    proto.dataReceived(f'AUTHENTICATE "PLAIN" "{plain(USER, "wrong")}"\r\n'.encode())
    assert said(t) == b"" and t.producerState == "paused"      # no answer yet, not reading
    clock.advance(1.9)
    assert said(t) == b""
    clock.advance(0.2)
    assert said(t) == b'NO "Authentication failed."\r\n' and t.producerState == "producing"
    proto.dataReceived(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode())
    assert said(t) == b'OK "Logged in."\r\n'                    # success is not delayed


def test_reading_stops_while_a_call_runs(tmp_path):
    pool = Pool(auto=False)
    app, clock, _ = make_app(tmp_path, pool=pool)
    proto, t = connect(app)
    said(t)
    proto.dataReceived(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\nNOOP\r\n'.encode())
    assert t.producerState == "paused" and len(pool.pending) == 1 and said(t) == b""
    pool.finish_all()
    assert said(t) == b'OK "Logged in."\r\nOK "Done"\r\n' and t.producerState == "producing"


def test_a_call_finishing_after_the_client_left_is_harmless(tmp_path):
    pool = Pool(auto=False)
    app, clock, _ = make_app(tmp_path, pool=pool)
    proto, t = connect(app)
    proto.dataReceived(f'AUTHENTICATE "PLAIN" "{plain(USER, "wrong")}"\r\n'.encode())
    proto.connectionLost(None)
    pool.finish_all()
    clock.advance(10)
    assert not clock.getDelayedCalls()


def test_login_and_idle_timeouts(tmp_path):
    app, clock, _ = make_app(tmp_path, managesieve_login_timeout=60, managesieve_idle_timeout=600)
    proto, t = connect(app)
    said(t)
    clock.advance(59)
    proto.dataReceived(b"NOOP\r\n")                     # after login, a command restarts the timer
    proto.dataReceived(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode())
    clock.advance(599)
    assert not t.disconnecting
    proto.dataReceived(b"NOOP\r\n")
    clock.advance(599)
    assert not t.disconnecting
    said(t)
    clock.advance(2)
    assert said(t) == b'BYE "Disconnected for inactivity."\r\n' and t.disconnecting


def test_login_time_counts_from_the_connection_whatever_is_sent(tmp_path):
    """A client that never logs in cannot hold a connection with NOOPs (Dovecot's login
    processes give a connection 3 minutes to log in, whatever it sends)."""
    app, clock, _ = make_app(tmp_path, managesieve_login_timeout=60, managesieve_idle_timeout=600)
    proto, t = connect(app)
    said(t)
    for _ in range(5):
        clock.advance(11)
        proto.dataReceived(b"NOOP\r\n")
    assert not t.disconnecting
    said(t)
    clock.advance(6)
    assert said(t) == b'BYE "Disconnected for inactivity."\r\n' and t.disconnecting


def test_unauthenticate_starts_a_new_login_time(tmp_path):
    app, clock, _ = make_app(tmp_path, managesieve_login_timeout=60, managesieve_idle_timeout=600)
    proto, t = connect(app)
    proto.dataReceived(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode())
    clock.advance(300)
    proto.dataReceived(b"UNAUTHENTICATE\r\n")
    clock.advance(30)
    proto.dataReceived(b"NOOP\r\n")
    clock.advance(29)
    assert not t.disconnecting
    said(t)
    clock.advance(2)
    assert said(t) == b'BYE "Disconnected for inactivity."\r\n' and t.disconnecting


@pytest.mark.parametrize("host,sasl", [("127.0.0.1", b'"SASL" "PLAIN LOGIN"'), ("192.0.2.9", b'"SASL" ""'),
                                       (None, b'"SASL" "PLAIN LOGIN"'), ("::1", b'"SASL" "PLAIN LOGIN"')])
def test_plaintext_offered_on_loopback_and_unix_only(tmp_path, host, sasl):
    app, _, _ = make_app(tmp_path)
    _, t = connect(app, host)
    assert sasl in t.value()


class TLSClient:
    """An ssl client over memory buffers, wired to a StringTransport."""

    def __init__(self, ca, proto, transport, hostname="localhost"):
        ctx = ssl.create_default_context(cafile=str(ca))
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=hostname)
        self.proto, self.t = proto, transport

    def pump(self):
        for _ in range(10):
            data = self.out.read()
            if data:
                self.proto.dataReceived(data)
            back = said(self.t)
            if back:
                self.inc.write(back)
            if not data and not back:
                return

    def handshake(self):
        for _ in range(10):
            try:
                self.obj.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.pump()
        raise AssertionError("no handshake")

    def say(self, data: bytes) -> bytes:
        self.obj.write(data)
        self.pump()
        return self.read()

    def read(self) -> bytes:
        self.pump()
        out = b""
        while True:
            try:
                chunk = self.obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return out
            if not chunk:
                return out
            out += chunk


def test_starttls(tmp_path, certs):
    app, _, _ = make_app(tmp_path, certs=certs)
    proto, t = connect(app, "192.0.2.9")
    greeting = said(t)
    assert b'"STARTTLS"' in greeting and b'"SASL" ""' in greeting
    # Pipelined in the clear after STARTTLS: must be dropped, not run inside TLS.
    proto.dataReceived(b'STARTTLS\r\nDELETESCRIPT "x"\r\n')
    assert said(t) == b'OK "Begin TLS negotiation now."\r\n'
    client = TLSClient(certs[0], proto, t)
    client.handshake()
    caps = client.read()
    assert b'"SASL" "PLAIN LOGIN"' in caps and b"STARTTLS" not in caps
    assert caps.endswith(b'OK "TLS negotiation successful."\r\n')
    assert client.say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n'.encode()) == b'OK "Logged in."\r\n'
    assert client.say(b'PUTSCRIPT "s" {5+}\r\nkeep;\r\n') == b'OK "Putscript completed."\r\n'
    assert (tmp_path / "home" / "sieve" / "s.sieve").read_bytes() == b"keep;"
    assert client.say(b"LOGOUT\r\n") == b'OK "Logout completed."\r\n' and t.disconnecting


def test_garbage_instead_of_a_handshake_drops_the_connection(tmp_path, certs):
    app, _, _ = make_app(tmp_path, certs=certs)
    proto, t = connect(app)
    proto.dataReceived(b"STARTTLS\r\n")
    proto.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
    assert t.disconnecting or t.disconnected


def test_tls_settings(tmp_path, certs):
    assert tls_context(Settings()) is None
    with pytest.raises(ValueError):
        tls_context(Settings().replace(managesieve_tls_key_file=str(certs[2])))
    with pytest.raises(OSError):
        tls_context(Settings().replace(managesieve_tls_cert_file=str(tmp_path / "missing.pem")))
    ctx = tls_context(Settings().replace(managesieve_tls_cert_file=str(certs[1]),
                                         managesieve_tls_key_file=str(certs[2])))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
