"""Twisted adapter of the ManageSieve server: connections, STARTTLS, timeouts, threads; no decisions.

`ManageSieveProtocol` feeds bytes to the sans-I/O `ManageSieveSession` (sieve/managesieve/session.py) and
carries out its actions: writes, blocking calls in a bounded thread pool
(`managesieve_threads`; reading stops until the answer is back, so a connection runs one
command at a time), the failed-login delay on the reactor's clock (`reactor.callLater`), the
idle and login timeouts (TimeoutMixin; only a whole command restarts them, as the session
says with Active, never input bytes alone), STARTTLS and closing. Against hostile clients: the protocol is
its transport's producer, so a client that reads nothing (its answers past the transport's
buffer) is read from no more and its session runs no more commands until it reads; the
connection limits (sieve/managesieve/limits.py: in all, and not logged in per client) answer
BYE to one connection too many; failed logins count per client and login over all
connections; a connection closed on a client that reads nothing is aborted, and any close
that has not finished after CLOSE_GRACE seconds. TLS is the standard library's
`ssl` over memory BIOs (`SSLContext.wrap_bio`) under this protocol, not Twisted's startTLS:
that needs pyOpenSSL, which pins an older `cryptography` than the one Owlery uses. The
context comes from `managesieve_tls_cert_file` / `managesieve_tls_key_file` (TLS 1.2 or
later, no renegotiation). `build()` is what `owlery.daemon.run` calls; `reload()` takes new
settings (new connections get them; a bad certificate keeps the old ones).
SECURITY: listens on loopback by default; passwords travel in the clear unless STARTTLS is
used (PLAIN/LOGIN are offered before TLS only on loopback by default,
`managesieve_plaintext_auth`). Runs as `daemon_user` (the mail owner, e.g. vmail, so the
scripts it writes belong to it), reads the password file or binds to LDAP as the user, writes
only below the users' sieve directories.
Talks to: the reactor, a thread pool, the session's ManageSieveBackend.
Tests: tests/managesieve/test_service.py,
tests/managesieve/test_sieve_connect_e2e.py, tests/managesieve/test_dovecot_interop.py,
tests/managesieve/test_hostile_s20.py
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from typing import Any

from twisted.internet.protocol import Protocol, ServerFactory
from twisted.protocols.policies import TimeoutMixin

from owlery.login_limits import LoginFailures, client_key
from sieve.managesieve import session as s
from sieve.managesieve.limits import ConnectionLimits
from sieve.managesieve.settings import SessionConfig

log = logging.getLogger("owlery.managesieve")

# Seconds a closing connection may take to hand its last answers to the client before it is
# aborted (a client reading one byte a minute would otherwise keep it open for ever).
CLOSE_GRACE = 30.0
REFUSAL_LOG_INTERVAL = 60.0     # refused connections are logged once per this many seconds


def tls_context(settings: Any) -> ssl.SSLContext | None:
    """The server context from the settings, or None when no certificate is set."""
    cert, key = settings.managesieve_tls_cert_file, settings.managesieve_tls_key_file
    if not cert:
        if key:
            raise ValueError("managesieve_tls_key_file is set but managesieve_tls_cert_file is not")
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.load_cert_chain(cert, key or None)
    return ctx


class _TLS:
    """A server TLS session over memory buffers: ciphertext in and out, plaintext to the session."""

    def __init__(self, context: ssl.SSLContext):
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.ready = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(plaintext, True when the handshake finished now); ssl.SSLError when it fails."""
        self.incoming.write(data)
        finished = False
        if not self.ready:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                return b"", False
            self.ready = finished = True
        chunks = []
        while True:
            try:
                chunk = self.obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), finished

    def write(self, data: bytes) -> None:
        self.obj.write(data)

    def take(self) -> bytes:
        return self.outgoing.read()


def _is_local(host: str | None) -> bool:
    if host is None:
        return True                      # a unix socket: someone on this host
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class ManageSieveProtocol(Protocol, TimeoutMixin):
    """Translates bytes and actions between Twisted and one ManageSieveSession."""

    def __init__(self, app: "ManageSieveApplication"):
        self.app = app
        self.session: s.ManageSieveSession | None = None
        self.tls: _TLS | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._delay: Any = None
        self._reading = True
        self._output_paused = False       # the transport's buffer is full: the client reads nothing
        self._abort: Any = None
        self._key: str | None = None      # the client key counted in app.limits while open
        self._authenticated = False
        self._producing = False           # registered as the transport's producer
        self.peer = "unknown"

    def callLater(self, period: float, func: Any) -> Any:
        """TimeoutMixin's clock: the application's reactor (a task.Clock in tests)."""
        return self.app.reactor.callLater(period, func)

    def connectionMade(self) -> None:
        host = getattr(self.transport.getPeer(), "host", None)
        self.peer = host or "unix"
        key = client_key(host) if host else "unix"
        refused = self.app.limits.admit(key)
        if refused is not None:
            self.app.refused(refused, self.peer)
            self.transport.write(b'BYE "Too many connections, try again later."\r\n')
            self._close()
            return
        self._key = key
        settings = self.app.settings
        self._tls_context = self.app.tls        # with the config below: one snapshot per connection
        self.session = s.ManageSieveSession(self.app.config, self.app.backend, peer=self.peer, local=_is_local(host),
                                 login_timeout=settings.managesieve_login_timeout,
                                 idle_timeout=settings.managesieve_idle_timeout,
                                 failures=self.app.login_failures, clock=self.app.reactor.seconds,
                                 user_slots=self.app.limits.user_slots(key))
        try:
            self.transport.setTcpNoDelay(True)      # short answers the client waits for
        except (AttributeError, OSError):
            pass
        self.transport.registerProducer(self, True)
        self._producing = True
        self._act(self.session.start())

    # -- the transport's producer: it pauses us when the client does not read what we write --

    def pauseProducing(self) -> None:
        self._output_paused = True
        if self.session is not None:
            self.session.block_output()
        self._flow()

    def resumeProducing(self) -> None:
        self._output_paused = False
        if self.session is not None:
            self._act(self.session.unblock_output())
        else:
            self._flow()

    def stopProducing(self) -> None:
        pass                              # the connection is going: connectionLost cleans up

    def dataReceived(self, data: bytes) -> None:
        if self.session is None:
            return
        if self.tls is not None:
            try:
                data, finished = self.tls.feed(data)
            except ssl.SSLError as e:
                log.info("managesieve: TLS handshake or record failed: rip=%s: %s", self.peer, e)
                self.tls = None
                self.transport.abortConnection()
                return
            self._flush_tls()
            if finished:
                self._act(self.session.resume())
            if not data or self.session is None:
                return
        self._act(self.session.receive(data))

    def timeoutConnection(self) -> None:
        if self.session is not None:
            log.info("managesieve: timeout: rip=%s", self.peer)
            self._act(self.session.timed_out())

    def close_if_idle(self) -> bool:
        """The drain at SIGTERM (owlery.daemon): a session with no command begun or running is
        told BYE "Server shutting down." and closed now, not held until daemon_drain_timeout
        (a mail client keeps its connection for minutes); a busy one is asked again later."""
        if self.session is None:
            return False
        actions = self.session.shutting_down()
        if actions is None:
            return False
        self._act(actions)
        return True

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        if self.session is not None and self.session.user_slots is not None:
            self.session.user_slots.release()
        self.session = None
        for call in (self._delay, self._abort):
            if call is not None and call.active():
                call.cancel()
        self._delay = self._abort = None
        if self._key is not None:
            self.app.limits.closed(self._key, self._authenticated)
            self._key = None

    # -- actions -----------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.write(data)
            self._flush_tls()
        else:
            self.transport.write(data)

    def _flush_tls(self) -> None:
        if self.tls is not None:
            out = self.tls.take()
            if out:
                self.transport.write(out)

    def _act(self, actions: list) -> None:
        self._do(actions)
        # Commands left waiting after a batch of output run while the client takes what we
        # write; when it stops (pauseProducing) they wait for resumeProducing.
        while self.session is not None and self.session.more and not self._output_paused:
            self._do(self.session.proceed())
        self._flow()
        if self.session is not None and self._key is not None:
            authenticated = self.session.state == s.AUTHENTICATED
            if authenticated != self._authenticated:
                self._authenticated = authenticated
                (self.app.limits.logged_in if authenticated else self.app.limits.logged_out)(self._key)

    def _do(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, s.Send):
                self._write(action.data)
            elif isinstance(action, s.Call):
                d = self.app.in_thread(action.fn)
                d.addCallbacks(self._resume, self._resume_error)
                d.addErrback(self._internal_error)
            elif isinstance(action, s.Wait):
                self._delay = self.app.reactor.callLater(action.seconds, self._resume, None)
            elif isinstance(action, s.StartTLS):
                self.tls = _TLS(self._tls_context)
            elif isinstance(action, s.Timeout):
                self.setTimeout(action.seconds)
            elif isinstance(action, s.Active):
                self.resetTimeout()
            elif isinstance(action, s.Close):
                self._close()

    def _flow(self) -> None:
        """Read only while the session can answer at once (the TLS handshake needs reading) and
        the client takes its answers."""
        busy = self.session is not None and (isinstance(self.session.pending, (s.Call, s.Wait))
                                             or self._output_paused or self.session.more)
        if busy and self._reading:
            self.transport.pauseProducing()
            self._reading = False
        elif not busy and not self._reading and self.session is not None:
            self.transport.resumeProducing()
            self._reading = True

    def _resume(self, value: Any) -> None:
        self._delay = None
        if self.session is not None:
            self._act(self.session.resume(value))

    def _resume_error(self, failure: Any) -> None:
        if self.session is not None:
            self._act(self.session.resume_error(failure.value))

    def _internal_error(self, failure: Any) -> None:
        log.error("managesieve: internal error: rip=%s: %s", self.peer, failure.getTraceback())
        if self.session is not None:
            self.session = None
            self._close()

    def _close(self) -> None:
        """Close after the last answers are out; at once when the client reads nothing (they
        would never be), and in any case after CLOSE_GRACE."""
        if self._abort is not None:
            return
        if self.tls is not None and self.tls.ready:
            try:
                self.tls.obj.unwrap()                 # close_notify; the peer's answer is not awaited
            except (ssl.SSLError, ValueError):
                pass
            self._flush_tls()
        if not self._reading:
            self.transport.resumeProducing()
            self._reading = True
        if self._output_paused:
            log.info("managesieve: closing at once: rip=%s reads nothing", self.peer)
            self.transport.abortConnection()
            return
        if self._producing:
            # (a paused producer would be resumed, not the connection closed, once the buffer drains)
            self._producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()
        self._abort = self.app.reactor.callLater(CLOSE_GRACE, self._too_slow_to_close)

    def _too_slow_to_close(self) -> None:
        self._abort = None
        log.info("managesieve: closing at once: rip=%s took more than %g s to take its last answers",
                 self.peer, CLOSE_GRACE)
        self.transport.abortConnection()


class ManageSieveApplication:
    """What owlery.daemon.run drives: the factory, reload and close."""

    def __init__(self, settings: Any, reactor: Any, *, backend: Any = None, threadpool: Any = None):
        from twisted.python.threadpool import ThreadPool
        self.reactor = reactor
        self.settings = settings
        self.tls = tls_context(settings)
        self.config = SessionConfig.from_settings(settings, tls_available=self.tls is not None)
        self.limits = ConnectionLimits(settings.managesieve_max_connections,
                                       settings.managesieve_max_connections_per_client,
                                       settings.managesieve_max_userip_connections)
        self.login_failures = LoginFailures(per_client=settings.managesieve_login_failures_per_client,
                                            per_login=settings.managesieve_login_failures_per_user,
                                            window=settings.managesieve_login_failure_window)
        self._refusals: dict[str, tuple[float, int]] = {}     # limit -> (last logged, refused since)
        if backend is None:
            from sieve.managesieve.backend import Accounts
            backend = Accounts(settings)
        self.backend = backend
        self._own_pool = threadpool is None
        if threadpool is None:
            threadpool = ThreadPool(minthreads=1, maxthreads=settings.managesieve_threads, name="managesieve")
            threadpool.start()
        self.threadpool = threadpool
        if os.geteuid() == 0 and settings.maildir_owner is None:
            log.warning("managesieve: running as root without maildir_owner (or daemon_user): scripts of users "
                        "without a uid in the directory will belong to root")
        self.factory = ServerFactory.forProtocol(lambda: ManageSieveProtocol(self))

    def reload(self, settings: Any) -> None:
        tls = tls_context(settings)                       # a broken certificate refuses the reload
        from sieve.managesieve.backend import Accounts
        backend = Accounts(settings)
        # Open connections keep the old backend (and its LDAP connections) until they end.
        self.backend = backend
        self.settings, self.tls = settings, tls
        self.config = SessionConfig.from_settings(settings, tls_available=tls is not None)
        self.limits.total = settings.managesieve_max_connections
        self.limits.per_client = settings.managesieve_max_connections_per_client
        self.limits.per_user = settings.managesieve_max_userip_connections
        f = self.login_failures
        f.per_client, f.per_login = settings.managesieve_login_failures_per_client, settings.managesieve_login_failures_per_user
        f.window = settings.managesieve_login_failure_window

    def refused(self, limit: str, peer: str) -> None:
        """Log a connection refused by a limit: once per REFUSAL_LOG_INTERVAL per limit, with
        the number refused since (a flood of connections must not flood the log too)."""
        now = self.reactor.seconds()
        last, count = self._refusals.get(limit, (None, 0))
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[limit] = (last, count + 1)
            return
        self._refusals[limit] = (now, 0)
        what = ("managesieve_max_connections" if limit == "total" else "managesieve_max_connections_per_client")
        log.warning("managesieve: connection refused: rip=%s: %s reached%s", peer, what,
                    f" ({count} more refused since the last such line)" if count else "")

    def close(self) -> None:
        if hasattr(self.backend, "close"):
            self.backend.close()
        if self._own_pool:
            self.threadpool.stop()

    def in_thread(self, f: Any, *args: Any, **kw: Any) -> Any:
        from twisted.internet.threads import deferToThreadPool
        return deferToThreadPool(self.reactor, self.threadpool, f, *args, **kw)


def build(settings: Any, reactor: Any) -> ManageSieveApplication:
    return ManageSieveApplication(settings, reactor)
