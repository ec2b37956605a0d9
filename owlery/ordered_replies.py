"""One connection's pipelined requests, answered one at a time in the order they came.

The policy daemon and the socketmap server speak line protocols where the client may send
several requests before reading a reply, and each reply must go back in request order.
`OrderedReplies` holds the requests not answered yet (at most `limit`: a client that runs
further ahead is cut off), asks `answer(request)` for each in turn, and sends the answers:
- bytes: the reply, ready now (e.g. from a cache); the replies ready in one pass go out in
  one `send`, always before a slow request starts;
- `Final(bytes)`: the last reply: send it, then `drop(None)` (e.g. broken framing);
- a Deferred (anything with `addCallbacks`) that fires with the reply bytes: nothing else is
  answered until it fires; a failure goes to `failed(failure, request)` (the adapter logs
  and closes), and so does an exception raised by `answer` itself, after the replies
  already ready were sent.
`drained()` is called after each pass that leaves nothing queued (the adapter restarts its
idle timer). Before `drop` or `failed` is called the queue is stopped: nothing more is
answered or sent. Twisted-free (Deferreds are duck-typed); the sockets are the adapter's.
`direct_transport`, `send_now`, `peer_text` and `close_if_idle` (the drain) are the socket shortcuts both adapters use.
Talks to: nothing. Tests: tests/core/test_ordered_replies.py
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Final:
    """A reply after which the connection is closed."""

    data: bytes


class OrderedReplies:
    """The requests of one connection not answered yet, answered in order (see module doc)."""

    def __init__(self, limit: int, answer: Callable[[Any], Any], send: Callable[[bytes], None],
                 drop: Callable[[str | None], None], failed: Callable[[Any, Any], None],
                 drained: Callable[[], None] = lambda: None):
        self.limit = limit
        self._answer, self._send, self._drop, self._failed, self._drained = answer, send, drop, failed, drained
        self.queue: collections.deque = collections.deque()
        self.busy: Any = None          # the Deferred of the request being answered
        self.closed = False
        self._pumping = False

    def add(self, requests: Iterable[Any]) -> bool:
        """Queue requests; past `limit` waiting, drop the connection and return False."""
        if self.closed:
            return False
        self.queue.extend(requests)
        if len(self.queue) > self.limit:
            self.stop()
            self._drop(f"more than {self.limit} requests queued")
            return False
        return True

    def pump(self) -> None:
        """Answer queued requests while answers come at once; stop at the first slow one."""
        if self._pumping:
            return                      # an answer that fired during the pass: the loop goes on
        self._pumping = True
        out: list[bytes] = []
        try:
            while self.busy is None and self.queue and not self.closed:
                request = self.queue.popleft()
                try:
                    result = self._answer(request)
                except Exception as e:  # noqa: BLE001 - the adapter logs it with the request
                    self._flush(out)
                    self.stop()
                    self._failed(e, request)
                    return
                if isinstance(result, bytes):
                    out.append(result)
                elif isinstance(result, Final):
                    out.append(result.data)
                    self._flush(out)
                    self.stop()
                    self._drop(None)
                else:
                    self._flush(out)    # first: the request below may be answered at once
                    self.busy = result
                    result.addCallbacks(self._answered, self._failure, errbackArgs=(request,))
            self._flush(out)
        finally:
            self._pumping = False
        if not self.queue and not self.closed:
            self._drained()

    def _flush(self, out: list[bytes]) -> None:
        if out and not self.closed:
            self._send(b"".join(out))
        out.clear()

    def _answered(self, data: bytes) -> None:
        self.busy = None
        if self.closed:
            return
        self._send(data)
        self.pump()

    def _failure(self, failure: Any, request: Any) -> None:
        self.busy = None
        if not self.closed:
            self.stop()
            self._failed(failure, request)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being answered: every request taken has its reply sent."""
        return self.busy is None and not self.queue

    def stop(self) -> None:
        """Answer nothing more (the connection is closing); a running answer may still fire."""
        self.closed = True
        self.queue.clear()

    def cancel(self) -> None:
        """The connection is gone: stop, and cancel the answer still running."""
        self.stop()
        if self.busy is not None:
            busy, self.busy = self.busy, None
            busy.cancel()


def close_if_idle(replies: OrderedReplies, half_read: bool, transport: Any) -> bool:
    """The drain at SIGTERM (owlery.daemon), for both adapters: close the connection now when
    every request read is answered and none is `half_read`; True when it was closed."""
    if not replies.idle or half_read:
        return False
    replies.stop()
    transport.loseConnection()
    return True


def direct_transport(transport: Any) -> Any:
    """The socket transport under `transport` (and the runner's tracking wrapper), or None
    when it is something else (a test's StringTransport, TLS): then `send_now` writes normally."""
    from twisted.internet.abstract import FileDescriptor   # loaded already: the caller is an adapter
    raw = getattr(transport, "transport", transport)
    # send_now reads FileDescriptor's private write state: a Twisted without it (renamed in a
    # release) gets the normal write path, not an AttributeError at every reply.
    if isinstance(raw, FileDescriptor) and all(hasattr(raw, name) for name in _WRITE_STATE):
        return raw
    return None


_WRITE_STATE = ("socket", "_writeDisconnected", "_tempDataBuffer", "offset", "dataBuffer")


def send_now(raw: Any, transport: Any, data: bytes) -> None:
    """Send now when nothing is waiting to go out: one send() instead of Twisted's register
    for writing, send on the next loop turn, unregister (the client waits for each reply
    before its next request, so that turn is latency on every request). Anything not sent
    at once, or any error, goes the normal way through `transport.write`."""
    if (raw is not None and raw.connected and not raw.disconnecting and not raw._writeDisconnected
            and not raw._tempDataBuffer and raw.offset >= len(raw.dataBuffer)):
        try:
            sent = raw.socket.send(data)
        except OSError:
            sent = 0        # a full buffer, or an error Twisted's own write meets and reports
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def peer_text(transport: Any) -> str:
    """host:port of a TCP peer, the socket path or "unix" otherwise; only for log lines."""
    try:
        peer = transport.getPeer()
    except Exception:  # noqa: BLE001 - some transports cannot say
        return "?"
    host = getattr(peer, "host", None)
    return f"{host}:{peer.port}" if host else str(getattr(peer, "name", None) or "unix")
