"""Fuzz: the quarantine web server's HTTP handling (web/http.py, web/app.py, through web/service.py).

Raw bytes go into the real Twisted site of `owlery web` (web.service.WebApplication over a
quarantine directory store in a temporary folder holding two messages, the fake directory and
fake Postfix of tests/web/helpers.py, a live user session and a live admin session whose
cookies the generator knows, the core run at once instead of in a thread). Requests are built
from request lines (methods, paths with percent-encoding, dot segments, NULs, tokens and message
ids), header fields (cookies, forwarded-for, content types, Content-Length that is wrong,
missing or huge, chunked bodies) and form bodies, or are seeds of tests/fuzz/corpus/web_http/
under mutations, or any bytes, cut into reads anywhere. Whatever arrives:
- no exception escapes (Twisted's own POST form parsing, which raised on a Content-Type holding
  \x85 or \x0b, is off: web.service._BoundedRequest), no 5xx status is answered, and
  no response holds a traceback;
- every response is a well-formed HTTP/1.1 status line and header block, and those the core
  made carry the security headers (Content-Security-Policy, nosniff);
- nothing outside the quarantine store under the temporary folder is opened (a file planted
  next to the store is never read, and its text never appears), and no response is larger than
  a page can be;
- the http.py helpers take any text: parse_form and parse_qs raise only ValueError,
  parse_cookies, client_address and owlery.login_limits.client_key nothing.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from owlery.login_limits import client_key
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.tokens import sign
from owlery.settings import Settings
from tests.fuzz.fuzzlib import CUTS, budget, corpus, mutants, split
from tests.web.helpers import KEY, NOW, FakeAuth, FakePostfix, make_record, plain_message
from web import http
from web.backend import WebBackend
from web.service import WebApplication

SEEDS = corpus("web_http")
SECRET = b"owlery-fuzz-secret-not-in-the-store"
RESPONSE_MAX = 1 << 20


class _World:
    """One web application over a store in a temporary folder (made once per process)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="owlery-fuzz-web-"))
        atexit.register(shutil.rmtree, self.root, True)
        (self.root / "secret.txt").write_bytes(SECRET)
        self.store_dir = self.root / "q"
        self.store = DirectoryStore(str(self.store_dir), timeout=5)
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.alice = make_record(("alice@example.test",), subject="=?utf-8?q?caf=C3=A9?=")
        self.other = make_record(("bob@example.test",), subject="Bob's")
        self.store.put(self.alice, plain_message(self.alice.subject))
        self.store.put(self.other, b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                                   b"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--b--\r\n")
        settings = Settings().replace(web_admins=["admin@example.test"])
        self.backend = WebBackend(settings, store=self.store, authenticator=FakeAuth(), sender=FakePostfix(),
                                  token_key=KEY)
        self.web = WebApplication(settings, self.clock, backend=self.backend, threadpool=object())
        self.web.app.clock = self.clock.seconds
        self.web.in_thread = lambda f, *args: defer.maybeDeferred(f, *args)
        self.web.factory.reactor = self.clock
        self.tokens = [sign(KEY, action, r.mail_id, r.recipients[0].address, int(NOW) + 86400)
                       for r in (self.alice, self.other) for action in ("release", "show")]
        self.tokens.append(sign(KEY, "show", self.alice.mail_id, "alice@example.test", int(NOW) - 1))
        self.sessions()

    def sessions(self):
        """Fresh live sessions for alice and the admin (their ids are fixed, so inputs can name them)."""
        store = self.web.app.sessions
        for sid, user, admin in (("alicesid", "alice@example.test", False), ("adminsid", "admin@example.test", True)):
            s = store.login(None, user, admin, self.clock.seconds())
            store.end(s)
            s.sid, s.csrf = sid, sid + "csrf"
            store._put(store._users, s)                 # noqa: SLF001 (a session with a known id)


_WORLD: list[_World] = []


def world() -> _World:
    if not _WORLD:
        _WORLD.append(_World())
    return _WORLD[0]


# --- watching what is opened -----------------------------------------------------------------------

_OPENED: list[str] | None = None


def _audit(event, args):
    if _OPENED is not None and event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


# --- the response grammar ------------------------------------------------------------------------------

_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) [\x20-\x7e]*\r\n")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([\x20-\x7e\x80-\xff]*)\r\n")


def parse_responses(out: bytes) -> list[tuple[int, dict[bytes, list[bytes]], bytes]]:
    """(status, headers, body) of each response; AssertionError unless they are well-formed."""
    responses, i = [], 0
    while i < len(out):
        m = _STATUS.match(out, i)
        assert m, f"not a status line: {out[i:i + 60]!r}"
        status, i = int(m.group(1)), m.end()
        headers: dict[bytes, list[bytes]] = {}
        while out[i:i + 2] != b"\r\n":
            h = _HEADER.match(out, i)
            assert h, f"bad header line: {out[i:i + 80]!r}"
            headers.setdefault(h.group(1).lower(), []).append(h.group(2))
            i = h.end()
        i += 2
        if out.startswith(b"HTTP/1.", i) or i == len(out):
            body = b""                  # (the answer to HEAD: the length of the body it has not)
        elif b"content-length" in headers:
            length = int(headers[b"content-length"][0])
            body, i = out[i:i + length], i + length
        elif headers.get(b"transfer-encoding") == [b"chunked"]:
            body = bytearray()
            while True:
                c = re.compile(rb"([0-9a-fA-F]+)\r\n").match(out, i)
                assert c, f"bad chunk: {out[i:i + 30]!r}"
                n = int(c.group(1), 16)
                body += out[c.end():c.end() + n]
                i = c.end() + n + 2
                if n == 0:
                    break
            body = bytes(body)
        else:
            body, i = out[i:], len(out)
        responses.append((status, headers, body))
    return responses


def check(data: bytes, cuts) -> None:
    global _OPENED
    w = world()
    w.sessions()
    w.clock.advance(1)
    proto = w.web.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(transport)
    _OPENED = []
    try:
        for chunk in split(data, cuts):
            if transport.disconnecting:
                break
            proto.dataReceived(chunk)
        opened, out = list(_OPENED), transport.value()
    finally:
        _OPENED = None
        proto.connectionLost(None)
        for call in w.clock.getDelayedCalls():
            if call.active():
                call.cancel()
    root = os.path.realpath(w.root)
    store = os.path.realpath(w.store_dir)
    for path in opened:
        real = os.path.realpath(path)
        assert not real.startswith(root + os.sep) or real.startswith(store + os.sep) or real == store, \
            f"opened {path!r} outside the quarantine store"
    assert SECRET not in out
    assert b"Traceback" not in out and b'File "' not in out, "a traceback in a response"
    assert len(out) <= RESPONSE_MAX * 8
    for status, headers, body in parse_responses(out):
        assert status < 500, f"{status} for {data[:200]!r}: {body[:200]!r}"
        assert len(body) <= RESPONSE_MAX
        if b"server" in headers and headers[b"server"] == [b"Owlery"] and status != 413 and status != 400:
            assert b"default-src 'none'" in headers[b"content-security-policy"][0]
            assert headers[b"x-content-type-options"] == [b"nosniff"]


# --- requests -----------------------------------------------------------------------------------------

def _paths():
    w = world()
    ids = [w.alice.mail_id, w.other.mail_id]
    return (["/", "/login", "/logout", "/list", "/action", "/audit", "/static/style.css", "/nosuch", "//list",
             "/list/", "/LIST", "/m/", "/r/", "/s/", "*", "http://x/list", "/%2e%2e/secret.txt", "/../secret.txt",
             "/static/../../secret.txt", "/static/%2e%2e%2f%2e%2e%2fsecret.txt", "/m/..%2f..%2fsecret.txt",
             "/m/" + ids[0] + "%0a", "/m/" + ids[0] + "%00", "/%ff%fe", "/%", "/%zz", "/\x00", "/m/" + "a" * 5000]
            + [f"/m/{i}" for i in ids] + [f"/r/{t}" for t in w.tokens] + [f"/s/{t}" for t in w.tokens]
            + [f"/s/{w.tokens[1]}%3d", f"/r/{w.tokens[0][:-1]}", f"/s/{w.tokens[1]}/../../secret.txt"])


QUERIES = ["", "?recipient=alice%40example.test", "?since=2026-01-01&until=9999-99-99", "?since=x", "?reason=%ff",
           "?subject=%E2%98%83&sender=%", "?a=1&a=2&" + "x=1&" * 2100, "?=&&==", "?next=/list"]


@st.composite
def request(draw) -> bytes:
    w = world()
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"get", b"G\x00T", b"", b"CONNECT"]))
    path = draw(st.sampled_from(_paths())).encode("latin-1") + draw(st.sampled_from(QUERIES)).encode()
    version = draw(st.sampled_from([b" HTTP/1.1", b" HTTP/1.0", b"", b" HTTP/2.0", b" HTTP/1.1 x"]))
    headers = [b"Host: web.test"] if draw(st.booleans()) else []
    csrf = draw(st.sampled_from([b"alicesidcsrf", b"adminsidcsrf", b"", b"x", b"%ff"]))
    form = draw(st.sampled_from([b"", b"csrf=" + csrf, b"csrf=" + csrf + b"&action=release&id=" + w.alice.mail_id.encode(),
                                 b"csrf=" + csrf + b"&action=delete&id=" + w.other.mail_id.encode() + b"&id=x",
                                 b"csrf=" + csrf + b"&action=release&to=a%40b.test&id=" + w.other.mail_id.encode()
                                 + b"&next=/m/" + w.alice.mail_id.encode(),
                                 b"csrf=" + csrf + b"&username=alice%40example.test&password=alice-pw",
                                 b"csrf=" + csrf + b"&username=%ff&password=" + b"p" * 2000,
                                 b"%%%", b"\xff\xfe", b"a=" + b"b" * 300000, b"&" * 3000 + b"csrf=" + csrf]))
    cookie = draw(st.sampled_from([None, b"owlery_session=alicesid", b"owlery_session=adminsid", b"owlery_link=alicesid",
                                   b'owlery_session="adminsid"', b"owlery_session=alicesid; owlery_session=x",
                                   b"a=b;;;c", b"\xff=\xfe", b"owlery_session=" + b"x" * 5000, b'a="\\', b"$Path=/"]))
    if cookie is not None:
        headers.append(b"Cookie: " + cookie)
    for extra in draw(st.lists(st.sampled_from([
            b"X-Forwarded-For: 203.0.113.9", b"X-Forwarded-For: ::1, 2001:db8::1", b"X-Forwarded-For: x, ",
            b"X-Forwarded-For: fe80::1%eth0", b"X-Forwarded-Proto: https", b"Content-Type: text/plain",
            b"Content-Type: application/x-www-form-urlencoded; charset=\xff", b"Content-Type:", b"Connection: close",
            b"Transfer-Encoding: chunked", b"Content-Length: 99999999999", b"Content-Length: -1", b"Content-Length: 1",
            b"Content-Length: 0", b"Content-Length: 5, 5", b"Content-Length: \xc2\xb2", b"Expect: 100-continue",
            b"Header-Without-Colon", b" folded", b"X: \x00", b"\xff: x", b"A" * 9000 + b": x"]), max_size=3)):
        headers.append(extra)
    content_type = b"Content-Type: application/x-www-form-urlencoded"
    if method == b"POST" and draw(st.booleans()) and not any(h.startswith(b"Content-Type") for h in headers):
        headers.append(content_type)
    length = draw(st.sampled_from(["right", "right", "none", "short", "long"]))
    if length != "none" and not any(h.startswith(b"Content-Length") or h.startswith(b"Transfer") for h in headers):
        n = len(form) + {"right": 0, "short": -3, "long": 7}[length]
        headers.append(b"Content-Length: %d" % max(n, 0))
    if any(h == b"Transfer-Encoding: chunked" for h in headers):
        form = (b"%x\r\n" % len(form) + form + b"\r\n" if form else b"") + b"0\r\n\r\n"
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    return method + b" " + path + version + eol + b"".join(h + eol for h in headers) + eol + form


@budget(200)
@given(data=st.one_of(st.lists(request(), min_size=1, max_size=3).map(b"".join), mutants(SEEDS),
                      st.binary(max_size=200)),
       cuts=CUTS)
@example(data=b"GET /m/%2e%2e/secret.txt HTTP/1.1\r\nCookie: owlery_session=adminsid\r\n\r\n", cuts=[])
@example(data=b"POST /login HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", cuts=[])
@example(data=b"POST /login HTTP/1.1\r\nContent-Type: a\x85b\r\nContent-Length: 1\r\n\r\nx", cuts=[])
@example(data=b"HEAD /logout HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", cuts=[])
def test_any_request(data, cuts):
    check(data, cuts)


@budget(200)
@given(text=st.text(max_size=80), body=st.binary(max_size=80),
       ctype=st.sampled_from(["application/x-www-form-urlencoded", "text/plain", "", ";", "APPLICATION/X-WWW-FORM-URLENCODED;a"]),
       peer=st.sampled_from(["127.0.0.1", "192.0.2.1", "::1", "", "unix"]), proto=st.one_of(st.none(), st.text(max_size=8)))
def test_http_helpers_take_any_text(text, body, ctype, peer, proto):
    for f in (lambda: http.parse_form(body, ctype), lambda: http.parse_qs(text)):
        try:
            out = f()
        except ValueError:
            continue
        assert all(isinstance(k, str) and all(isinstance(v, str) for v in vs) for k, vs in out.items())
    cookies = http.parse_cookies(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cookies.items())
    client, secure = http.client_address(peer, text, proto, [ipaddress.ip_network("127.0.0.0/8")], False)
    assert isinstance(client, str) and isinstance(secure, bool)
    assert isinstance(client_key(text), str) and isinstance(client_key(client), str)
    assert urllib.parse.unquote(text, errors="replace") is not None


def fuzz_one(data: bytes) -> None:
    """atheris entry: the first byte is the read size (0: all at once), the rest the client's bytes."""
    logging.disable(logging.CRITICAL)        # the core's decision lines would swamp a long run
    if not data:
        return
    size = data[0]
    stream = data[1:]
    check(stream, list(range(size, len(stream), size)) if size else [])
