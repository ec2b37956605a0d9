"""HTTP values of the web core: the Request it is given, the Response it decides, cookies and security headers.

Sans-I/O: the Twisted adapter (web/service.py) builds a Request from what arrived and writes
the Response back; nothing here reads a socket. Every response carries the security headers
(a Content-Security-Policy that allows no script, no remote content and no framing; nosniff;
no referrer, so a token URL never leaks to another site; no caching of pages that show mail).
Talks to: nothing. Tests: tests/web/test_app.py
"""

from __future__ import annotations

import dataclasses
import http.cookies
import ipaddress
import urllib.parse
from collections.abc import Iterable

SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
MAX_FORM_BYTES = 256 * 1024
MAX_FIELD_VALUES = 2000           # bulk actions carry one id each


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the core sees it (all text; the adapter decoded what it could)."""

    method: str
    path: str
    query: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    form: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    cookies: dict[str, str] = dataclasses.field(default_factory=dict)
    client: str = ""              # the client address, after trusted-proxy handling
    secure: bool = False          # came over TLS (ours, or a trusted proxy's)

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        return list(self.form.get(name, ()))


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all_headers(self) -> list[tuple[str, str]]:
        """What goes on the wire: ours, the content type and the security headers."""
        return [("Content-Type", self.content_type), *SECURITY_HEADERS, *self.headers]


def redirect(location: str, status: int = 303) -> Response:
    """See Other after a POST (the browser GETs the new page; a reload does not repeat the POST)."""
    return Response(status, b"", headers=[("Location", location)])


def parse_form(body: bytes, content_type: str) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body; ValueError for anything else or too much."""
    if len(body) > MAX_FORM_BYTES:
        raise ValueError("form too large")
    if body and content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise ValueError("not a form")
    return parse_qs(body.decode("utf-8", "replace"))


def parse_qs(text: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELD_VALUES)


def parse_cookies(header: str) -> dict[str, str]:
    jar = http.cookies.SimpleCookie()
    try:
        jar.load(header or "")
    except http.cookies.CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


def set_cookie(name: str, value: str, *, path: str = "/", secure: bool, max_age: int | None = None) -> tuple[str, str]:
    """A session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site sends it)."""
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return ("Set-Cookie", "; ".join(parts))


def client_address(peer: str, forwarded_for: str | None, forwarded_proto: str | None,
                   trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network], tls: bool) -> tuple[str, bool]:
    """(client address, secure) of a connection from `peer`: a trusted proxy's X-Forwarded-For
    (its last entry, the one the proxy added) and X-Forwarded-Proto are believed, nobody else's."""
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return peer, tls              # a unix socket: only the local proxy can connect
    if not any(peer_ip in net for net in trusted):
        return peer, tls
    client = peer
    if forwarded_for:
        last = forwarded_for.split(",")[-1].strip()
        try:
            client = str(ipaddress.ip_address(last))
        except ValueError:
            pass
    secure = tls or (forwarded_proto or "").strip().lower() == "https"
    return client, secure


