"""An HTTP/1.1 server bounded against hostile clients: the Twisted Web site of every /metrics and of `owlery web`.

`BoundedSite(root, limits, name)` is a twisted.web Site whose connections keep to `HttpLimits`:
- a request line of at most `request_line_max` bytes (else 414, RFC 9112 3), a header block of
  at most `head_max` bytes and `fields_max` fields (else 431, RFC 6585 5); Twisted dropped a
  line over 16 kB without a word and answered a bare 400 to the rest;
- content of at most `body_max` bytes (else 413): a declared Content-Length past it is refused
  before the body arrives, chunked data once it grows past it, and nothing is spooled (Twisted
  wrote a declared 100 GB to a temporary file, unanswered);
- a Content-Length of ASCII digits (RFC 9110 8.6), once, never beside Transfer-Encoding (RFC
  9112 6.1, 6.3), a Transfer-Encoding of chunked alone and only in HTTP/1.1 (6.1, 6.3: Twisted
  took "identity", and chunked from HTTP/1.0), and one Host field (none only in HTTP/1.0,
  RFC 9112 3.2), else 400.
  Thousands of digits are too large (413): Twisted's int() raised ValueError past 4300 digits
  out of its parser, which dropped the connection with a traceback;
- one whole request within `request_timeout`: the first from the connection's opening, later
  ones from their first byte; between requests `idle_timeout`. Twisted's limit is an idle one
  that every byte restarts, so a byte a minute held a connection for ever. A client out of
  time is closed unanswered (as Apache's mod_reqtimeout and nginx do);
- at most `connections_max` connections, and `connections_per_client_max` from one client
  (owlery.login_limits.client_key: the IPv4 address, the IPv6 /64), except clients in
  `shared_clients` (a reverse proxy speaks for everybody: they count in the total only); one
  more is answered 503 to what it sends first, and closed.
Every refusal is a whole response (Content-Length, Connection: close), written before the
connection is half-closed and the rest of what the client sends is read and dropped for
`LINGER` seconds (closing with unread data resets the connection, and the client may lose the
answer); it is logged as one line "NAME: refused: rip=ADDR: STATUS why", connections past a cap
once a minute per cap with the count since. No access log, and no line names a path (a release
link's path is a token). The core of it (limits, Content-Length, refusals, counts) does no I/O.
Talks to: the reactor it is given. Tests: tests/core/test_http_hostile_s21.py,
tests/web/test_service.py, tests/fuzz/test_web_http.py, tests/fuzz/test_bounded_http.py,
tests/fuzz/test_fuzz_findings_s21.py
"""

from __future__ import annotations

import collections
import ipaddress
import logging
from typing import Any

from twisted.internet import protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.web import http, server

from owlery.login_limits import client_key
from owlery.record import Record

log = logging.getLogger("owlery.http")

LINGER = 2.0                   # seconds a refused connection's further bytes are read and dropped
REFUSAL_LOG_INTERVAL = 60.0    # connections past a cap: one log line per this many seconds per cap
SERVER = b"Owlery"             # the Server field (not Twisted's name and version)

REASONS = {400: "Bad Request", 413: "Content Too Large", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 503: "Service Unavailable"}
TEXTS = {400: "Bad request.", 413: "Request body too large.", 414: "Request line too long.",
         431: "Request header fields too large.", 503: "Too many connections, try again later."}


# A refusal is text that nothing may run, frame or sniff as something else (as every page of the web UI)
_INERT = (b"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
          b"X-Content-Type-Options: nosniff\r\n")


class HttpLimits(Record, frozen=True):
    """What one connection of a BoundedSite may send and hold (bytes, seconds, connections)."""

    request_line_max: int = 8192         # RFC 9112 3: at least 8000 octets SHOULD be taken
    head_max: int = 16384                # request line and header fields, with their line ends
    fields_max: int = 100                # as Apache's LimitRequestFields
    body_max: int = 0
    request_timeout: float = 30.0
    idle_timeout: float = 15.0
    connections_max: int = 1000
    connections_per_client_max: int = 32
    shared_clients: tuple[Any, ...] = ()     # ip_network values counted in the total only


def refusal(status: int, retry_after: int | None = None) -> bytes:
    """The whole response refusing a request (or a connection) with `status`."""
    body = TEXTS[status].encode() + b"\n"
    retry = b"Retry-After: %d\r\n" % retry_after if retry_after is not None else b""
    return (b"HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Type: text/plain; charset=utf-8\r\n%s"
            b"Content-Length: %d\r\n%sConnection: close\r\n\r\n%s"
            % (status, REASONS[status].encode(), SERVER, _INERT, len(body), retry, body))


def declared_length(value: bytes, body_max: int) -> int | None:
    """The length a Content-Length value declares, as at most `body_max` + 1 (a longer number
    is too large without being read); None for a value that is no run of ASCII digits."""
    if not value or not value.isdigit():        # bytes.isdigit: 0-9 only, no sign, no blank
        return None
    digits = value.lstrip(b"0") or b"0"
    if len(digits) > len(str(body_max)):
        return body_max + 1
    return min(int(digits), body_max + 1)


class ConnectionCounts:
    """Open connections of one site, in all and per client key. Reactor thread only."""

    def __init__(self) -> None:
        self.open = 0
        self.per_client: collections.Counter[str] = collections.Counter()

    def admit(self, key: str | None, limits: HttpLimits) -> str | None:
        """Count a new connection (key None: counted in the total only) and return None, or
        name the cap that refuses it ("total" or "client")."""
        if self.open >= limits.connections_max:
            return "total"
        if key is not None and self.per_client[key] >= limits.connections_per_client_max:
            return "client"
        self.open += 1
        if key is not None:
            self.per_client[key] += 1
        return None

    def release(self, key: str | None) -> None:
        self.open -= 1
        if key is not None:
            self.per_client[key] -= 1
            if self.per_client[key] <= 0:
                del self.per_client[key]


def _peer_host(transport: Any) -> str:
    return str(getattr(transport.getPeer(), "host", "?")) if transport is not None else "?"


def _close_after_refusal(transport: Any, call_later: Any) -> Any:
    """Half-close a TCP connection once the refusal is written and abort it after LINGER (the
    client's further bytes are dropped meanwhile); close any other at once (a TLS layer must
    send its close_notify first). Returns the pending abort, or None."""
    tcp = transport
    while type(tcp) is ProtocolWrapper:      # a counting wrapper (owlery.daemon) passes bytes as they are
        tcp = tcp.transport
    if hasattr(type(tcp), "loseWriteConnection"):
        tcp.loseWriteConnection()
        return call_later(LINGER, tcp.abortConnection)
    transport.loseConnection()
    return None


class BoundedRequest(server.Request):
    """A request whose body may not pass the site's body_max: 413 at once, nothing spooled."""

    _body_bytes = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Users parse bodies themselves (web.http.parse_form): Twisted's own parse of a POST
        # raised out of the channel on a Content-Type holding \x85 or \x0b (the email package's
        # header check), and the connection was dropped with a traceback logged.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.channel.limits.body_max:
            self.channel.refuse(413, f"body of {length} bytes or more declared, over "
                                     f"{self.channel.limits.body_max}")
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > self.channel.limits.body_max:
            self.channel.refuse(413, f"body over {self.channel.limits.body_max} bytes")
        if not self.channel.refused:
            super().handleContentChunk(data)

    def process(self) -> None:
        if self.channel is not None and not self.channel.refused:
            super().process()

    def render(self, resrc: Any) -> None:
        self.setHeader(b"server", SERVER)
        super().render(resrc)


class BoundedChannel(http.HTTPChannel):
    """One HTTP/1.1 connection of a BoundedSite (see the module docstring for its limits)."""

    limits = HttpLimits()
    refused = False
    slot: str | None = None            # what the site counted this connection under
    _deadline: Any = None
    _linger: Any = None
    _awaiting_line = True              # the next line is a request line
    _head_bytes = 0
    _fields = 0

    def connectionMade(self) -> None:
        self.limits = self.site.limits
        self.MAX_LENGTH = self.limits.request_line_max
        self.totalHeadersSize = self.maxHeaders = 1 << 30      # ours (below) come first, with 431
        super().connectionMade()
        self._arm()                    # the first request: from the connection's opening

    def dataReceived(self, data: bytes) -> None:
        if self.refused:
            return
        if self._deadline is None and not self._handlingRequest:
            self._arm()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self.refused:
            return
        self._head_bytes += len(line) + 2
        if self._awaiting_line:
            if line:
                self._awaiting_line = False
                self.MAX_LENGTH = self.limits.head_max
        elif line and line[:1] not in b" \t":
            self._fields += 1
            if self._fields > self.limits.fields_max:
                self.refuse(431, f"more than {self.limits.fields_max} header fields")
                return
        if self._head_bytes > self.limits.head_max:
            self.refuse(431, f"header block over {self.limits.head_max} bytes")
            return
        super().lineReceived(line)

    def close_if_idle(self) -> bool:
        """The drain at SIGTERM (owlery.daemon): a connection between requests (none being read
        or answered, no byte of the next one come) is closed now, not held until its idle
        limit; a server may close an idle persistent connection (RFC 9112 9.6) and a browser
        sends its next request on a new one."""
        if self.refused or self.requests or self._handlingRequest or self._dataBuffer or self._buffer \
                or not self._awaiting_line or self._head_bytes:
            return False
        self.transport.loseConnection()
        return True

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._awaiting_line:
            self.refuse(414, f"request line over {self.limits.request_line_max} bytes")
        else:
            self.refuse(431, f"header block over {self.limits.head_max} bytes")

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        if header == b"Content-Length":
            length = declared_length(data, self.limits.body_max)
            if length is None:
                self.refuse(400, "Content-Length not a number")
                return False
            data = b"%d" % length
        elif header == b"Transfer-Encoding" and self._version != b"HTTP/1.1":
            # RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (1.0
            # has no chunked coding; a 1.0 proxy before us framed it by Content-Length or by
            # the close). Twisted decoded it as chunked
            self.refuse(400, "Transfer-Encoding in an HTTP/1.0 request")
            return False
        elif header == b"Transfer-Encoding" and data.lower() != b"chunked":
            # RFC 9112 6.3: a request whose last transfer coding is not chunked has no length a
            # reader can trust: 400 and close. Twisted took "identity" as no coding at all, so
            # "identity" beside a Content-Length framed the body by the length here and by
            # nothing (the next request) at a proxy that knows no identity: a smuggled request
            self.refuse(400, "Transfer-Encoding other than chunked")
            return False
        return super()._maybeChooseTransferDecoder(header, data)

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's answer to everything else it cannot parse (a bad request line or field,
        # two lengths, a length beside chunked, bad chunks): a bare status line
        self.refuse(400, "malformed request")

    def allHeadersReceived(self) -> None:
        # RFC 9112 3.2: an HTTP/1.1 request without Host, or any with two, MUST get 400 (two
        # parties reading different hosts out of one request is how caches get poisoned)
        hosts = self.requests[-1].requestHeaders.getRawHeaders(b"host") or []
        if len(hosts) > 1 or (not hosts and self._version == b"HTTP/1.1"):
            self.refuse(400, "no Host field" if not hosts else "more than one Host field")
        super().allHeadersReceived()        # also when refused: the request stays whole, unprocessed

    def _send100Continue(self) -> None:
        if not self.refused:
            super()._send100Continue()

    def allContentReceived(self) -> None:
        self._disarm()
        self._awaiting_line, self._head_bytes, self._fields = True, 0, 0
        self.MAX_LENGTH = self.limits.request_line_max
        super().allContentReceived()

    def refuse(self, status: int, why: str) -> None:
        """Answer `status` and close (once); the request being read is never processed."""
        if self.refused:
            return
        self.refused = True
        self._disarm()
        self.setTimeout(None)
        log.info("%s: refused: rip=%s: %d %s", self.site.name, _peer_host(self.transport), status, why)
        self._networkProducer.unregisterProducer()
        self.transport.write(refusal(status))
        self._linger = _close_after_refusal(self.transport, self.callLater)

    def connectionLost(self, reason: Any) -> None:
        self._disarm()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)
        self.site.released(self)

    def _arm(self) -> None:
        self._deadline = self.callLater(self.limits.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        log.info("%s: closing a connection from %s: no whole request within %g s",
                 self.site.name, _peer_host(self.transport), self.limits.request_timeout)
        self.refused = True
        self.setTimeout(None)          # one way out: the idle limit must not close it a second time
        self.loseConnection()

    def timeoutConnection(self) -> None:
        # Twisted's idle limit closes the connection: our deadline must not close it again (a
        # second unregisterProducer raised out of the timer on transports that check it)
        self._disarm()
        super().timeoutConnection()


class RefusedConnection(protocol.Protocol):
    """A connection past a cap of its site: 503 once the client has sent something (under TLS
    nothing can be written before the handshake, which ends with the client's first data),
    then closed; closed unanswered when it sends nothing within LINGER."""

    def __init__(self, call_later: Any):
        self.call_later = call_later
        self._answered = False
        self._timer: Any = None

    def connectionMade(self) -> None:
        self._timer = self.call_later(LINGER, self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        if self._answered:
            return
        self._answered = True
        self._timer.cancel()
        self.transport.write(refusal(503, retry_after=10))
        self._timer = _close_after_refusal(self.transport, self.call_later)

    def connectionLost(self, reason: Any = None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()


class BoundedSite(server.Site):
    """A Twisted Web site of BoundedChannel connections; `name` starts its log lines.
    `update(limits)` changes the limits of the connections opened from then on."""

    protocol = BoundedChannel
    requestFactory = BoundedRequest
    displayTracebacks = False
    noisy = False

    def __init__(self, root: Any, limits: HttpLimits, name: str, *, reactor: Any = None):
        super().__init__(root, reactor=reactor, parsePOSTFormSubmission=False)
        self.name = name
        self.connections = ConnectionCounts()
        self._refusals: dict[str, tuple[float, int]] = {}     # cap -> (last logged, refused since)
        self.update(limits)

    def update(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.timeOut = limits.idle_timeout

    def log(self, request: Any) -> None:
        """No access log: a path may be a bearer token; each refusal logs its own line."""

    def buildProtocol(self, addr: Any) -> Any:
        host = str(getattr(addr, "host", "") or "")
        key = self._client_key(host)
        cap = self.connections.admit(key, self.limits)
        if cap is not None:
            self._log_refusal(cap, host)
            return RefusedConnection(self.reactor.callLater)
        channel = super().buildProtocol(addr)
        channel.slot = key
        return channel

    def released(self, channel: BoundedChannel) -> None:
        self.connections.release(channel.slot)

    def _client_key(self, host: str) -> str | None:
        """What the per-client cap counts `host` under; None for a shared client (a proxy) or
        a connection without an address (a unix socket: only local programs reach it)."""
        if not host:
            return None
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if any(ip in net for net in self.limits.shared_clients):
            return None
        return client_key(host)

    def _log_refusal(self, cap: str, host: str) -> None:
        now = self.reactor.seconds()
        last, count = self._refusals.get(cap, (None, 0))
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[cap] = (last, count + 1)
            return
        self._refusals[cap] = (now, 0)
        limit = (f"{self.limits.connections_max} connections" if cap == "total"
                 else f"{self.limits.connections_per_client_max} connections from one client")
        log.warning("%s: refused: rip=%s: 503 %s open%s", self.name, host, limit,
                    f" ({count} more refused since the last such line)" if count else "")
