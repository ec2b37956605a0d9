"""Fuzz: the bounded HTTP/1.1 server (owlery/bounded_http.py) fed hostile byte streams in memory.

A BoundedSite with small limits (a 128-byte request line, a 512-byte head, 6 fields, 32 bytes of
content) over a root of four pages ("/" answers at once with Content-Length, "/chunked" in
two writes, "/later" a second later on the clock, anything else 404) is driven through its
channel with a StringTransport and a task.Clock. Inputs are pipelined requests built from
methods, targets, versions and header fields (Content-Length right, short, long, huge, signed,
twice, beside Transfer-Encoding; chunked bodies good and bad; Host none, one, two, empty; Expect,
Connection: close, folded and bare-LF lines, fields past the limits), seeds of
tests/fuzz/corpus/web_http/ under mutations, or any bytes, cut into reads anywhere. After the
input the clock runs past every deadline. Whatever arrives:
- no exception leaves the channel and nothing is logged as an error or with a traceback;
- the output is a sequence of complete HTTP/1.1 (or, to 1.0, 1.0) responses (status line, fields, and the body
  its Content-Length or chunked framing says, nothing cut short), 1xx ones only 100 Continue;
- at most one final response per request line the input holds, and none after a response
  that said Connection: close; the connection is closed after such a response, and once the
  clock has run past the deadlines it is closed in any case;
- while reading, the channel never holds more than a head's worth of unparsed bytes and the read,
  and no request holds more than body_max bytes of content;
- a request whose framing RFC 9112 6.1/6.3 refuses (two lengths, a length beside
  Transfer-Encoding, a coding other than a final chunked, a length that is no number) is
  answered 400 and closed, and the request behind it (/smuggled) is never answered;
- cut into two reads anywhere, a request and the next get the answers the whole stream gets;
- connections opened and closed in any order are counted exactly (in all, per client key, a
  shared client in the total only); one past a cap is answered 503 once and closed, uncounted.
Found here and fixed in s21: tests/fuzz/test_fuzz_findings_s21.py (test_http_*).
"""

from __future__ import annotations

import ipaddress
import logging
import re

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.web import resource, server

from owlery.bounded_http import LINGER, BoundedSite, HttpLimits, RefusedConnection
from owlery.login_limits import client_key
from tests.fuzz.fuzzlib import CUTS, budget, corpus, mutants, split

LIMITS = HttpLimits(request_line_max=128, head_max=512, fields_max=6, body_max=32, request_timeout=5.0,
                    idle_timeout=3.0, connections_max=1000, connections_per_client_max=1000)
SEEDS = corpus("web_http")
PEER = IPv4Address("TCP", "192.0.2.7", 40000)


class _Page(resource.Resource):
    isLeaf = True

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def render(self, request):
        body = request.content.read()
        assert len(body) <= LIMITS.body_max
        if request.path == b"/smuggled":
            return b"SMUGGLED"
        if request.path == b"/chunked":
            request.write(b"one ")
            request.write(b"two %d" % len(body))
            request.finish()
            return server.NOT_DONE_YET
        if request.path == b"/later":
            self.clock.callLater(1, lambda: request.finished or request.channel is None or
                                 (request.write(b"later"), request.finish()))
            return server.NOT_DONE_YET
        if request.path == b"/":
            return b"ok %d" % len(body)
        request.setResponseCode(404)
        return b"no such page"


# --- what the channel logs ------------------------------------------------------------------------------

class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record):
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record.getMessage())


_ERRORS = _Errors()
_TWISTED_ERRORS: list[str] = []
logging.getLogger().addHandler(_ERRORS)
globalLogPublisher.addObserver(lambda e: _TWISTED_ERRORS.append(str(e.get("log_format")))
                               if e.get("log_failure") is not None or e.get("isError") else None)


# --- the response grammar ---------------------------------------------------------------------------------

_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) [\x20-\x7e]*\r\n")     # (1.0: a 1.0 request's answer)
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([\x20-\x7e]*)\r\n")
_CHUNK = re.compile(rb"([0-9a-fA-F]+)\r\n")


def parse_responses(out: bytes) -> list[tuple[int, dict[bytes, list[bytes]], bytes]]:
    """(status, fields, body) of each response; AssertionError unless all are whole and well-formed."""
    responses, i = [], 0
    while i < len(out):
        m = _STATUS.match(out, i)
        assert m, f"not a status line: {out[i:i + 60]!r}"
        status, i = int(m.group(1)), m.end()
        fields: dict[bytes, list[bytes]] = {}
        while out[i:i + 2] != b"\r\n":
            h = _FIELD.match(out, i)
            assert h, f"bad or cut field line: {out[i:i + 80]!r}"
            fields.setdefault(h.group(1).lower(), []).append(h.group(2))
            i = h.end()
        i += 2
        if status < 200:
            assert status == 100 and not fields, f"interim {status} {fields}"
            responses.append((status, fields, b""))
            continue
        if b"content-length" in fields:
            assert len(fields[b"content-length"]) == 1
            length = int(fields[b"content-length"][0])
            if out.startswith(b"HTTP/1.", i) or i == len(out):
                body = b""                    # (a HEAD's answer: the length of the body it has not)
            else:
                body = out[i:i + length]
                assert len(body) == length, f"body cut short: {len(body)} of {length}"
                i += length
        elif fields.get(b"transfer-encoding") == [b"chunked"]:
            chunks = bytearray()
            while True:
                c = _CHUNK.match(out, i)
                assert c, f"bad or cut chunk: {out[i:i + 30]!r}"
                n = int(c.group(1), 16)
                assert out[c.end() + n:c.end() + n + 2] == b"\r\n", "chunk cut short"
                chunks += out[c.end():c.end() + n]
                i = c.end() + n + 2
                if n == 0:
                    break
            body = bytes(chunks)
        elif status in (204, 304):
            body = b""
        else:
            body, i = out[i:], len(out)      # delimited by the close (an answer to HTTP/1.0), so the last
            fields[b"connection"] = fields.get(b"connection", []) + [b"close"]
        responses.append((status, fields, body))
    return responses


def check(data: bytes, cuts) -> list[tuple[int, dict[bytes, list[bytes]], bytes]]:
    clock = task.Clock()
    clock.advance(1_000_000)
    site = BoundedSite(_Page(clock), LIMITS, "fuzz", reactor=clock)
    del _ERRORS.records[:], _TWISTED_ERRORS[:]
    channel = site.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    for chunk in split(data, cuts):
        if transport.disconnecting:
            break
        channel.dataReceived(chunk)
        # (what a refused connection's read held past the refusal stays there, never more)
        assert len(channel._buffer) <= LIMITS.head_max + 2 + len(chunk), f"{len(channel._buffer)} bytes buffered"  # noqa: SLF001
        for request in channel.requests:
            content = getattr(request, "content", None)
            if content is not None:
                assert content.seek(0, 2) <= LIMITS.body_max, "content past body_max held"
    said_close = _said_close(transport.value())
    clock.advance(1.5)                            # /later answers
    for _ in range(4):
        clock.advance(LIMITS.request_timeout + LINGER + 20)
    out = transport.value()
    closed = transport.disconnecting
    channel.connectionLost(None)
    assert not _ERRORS.records and not _TWISTED_ERRORS, f"logged: {_ERRORS.records} {_TWISTED_ERRORS}"
    responses = parse_responses(out)
    finals = [r for r in responses if r[0] >= 200]
    starts = len(re.findall(rb"(?:^|\n)[^\r\n]", data)) if data else 0
    assert len(finals) <= max(starts, 1), f"{len(finals)} responses to {starts} lines"
    for k, (status, fields, body) in enumerate(finals):
        assert status < 500 or status == 503, f"{status}: {body!r}"
        if b"close" in b",".join(fields.get(b"connection", [])).lower():
            assert k == len(finals) - 1, "a response after Connection: close"
    assert not said_close or transport.disconnecting or closed, "said Connection: close and stayed open"
    assert closed, "still open after every deadline"
    assert site.connections.open == 0
    return responses


def _said_close(out: bytes) -> bool:
    return re.search(rb"\r\nConnection: close\r\n", out, re.I) is not None


# --- requests ---------------------------------------------------------------------------------------------

_FIELDS = [b"Content-Length: 0", b"Content-Length: 3", b"Content-Length: 33", b"Content-Length: 99999999999999999999",
           b"Content-Length: " + b"9" * 5000, b"Content-Length: -1", b"Content-Length: +3", b"Content-Length: 3, 3",
           b"Content-Length: 0x3", b"Content-Length: \xc2\xb2", b"Content-Length:", b"Content-Length: 3 ",
           b"content-length: 3", b"Content-Length : 3", b"Transfer-Encoding: chunked", b"Transfer-Encoding: CHUNKED",
           b"Transfer-Encoding: identity", b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked, chunked",
           b"Transfer-Encoding: ", b"Transfer-Encoding: xchunked", b"Host: a.test", b"Host: a.test", b"Host:",
           b"Host: b.test:8080", b"Expect: 100-continue", b"Connection: close", b"Connection: keep-alive",
           b"X-A: b", b" folded", b"\tfolded", b"No-Colon", b"X: \x00", b"\xff: x", b"X-Long: " + b"a" * 600,
           b"Cookie: a=b", b"Te: trailers"]
_BODIES = [b"", b"abc", b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n",
           b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", b"ffffffffffffffffffff\r\n", b"3\r\nabcd\r\n0\r\n\r\n",
           b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n", b"21\r\n" + b"a" * 33 + b"\r\n0\r\n\r\n", b"x" * 40,
           b"3\nabc\n0\n\n", b"-3\r\nabc\r\n0\r\n\r\n"]


@st.composite
def request(draw) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"get", b"G T", b"", b"CONNECT"]))
    target = draw(st.sampled_from([b"/", b"/chunked", b"/later", b"/nosuch", b"*", b"http://a.test/", b"/?a=b",
                                   b"/" + b"a" * 200, b"/%00", b"/\x7f", b"//", b"a.test:443"]))
    version = draw(st.sampled_from([b" HTTP/1.1", b" HTTP/1.1", b" HTTP/1.0", b"", b" HTTP/2.0", b" HTTP/1.1 x",
                                    b" http/1.1", b" HTTP/1.10", b"  HTTP/1.1"]))
    fields = draw(st.lists(st.sampled_from(_FIELDS), max_size=5))
    if draw(st.booleans()):
        fields.insert(0, b"Host: a.test")
    body = draw(st.sampled_from(_BODIES))
    if draw(st.booleans()) and not any(f.lower().startswith((b"content-length", b"transfer-encoding")) for f in fields):
        fields.append(b"Content-Length: %d" % len(body))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    lead = draw(st.sampled_from([b"", b"", b"\r\n", b"\r\n\r\n"]))
    return lead + method + b" " + target + version + eol + b"".join(f + eol for f in fields) + eol + body


@budget(200)
@given(data=st.one_of(st.lists(request(), min_size=1, max_size=4).map(b"".join), mutants(SEEDS),
                      st.binary(max_size=200)),
       cuts=CUTS)
@example(data=b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /chunked HTTP/1.1\r\nHost: a\r\n\r\n", cuts=list(range(80)))
@example(data=b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n21\r\n" + b"a" * 33 + b"\r\n0\r\n\r\n",
         cuts=[])
@example(data=b"GET /later HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", cuts=[5])
def test_any_stream_any_split(data, cuts):
    check(data, cuts)


@budget(100)
@given(fields=st.lists(st.sampled_from(_FIELDS), max_size=4), body=st.sampled_from(_BODIES),
       cut=st.integers(0, 1 << 16))
def test_every_byte_boundary_gives_the_same_answer(fields, body, cut):
    """One request with its fields, then a second: cut into two reads at any byte, the answer is the
    one the whole stream gets (the framing does not depend on where reads end)."""
    data = (b"POST / HTTP/1.1\r\nHost: a.test\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body
            + b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    whole = check(data, [])
    again = check(data, [cut])
    assert [(s, b) for s, _, b in whole] == [(s, b) for s, _, b in again]


# Framings RFC 9112 6.1 and 6.3 say a server must refuse (400, then close): two lengths, a length
# beside Transfer-Encoding, a transfer coding other than a final chunked, a length that is no number
REFUSED_FRAMINGS = [[b"Content-Length: 3", b"Transfer-Encoding: chunked"],
                    [b"Transfer-Encoding: chunked", b"Content-Length: 3"],
                    [b"Transfer-Encoding: identity", b"Content-Length: 3"],
                    [b"Content-Length: 3", b"Transfer-Encoding: identity"],
                    [b"Transfer-Encoding: identity"], [b"Transfer-Encoding: gzip"], [b"Transfer-Encoding: gzip, chunked"],
                    [b"Transfer-Encoding: chunked, identity"], [b"Transfer-Encoding: "], [b"Transfer-Encoding: xchunked"],
                    [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                    [b"Content-Length: 3", b"Content-Length: 4"], [b"Content-Length: 3, 3"], [b"Content-Length: +3"],
                    [b"Content-Length: -1"], [b"Content-Length: 0x3"], [b"Content-Length: \xc2\xb2"],
                    [b"Transfer-Encoding: chunked\r\n Content-Length: 3"]]
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"


@budget(100)
@given(framing=st.sampled_from(REFUSED_FRAMINGS), before=st.sampled_from([b"", b"abc", b"0\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"]),
       method=st.sampled_from([b"POST", b"GET"]), cuts=CUTS)
@example(framing=[b"Transfer-Encoding: identity", b"Content-Length: 3"], before=b"abc", method=b"POST", cuts=[])
def test_a_refused_framing_smuggles_nothing(framing, before, method, cuts):
    """A request whose body's length two parties could read differently is refused, and what follows
    it on the connection is never taken as the next request."""
    data = (method + b" / HTTP/1.1\r\nHost: a.test\r\n" + b"".join(f + b"\r\n" for f in framing) + b"\r\n" + before
            + SMUGGLED)
    responses = check(data, cuts)
    assert [s for s, _, _ in responses if s >= 200] == [400], responses
    assert all(body != b"SMUGGLED" for _, _, body in responses)


CAPPED = HttpLimits(body_max=32, connections_max=4, connections_per_client_max=2,
                    shared_clients=(ipaddress.ip_network("198.51.100.0/24"),))
CLIENTS = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2", "2001:db8:1::1", "::ffff:192.0.2.1",
           "198.51.100.9", "fe80::1%eth0", ""]


@budget(100)
@given(ops=st.lists(st.tuples(st.sampled_from(["open", "close", "send", "tick"]), st.integers(0, 20)), max_size=40))
def test_connection_caps_count_what_is_open(ops):
    """Connections opened, sent on and closed in any order: the site counts exactly those it let in
    (in all and per client key, a shared client in the total only), each one past a cap is answered
    503 (once, when it sends) and closed, and never counted."""
    clock = task.Clock()
    site = BoundedSite(_Page(clock), CAPPED, "fuzz", reactor=clock)
    live: list[tuple[str, object, StringTransport]] = []
    for op, k in ops:
        if op == "open":
            host = CLIENTS[k % len(CLIENTS)]
            addr = IPv4Address("TCP", host, 40000 + k) if host else None
            admitted = sum(1 for _, proto, _ in live if not isinstance(proto, RefusedConnection))
            key = None if not host or host.startswith("198.51.100.") else client_key(host.split("%")[0])
            same = sum(1 for h, proto, _ in live if not isinstance(proto, RefusedConnection) and h and
                       not h.startswith("198.51.100.") and client_key(h.split("%")[0]) == key)
            proto = site.buildProtocol(addr)
            expect_refused = admitted >= CAPPED.connections_max or (key is not None and same >= 2)
            assert isinstance(proto, RefusedConnection) == expect_refused, (host, admitted, same)
            transport = StringTransport(peerAddress=addr)
            proto.makeConnection(transport)
            live.append((host, proto, transport))
        elif op == "close" and live:
            _, proto, transport = live.pop(k % len(live))
            proto.connectionLost(None)
        elif op == "send" and live:
            host, proto, transport = live[k % len(live)]
            if not transport.disconnecting:
                proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                out = transport.value()
                if isinstance(proto, RefusedConnection):
                    assert out.startswith(b"HTTP/1.1 503 ") and out.count(b"HTTP/1.1") == 1 and transport.disconnecting
        else:
            clock.advance(LINGER + 1)
            for entry in [e for e in live if e[2].disconnecting]:
                live.remove(entry)
                entry[1].connectionLost(None)
        admitted = [(h, proto) for h, proto, _ in live if not isinstance(proto, RefusedConnection)]
        assert site.connections.open == len(admitted)
        assert all(n > 0 for n in site.connections.per_client.values())
        assert sum(site.connections.per_client.values()) == sum(
            1 for h, _ in admitted if h and not h.startswith("198.51.100."))


def fuzz_one(data: bytes) -> None:
    """atheris entry: the first byte is the read size (0: all at once), the rest the client's bytes."""
    if not data:
        return
    size = data[0]
    stream = data[1:]
    check(stream, list(range(size, len(stream), size)) if size else [])
