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

import logging
import sys
import weakref
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import TimeoutMixin

from owlery import metrics
from owlery.ordered_replies import OrderedReplies, close_if_idle, direct_transport, peer_text, send_now
from policyd import settings as _declared  # noqa: F401 - policyd_listen & co., declared light
from policyd.checks import CheckContext, Executor, ThreadPoolExecutor
from policyd.netmatch import NetworkMatcher
from policyd.pipeline import Decision, Pipeline
from policyd.protocol import ProtocolError, RequestDecoder, encode_action

log = logging.getLogger("owlery.policyd")


class PolicyProtocol(Protocol, TimeoutMixin):
    """One Postfix connection: many requests, one reply each, in order (owlery.ordered_replies)."""

    def __init__(self, factory: "PolicyFactory"):
        self.factory = factory
        settings = factory.settings
        self.callLater = factory.clock.callLater      # TimeoutMixin uses this
        self.decoder = RequestDecoder(line_length_max=settings.policyd_line_length_max,
                                      attributes_max=settings.policyd_attributes_max)
        self.replies = OrderedReplies(settings.policyd_requests_queued_max, self._decide, self._reply,
                                      self._drop, self._failed, drained=self.resetTimeout)
        self._raw: Any = None      # the socket transport, for replies sent at once
        self.session: Any = None

    def connectionMade(self) -> None:
        self.session = self.factory.pipeline.new_session()
        self._raw = direct_transport(self.transport)
        self.setTimeout(self.factory.settings.policyd_idle_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self.replies.closed:
            return
        try:
            requests = self.decoder.feed(data)
        except ProtocolError as e:
            self._drop(f"protocol error: {e}")
            return
        self.replies.limit = self.factory.settings.policyd_requests_queued_max
        if not self.replies.add(requests):
            return
        if not requests and self.decoder.pending:
            self.resetTimeout()      # a request is arriving in pieces; the replies reset it after answers
        self.replies.pump()

    def _decide(self, request: Any) -> Any:
        """The reply now (warm caches answer without a Deferred), or a Deferred of it."""
        factory = self.factory
        try:
            result = factory.pipeline.decide_now(request, self.session, factory.clock.seconds())
        except Exception:  # noqa: BLE001 - a bug in a check: _failed logs it, disconnects without reply
            return defer.fail()
        if isinstance(result, Decision):
            return encode_action(result.action.render())
        result.addTimeout(factory.settings.policyd_decision_timeout, factory.clock)
        return result.addCallback(lambda decision: encode_action(decision.action.render()))

    def _reply(self, data: bytes) -> None:
        self.factory.decisions += 1         # every reply is one decision (systemd STATUS line)
        send_now(self._raw, self.transport, data)

    def _failed(self, failure: Any, request: Any) -> None:
        if failure.check(defer.TimeoutError):
            self._drop(f"{request.log_head()}: decision took longer than "
                       f"{self.factory.settings.policyd_decision_timeout:g} s")
            return
        log.error("policyd: %s: internal error, disconnecting without reply: %s",
                  request.log_head(), failure.getTraceback())
        self._drop("internal error")

    def _drop(self, why: str | None) -> None:
        log.warning("policyd: closing connection from %s without reply: %s", peer_text(self.transport), why)
        self.replies.stop()
        self.setTimeout(None)
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        if self.replies.busy is not None:
            # Idle time does not run while we decide (the decision has its own timeout).
            self.setTimeout(self.factory.settings.policyd_idle_timeout)
            return
        # Routine, once per smtpd process that outlived its turn: not worth a line at info.
        log.debug("policyd: closing idle connection from %s", peer_text(self.transport))
        self.replies.stop()
        self.transport.loseConnection()

    def close_if_idle(self) -> bool:
        """The drain at SIGTERM (owlery.daemon): closed now when every request read is answered
        and none is half-read. Postfix keeps a policy connection open between requests
        (smtpd_policy_service_max_idle, 300 s) and sends the next request again on a new
        connection when it finds this one closed; waiting for it to close held every stop for
        daemon_drain_timeout."""
        return close_if_idle(self.replies, self.decoder.pending, self.transport)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self.replies.cancel()


class PolicyFactory(Factory):
    """Holds the current pipeline; protocols read it at each request, so a reload takes effect."""

    def __init__(self, settings: Any, pipeline: Pipeline, clock: Any):
        self.settings = settings
        self.pipeline = pipeline
        self.clock = clock
        self._acl: NetworkMatcher | None = None
        self.decisions = 0

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
        # directory -> (hits, misses) already counted; the cache keeps plain counters (no
        # metric call on the hot path), copied into owlery_directory_cache_lookups_total.
        self._cache_seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        if metrics.enabled():
            metrics.add_sampler(self.sample_directory_cache)
            metrics.add_gauge_source(metrics.GREYLIST_STORED, metrics.Cached(self.count_greylist, "greylist"))

    def count_greylist(self) -> list[tuple[tuple[str, ...], float]]:
        """Triplets waiting and passed in the greylist check's store, for owlery_greylist_triplets_stored
        (in the metrics thread, at most once a minute); none without the check, or on Redis."""
        from policyd.greylist_core import TRIPLET_PREFIX
        check = next((c for c in self.factory.pipeline.checks if c.name == "greylist"), None)
        counts = None if check is None else check.store.count_live(TRIPLET_PREFIX, self.reactor.seconds())
        return [] if counts is None else [(("waiting",), float(counts[0])), (("passed",), float(counts[1]))]

    def sample_directory_cache(self) -> None:
        """Count the directory cache's hits and misses since the last call."""
        directory = self.factory.pipeline.ctx.directory_if_open
        if directory is None or not hasattr(directory, "hits"):
            return
        hits, misses = directory.hits, directory.misses
        hits_before, misses_before = self._cache_seen.get(directory, (0, 0))
        self._cache_seen[directory] = (hits, misses)
        if hits > hits_before:
            metrics.DIRECTORY_CACHE_LOOKUPS.labels("hit").inc(hits - hits_before)
        if misses > misses_before:
            metrics.DIRECTORY_CACHE_LOOKUPS.labels("miss").inc(misses - misses_before)

    def status_counts(self) -> dict[str, int]:
        """For the runner's systemd STATUS line."""
        return {"decisions": self.factory.decisions}

    def _pipeline(self, settings: Any) -> Pipeline:
        ctx = CheckContext(settings, self.reactor, self.executor,
                           directory=self._directory, resolver=self.resolver)
        if settings.directory_backend != "ldap":
            # Map files (and passwd's aliases) are read now, as lmtpd and socketmap read them:
            # a missing or broken file stops the start (or a reload) with the setting's name,
            # instead of failing every request later. LDAP stays lazy: a server down at start
            # must give 4xx answers, not a daemon that does not start.
            ctx.directory  # noqa: B018 - the property builds (and reads) the directory
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
        pipe.ctx.close()     # closes the directory it opened, never the injected self._directory

    def close(self) -> None:
        for pipe in self._retired + [self.factory.pipeline]:
            self._close_pipeline(pipe)
        self._retired.clear()
        self.executor.close()


# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms).
# Decisions are made on the reactor thread; the pool threads (a first SPF evaluation, the
# greylist store's batched writes) run Python too, and with the default the reactor could wait
# up to 5 ms for the GIL in the middle of answering: a 5 ms floor under the p99 latency.
# bench/bench_policy_mix.py, same machine, runs alternated: p99 paced at 5,000/s and c=10
# 7.2 -> 4.0 ms and 4.9 -> 4.0 ms, saturated c=10 +8-20% decisions/s.
GIL_SWITCH_INTERVAL = 0.0005   # seconds


def build(settings: Any, reactor: Any) -> PolicyApp:
    """The builder `owlery.daemon.run` calls (in each worker process)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    return PolicyApp(settings, reactor)
