"""Twisted adapter of the socketmap table server: connections, framing, the thread pool; no decisions.

`SocketmapProtocol` feeds bytes to the sans-I/O `SocketmapRequestDecoder` and answers each request
in order, one at a time per connection: first from the directory cache on the reactor
thread (maps.lookup over a `PeekDirectory`, which raises CacheMiss for anything not
cached), else by running the same lookup on the cached directory in a bounded thread pool
(`socketmap_threads_max` threads, `socketmap_blocking_queue_max` waiting; a full pool
answers TEMP at once) with `socketmap_lookup_timeout` (then TIMEOUT). A bad request gets
PERM; broken framing gets PERM and the connection is closed; so is a connection with more
than `socketmap_requests_queued_max` requests waiting, or idle `socketmap_idle_timeout`.
A lookup that fails with an unexpected error (a bug) is logged with its traceback and
answered TEMP, so Postfix defers the mail rather than bouncing it. One log line per lookup
at debug, one per TEMP, TIMEOUT or PERM answer at warning; each counted in the metrics by
map, status and source (owlery.metrics). `build()` is what
`owlery.daemon.run` calls; `SocketmapApp.reload` takes new settings and a new directory on
SIGHUP (the old directory is closed once its lookups had time to finish).

SECURITY: Postfix's socketmap client authenticates nothing (socketmap_table(5)): whoever
can connect can ask who exists and where each mailbox lives. By default it listens on a
unix socket in Postfix's queue directory, mode 0660 group postfix; a TCP port, even on
loopback, lets every local user ask. Runs as `daemon_user` after binding; reads the
settings file and the directory (map files or LDAP), writes nothing. Every request is
bounded (length, requests queued, idle time, lookup time, threads, reply length).
Talks to: the reactor, the directory (through socketmap/maps.py).
Tests: tests/socketmap/test_service.py, tests/socketmap/test_postmap.py
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from owlery import metrics
from owlery.directory import MISS
from owlery.errors import TemporaryFailure
from owlery.ordered_replies import Final, OrderedReplies, close_if_idle, direct_transport, peer_text, send_now
from socketmap import maps
from socketmap.protocol import (BadRequest, SocketmapAnswer, SocketmapRequest, SocketmapRequestDecoder, encode_reply, perm,
                                printable, temp, timeout)

log = logging.getLogger("owlery.socketmap")


class CacheMiss(Exception):
    """The cache cannot answer this lookup without asking the backend."""


class PeekDirectory:
    """The directory cache as the tables read it, never blocking: a miss raises CacheMiss."""

    def __init__(self, cache: Any):
        self.cache = cache

    @staticmethod
    def _hit(value: Any) -> Any:
        if value is MISS:
            raise CacheMiss
        return value

    def hosts_domain(self, domain: str) -> bool:
        return self._hit(self.cache.peek_hosts_domain(domain))

    def resolve(self, address: str) -> Any:
        return self._hit(self.cache.peek_resolve(address))

    def expand_once(self, key: str) -> list[str] | None:
        return self._hit(self.cache.peek_expand_once(key))


class BlockingPool:
    """A bounded Twisted thread pool: `threads_max` threads, at most `queue_max` jobs not done."""

    def __init__(self, reactor: Any, threads_max: int, queue_max: int):
        from twisted.python.threadpool import ThreadPool
        self.reactor = reactor
        self.queue_max = queue_max
        self.pending = 0
        self.pool = ThreadPool(minthreads=1, maxthreads=threads_max, name="socketmap-lookup")
        self.pool.start()

    def submit(self, fn: Any, *args: Any) -> Any:
        from twisted.internet import threads
        if self.pending >= self.queue_max:
            return defer.fail(TemporaryFailure(f"lookup threads saturated ({self.pending} lookups waiting)"))
        self.pending += 1

        def done(result: Any) -> Any:
            self.pending -= 1
            return result
        return threads.deferToThreadPool(self.reactor, self.pool, fn, *args).addBoth(done)

    def close(self) -> None:
        self.pool.stop()


def _count(request: SocketmapRequest, answer: SocketmapAnswer, source: str, started: float) -> None:
    """One answered lookup in the metrics (no-ops while they are off); a map name the client
    made up counts as "unknown", so the label stays bounded."""
    metrics.SOCKETMAP_LOOKUPS.labels(request.name if request.name in maps.TABLES else "unknown", answer.status).inc()
    metrics.SOCKETMAP_LOOKUP_DURATION.labels(source).observe(time.perf_counter() - started)


def _log_answer(request: SocketmapRequest, answer: SocketmapAnswer, source: str) -> None:
    """One line per lookup (debug), per TEMP, TIMEOUT or PERM (warning); the client's text
    loses its control characters, so a key cannot forge a log line."""
    if answer.status in ("OK", "NOTFOUND"):
        if log.isEnabledFor(logging.DEBUG):
            log.debug("socketmap: lookup: map=%s key=<%s> status=%s data=<%s> from=%s", printable(request.name),
                      printable(request.key), answer.status, printable(answer.text), source)
        return
    log.warning("socketmap: lookup: map=%s key=<%s> status=%s reason=%s",
                printable(request.name[:64]), printable(request.key[:256]), answer.status, printable(answer.text))


class SocketmapProtocol(Protocol, TimeoutMixin):
    """One Postfix connection: many requests, one reply each, in order (owlery.ordered_replies)."""

    def __init__(self, factory: "SocketmapFactory"):
        self.factory = factory
        self.callLater = factory.clock.callLater      # TimeoutMixin uses this
        self.decoder = SocketmapRequestDecoder(factory.settings.socketmap_request_length_max)
        self.replies = OrderedReplies(factory.settings.socketmap_requests_queued_max, self._answer, self._send,
                                      self._drop, self._failed, drained=self.resetTimeout)
        self._raw: Any = None          # the socket transport, for replies sent at once

    def connectionMade(self) -> None:
        self._raw = direct_transport(self.transport)
        self.setTimeout(self.factory.settings.socketmap_idle_timeout)
        metrics.SOCKETMAP_CONNECTIONS.inc()

    def _send(self, data: bytes) -> None:
        self.factory.app.lookups += 1       # one reply per lookup (systemd STATUS line)
        send_now(self._raw, self.transport, data)

    def dataReceived(self, data: bytes) -> None:
        if self.replies.closed:
            return
        self.replies.limit = self.factory.settings.socketmap_requests_queued_max
        if not self.replies.add(self.decoder.feed(data)):
            return
        self.resetTimeout()
        self.replies.pump()

    def _answer(self, item: SocketmapRequest | BadRequest) -> Any:
        """The reply from the cache now, PERM for a bad request, else a Deferred of the directory's."""
        if isinstance(item, BadRequest):
            log.warning("socketmap: bad request from %s: %s%s", peer_text(self.transport), item.reason,
                        "; closing the connection" if item.fatal else "")
            reply = encode_reply(perm(item.reason), self.factory.settings.socketmap_reply_length_max)
            metrics.SOCKETMAP_LOOKUPS.labels("invalid", "PERM").inc()
            return Final(reply) if item.fatal else reply
        app = self.factory.app
        started = time.perf_counter()
        answer = app.answer_now(item)
        if answer is not None:
            _log_answer(item, answer, "cache")
            _count(item, answer, "cache", started)
            return encode_reply(answer, self.factory.settings.socketmap_reply_length_max)
        return app.answer_later(item).addCallback(self._answered, item, started)

    def _answered(self, answer: SocketmapAnswer, request: SocketmapRequest, started: float) -> bytes:
        if not self.replies.closed:         # a lookup cancelled with its connection is not news
            _log_answer(request, answer, "directory")
            _count(request, answer, "directory", started)
        return encode_reply(answer, self.factory.settings.socketmap_reply_length_max)

    def _failed(self, failure: Any, request: Any) -> None:
        # answer_later's Deferred fires with a SocketmapAnswer even for a failed lookup: this is a bug
        trace = failure.getTraceback() if isinstance(failure, Failure) else "".join(traceback.format_exception(failure))
        log.error("socketmap: internal error, closing the connection: %s", trace)
        self._drop(None)

    def _drop(self, why: str | None) -> None:
        if why:
            log.warning("socketmap: closing connection from %s: %s", peer_text(self.transport), why)
        self.replies.stop()
        self.setTimeout(None)
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        if self.replies.busy is not None:
            # Idle time does not run while a lookup does (it has its own timeout).
            self.setTimeout(self.factory.settings.socketmap_idle_timeout)
            return
        log.debug("socketmap: closing idle connection from %s", peer_text(self.transport))   # routine: not INFO
        self._drop(None)

    def close_if_idle(self) -> bool:
        """The drain at SIGTERM (owlery.daemon): closed now when every lookup read is answered
        and none is half-read. Postfix's socketmap client keeps its connection between lookups
        and retries a lookup once on a new connection when it meets the old one closed ("to
        make server restarts transparent", dict_sockmap.c)."""
        return close_if_idle(self.replies, self.decoder.pending, self.transport)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self.replies.cancel()


class SocketmapFactory(Factory):
    """Builds one protocol per connection; holds the app (and so the current settings)."""

    def __init__(self, app: "SocketmapApp"):
        self.app = app

    @property
    def settings(self) -> Any:
        return self.app.settings

    @property
    def clock(self) -> Any:
        return self.app.reactor

    def buildProtocol(self, addr: Any) -> SocketmapProtocol:
        return SocketmapProtocol(self)


class SocketmapApp:
    """The socketmap server as `owlery.daemon.run` drives it: factory, answers, reload, close."""

    def __init__(self, settings: Any, reactor: Any, *, directory: Any = None, pool: Any = None):
        self.reactor = reactor
        self.settings = settings
        self.config = maps.TableConfig.from_settings(settings)
        self._own_directory = directory is None
        self._retired: list[Any] = []
        self.directory = directory if directory is not None else self._open_directory(settings)
        self.pool = pool if pool is not None else BlockingPool(
            reactor, settings.socketmap_threads_max, settings.socketmap_blocking_queue_max)
        self.factory = SocketmapFactory(self)
        self.lookups = 0

    def status_counts(self) -> dict[str, int]:
        """For the runner's systemd STATUS line."""
        return {"lookups": self.lookups}

    def _open_directory(self, settings: Any) -> Any:
        from owlery.directory import open_directory
        return open_directory(settings, clock=self.reactor.seconds)

    def answer_now(self, request: SocketmapRequest) -> SocketmapAnswer | None:
        """The answer from the cache alone, or None when the backend must be asked."""
        try:
            return maps.lookup(request.name, request.key, PeekDirectory(self.directory), self.config)
        except CacheMiss:
            return None
        except Exception:  # noqa: BLE001 - a bug in a table: log it, Postfix retries later
            log.exception("socketmap: map=%s key=<%s>: internal error", printable(request.name[:64]),
                          printable(request.key[:256]))
            return temp("internal error")

    def answer_later(self, request: SocketmapRequest) -> Any:
        """A Deferred that always fires with a SocketmapAnswer: the lookup in a thread, or why it failed."""
        limit = self.settings.socketmap_lookup_timeout
        d = self.pool.submit(maps.lookup, request.name, request.key, self.directory, self.config)
        d.addTimeout(limit, self.reactor)
        return d.addErrback(self._failed, request, limit)

    def _failed(self, failure: Failure, request: SocketmapRequest, limit: float) -> SocketmapAnswer:
        if failure.check(defer.CancelledError) and not failure.check(defer.TimeoutError):
            return temp("cancelled")           # the connection went away; nobody reads this
        if failure.check(defer.TimeoutError):
            return timeout(f"lookup took longer than {limit:g} s")
        if failure.check(TemporaryFailure):
            return temp(str(failure.value))
        log.error("socketmap: map=%s key=<%s>: internal error: %s", printable(request.name[:64]),
                  printable(request.key[:256]), failure.getTraceback())
        return temp("internal error")

    def reload(self, settings: Any) -> None:
        """New settings (SIGHUP): new table config and directory; the old directory is closed
        after socketmap_lookup_timeout, when no lookup can still be using it."""
        config = maps.TableConfig.from_settings(settings)      # ValueError: the runner keeps the old
        old = self.directory
        if self._own_directory:
            self.directory = self._open_directory(settings)
            self._retired.append(old)
            self.reactor.callLater(self.settings.socketmap_lookup_timeout + 1, self._close_retired, old)
        self.settings, self.config = settings, config

    def _close_retired(self, directory: Any) -> None:
        if directory in self._retired:
            self._retired.remove(directory)
            directory.close()

    def close(self) -> None:
        self.pool.close()
        for directory in self._retired:
            directory.close()
        self._retired.clear()
        if self._own_directory:
            self.directory.close()


def build(settings: Any, reactor: Any) -> SocketmapApp:
    """The builder `owlery.daemon.run` calls."""
    return SocketmapApp(settings, reactor)
