"""`owlery web` as a process: HTTP and HTTPS (stdlib TLS), headers on the wire, CSRF refusal, a bad body.

A real child process on loopback; the client is urllib (the browser test drives Chromium).
"""

import re
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from .server import WebServer, self_signed, token_key_file


def fetch(url, data=None, cafile=None, headers=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    work = tmp_path_factory.mktemp("web")
    cert, key = self_signed(work)
    base = f'quarantine_directory = "{work / "q"}"\nquarantine_token_key_file = "{token_key_file(work)}"\n'
    plain = WebServer(work / "plain", base)
    (work / "plain").mkdir()
    secure = WebServer(work / "tls", base + f'web_tls_cert_file = "{cert}"\nweb_tls_key_file = "{key}"\n', tls=True)
    (work / "tls").mkdir()
    plain.start()
    secure.start()
    yield plain, secure, cert
    plain.stop()
    secure.stop()


def test_http_login_page_headers(servers):
    plain, _, _ = servers
    status, headers, body = fetch(plain.url + "/login")
    assert status == 200 and b'name="csrf"' in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Server"] == "Owlery"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    status, headers, body = fetch(plain.url + "/static/style.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")


def test_post_without_csrf_is_403(servers):
    plain, _, _ = servers
    status, _, _ = fetch(plain.url + "/login", data=b"username=a%40b.test&password=x",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403
    assert re.search(r"web: refused: .*reason=csrf", plain.log())


def test_proxy_https_header_makes_cookie_secure(servers):
    plain, _, _ = servers            # the test client is on loopback: a trusted proxy by default
    _, headers, _ = fetch(plain.url + "/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in headers["Set-Cookie"]


def test_https_serves_with_secure_cookies(servers):
    _, secure, cert = servers
    status, headers, body = fetch(secure.url.replace("127.0.0.1", "localhost") + "/login", cafile=str(cert))
    assert status == 200 and b"Log in" in body and "Secure" in headers["Set-Cookie"]
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        fetch(secure.url.replace("https", "http") + "/login")      # plain HTTP on the TLS port gets nothing


def _raw_exchange(url: str, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a request head and some body bytes; what the server answers until it closes (or 10 s)."""
    host, port = url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        for chunk in body_chunks:
            try:
                s.sendall(chunk)
            except OSError:              # the server closed already: what it said is below
                break
        got, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            got += part
        return got


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_huge_body_is_refused_at_once(servers, framing):
    plain, _, _ = servers
    if framing == "declared":      # 100 GB announced, 1 MB sent: answered before the body ends
        head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n"
        chunks = [b"a" * 65536] * 16
    else:                          # chunked, growing past the 256 KiB bound with no end
        head = b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunks = [b"10000\r\n" + b"a" * 65536 + b"\r\n"] * 16
    got = _raw_exchange(plain.url, head, chunks)
    assert got.startswith(b"HTTP/1.1 413 "), got[:200]
    assert b"Connection: close" in got


def test_a_slow_request_is_cut_off(tmp_path):
    """web_request_timeout: a request must arrive whole within it from its first byte. A client
    sending a byte every 0.2 s (each byte restarts the idle limit) is closed after 1 s, unanswered;
    a request sent at once on the same server, and a second one on a kept-alive connection after
    a pause longer than the limit, are answered."""
    base = (f'quarantine_directory = "{tmp_path / "q"}"\nquarantine_token_key_file = "{token_key_file(tmp_path)}"\n'
            "web_request_timeout = 1\n")
    (tmp_path / "w").mkdir()
    server = WebServer(tmp_path / "w", base)
    server.start()
    try:
        host, port = server.url.split("//", 1)[1].split(":")
        request = b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=10) as s:
            started, got = time.monotonic(), b""
            for byte in request:
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    break                                  # closed by the server
                time.sleep(0.2)                            # the slow client under test, not a wait
                s.setblocking(False)
                try:
                    part = s.recv(65536)
                except BlockingIOError:
                    part = None
                finally:
                    s.setblocking(True)
                if part == b"":
                    break
                got += part or b""
            assert got == b"", got[:200]
            assert time.monotonic() - started < 5, "the slow request was never cut off"
        assert re.search(r"web: closing a connection from .*: no whole request within 1 s", server.log())
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(1.5)                                # idle between requests is no slow request
            s.sendall(b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b"HTTP/1.1 200 " not in got:
                part = s.recv(65536)
                assert part, got[:300]
                got += part
    finally:
        server.stop()
