"""Settings of the ManageSieve server (`owlery managesieve`): listen, TLS, authentication, limits.

A light module (no Twisted import) so `owlery config` can read them; owlery.sections maps
the `managesieve` prefix here. `SessionConfig.from_settings` turns them into the values the
sans-I/O session (sieve/managesieve/session.py) uses.
Talks to: nothing. Tests: tests/managesieve/test_session.py (limits), tests/managesieve/test_service.py
"""

from __future__ import annotations

import dataclasses
from typing import Any

from owlery.settings import Duration, Endpoints, Size, Str, choice, int_range, setting

MANAGESIEVE_LISTEN = setting(
    "managesieve_listen", Endpoints, ["tcp:127.0.0.1:4190"],
    "Where the ManageSieve server (RFC 5804) listens: tcp:HOST:PORT, unix:/path or systemd:NAME. "
    "The default is loopback only (a webmail on the same host); for users' own clients listen on "
    "a public address with managesieve_tls_cert_file set.")
MANAGESIEVE_TLS_CERT_FILE = setting(
    "managesieve_tls_cert_file", Str, None,
    "PEM certificate (chain) offered after STARTTLS. Unset: no STARTTLS.")
MANAGESIEVE_TLS_KEY_FILE = setting(
    "managesieve_tls_key_file", Str, None,
    "PEM private key of managesieve_tls_cert_file. Read at start-up and on reload, after the "
    "switch to daemon_user: make it readable by that user only.")
MANAGESIEVE_PLAINTEXT_AUTH = setting(
    "managesieve_plaintext_auth", choice("tls", "loopback", "always"), "loopback",
    "When PLAIN and LOGIN (passwords in the clear) are offered: tls = only after STARTTLS; "
    "loopback = also to clients on 127.0.0.0/8, ::1 or a unix socket (a webmail on this host); "
    "always = also over unencrypted remote connections (do not).")
MANAGESIEVE_LOGIN_FAILURE_DELAY = setting(
    "managesieve_login_failure_delay", Duration, 2, unit="s",
    doc="How long after its command a failed login's NO comes, however long the password check "
        "took: slows guessing, and hides which logins exist (keep it above the slowest hash check).")
MANAGESIEVE_LOGIN_FAILURES_MAX = setting(
    "managesieve_login_failures_max", int_range(1, 100), 3,
    "Failed logins one connection may make; the next failure closes it with BYE.")
MANAGESIEVE_LOGIN_TIMEOUT = setting(
    "managesieve_login_timeout", Duration, "3m", unit="s",
    doc="Close a connection that has not logged in this long after it connected (or after "
        "UNAUTHENTICATE), whatever it sends meanwhile (Dovecot's login processes allow 3 minutes).")
MANAGESIEVE_IDLE_TIMEOUT = setting(
    "managesieve_idle_timeout", Duration, "30m", unit="s",
    doc="Close a logged-in connection that sent no whole command for this long (the bytes of an "
        "unfinished one do not count, so a client that drips a command cannot hold it for ever).")
MANAGESIEVE_MAX_CONNECTIONS = setting(
    "managesieve_max_connections", int_range(1, None), 1000,
    "Connections open at once; one more is answered BYE and closed (Dovecot's client_limit).")
MANAGESIEVE_MAX_CONNECTIONS_PER_CLIENT = setting(
    "managesieve_max_connections_per_client", int_range(1, None), 20,
    "Connections not yet logged in from one client (IPv4 address, IPv6 /64); one more is answered "
    "BYE and closed. A webmail on this host counts as one client: raise it for a busy one.")
MANAGESIEVE_MAX_USERIP_CONNECTIONS = setting(
    "managesieve_max_userip_connections", int_range(1, None), 10,
    "Connections logged in as one user from one client (IPv4 address, IPv6 /64); the next login "
    "is answered NO and the connection stays unauthenticated (Dovecot's mail_max_userip_connections).")
MANAGESIEVE_LOGIN_FAILURES_PER_CLIENT = setting(
    "managesieve_login_failures_per_client", int_range(1, 100000), 20,
    "Failed logins from one client (IPv4 address, IPv6 /64) within managesieve_login_failure_window, "
    "over all its connections; then its logins are refused unchecked until the window moves on.")
MANAGESIEVE_LOGIN_FAILURES_PER_USER = setting(
    "managesieve_login_failures_per_user", int_range(1, 10000), 5,
    "Failed logins for one login name (existing or not) within managesieve_login_failure_window, "
    "from any client; then its logins are refused unchecked (as web_login_failures_per_address), "
    "except from a client it logged in from within 30 days, so a stranger cannot lock a user out.")
MANAGESIEVE_LOGIN_FAILURE_WINDOW = setting(
    "managesieve_login_failure_window", Duration, "15m", unit="s",
    doc="The window the managesieve_login_failures_per_* limits count in.")
MANAGESIEVE_MAX_LINE_LENGTH = setting(
    "managesieve_max_line_length", int_range(512, 1 << 20), 8192, unit="bytes",
    doc="Longest command line; longer closes the connection with BYE. Before login it also bounds "
        "each literal (e.g. a SASL response); after login a command's literals count in it, "
        "except a script's (bounded by managesieve_max_script_size), as in Dovecot's managesieved.")
MANAGESIEVE_MAX_BAD_COMMANDS = setting(
    "managesieve_max_bad_commands", int_range(1, 1000), 20,
    "Unknown or malformed commands in a row a logged-in client may send before the connection is "
    "closed with BYE (a command that runs resets the count, as in Pigeonhole).")
MANAGESIEVE_MAX_BAD_COMMANDS_BEFORE_LOGIN = setting(
    "managesieve_max_bad_commands_before_login", int_range(1, 1000), 3,
    "Unknown, malformed or not-yet-allowed commands a connection may send before it logs in "
    "(in all, never reset) before it is closed with BYE; Pigeonhole's login process allows 3.")
MANAGESIEVE_MAX_SCRIPTS = setting(
    "managesieve_max_scripts", int_range(0, None), 50,
    "Most scripts one user may store (QUOTA/MAXSCRIPTS); 0: no limit.")
MANAGESIEVE_MAX_SCRIPT_SIZE = setting(
    "managesieve_max_script_size", Size, "256k", unit="bytes",
    doc="Largest script a user may upload (QUOTA/MAXSIZE); sieve_max_script_size caps it too.")
MANAGESIEVE_MAX_STORAGE = setting(
    "managesieve_max_storage", Size, "4M", unit="bytes",
    doc="Most bytes all of one user's scripts may take together (QUOTA); 0: no limit.")
MANAGESIEVE_MAX_COMPILE_ERRORS = setting(
    "managesieve_max_compile_errors", int_range(0, 10000), 5,
    "Compile errors sent back for a script that does not compile (PUTSCRIPT, CHECKSCRIPT, "
    "SETACTIVE); the compile stops at that many, as in Dovecot's managesieved (same name and "
    "default). 0: every error.")
MANAGESIEVE_MAX_NAME_LENGTH = setting(
    "managesieve_max_name_length", int_range(1, 1024), 256, unit="characters",
    doc="Longest script name (RFC 5804 asks for at least 128; Pigeonhole allows 256). A name whose "
        "file NAME.sieve would exceed 255 bytes is refused whatever this says.")
MANAGESIEVE_SCRIPT_DIR_TEMPLATE = setting(
    "managesieve_script_dir_template", Str, None,
    "Directory holding a user's scripts ({localpart}, {domain}, {user} substituted). Unset: the "
    "directory of the user's active script (delivery_sieve_script_template), i.e. "
    "<home>/sieve/ holding NAME.sieve and the active.sieve link, the layout Dovecot reads with "
    "sieve = file:~/sieve;active=~/sieve/active.sieve.")
MANAGESIEVE_THREADS = setting(
    "managesieve_threads", int_range(1, 256), 4,
    "Threads for password checks, directory lookups and script storage (blocking work).")
MANAGESIEVE_IMPLEMENTATION = setting(
    "managesieve_implementation", Str, "Owlery",
    "The IMPLEMENTATION capability sent to clients.")


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """What one session needs from the settings (plain values; the session reads no settings)."""

    implementation: str = "Owlery"
    sieve_extensions: tuple[str, ...] = ()
    max_redirects: int = 4
    plaintext_auth: str = "loopback"
    tls_available: bool = False
    login_failure_delay: float = 2.0
    login_failures_max: int = 3
    max_line_length: int = 8192
    max_bad_commands: int = 20
    max_bad_commands_before_login: int = 3
    max_scripts: int = 50
    max_script_size: int = 256 * 1024
    max_storage: int = 4 * 1024 * 1024
    max_name_length: int = 256

    @classmethod
    def from_settings(cls, settings: Any, *, tls_available: bool = False) -> "SessionConfig":
        from sieve.api import extensions_available
        return cls(implementation=settings.managesieve_implementation,
                   sieve_extensions=tuple(extensions_available(settings)),
                   max_redirects=settings.sieve_max_redirects,
                   plaintext_auth=settings.managesieve_plaintext_auth,
                   tls_available=tls_available,
                   login_failure_delay=settings.managesieve_login_failure_delay,
                   login_failures_max=settings.managesieve_login_failures_max,
                   max_line_length=settings.managesieve_max_line_length,
                   max_bad_commands=settings.managesieve_max_bad_commands,
                   max_bad_commands_before_login=settings.managesieve_max_bad_commands_before_login,
                   max_scripts=settings.managesieve_max_scripts,
                   max_script_size=min(settings.managesieve_max_script_size, settings.sieve_max_script_size),
                   max_storage=settings.managesieve_max_storage,
                   max_name_length=settings.managesieve_max_name_length)
