"""Password checks against the directory: a Dovecot passwd-file (files backend) or an LDAP bind.

`Authenticator(settings).authenticate(username, password)` (or the one-shot
`authenticate(settings, username, password)`) returns the user's canonical address, None when
the name or password is wrong, and raises owlery.errors.DirectoryUnavailable when the backend
cannot answer (the caller says "try later", never "wrong password"). BLOCKING: call it from
a thread.

files backend: `files_passwords` names a file in Dovecot's passwd-file format,
`user:password[:uid:gid:gecos:home:shell:extra]` one per line, `#` comments; the same file
Dovecot's `passdb { driver = passwd-file }` reads. Password schemes: {SHA512-CRYPT} and
{SHA256-CRYPT} (SHA-crypt, computed here with hashlib), {BLF-CRYPT} (the `bcrypt` package;
passwords are cut at 72 bytes as libxcrypt and Dovecot do), {ARGON2ID} (`cryptography`'s
Argon2id), and a bare `$6$`, `$5$`, `$2y$` or `$argon2id$` string (Dovecot's CRYPT default).
{PLAIN} / {CLEAR} are accepted only with `files_passwords_plain`. The file is re-read when it
changes. The canonical address is the file's user name, normalised like every directory key.

ldap backend: one search for an entry whose primary address attribute (the first of
`ldap_address_attributes`, within `ldap_user_filter`) is the user name; a group, a disabled
entry (`ldap_status_attribute`) or more than one entry fails; then a simple bind as that
entry's DN with the password on a fresh connection to `ldap_servers` (the search uses the
directory's own connections and bind DN). Invalid credentials (result 49) is a wrong
password; a server that cannot be reached is DirectoryUnavailable. An empty password fails
before any bind (LDAP would take it as an anonymous bind, RFC 4513 5.1.2).
Comparisons are constant-time; passwords never reach a log line.
Talks to: the passwd file or the LDAP server. Tests: tests/managesieve/test_auth.py
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
from typing import Any

from owlery.directory.base import normalise
from owlery.errors import DirectoryUnavailable
from owlery.settings import Bool, Str, setting

FILES_PASSWORDS = setting(
    "files_passwords", Str, None,
    "Password file for logins (ManageSieve) with the files backend, in Dovecot's passwd-file format "
    "(user:{SCHEME}hash:...; SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID), so Dovecot's passdb can "
    "read the same file. Unset: nobody can log in.")
FILES_PASSWORDS_PLAIN = setting(
    "files_passwords_plain", Bool, False,
    "Accept {PLAIN} (clear-text) passwords in files_passwords. Off: such entries never log in.")

log = logging.getLogger("owlery.directory")

MAX_USERNAME = 320          # an address: 64 + 1 + 255
MAX_PASSWORD = 1024
_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# SHA-crypt's output byte order (Drepper's specification), three bytes per four characters.
_ORDER_512 = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
              (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
              (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
              (62, 20, 41))
_ORDER_256 = ((0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5), (6, 16, 26),
              (27, 7, 17), (18, 28, 8), (9, 19, 29))
_ROUNDS_DEFAULT = 5000
_ROUNDS_MIN, _ROUNDS_MAX = 1000, 999_999_999


def _b64_24(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_B64[w & 0x3F])
        w >>= 6
    return "".join(out)


def sha_crypt(password: bytes, setting_text: str) -> str:
    """crypt(3) of SHA-crypt: `setting_text` is "$6$[rounds=N$]salt[$...]" or "$5$..."; returns
    the full "$6$...$hash" string. ValueError for another format."""
    if setting_text.startswith("$6$"):
        algo, digest_size, order, ident = hashlib.sha512, 64, _ORDER_512, "6"
    elif setting_text.startswith("$5$"):
        algo, digest_size, order, ident = hashlib.sha256, 32, _ORDER_256, "5"
    else:
        raise ValueError("not a SHA-crypt string")
    rest = setting_text[3:]
    rounds, explicit = _ROUNDS_DEFAULT, False
    if rest.startswith("rounds="):
        value, sep, rest = rest[7:].partition("$")
        if not sep or not value.isdigit():
            raise ValueError("bad rounds= in SHA-crypt string")
        rounds, explicit = min(max(int(value), _ROUNDS_MIN), _ROUNDS_MAX), True
    salt = rest.split("$", 1)[0][:16].encode("ascii")
    pw = password
    b = algo(pw + salt + pw).digest()
    a = algo(pw + salt)
    n = len(pw)
    for _ in range(n // digest_size):
        a.update(b)
    a.update(b[: n % digest_size])
    while n:
        a.update(b if n & 1 else pw)
        n >>= 1
    a_digest = a.digest()
    dp = algo(pw * len(pw)).digest()
    p = (dp * (len(pw) // digest_size + 1))[: len(pw)]
    ds = algo(salt * (16 + a_digest[0])).digest()
    s = (ds * (len(salt) // digest_size + 1))[: len(salt)]
    c = a_digest
    for i in range(rounds):
        h = algo(p if i & 1 else c)
        if i % 3:
            h.update(s)
        if i % 7:
            h.update(p)
        h.update(c if i & 1 else p)
        c = h.digest()
    encoded = "".join(_b64_24(c[x], c[y], c[z], 4) for x, y, z in order)
    # The bytes left over: SHA-256 has 32 = 10 * 3 + 2, SHA-512 64 = 21 * 3 + 1.
    encoded += _b64_24(0, c[31], c[30], 3) if ident == "5" else _b64_24(0, 0, c[63], 2)
    head = f"${ident}$" + (f"rounds={rounds}$" if explicit else "")
    return f"{head}{salt.decode('ascii')}${encoded}"


def _check_bcrypt(password: bytes, hashed: str) -> bool:
    import bcrypt           # only when a BLF-CRYPT entry is checked
    try:
        return bcrypt.checkpw(password[:72], hashed.encode("ascii"))
    except ValueError:
        return False


def _check_argon2id(password: bytes, hashed: str) -> bool:
    from cryptography.exceptions import InvalidKey
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
        Argon2id.verify_phc_encoded            # noqa: B018 - present from cryptography 45 on
    except (ImportError, AttributeError):
        log.error("directory: {ARGON2ID} passwords need cryptography >= 45 (Argon2id.verify_phc_encoded)")
        return False
    try:
        Argon2id.verify_phc_encoded(password, hashed)
    except InvalidKey:
        return False
    except ValueError:                       # not a readable $argon2id$ string
        return False
    return True


_IMPLICIT = (("$6$", "SHA512-CRYPT"), ("$5$", "SHA256-CRYPT"), ("$2y$", "BLF-CRYPT"), ("$2b$", "BLF-CRYPT"),
             ("$2a$", "BLF-CRYPT"), ("$argon2id$", "ARGON2ID"))
PLAIN_SCHEMES = ("PLAIN", "CLEAR", "CLEARTEXT")
HASH_SCHEMES = ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID")    # what check_password verifies


def split_scheme(stored: str) -> tuple[str | None, str]:
    """("SCHEME", hash) from "{SCHEME}hash", or from the hash's own prefix; (None, text) if unknown."""
    if stored.startswith("{") and "}" in stored:
        scheme, _, rest = stored[1:].partition("}")
        return scheme.upper(), rest
    for prefix, scheme in _IMPLICIT:
        if stored.startswith(prefix):
            return scheme, stored
    return None, stored


def check_password(password: str, stored: str, *, allow_plain: bool = False) -> bool:
    """Does `password` match the passwd-file password field `stored`? (constant-time compare)"""
    scheme, hashed = split_scheme(stored)
    pw = password.encode("utf-8")
    if scheme in ("SHA512-CRYPT", "SHA256-CRYPT"):
        try:
            computed = sha_crypt(pw, hashed)
        except ValueError:
            return False
        return hmac.compare_digest(computed.encode("ascii"), hashed.encode("utf-8", "surrogateescape"))
    if scheme == "BLF-CRYPT":
        return _check_bcrypt(pw, hashed)
    if scheme == "ARGON2ID":
        return _check_argon2id(pw, hashed)
    if scheme in PLAIN_SCHEMES and allow_plain:
        return hmac.compare_digest(pw, hashed.encode("utf-8", "surrogateescape"))
    return False


_DUMMY_HASH = "$6$owlerydummysalt$"     # the work a wrong user name costs, as a right one would


class _PasswdFile:
    """The parsed passwd file, re-read when it changes (stat at each lookup)."""

    def __init__(self, path: str, case_sensitive: bool):
        self.path = path
        self.case_sensitive = case_sensitive
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._users: dict[str, tuple[str, str]] = {}       # key -> (name as written, password field)

    def lookup(self, username: str) -> tuple[str, str] | None:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise DirectoryUnavailable(f"{self.path}: {e.strerror}") from None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if key != self._key:
                self._users = self._read()
                self._key = key
            return self._users.get(self._normal(username))

    def _normal(self, name: str) -> str:
        if "@" in name:
            try:
                return normalise(name, self.case_sensitive)
            except ValueError:
                return name
        return name if self.case_sensitive else name.lower()

    def _read(self) -> dict[str, tuple[str, str]]:
        try:
            with open(self.path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            raise DirectoryUnavailable(f"{self.path}: {e.strerror}") from None
        users: dict[str, tuple[str, str]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split(":")
            if len(fields) < 2 or not fields[0]:
                log.warning("directory: %s:%d: no user:password here; line ignored", self.path, number)
                continue
            users[self._normal(fields[0])] = (fields[0], fields[1])
        return users


class Authenticator:
    """Checks passwords for the configured directory backend (see the module docstring)."""

    def __init__(self, settings: Any):
        self.settings = settings
        self.backend = settings.directory_backend
        self._passwd: _PasswdFile | None = None
        self._ldap: Any = None
        if self.backend == "files" and settings.files_passwords:
            self._passwd = _PasswdFile(settings.files_passwords, settings.directory_local_part_case_sensitive)
        elif self.backend == "ldap":
            from owlery.directory.ldap import LdapDirectory
            self._ldap = LdapDirectory(settings)

    def authenticate(self, username: str, password: str) -> str | None:
        """The canonical address of `username` when `password` is right, else None."""
        if (not username or not password or len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD
                or any(c < " " or c == "\x7f" for c in username) or "\0" in password):
            return None
        if self.backend == "ldap":
            return self._ldap_authenticate(username, password)
        if self._passwd is None:
            return None
        found = self._passwd.lookup(username)
        if found is None:
            sha_crypt(password.encode("utf-8"), _DUMMY_HASH)
            return None
        name, stored = found
        if not check_password(password, stored, allow_plain=self.settings.files_passwords_plain):
            return None
        return self._passwd._normal(name)

    # -- LDAP -----------------------------------------------------------------------------

    def _ldap_authenticate(self, username: str, password: str) -> str | None:
        from owlery.directory.ldap import escape, lookup_value
        s = self.settings
        try:
            value = lookup_value(username)
        except ValueError:
            return None
        attr = s.ldap_address_attributes[0]
        entries = self._ldap.search(f"(&{s.ldap_user_filter}({attr}={escape(value)}))", size_limit=2)
        groups = {c.lower() for c in s.ldap_group_classes}
        refused = {v.lower() for v in s.ldap_status_refused}
        candidates = []
        for entry in entries:
            if any(c.lower() in groups for c in entry.values("objectClass")):
                continue
            status = entry.first(s.ldap_status_attribute) if s.ldap_status_attribute else None
            if status is not None and status.lower() in refused:
                log.info("directory: login of %s refused: account status %s", entry.dn, status)
                continue
            candidates.append(entry)
        if len(candidates) != 1:
            # No such login (or a disabled one, a group): a bind all the same, as a wrong password
            # costs one, so the answer's time does not tell which addresses exist.
            self._ldap_bind_nobody(password)
            return None
        entry = candidates[0]
        if not self._ldap_bind(entry.dn, password):
            return None
        primary = entry.first(attr) or username
        return primary if s.directory_local_part_case_sensitive else primary.lower()

    def _ldap_bind_nobody(self, password: str) -> None:
        """A simple bind as a DN no entry has (LDAP answers invalidCredentials, RFC 4513 6.3.1):
        the time of a wrong password. Its outcome does not matter; a server that is down was
        already found so by the search."""
        dn = f"cn=owlery-no-such-login-{secrets.token_hex(8)},{self.settings.ldap_base_dn}"
        try:
            self._ldap_bind(dn, password)
        except DirectoryUnavailable:
            pass

    def _ldap_bind(self, dn: str, password: str) -> bool:
        """A simple bind as `dn` on the first server that answers: True / False (wrong password)."""
        from ldap3 import AUTO_BIND_NONE, Connection
        from ldap3.core.exceptions import LDAPException, LDAPStartTLSError
        s = self.settings
        try:
            servers = self._ldap._servers()
        except LDAPException as e:
            raise DirectoryUnavailable(f"LDAP: {e}") from None
        errors = []
        for server in servers:
            conn = Connection(server, user=dn, password=password, auto_bind=AUTO_BIND_NONE, read_only=True,
                              receive_timeout=max(1, math.ceil(s.ldap_timeout)), raise_exceptions=False,
                              check_names=False)
            try:
                conn.open(read_server_info=False)
                if s.ldap_start_tls and not server.ssl and not conn.start_tls(read_server_info=False):
                    raise LDAPStartTLSError(conn.last_error or "StartTLS not started")
                if conn.bind(read_server_info=False):
                    return True
                code = (conn.result or {}).get("result")
                if code == 49:                          # invalidCredentials
                    return False
                errors.append(f"{server.name}: bind result {code} {(conn.result or {}).get('description')}")
            except LDAPException as e:
                errors.append(f"{server.name}: {e}")
            finally:
                try:
                    conn.unbind()
                except Exception:  # noqa: BLE001 - a half-open connection may fail any way while closing
                    pass
        raise DirectoryUnavailable("LDAP bind: " + "; ".join(errors))

    def close(self) -> None:
        if self._ldap is not None:
            self._ldap.close()


def authenticate(settings: Any, username: str, password: str) -> str | None:
    """One-shot `Authenticator(settings).authenticate(username, password)` (see the module docstring)."""
    auth = Authenticator(settings)
    try:
        return auth.authenticate(username, password)
    finally:
        auth.close()


__all__ = ["Authenticator", "authenticate", "check_password", "sha_crypt", "split_scheme"]
