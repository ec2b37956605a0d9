"""Owlery's HTTP servers against hostile clients: /metrics of a Twisted daemon and of the milter, and `owlery web`.

Real child processes on loopback: `owlery socketmap` (its /metrics is the site every Twisted
daemon serves, owlery.metrics.http_site), `owlery milter` (its /metrics came from a thread per
connection, owlery.metrics.serve_in_thread) and `owlery web` (the quarantine UI), all three on
owlery.bounded_http. The clients are tests/harness/raw_client.py's. What each must survive:
- a client that sends nothing, and one that drips a request a byte at a time (each byte
  restarted Twisted's idle limit; the milter's thread waited for ever): closed unanswered once
  the whole-request time is up;
- a Content-Length of thousands of digits (ValueError out of Twisted's parser: no answer and a
  traceback), one that is no plain number, two of them, one beside chunked: 413 or 400;
- a request line, one field or a header block past its bound: 414 or 431, not a dropped
  connection or a request served;
- connections past the per-client and the total cap: 503 and closed; the others still served;
- content on a GET: /metrics reads none (413), the web UI reads it as framed (the next request
  on the connection is the next one), a huge one is refused before it arrives;
- a good request followed by garbage: the good one answered, then 400 or 414, then closed.
Every refusal is a whole response with Connection: close, and no log line names the path.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from owlery import metrics
from tests.harness import raw_client
from tests.harness.owlery_milter import MilterProcess
from tests.harness.procs import free_port, wait_until
from tests.socketmap.daemon import SocketmapDaemon
from tests.web.server import WebServer, token_key_file

MARGIN = 4.0            # seconds past a server's deadline before a test calls it missed
SECRET = "s21-secret-token-in-the-path"

# /metrics' fixed limits, and the web's as its settings below say
METRICS_TIMEOUT, METRICS_PER_CLIENT, METRICS_TOTAL = (metrics.HTTP_REQUEST_TIMEOUT, metrics.HTTP_CONNECTIONS_PER_CLIENT,
                                                      metrics.HTTP_CONNECTIONS_MAX)
WEB_TIMEOUT, WEB_PER_CLIENT, WEB_TOTAL = 2.0, 3, 7


@dataclass
class Target:
    name: str
    port: int
    path: str                    # a page it serves with 200
    request_timeout: float
    per_client: int
    total: int
    reads_get_content: bool      # a small body on a GET is read (web) or refused (metrics)
    log: object


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    work = tmp_path_factory.mktemp("http_s21")
    started = []
    try:
        smap_port = free_port()
        (work / "mailboxes").write_text("alice@example.org\n")
        (work / "aliases").write_text("")
        smap = SocketmapDaemon(work / "socketmap", f'files_mailboxes = "{work}/mailboxes"\n'
                               f'files_aliases = "{work}/aliases"\n'
                               f'socketmap_metrics_listen = "tcp:127.0.0.1:{smap_port}"\n').start()
        started.append(smap)
        milter_port = free_port()
        milter = MilterProcess(work / "milter", 'milter_authserv_id = "mx.owlery.test"\nmilter_spf_source = "none"\n'
                               'milter_inbound_stages = ["authres"]\nmilter_internal_networks = []\n'
                               f'quarantine_directory = "{work}/quarantine"\n'
                               f'milter_metrics_listen = "tcp:127.0.0.1:{milter_port}"\n').start()
        started.append(milter)
        (work / "web").mkdir()
        web = WebServer(work / "web", f'quarantine_directory = "{work / "q"}"\n'
                        f'quarantine_token_key_file = "{token_key_file(work)}"\n'
                        f"web_request_timeout = {WEB_TIMEOUT:g}\nweb_trusted_proxies = []\n"
                        f"web_max_connections = {WEB_TOTAL}\nweb_max_connections_per_client = {WEB_PER_CLIENT}\n")
        web.start()
        started.append(web)
        for port in (smap_port, milter_port):
            wait_until(lambda port=port: raw_client_get(port, "/metrics"), 30, f"/metrics on {port}")
        yield {
            "socketmap": Target("socketmap", smap_port, "/metrics", METRICS_TIMEOUT, METRICS_PER_CLIENT,
                                METRICS_TOTAL, False, smap.log),
            "milter": Target("milter", milter_port, "/metrics", METRICS_TIMEOUT, METRICS_PER_CLIENT,
                             METRICS_TOTAL, False, milter.log),
            "web": Target("web", web.port, "/login", WEB_TIMEOUT, WEB_PER_CLIENT, WEB_TOTAL, True, web.log),
        }
    finally:
        for server in started:
            server.stop()


@pytest.fixture(params=["socketmap", "milter", "web"])
def target(request, targets):
    return targets[request.param]


# -- a raw HTTP exchange --------------------------------------------------------------------------

def raw_client_get(port: int, path: str, source: str | None = None) -> int | None:
    """The status of one GET with Connection: close (None: no answer)."""
    sock = raw_client.connect(port, source=source, timeout=5)
    try:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        got = raw_client.closed_within(sock, 10)
    finally:
        sock.close()
    found = statuses(got or b"")
    return found[0] if found else None


def statuses(data: bytes) -> list[int]:
    """The status codes of the responses in `data`, in order."""
    return [int(code) for code in re.findall(rb"(?m)^HTTP/1\.[01] (\d{3}) ", data)]


def exchange(port: int, data: bytes, timeout: float = 10.0, source: str | None = None) -> bytes | None:
    """Send `data` (as much of it as the server takes) from `source` and read until the server
    closes: everything it answered, or None when it did not close within `timeout`."""
    sock = raw_client.connect(port, source=source, timeout=timeout)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return raw_client.closed_within(sock, timeout)
    finally:
        sock.close()


def refused(got: bytes | None, status: int) -> None:
    """`got` is one whole refusal of `status`: status line, Content-Length, Connection: close."""
    assert got is not None, "no answer, and the connection is still open"
    assert statuses(got) == [status], got[:300]
    head, _, body = got.partition(b"\r\n\r\n")
    assert re.search(rb"(?mi)^connection: close\r?$", head), head
    length = re.search(rb"(?mi)^content-length: (\d+)\r?$", head)
    assert length and int(length.group(1)) == len(body), got[:300]


def read_response(sock: socket.socket, timeout: float = 10.0) -> int:
    """Read one response with a Content-Length off a kept-alive connection; its status."""
    deadline, got = time.monotonic() + timeout, b""
    while True:
        head, sep, rest = got.partition(b"\r\n\r\n")
        if sep:
            length = re.search(rb"(?mi)^content-length: (\d+)\r?$", head)
            if length and len(rest) >= int(length.group(1)):
                return statuses(head)[0]
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {got[:300]!r}"
        got += chunk


def get(target: Target, extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (target.path.encode(), extra)


# -- slow clients ---------------------------------------------------------------------------------

def test_silent_and_dripping_clients_are_cut_off_at_the_request_deadline(target):
    # One client sends nothing, one drips a request a byte every 0.1 s: each byte restarted
    # Twisted's idle limit (60 s), the milter's threads had no limit at all.
    silent = raw_client.connect(target.port)
    dripping = raw_client.connect(target.port)
    started = time.monotonic()
    try:
        got = raw_client.drip(dripping, get(target, b"X-Pad: " + b"a" * 400 + b"\r\n"), 0.1,
                              target.request_timeout + MARGIN)
        assert got == b"", f"the dripping client was not cut off (answered: {got!r})"
        assert time.monotonic() - started < target.request_timeout + MARGIN
        left = max(target.request_timeout + MARGIN - (time.monotonic() - started), 0.5)
        assert raw_client.closed_within(silent, left) == b"", "the silent client was not cut off"
    finally:
        silent.close()
        dripping.close()
    # ... and the server still answers at once
    assert raw_client_get(target.port, target.path) == 200


# -- Content-Length -------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "status"), [
    (b"Content-Length: " + b"9" * 5000 + b"\r\n", 413),      # past int()'s 4300 digits: ValueError
    (b"Content-Length: 1" + b"0" * 4300 + b"\r\n", 413),
    (b"Content-Length: 999999999999\r\n", 413),               # answered before any of it arrives
    (b"Content-Length: -1\r\n", 400),
    (b"Content-Length: +5\r\n", 400),
    (b"Content-Length: 0x10\r\n", 400),
    (b"Content-Length: 5 5\r\n", 400),
    (b"Content-Length: \xef\xbc\x95\r\n", 400),                # a full-width digit
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),     # RFC 9112 6.3: unrecoverable
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),   # RFC 9112 6.1: smuggling
    (b"Host: y\r\n", 400),                                       # RFC 9112 3.2: two Host fields
])
def test_a_content_length_that_cannot_be_read_is_refused(target, fields, status):
    refused(exchange(target.port, get(target, fields)), status)


# -- the request head -----------------------------------------------------------------------------

@pytest.mark.parametrize(("request_head", "status"), [
    (b"GET /?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),          # RFC 9112 3
    (b"GET /?" + b"a" * 20_000, 414),                                             # no end in sight
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),     # RFC 6585 5
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Many: a\r\n" * 200 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X-Wide: " + b"a" * 900 + b"\r\n") * 30 + b"\r\n", 431),   # 27 kB in all
])
def test_a_request_head_past_its_bounds_is_refused(target, request_head, status):
    request_head = request_head.replace(b"GET /", b"GET /" + SECRET.encode() + b"/", 1)
    refused(exchange(target.port, request_head), status)
    assert SECRET not in target.log()


# -- connections ----------------------------------------------------------------------------------

def test_connections_past_the_caps_get_503(target):
    held: list[socket.socket] = []

    def hold(source: str) -> None:
        sock = raw_client.connect(target.port, source=source)
        held.append(sock)
        sock.sendall(get(target))                 # kept alive: held until the idle limit
        assert read_response(sock) == 200

    try:
        for _ in range(target.per_client):
            hold("127.0.0.1")
        sock = raw_client.connect(target.port, source="127.0.0.1")
        held.append(sock)
        sock.sendall(get(target))
        refused(raw_client.closed_within(sock, 5), 503)
        # another client is served; then fill the total with more clients
        source = 2
        while len(held) - 1 < target.total:
            for _ in range(min(target.per_client, target.total - (len(held) - 1))):
                hold(f"127.0.0.{source}")
            source += 1
        sock = raw_client.connect(target.port, source=f"127.0.0.{source}")
        held.append(sock)
        sock.sendall(get(target))
        refused(raw_client.closed_within(sock, 5), 503)
    finally:
        for sock in held:
            sock.close()
    # closed connections free their slots
    wait_until(lambda: raw_client_get(target.port, target.path) == 200, 10, "a slot after the others closed")


# -- content on a GET -----------------------------------------------------------------------------

def test_content_on_a_get_is_framed_or_refused(target):
    got = exchange(target.port, get(target, b"Content-Length: 5\r\n") + b"hello" + get(target, b"Connection: close\r\n"))
    if target.reads_get_content:
        assert statuses(got or b"") == [200, 200], (got or b"")[:300]
    else:
        refused(got, 413)


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_a_huge_body_on_a_get_is_refused_before_it_arrives(target, framing):
    if framing == "declared":
        head = get(target, b"Content-Length: 100000000000\r\n")
        body = [b"a" * 65536] * 8
    else:
        head = get(target, b"Transfer-Encoding: chunked\r\n")
        body = [b"10000\r\n" + b"a" * 65536 + b"\r\n"] * 8
    sock = raw_client.connect(target.port)
    try:
        sock.sendall(head)
        for chunk in body:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        refused(raw_client.closed_within(sock, 10), 413)
    finally:
        sock.close()


# -- pipelined garbage ----------------------------------------------------------------------------

@pytest.mark.parametrize(("garbage", "status"), [
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),          # a TLS hello on the plain port
    (b"\x00" * 20_000, 414),                                                  # no line end at all
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Junk: y\r\n" * 300 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),                                       # no Host (RFC 9112 3.2)
])
def test_garbage_after_a_good_request_is_answered_and_closed(target, garbage, status):
    got = exchange(target.port, get(target) + garbage)
    assert got is not None, "the connection was left open"
    assert statuses(got) == [200, status], got[:200]
    last = got[got.rindex(b"HTTP/1.1 %d " % status):]
    refused(last, status)


def test_many_bad_requests_at_once_leave_the_server_serving(target):
    # a burst of each kind side by side (each from a client of its own, under the per-client
    # cap): the server answers every one, and then a good request
    kinds = [get(target, b"Content-Length: " + b"9" * 5000 + b"\r\n"), b"GET /?" + b"a" * 20_000,
             get(target, b"X-Big: " + b"a" * 20_000 + b"\r\n")]
    answers: list[bytes | None] = []

    def one(data: bytes, source: str) -> None:
        answers.append(exchange(target.port, data, source=source))
    threads = [threading.Thread(target=one, args=(kind, f"127.0.1.{i * 2 + j + 1}"))
               for i, kind in enumerate(kinds) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 6 and all(a and statuses(a)[0] in (413, 414, 431) for a in answers), answers
    assert raw_client_get(target.port, target.path) == 200

