"""Twisted adapter of the policy daemon: connections, framing, timeouts; no decisions.

`PolicyProtocol` feeds bytes to the sans-I/O `RequestDecoder`, hands each request to the
`Pipeline` (one at a time per connection, in order), and writes `action=...` back.
Connections are kept open and reused. Malformed or oversized input, an idle
connection, or a decision that fails with an unexpected error or runs past
`policyd_decision_timeout` is logged and the connection closed WITHOUT a reply, so
that Postfix applies its own default action (SMTPD_POLICY_README). `build()` is what
`owlery.daemon.run` calls; `PolicyApp.reload` swaps in a new pipeline on SIGHUP
(open connections take it at their next request) and closes the old one when idle.

SECURITY: trusts Postfix's smtpd as its only client (whoever can connect can ask
questions and fill greylist and rate-limit state: listen on loopback or a unix socket
mode 0660 group postfix; a TCP port is open to every local user). A back end that answers
its relays' quota questions listens on a network address: `policyd_client_networks` then
lists who may connect over TCP (others are closed at once, with a log line); empty, the
default, lets everyone in as before (unix sockets are governed by their file mode). Runs as `daemon_user`
after binding; reads the settings file, the directory (map files or LDAP, with a bind
password from `ldap_bind_password_file`) and writes only the state store. Every request
is bounded (line length, attributes, idle time, decision time); a request it cannot
parse closes the connection without a reply, so Postfix applies its default action.
Talks to: the reactor, the pipeline. Tests: tests/policyd/test_service.py, tests/policyd/test_client_networks.py,
tests/policyd/test_protocol_hostile.py, tests/core/test_many_connections.py
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from twisted.internet import defer
from twisted.internet.abstract import FileDescriptor
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from owlery.settings import Duration, Endpoints, Networks, int_range, setting
from policyd.checks import CheckContext, Executor, ThreadPoolExecutor
from policyd.netmatch import NetworkMatcher
from policyd.pipeline import Decision, Pipeline
from policyd.protocol import ProtocolError, RequestDecoder, encode_action

POLICYD_LISTEN = setting("policyd_listen", Endpoints, ["unix:/var/spool/postfix/owlery/policyd.sock"],
                         "Where the policy daemon listens: unix:/path, tcp:HOST:PORT or systemd:NAME.")
POLICYD_CLIENT_NETWORKS = setting(
    "policyd_client_networks", Networks, [],
    "Networks whose TCP clients may connect (e.g. [\"127.0.0.0/8\", \"::1\", \"10.1.0.0/24\"] on a "
    "back end answering its relays' quota questions); other clients are disconnected at once and "
    "logged. Empty: every client that reaches the port (bind policyd_listen to loopback or a unix "
    "socket then). Unix socket clients are not filtered (the socket's mode governs).")
POLICYD_LINE_LENGTH_MAX = setting("policyd_line_length_max", int_range(64, 1 << 20), 4096, unit="bytes",
                                  doc="Longest request line (name=value) accepted; longer closes the connection.")
POLICYD_ATTRIBUTES_MAX = setting("policyd_attributes_max", int_range(1, 10000), 100,
                                 "Most attributes in one request (Postfix 3.8 sends about 30); "
                                 "more closes the connection.")
POLICYD_IDLE_TIMEOUT = setting("policyd_idle_timeout", Duration, 330, unit="s",
                               doc="Close a connection idle this long (Postfix's own max_idle is 300 s).")
POLICYD_DECISION_TIMEOUT = setting(
    "policyd_decision_timeout", Duration, 60, unit="s",
    doc="A decision still running after this long is abandoned: log and disconnect without a reply "
        "(keep it below Postfix's smtpd_policy_service_timeout, 100 s).")
POLICYD_REQUESTS_QUEUED_MAX = setting("policyd_requests_queued_max", int_range(1, 10000), 16,
                                      "Requests a client may send ahead of the replies (pipelining) "
                                      "before the connection is closed.")
POLICYD_WORKERS = setting(
    "policyd_workers", int_range(1, 64), 1,
    "Worker processes answering on the same listen sockets (one Python process uses one core; "
    "set it to the number of cores on a busy MX). Each worker keeps its own directory cache; "
    "state (greylist, rate limits) is shared through the state store.")
POLICYD_THREADS_MAX = setting("policyd_threads_max", int_range(1, 256), 8,
                              "Threads for blocking backends (LDAP, DNS, SQL, file reads).")
POLICYD_BLOCKING_QUEUE_MAX = setting("policyd_blocking_queue_max", int_range(1, 100000), 1000,
                                     "Blocking jobs that may wait for a thread; beyond it checks "
                                     "answer DEFER_IF_PERMIT 4.3.0 at once.")

log = logging.getLogger("owlery.policyd")


class PolicyProtocol(Protocol, TimeoutMixin):
    """One Postfix connection: many requests, one reply each, in order."""

    def __init__(self, factory: "PolicyFactory"):
        self.factory = factory
        settings = factory.settings
        self.callLater = factory.clock.callLater      # TimeoutMixin uses this
        self.decoder = RequestDecoder(line_length_max=settings.policyd_line_length_max,
                                      attributes_max=settings.policyd_attributes_max)
        self.queue: collections.deque = collections.deque()
        self.busy: Any = None      # the Deferred of the decision in progress
        self._raw: Any = None      # the socket transport, for replies sent at once
        self.session: Any = None
        self.closed = False

    def _peer(self) -> str:
        try:
            peer = self.transport.getPeer()
        except Exception:  # noqa: BLE001 - some transports cannot say; only for the log line
            return "?"
        host = getattr(peer, "host", None)
        return f"{host}:{peer.port}" if host else str(getattr(peer, "name", None) or "unix")

    def connectionMade(self) -> None:
        self.session = self.factory.pipeline.new_session()
        raw = getattr(self.transport, "transport", self.transport)   # under the runner's tracking wrapper
        self._raw = raw if isinstance(raw, FileDescriptor) and hasattr(raw, "socket") else None
        self.setTimeout(self.factory.settings.policyd_idle_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            requests = self.decoder.feed(data)
        except ProtocolError as e:
            self._drop(f"protocol error: {e}")
            return
        self.queue.extend(requests)
        if len(self.queue) > self.factory.settings.policyd_requests_queued_max:
            self._drop(f"more than {self.factory.settings.policyd_requests_queued_max} requests queued")
            return
        if not requests and self.decoder.pending:
            self.resetTimeout()      # a request is arriving in pieces; _next resets after answers
        self._next()

    def _next(self) -> None:
        # Warm-cache decisions come back at once (no Deferred): answer them in this loop.
        factory = self.factory
        while self.busy is None and self.queue and not self.closed:
            request = self.queue.popleft()
            try:
                result = factory.pipeline.decide_now(request, self.session, factory.clock.seconds())
            except Exception:  # noqa: BLE001 - a bug in a check: log, disconnect without reply
                self._failed(Failure(), request)
                return
            if isinstance(result, Decision):
                self._reply(encode_action(result.action.render()))
                continue
            self.busy = result
            result.addTimeout(factory.settings.policyd_decision_timeout, factory.clock)
            result.addCallbacks(self._answer, self._failed, errbackArgs=(request,))
        if not self.queue:
            self.resetTimeout()

    def _answer(self, decision: Any) -> None:
        self.busy = None
        if self.closed:
            return
        self._reply(encode_action(decision.action.render()))
        self._next()

    def _reply(self, data: bytes) -> None:
        """Send now when nothing is queued: one send() in place of Twisted's register-for-
        writing, send on the next loop turn and unregister (two epoll_ctl calls and a loop
        turn per reply). Anything not sent at once, or any error, goes the normal way."""
        raw = self._raw
        if (raw is not None and raw.connected and not raw.disconnecting and not raw._writeDisconnected
                and not raw._tempDataBuffer and raw.offset >= len(raw.dataBuffer)):
            try:
                sent = raw.socket.send(data)
            except OSError:
                sent = 0        # full buffer, or an error Twisted's own write will meet and report
            if sent == len(data):
                return
            data = data[sent:]
        self.transport.write(data)

    def _failed(self, failure: Any, request: Any) -> None:
        self.busy = None
        if self.closed:
            return
        if failure.check(defer.TimeoutError):
            self._drop(f"{request.log_head()}: decision took longer than "
                       f"{self.factory.settings.policyd_decision_timeout:g} s")
            return
        log.error("policyd: %s: internal error, disconnecting without reply: %s",
                  request.log_head(), failure.getTraceback())
        self._drop("internal error")

    def _drop(self, why: str) -> None:
        log.warning("policyd: closing connection from %s without reply: %s", self._peer(), why)
        self.closed = True
        self.queue.clear()
        self.setTimeout(None)
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        if self.busy is not None:
            # Idle time does not run while we decide (the decision has its own timeout).
            self.setTimeout(self.factory.settings.policyd_idle_timeout)
            return
        log.info("policyd: closing idle connection from %s", self._peer())
        self.closed = True
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.setTimeout(None)
        self.queue.clear()
        if self.busy is not None:
            busy, self.busy = self.busy, None
            busy.cancel()


class PolicyFactory(Factory):
    """Holds the current pipeline; protocols read it at each request, so a reload takes effect."""

    def __init__(self, settings: Any, pipeline: Pipeline, clock: Any):
        self.settings = settings
        self.pipeline = pipeline
        self.clock = clock
        self._acl: NetworkMatcher | None = None

    def buildProtocol(self, addr: Any) -> Protocol:
        networks = self.settings.policyd_client_networks
        if networks:
            if self._acl is None or self._acl.networks != tuple(networks):
                self._acl = NetworkMatcher(networks)       # built again after a reload changed it
            host = getattr(addr, "host", None)
            if host is not None and host not in self._acl:
                log.warning("policyd: refused connection from %s: not in policyd_client_networks", host)
                return _Refused()
        return PolicyProtocol(self)


class _Refused(Protocol):
    """A client outside policyd_client_networks: closed at once, nothing read or answered."""

    def connectionMade(self) -> None:
        self.transport.loseConnection()


class PolicyApp:
    """The policy daemon as `owlery.daemon.run` drives it: factory, reload, close."""

    def __init__(self, settings: Any, reactor: Any, *, executor: Executor | None = None,
                 directory: Any = None, resolver: Any = None):
        self.reactor = reactor
        self.executor = executor if executor is not None else ThreadPoolExecutor(
            reactor, settings.policyd_threads_max, settings.policyd_blocking_queue_max)
        self._directory = directory
        self.resolver = resolver
        self.factory = PolicyFactory(settings, self._pipeline(settings), reactor)
        self._retired: list[Pipeline] = []

    def _pipeline(self, settings: Any) -> Pipeline:
        ctx = CheckContext(settings, self.reactor, self.executor,
                           directory=self._directory, resolver=self.resolver)
        return Pipeline(settings, ctx)

    def reload(self, settings: Any) -> None:
        """New settings (SIGHUP): build a new pipeline and directory; retire the old when idle."""
        try:
            new = self._pipeline(settings)
        except (ValueError, ImportError) as e:
            log.error("policyd: reload refused, keeping the old checks: %s", e)
            return
        old = self.factory.pipeline
        self.factory.settings = settings
        self.factory.pipeline = new
        self._retired.append(old)
        self._reap()

    def _reap(self) -> None:
        for pipe in list(self._retired):
            if pipe.in_flight == 0:
                self._retired.remove(pipe)
                self._close_pipeline(pipe)
        if self._retired:
            self.reactor.callLater(1.0, self._reap)

    def _close_pipeline(self, pipe: Pipeline) -> None:
        pipe.close()
        if pipe.ctx._directory is not None and pipe.ctx._directory is self._directory:
            pipe.ctx._directory = None   # injected, not ours to close
        pipe.ctx.close()

    def close(self) -> None:
        for pipe in self._retired + [self.factory.pipeline]:
            self._close_pipeline(pipe)
        self._retired.clear()
        self.executor.close()


def build(settings: Any, reactor: Any) -> PolicyApp:
    """The builder `owlery.daemon.run` calls."""
    return PolicyApp(settings, reactor)
