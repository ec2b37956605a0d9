"""`owlery web` as a process: HTTP and HTTPS (stdlib TLS), headers on the wire, CSRF refusal, a bad body.

A real child process on loopback; the client is urllib (the browser test drives Chromium).
"""

import re
import ssl
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
