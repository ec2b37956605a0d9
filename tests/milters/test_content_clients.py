"""clamd and spamd clients: the SPAMC codec as transcripts, both clients against fake servers.

Fake servers are threads on loopback sockets that answer scripted bytes (or stall, or close),
so timeouts, refusals and garbage are tested without the real daemons; the real clamd and
spamd are exercised in tests/milters/test_content_scanners_real.py.
"""

import socket
import struct
import threading
import time

import pytest

from milters.clients import ScannerUnavailable
from milters.clients.clamav import ClamdClient, ScanResult, parse_instream_reply
from milters.clients.spamd import (SpamdProtocolError, ResponseParser, SpamdClient, encode_request)

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

REPORT_BODY = (b"Spam detection software ...\n\nContent analysis details:   (1004.2 points, 5.0 required)\n\n"
               b" pts rule name              description\n"
               b"---- ---------------------- --------------------------------------------------\n"
               b" 0.6 MISSING_MID            Missing Message-Id: header\n"
               b"-0.0 NO_RECEIVED            Informational: message has no Received headers\n"
               b"1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email\n"
               b" 1.2 LONG_RULE              A description that goes on and\n"
               b"                            wraps to a second line\n\n")


# --- SPAMC codec ----------------------------------------------------------------------------

@pytest.mark.parametrize("command, kwargs, expected", [
    ("PING", {}, b"PING SPAMC/1.5\r\n\r\n"),
    ("check", {"message": b"Subject: x\r\n\r\nhi\r\n"},
     b"CHECK SPAMC/1.5\r\nContent-length: 18\r\n\r\nSubject: x\r\n\r\nhi\r\n"),
    ("REPORT", {"message": b"m", "user": "alice@example.test"},
     b"REPORT SPAMC/1.5\r\nContent-length: 1\r\nUser: alice@example.test\r\n\r\nm"),
    ("TELL", {"message": b"m", "headers": (("Message-class", "spam"), ("Set", "local"))},
     b"TELL SPAMC/1.5\r\nContent-length: 1\r\nMessage-class: spam\r\nSet: local\r\n\r\nm"),
])
def test_encode_request(command, kwargs, expected):
    message = kwargs.pop("message", b"")
    assert encode_request(command, message, **kwargs) == expected


@pytest.mark.parametrize("command, kwargs", [
    ("FROB", {}), ("CHECK", {"user": "a b"}), ("TELL", {"headers": (("Set", "local\r\nX: y"),)}),
])
def test_encode_request_refuses_bad_input(command, kwargs):
    with pytest.raises(ValueError):
        encode_request(command, b"m", **kwargs)


def parse(*chunks, eof=True):
    p = ResponseParser(max_body=4096)
    for c in chunks:
        p.feed(c)
    if eof and not p.done:
        p.feed_eof()
    return p.response


def test_parse_check_answer_any_split():
    raw = b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1004.2 / 5.0\r\n\r\n"
    for cut in range(1, len(raw)):
        r = parse(raw[:cut], raw[cut:])
        assert (r.code, r.is_spam, r.score, r.threshold) == (0, True, 1004.2, 5.0)


def test_parse_report_rules_and_content_length_ends_body():
    raw = (b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: False ; -1.5 / 5.0\r\n\r\n" % len(REPORT_BODY)
           + REPORT_BODY)
    p = ResponseParser()
    p.feed(raw)
    assert p.done             # no need to wait for the end of the stream
    r = p.response
    assert (r.is_spam, r.score) == (False, -1.5)
    assert [(h.name, h.score) for h in r.rules()] == [("MISSING_MID", 0.6), ("NO_RECEIVED", -0.0),
                                                      ("GTUBE", 1000.0), ("LONG_RULE", 1.2)]
    assert r.rules()[-1].description == "A description that goes on and wraps to a second line"


def test_parse_symbols_ping_tell():
    body = b"GTUBE,MISSING_DATE,NO_RELAYS"
    r = parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n" % len(body) + body)
    assert r.symbols() == ["GTUBE", "MISSING_DATE", "NO_RELAYS"]
    assert parse(b"SPAMD/1.5 0 PONG\r\n").message == "PONG"
    assert parse(b"SPAMD/1.1 0 EX_OK\r\nDidSet: local\r\n\r\n\r\n").did_set() == ("local",)
    assert parse(b"SPAMD/1.1 0 EX_OK\r\n\r\n\r\n").did_set() == ()


@pytest.mark.parametrize("raw, message", [
    (b"HTTP/1.1 200 OK\r\n\r\n", "status line"),
    (b"SPAMD/1.1 0 EX_OK\r\nbroken header\r\n\r\n", "bad header"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 99\r\n\r\nshort", "after 5 of 99"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 999999\r\n\r\n", "exceeds"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: x\r\n\r\n", "Content-length"),
    (b"", "without answering"),
    (b"SPAMD/1.1 0 EX", "complete status line"),
])
def test_parse_garbage_is_protocol_error(raw, message):
    with pytest.raises(SpamdProtocolError, match=message):
        parse(raw)


def test_parse_bounds_header_block():
    p = ResponseParser()
    with pytest.raises(SpamdProtocolError, match="over-long"):
        p.feed(b"SPAMD/1.1 0 EX_OK\r\n" + b"X: y\r\n" * 20000)


def test_bad_spam_header():
    r = parse(b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n")
    with pytest.raises(SpamdProtocolError, match="Spam header"):
        r.score


# --- clamd reply parsing ------------------------------------------------------------------

@pytest.mark.parametrize("reply, result", [
    ("stream: OK", ScanResult(False)),
    ("stream: Eicar-Test-Signature FOUND", ScanResult(True, "Eicar-Test-Signature")),
    ("stream: Win.Trojan.Agent-123 FOUND", ScanResult(True, "Win.Trojan.Agent-123")),
    ("INSTREAM size limit exceeded. ERROR", ScanResult(False, scanned=False)),
])
def test_parse_instream_reply(reply, result):
    assert parse_instream_reply(reply) == result


@pytest.mark.parametrize("reply", ["", "stream: Can't allocate memory ERROR", "what?"])
def test_parse_instream_reply_errors(reply):
    with pytest.raises(ScannerUnavailable):
        parse_instream_reply(reply)


# --- fake servers -----------------------------------------------------------------------------

class FakeServer:
    """Accept connections on a loopback port and hand each to `handler(conn)` in a thread."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.received = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self.handler(self, conn)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def read_instream(conn):
    """Read a zINSTREAM command and its chunks; return the streamed bytes."""
    buf = b""
    while b"\0" not in buf:
        buf += conn.recv(4096)
    cmd, _, rest = buf.partition(b"\0")
    assert cmd == b"zINSTREAM"
    data = b""
    while True:
        while len(rest) < 4:
            rest += conn.recv(65536)
        n = struct.unpack("!L", rest[:4])[0]
        rest = rest[4:]
        if n == 0:
            return data
        while len(rest) < n:
            rest += conn.recv(65536)
        data += rest[:n]
        rest = rest[n:]


@pytest.fixture
def fake():
    servers = []

    def make(handler):
        s = FakeServer(handler)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def test_clamd_streams_whole_message_in_chunks(fake):
    def handler(server, conn):
        server.received.append(read_instream(conn))
        conn.sendall(b"stream: Fake.Virus FOUND\0")
    srv = fake(handler)
    message = bytes(range(256)) * 1000          # 256000 bytes, several 64 KiB chunks
    result = ClamdClient(f"tcp:127.0.0.1:{srv.port}", timeout=5).scan(message)
    assert (result.infected, result.virus) == (True, "Fake.Virus")
    assert srv.received == [message]


def test_clamd_over_size_limit_is_not_sent(fake):
    srv = fake(lambda server, conn: server.received.append("connected"))
    result = ClamdClient(f"tcp:127.0.0.1:{srv.port}", max_size=10).scan(b"x" * 11)
    assert result == ScanResult(False, scanned=False)
    assert srv.received == []


def test_clamd_stalled_server_times_out(fake):
    def handler(server, conn):
        read_instream(conn)
        server.stop.wait(3)                     # never answers
    srv = fake(handler)
    started = time.monotonic()
    with pytest.raises(ScannerUnavailable, match="timed out"):
        ClamdClient(f"tcp:127.0.0.1:{srv.port}", timeout=0.3).scan(EICAR)
    assert time.monotonic() - started < 2


def test_clamd_refused_and_missing_socket(tmp_path):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    with pytest.raises(ScannerUnavailable, match="cannot connect"):
        ClamdClient(f"tcp:127.0.0.1:{free}", timeout=1).scan(EICAR)
    with pytest.raises(ScannerUnavailable, match="cannot connect"):
        ClamdClient(f"unix:{tmp_path}/nope.sock", timeout=1).scan(EICAR)


def test_clamd_closes_without_answer(fake):
    srv = fake(lambda server, conn: read_instream(conn))
    with pytest.raises(ScannerUnavailable, match="without a verdict"):
        ClamdClient(f"tcp:127.0.0.1:{srv.port}", timeout=2).scan(EICAR)


def test_spamd_client_against_scripted_server(fake):
    def handler(server, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += conn.recv(65536)
        server.received.append((head, body))
        conn.sendall(b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: True ; 1004.2 / 5.0\r\n\r\n"
                     % len(REPORT_BODY) + REPORT_BODY)
    srv = fake(handler)
    client = SpamdClient(f"tcp:127.0.0.1:{srv.port}", timeout=5, user="owlery")
    result = client.scan(b"Subject: x\r\n\r\nbody\r\n")
    assert (result.score, result.threshold, result.is_spam) == (1004.2, 5.0, True)
    assert "GTUBE" in [r.name for r in result.rules]
    assert srv.received[0][0].startswith(b"REPORT SPAMC/1.5\r\n") and b"User: owlery" in srv.received[0][0]
    assert srv.received[0][1] == b"Subject: x\r\n\r\nbody\r\n"
    assert client.scan(b"x" * (client.max_size + 1)) is None
    assert len(srv.received) == 1


def test_spamd_error_code_and_stall(fake):
    srv = fake(lambda server, conn: (conn.recv(65536), conn.sendall(b"SPAMD/1.0 76 Bad header line: x\r\n")))
    with pytest.raises(SpamdProtocolError, match="76"):
        SpamdClient(f"tcp:127.0.0.1:{srv.port}", timeout=2).check(b"m")
    stall = fake(lambda server, conn: (conn.recv(65536), server.stop.wait(3)))
    with pytest.raises(ScannerUnavailable, match="timed out"):
        SpamdClient(f"tcp:127.0.0.1:{stall.port}", timeout=0.3).check(b"m")
