"""Settings of the quarantine web application (`owlery web`): listen, TLS, URL, admins, sessions, logins.

A light module (no Twisted import) so `owlery config` can read them; owlery.sections maps the
`web` prefix here. `WebConfig.from_settings` turns them into the plain values the sans-I/O
core (web/app.py) uses. The token key is quarantine_token_key_file (owlery.quarantine.tokenkey),
the store the quarantine_* settings (owlery.quarantine), logins the directory's
(files_passwords or an LDAP bind, owlery.directory.auth).
Talks to: nothing. Tests: tests/web/test_app.py, tests/core/test_settings.py
"""

from __future__ import annotations

import dataclasses
from typing import Any

from owlery.settings import Duration, Endpoints, Networks, Size, Str, StrList, int_range, setting

WEB_LISTEN = setting(
    "web_listen", Endpoints, ["tcp:127.0.0.1:10046"],
    "Where `owlery web` listens (HTTP, or HTTPS with web_tls_cert_file): tcp:HOST:PORT, unix:/path "
    "or systemd:NAME. The default is loopback only, for a reverse proxy on the same host.")
WEB_TLS_CERT_FILE = setting(
    "web_tls_cert_file", Str, None,
    "PEM certificate (chain) to serve HTTPS itself. Unset: plain HTTP (behind a reverse proxy that "
    "terminates TLS).")
WEB_TLS_KEY_FILE = setting(
    "web_tls_key_file", Str, None,
    "PEM private key of web_tls_cert_file; read at start-up, after the switch to daemon_user.")
WEB_BASE_URL = setting(
    "web_base_url", Str, None,
    "The public URL of the web application, e.g. https://quarantine.example.org (what "
    "quarantine_web_url names in digests). An https:// URL makes session cookies Secure even "
    "when a proxy forwards plain HTTP.")
WEB_TRUSTED_PROXIES = setting(
    "web_trusted_proxies", Networks, ["127.0.0.1/32", "::1/128"],
    "Reverse proxies whose X-Forwarded-For (client address, for login rate limits) and "
    "X-Forwarded-Proto (https: Secure cookies) headers are believed; other clients' are ignored.")
WEB_ADMINS = setting(
    "web_admins", StrList, [],
    "Addresses that see and act on everybody's quarantine (after logging in as themselves).")
WEB_ADMIN_GROUP = setting(
    "web_admin_group", Str, None,
    "A directory group (or alias) address whose members are admins too, checked at each login.")
WEB_SESSION_LIFETIME = setting(
    "web_session_lifetime", Duration, "8h", unit="s",
    doc="A login lasts at most this long, however busy.")
WEB_SESSION_IDLE_TIMEOUT = setting(
    "web_session_idle_timeout", Duration, "30m", unit="s",
    doc="A session unused this long ends (logged in or not).")
WEB_REQUEST_TIMEOUT = setting(
    "web_request_timeout", Duration, "30s", unit="s",
    doc="Longest a client may take to send one whole request (its line, headers and form body) "
        "from its first byte, or for a connection's first request from the connection's opening; "
        "then it is closed unanswered. The idle limit alone restarts at every byte, so a client "
        "sending one byte a minute held a connection and its buffers for ever (a slow-request attack).")
WEB_MAX_CONNECTIONS = setting(
    "web_max_connections", int_range(1, None), 1000,
    "Connections open at once; one more is answered 503 and closed.")
WEB_MAX_CONNECTIONS_PER_CLIENT = setting(
    "web_max_connections_per_client", int_range(1, None), 32,
    "Connections open at once from one client (IPv4 address, IPv6 /64); one more is answered 503 "
    "and closed. A browser opens up to 6. web_trusted_proxies count in web_max_connections only "
    "(a proxy speaks for everybody); raise it for many users behind one NAT address.")
WEB_SESSIONS_MAX = setting(
    "web_sessions_max", int_range(10, 10_000_000), 10000,
    "Most logged-in sessions kept (in memory; a restart logs everybody out). Past it the least "
    "recently used ends. Sessions of visitors who have not logged in (login form, release links) "
    "are bounded separately by the same number, so they can never push out a login.")
WEB_LOGIN_FAILURES_PER_ADDRESS = setting(
    "web_login_failures_per_address", int_range(1, 10000), 5,
    "Failed logins for one address within web_login_failure_window; then its logins are refused "
    "(without asking the directory) until the window has passed.")
WEB_LOGIN_FAILURES_PER_CLIENT = setting(
    "web_login_failures_per_client", int_range(1, 100000), 20,
    "Failed logins from one client (IPv4 address, IPv6 /64) within web_login_failure_window; then "
    "its logins are refused until the window has passed.")
WEB_LOGIN_FAILURE_WINDOW = setting(
    "web_login_failure_window", Duration, "15m", unit="s",
    doc="The window the web_login_failures_* limits count in.")
WEB_LIST_MAX = setting(
    "web_list_max", int_range(1, 100000), 200,
    "Most messages one list or search page shows (newest first).")
WEB_SEARCH_SCAN_MAX = setting(
    "web_search_scan_max", int_range(1, 1_000_000), 5000,
    "A search by sender or subject text looks through at most this many of the newest messages "
    "matching the other criteria.")
WEB_SHOW_TEXT_MAX = setting(
    "web_show_text_max", Size, "256k", unit="bytes",
    doc="Longest text shown of one message part (the rest is cut, and says so).")
WEB_THREADS = setting(
    "web_threads", int_range(1, 256), 8,
    "Threads for requests (password checks, the store, releases are blocking work).")


@dataclasses.dataclass(frozen=True)
class WebConfig:
    """What the core needs from the settings (plain values; the core reads no settings)."""

    base_url: str | None = None
    tls: bool = False
    trusted_proxies: tuple[Any, ...] = ()
    admins: frozenset[str] = frozenset()
    session_lifetime: float = 8 * 3600.0
    session_idle_timeout: float = 1800.0
    sessions_max: int = 10000
    login_failures_per_address: int = 5
    login_failures_per_client: int = 20
    login_failure_window: float = 900.0
    list_max: int = 200
    search_scan_max: int = 5000
    show_text_max: int = 256 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> "WebConfig":
        return cls(base_url=settings.web_base_url,
                   tls=bool(settings.web_tls_cert_file),
                   trusted_proxies=tuple(settings.web_trusted_proxies),
                   admins=frozenset(a.lower() for a in settings.web_admins),
                   session_lifetime=settings.web_session_lifetime,
                   session_idle_timeout=settings.web_session_idle_timeout,
                   sessions_max=settings.web_sessions_max,
                   login_failures_per_address=settings.web_login_failures_per_address,
                   login_failures_per_client=settings.web_login_failures_per_client,
                   login_failure_window=settings.web_login_failure_window,
                   list_max=settings.web_list_max,
                   search_scan_max=settings.web_search_scan_max,
                   show_text_max=settings.web_show_text_max)

    @property
    def secure_cookies_always(self) -> bool:
        """Cookies are Secure whatever the request says: we serve TLS, or the public URL is https."""
        return self.tls or (self.base_url or "").lower().startswith("https://")
