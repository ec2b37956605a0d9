"""Redis on the Twisted reactor, for the greylist's two hot calls: no thread hop per decision.

`ReactorRedis(reactor, url, prefix, timeout)` offers `get_many(keys, now)` and
`write_many(writes)` as Deferreds giving exactly what `RedisStore.get_many` / `write_many`
give: the same Lua scripts (`_GET_MANY`, `_WRITE_MANY`, imported from redis_store), run by
EVALSHA of a SHA-1 computed here; a NOSCRIPT answer (Redis restarted or flushed) is followed
by SCRIPT LOAD and the same EVALSHA, once, in one more round trip; a write batch longer than
`_WRITES_PER_SCRIPT` goes as several scripts in one write.

One connection (TCP or unix socket), opened by the first call and by the first call after it
was lost. Commands are pipelined: each call writes at once (the transport sends what a
reactor turn wrote in one go) and replies are matched to calls in order (FIFO). Every call
ends, in `timeout` seconds at most, with its result or StateUnavailable: connect refused or
timed out, connection lost (every call in flight fails), no reply in time (the connection is
dropped: a late reply would be matched to the wrong call), a reply that is not RESP or breaks
a bound (owlery/state/resp.py). After a failed connect, calls fail at once for
`reconnect_delay` seconds without another attempt, so a Redis that is down costs no connect
per request; there is never more than one connect in flight and no retry loop of its own.

URLs are read by redis-py's own parser (redis:// and unix://, user and password -> AUTH,
db -> SELECT); what this client does not do (rediss:// TLS, other URL options) is refused by
the constructor with ValueError, so the caller keeps the thread path. Messages carry the URL
only through owlery.secrets.redact.
Talks to: Redis (RESP2 over a Twisted transport; the reactor is passed in, never imported).
Tests: tests/state/test_redis_reactor.py (against the machine's Redis and private
redis-servers), tests/state/test_resp.py (the codec).
"""

from __future__ import annotations

import collections
import hashlib
from typing import Any

from redis.connection import UnixDomainSocketConnection, parse_url
from twisted.internet import defer, protocol

from owlery.errors import StateUnavailable
from owlery.secrets import redact
from owlery.state.base import Write
from owlery.state.redis_store import _GET_MANY, _WRITE_MANY, write_many_calls, write_many_results
from owlery.state.resp import ReplyDecoder, RespError, RespProtocolError, encode_command

_GET_SHA = hashlib.sha1(_GET_MANY.encode()).hexdigest()
_WRITE_SHA = hashlib.sha1(_WRITE_MANY.encode()).hexdigest()
_SCRIPTS = {_GET_SHA: _GET_MANY, _WRITE_SHA: _WRITE_MANY}
_URL_KEYS = {"host", "port", "db", "username", "password", "path", "connection_class"}


def _target(url: str) -> tuple[tuple, list[bytes]]:
    """(("tcp", host, port) or ("unix", path), the setup commands AUTH/SELECT) of a Redis URL."""
    shown = redact(url)
    try:
        kw = parse_url(url)
    except ValueError as e:
        raise ValueError(f"bad Redis URL {shown}: {redact(str(e))}") from None
    extra = sorted(set(kw) - _URL_KEYS)
    if extra:
        raise ValueError(f"Redis URL {shown}: option(s) {', '.join(extra)} not supported on the reactor")
    cls = kw.get("connection_class")
    if cls is UnixDomainSocketConnection:
        if not kw.get("path"):
            raise ValueError(f"Redis URL {shown}: no socket path")
        where: tuple = ("unix", kw["path"])
    elif cls is None:
        where = ("tcp", kw.get("host", "localhost"), kw.get("port", 6379))
    else:
        raise ValueError(f"Redis URL {shown}: TLS (rediss://) is not supported on the reactor")
    setup = []
    user, password = kw.get("username") or "", kw.get("password") or ""
    if user or password:                   # as redis-py: AUTH [user] password
        setup.append(encode_command("AUTH", *([user] if user else []), password))
    if kw.get("db"):
        setup.append(encode_command("SELECT", str(int(kw["db"]))))
    return where, setup


class _Call:
    """Commands written together, waiting for their `count` replies (in order)."""

    __slots__ = ("d", "deadline", "count", "replies")

    def __init__(self, d: defer.Deferred, deadline: float, count: int):
        self.d, self.deadline, self.count, self.replies = d, deadline, count, []


class _RedisReactorProtocol(protocol.Protocol):
    """One connection: bytes in, replies out to its owner (while it is still the owner's)."""

    def __init__(self, owner: ReactorRedis):
        self.owner = owner
        self.decoder = ReplyDecoder()

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)   # pipelined small writes must not wait for Nagle
        self.owner._connected(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            replies = self.decoder.feed(data)
        except RespProtocolError as e:
            self.owner._drop(self, f"protocol error: {e}")
            return
        self.owner._replies(self, replies)

    def connectionLost(self, reason: Any = None) -> None:
        self.owner._drop(self, f"connection lost: {reason.getErrorMessage() if reason else '?'}")


class _RedisReactorFactory(protocol.ClientFactory):
    """One connect attempt (a new factory per attempt, so a stale attempt is recognised)."""

    noisy = False     # no "Starting factory" log line per connect

    def __init__(self, owner: ReactorRedis):
        self.owner = owner

    def buildProtocol(self, addr: Any) -> _RedisReactorProtocol:
        p = _RedisReactorProtocol(self.owner)
        p.factory = self
        return p

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.owner._connect_failed(self, reason.getErrorMessage())


class ReactorRedis:
    """The greylist's Redis calls on the reactor thread (see the module docstring)."""

    def __init__(self, reactor: Any, url: str, prefix: str = "owlery:", timeout: float = 2.0,
                 reconnect_delay: float = 1.0):
        self.reactor = reactor
        self.url = redact(url)           # only ever shown in errors and logs
        self.prefix = prefix
        self.timeout = timeout
        self.reconnect_delay = reconnect_delay
        self._where, self._setup = _target(url)
        self._proto: _RedisReactorProtocol | None = None      # the connection, once made
        self._attempt: _RedisReactorFactory | None = None     # the connect in flight
        self._connector: Any = None
        self._unsent: list[bytes] = []   # written while connecting, sent once connected
        self._calls: collections.deque[_Call] = collections.deque()   # in reply order
        self._timer: Any = None          # one timer, for the oldest call (all share `timeout`)
        self._down_until = 0.0
        self._down_reason = ""
        self._closed = False

    # --- the two operations ---------------------------------------------------------------

    def get_many(self, keys: list[str], now: float) -> defer.Deferred:
        """Deferred[list[str | None]]: RedisStore.get_many on the reactor."""
        keys = list(keys)
        if not keys:
            return defer.succeed([])
        p = self.prefix
        cmd = (_GET_SHA, [p + k for k in keys], [repr(float(now))])

        def values(replies: list) -> list:
            out = replies[0]
            if len(out) != len(keys) or not all(v is None or type(v) is str for v in out):
                raise self._out_of_step(f"{str(out)[:40]} for {len(keys)} keys")
            return out
        return self._scripts([cmd]).addCallback(values)

    def write_many(self, writes: list[Write]) -> defer.Deferred:
        """Deferred[list[bool | int | None]]: RedisStore.write_many on the reactor (an unknown
        op fails the Deferred with ValueError before anything is sent, as RedisStore raises)."""
        writes = list(writes)
        if not writes:
            return defer.succeed([])
        try:
            cmds = [(_WRITE_SHA, keys, args) for keys, args in write_many_calls(writes, self.prefix)]
        except ValueError as e:
            return defer.fail(e)

        def results(replies: list) -> list:
            try:
                return write_many_results(writes, replies)
            except ValueError as e:
                raise self._out_of_step(str(e)) from None
        return self._scripts(cmds).addCallback(results)

    def close(self) -> None:
        """Drop the connection, fail every call in flight; later calls fail at once."""
        self._closed = True
        self._fail_all("closed")
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # --- scripts --------------------------------------------------------------------------

    def _scripts(self, cmds: list[tuple[str, list[str], list[str]]]) -> defer.Deferred:
        """EVALSHA of each (sha, keys, args), pipelined; their results, or StateUnavailable.

        As RedisStore._pipelined: the calls Redis answers NOSCRIPT are sent again, once,
        after a SCRIPT LOAD (in the same write: replies come in order, so the load is done
        before they run)."""
        def encode(sha: str, keys: list[str], args: list[str]) -> bytes:
            return encode_command("EVALSHA", sha, str(len(keys)), *keys, *args)

        def check(replies: list) -> Any:
            missing = [i for i, r in enumerate(replies)
                       if isinstance(r, RespError) and r.code == "NOSCRIPT"]
            if not missing:
                return self._results(replies)
            shas = sorted({cmds[i][0] for i in missing})
            retry = [encode_command("SCRIPT", "LOAD", _SCRIPTS[sha]) for sha in shas]
            retry += [encode(*cmds[i]) for i in missing]

            def merge(again: list) -> list:
                for sha, loaded in zip(shas, again):
                    if loaded != sha and not isinstance(loaded, RespError):
                        raise StateUnavailable(f"Redis {self.url}: SCRIPT LOAD gave {loaded!r}, not {sha}")
                for i, r in zip(missing, again[len(shas):]):
                    replies[i] = r
                return self._results(replies)
            return self._send(retry).addCallback(merge)
        return self._send([encode(*c) for c in cmds]).addCallback(check)

    def _results(self, replies: list) -> list:
        for r in replies:
            if isinstance(r, RespError):       # as RedisStore.write_many: the batch fails
                raise StateUnavailable(f"Redis {self.url}: {redact(r.message)}")
            if not isinstance(r, list):        # our scripts return tables
                raise self._out_of_step(f"unexpected reply {str(r)[:40]!r} to a script")
        return replies

    def _out_of_step(self, what: str) -> StateUnavailable:
        """A reply of the wrong shape: the replies after it cannot be trusted to match their
        calls either, so the connection is dropped (run from a reply, on its connection)."""
        self._fail_all(f"out of step: {what}")
        return StateUnavailable(f"Redis {self.url}: out of step: {what}")

    # --- the connection -------------------------------------------------------------------

    def _send(self, commands: list[bytes]) -> defer.Deferred:
        """Write commands (connecting first when needed); Deferred[their replies, in order]."""
        if self._closed:
            return defer.fail(StateUnavailable(f"Redis {self.url}: closed"))
        now = self.reactor.seconds()
        if self._proto is None and self._attempt is None:
            if now < self._down_until:
                return defer.fail(StateUnavailable(self._down_reason))
            self._connect()
        d: defer.Deferred = defer.Deferred()
        self._calls.append(_Call(d, now + self.timeout, len(commands)))
        data = commands[0] if len(commands) == 1 else b"".join(commands)
        if self._proto is not None:
            self._proto.transport.write(data)
        else:
            self._unsent.append(data)
        if self._timer is None:
            self._timer = self.reactor.callLater(self.timeout, self._check_timeout)
        return d

    def _connect(self) -> None:
        self._attempt = factory = _RedisReactorFactory(self)
        if self._where[0] == "unix":
            self._connector = self.reactor.connectUNIX(self._where[1], factory, timeout=self.timeout)
        else:
            self._connector = self.reactor.connectTCP(self._where[1], self._where[2], factory,
                                                      timeout=self.timeout)

    def _connected(self, proto: _RedisReactorProtocol) -> None:
        if proto.factory is not self._attempt:
            proto.transport.abortConnection()    # an attempt given up meanwhile
            return
        self._attempt, self._connector, self._proto = None, None, proto
        unsent, self._unsent = self._unsent, []
        if self._setup:
            # AUTH/SELECT go first; their replies are checked before any call's.
            first = self._calls[0].deadline if self._calls else self.reactor.seconds() + self.timeout
            d: defer.Deferred = defer.Deferred()
            self._calls.appendleft(_Call(d, first, len(self._setup)))
            d.addCallbacks(self._setup_done, lambda _: None, callbackArgs=(proto,))  # failed: so are all
            unsent = self._setup + unsent
        if unsent:
            proto.transport.write(b"".join(unsent))

    def _setup_done(self, replies: list, proto: _RedisReactorProtocol) -> None:
        for r in replies:
            if isinstance(r, RespError):
                # Redis's AUTH error never repeats the password; redact anyway
                self._drop(proto, f"connection setup (AUTH/SELECT) refused: {redact(r.message)}")
                return

    def _connect_failed(self, factory: _RedisReactorFactory, why: str) -> None:
        if factory is not self._attempt:
            return
        self._fail_all(f"cannot connect: {redact(why)}", down=True)

    def _replies(self, proto: _RedisReactorProtocol, replies: list) -> None:
        calls = self._calls
        for r in replies:
            if proto is not self._proto:
                return                   # a callback closed or dropped the connection
            if not calls:
                self._drop(proto, "a reply nobody asked for")
                return
            call = calls[0]
            call.replies.append(r)
            if len(call.replies) == call.count:
                calls.popleft()
                if not call.d.called:    # cancelled (addTimeout): its late reply is dropped
                    call.d.callback(call.replies)

    def _check_timeout(self) -> None:
        """The oldest call waited `timeout`: drop everything. Else wait for it (replies come in
        order, so the oldest call is always the first to time out)."""
        self._timer = None
        if not self._calls:
            return
        now = self.reactor.seconds()
        wait = self._calls[0].deadline - now
        if wait <= 1e-6:
            if self._proto is None:        # still connecting: as a failed connect (no retry at once)
                self._fail_all(f"cannot connect: no answer within {self.timeout:g} s", down=True)
            else:
                self._fail_all(f"no reply within {self.timeout:g} s")
        else:
            self._timer = self.reactor.callLater(wait, self._check_timeout)

    def _drop(self, proto: _RedisReactorProtocol, why: str) -> None:
        if proto is self._proto:
            self._fail_all(why)

    def _fail_all(self, why: str, down: bool = False) -> None:
        """Forget the connection (or the connect in flight) and fail every call waiting on it;
        `down`: the connect failed, so calls fail at once for `reconnect_delay` seconds."""
        error = f"Redis {self.url}: {why}"
        if down:        # before the errbacks: a caller that retries from one must not reconnect
            self._down_until = self.reactor.seconds() + self.reconnect_delay
            self._down_reason = error
        proto, connector = self._proto, self._connector
        self._proto = self._attempt = self._connector = None
        self._unsent = []
        if proto is not None:
            proto.transport.abortConnection()
        if connector is not None and connector.state == "connecting":
            connector.stopConnecting()    # its clientConnectionFailed is then ignored (a stale attempt)
        calls, self._calls = self._calls, collections.deque()
        for call in calls:
            if not call.d.called:
                call.d.errback(StateUnavailable(error))
