"""Passwd directory backend: local Unix accounts as mailboxes, a Postfix aliases(5) file as aliases.

For the classic Unix mail host (Postfix local(8) or a `mailbox_command`, Dovecot with
`userdb { driver = passwd }`): a user is an account the system's account database knows
(getpwnam(3) through NSS: /etc/passwd, and LDAP/sssd accounts where nsswitch.conf has them,
as Dovecot's passwd userdb sees them) whose uid lies in [passwd_uid_min, passwd_uid_max],
in every domain of `passwd_domains` (the first is canonical: every account's mailbox is
NAME@first-domain, so one account has one Maildir whichever domain mail was sent to). Root
and system accounts (uid below 1000 by default; nobody is 65534) are never mailboxes, as
Dovecot's first_valid_uid keeps them out. The mailbox's Maildir is `passwd_maildir_template`
(default {home}/Maildir), its Sieve script `passwd_sieve_script_template` (default
{home}/.dovecot.sieve, Dovecot's default active personal script); {home} is the account's
home directory, {user} the account name, {localpart} the local part looked up (the same
name), {domain} the canonical domain. The account's uid and gid own what delivery creates
(AccountMailbox.uid/gid, read by sieve.delivery.users). No per-user quota: delivery_quota_*
applies, as for a files mailbox without a quota entry.

Account names. A local part is looked up only when it is a plausible account name: 1 to 32
bytes (useradd(8)'s limit) of POSIX's portable user name characters A-Z a-z 0-9 . _ -, not
starting with '-' or '.', and not all digits. So no '/', NUL, control character, space or
non-ASCII letter ever reaches getpwnam or a path template ({user} and {localpart} go into
paths: '.' and '..' could climb out of one, '/' into another; a leading '-' reads as an
option to the commands an administrator runs on the name; all-digit names read as uids to
chown(1) and are refused by useradd). A home directory must be an absolute path without
'.' or '..' components or control characters; an account whose home is not (and a template
that would not give an absolute path) is a temporary failure logged as a WARNING, never a
path relative to the daemon's working directory. Case follows
`directory_local_part_case_sensitive` as the other backends do: off (the default) the local
part is folded to lower case before getpwnam, as Postfix's local(8) does ("all delivery
decisions are made using the bare recipient name, folded to lower case", local(8) CASE
FOLDING), so an account spelt with capitals receives no mail; on, it is looked up as given
(Unix account names are case-sensitive). Extensions (user+detail) are stripped by
`directory_recipient_delimiter`; the alias user+detail is tried before user, as local(8) does.

Aliases: `passwd_aliases` names an aliases(5) file (the source text, e.g. /etc/aliases, not
aliases.db): `name: target, target`, `#` comment lines, lines starting with white space
continue the previous one, a name in double quotes may hold any character; names are folded
to lower case as postalias(1) does (unless directory_local_part_case_sensitive). Targets:
`user@domain` (ours: expanded again, else a remote forward), a local name (an alias or an
account), `\\name` (the account's mailbox, no alias expansion), and what only local(8) can do:
`|command`, `/file/name` and `:include:/file`. Owlery delivers none of those (they run with
local(8)'s privileges and rules), and delivering the rest of such an alias would silently
drop its pipe (a `\\alice, "|vacation alice"` alias would lose its vacation): so an alias
reaching such a target exists (the policy daemon accepts it; Postfix's local(8) should
expand it, through alias_maps, before Owlery's LDA runs as its mailbox_command) but resolves
to no mailbox, and delivery refuses it whole (sieve.delivery.users answers it as an unknown
recipient: 550 5.1.1, LDA exit 67). Each such alias is logged once, as a WARNING with file
and line, by the process that reads it (not again at a re-read that left it unchanged).
expand_once() (the socketmap's virtual_alias_maps) answers such an alias with its own
address, so Postfix stops there and local(8) expands it. The file is re-read when it
changes (checked at most every `passwd_check_interval`) and on reload(); a broken file
at re-read keeps the previous aliases and logs why, at start it is an error.

Blocking: getpwnam may ask a network service (sssd, LDAP): call from a thread, as every
backend. An account database that cannot answer raises DirectoryUnavailable (4xx upstream,
never "unknown"): CPython's pwd reports every getpwnam_r(3) failure as KeyError, so on a
miss the status is asked again from libc (system_getpwnam), and one that is not "not found"
(0, ENOENT, ESRCH, EBADF, EPERM, getpwnam_r(3)) is an OSError.
Talks to: the system's account database (NSS), the aliases file. Tests:
tests/directory/test_passwd.py, tests/directory/test_contract.py,
tests/delivery/test_lda_passwd.py
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import string
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from owlery.directory.base import Address, Directory, Mailbox, Recipient, normalise, parse_address
from owlery.directory.files import MapError, ReloadedOnChange, logical_lines
from owlery.errors import DirectoryUnavailable
from owlery.settings import Duration, SettingsError, Str, StrList, int_range, setting

UID_LIMIT = 4294967294       # (uid_t)-2: -1 is "no uid" to chown(2)

PASSWD_DOMAINS = setting(
    "passwd_domains", StrList, [],
    "Domains whose local parts are the local Unix accounts (like the domains of Postfix's "
    "mydestination for local(8)); the first is canonical: an account's mailbox is NAME@first. "
    "Required with directory_backend = \"passwd\" (an empty list does not start).")
PASSWD_UID_MIN = setting(
    "passwd_uid_min", int_range(0, UID_LIMIT), 1000,
    "Lowest uid of an account that is a mailbox. 1000: the first uid Debian and most "
    "distributions give to people (login.defs UID_MIN); below are root and the system "
    "accounts (daemon, www-data, postfix), never mailboxes, as Dovecot's first_valid_uid "
    "keeps them out.")
PASSWD_UID_MAX = setting(
    "passwd_uid_max", int_range(0, UID_LIMIT), 60000,
    "Highest uid of an account that is a mailbox. 60000: login.defs UID_MAX; above are "
    "nobody (65534) and the ranges systemd gives to dynamic and container users. Raise it for "
    "directories whose people have larger uids (sssd's ID mapping, systemd-homed's 60001-60513).")
PASSWD_MAILDIR_TEMPLATE = setting(
    "passwd_maildir_template", Str, "{home}/Maildir",
    "An account's Maildir: {home} (its home directory), {user} (the account name), {localpart}, "
    "{domain} (the first of passwd_domains) are substituted; it must give an absolute path.")
PASSWD_SIEVE_SCRIPT_TEMPLATE = setting(
    "passwd_sieve_script_template", Str, "{home}/.dovecot.sieve",
    "An account's active Sieve script (Dovecot's default personal script; a missing file is no "
    "script), with passwd_maildir_template's fields. Empty: the account names none, and "
    "delivery_sieve_script_template applies.")
PASSWD_ALIASES = setting(
    "passwd_aliases", Str, None,
    "A Postfix aliases(5) file (name: target, target) whose aliases hold in every passwd "
    "domain; |command, /file and :include: targets are left to Postfix's local(8). Unset: none.")
PASSWD_CHECK_INTERVAL = setting(
    "passwd_check_interval", Duration, 2, unit="s",
    doc="How often (at most) passwd_aliases is checked for changes; 0: at every lookup.")
PASSWD_STATE_SQLITE_TEMPLATE = setting(
    "passwd_state_sqlite_template", Str, "{home}/.owlery-state.sqlite",
    "Where `owlery lda` keeps an account's delivery state (vacation replies sent, Sieve duplicate "
    "and redirect tracking) when it runs as that account, as Postfix local(8) runs a "
    "mailbox_command, with state_backend = \"sqlite\": the account cannot write the daemons' "
    "state_sqlite_path (Dovecot keeps the same in ~/.dovecot.lda-dupes). {home} and {user} of "
    "the running account. Empty: state_sqlite_path. Redis and PostgreSQL stores are used as set.")

log = logging.getLogger("owlery.directory")

NAME_MAX_BYTES = 32
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")
_TEMPLATE_FIELDS = ("home", "user", "localpart", "domain")
# getpwnam_r(3): the statuses that mean "no such name" (0 on glibc; the others on some systems).
_NOT_FOUND = frozenset({0, errno.ENOENT, errno.ESRCH, errno.EBADF, errno.EPERM})


def account_state_settings(settings: Any) -> Any:
    """The settings `owlery lda` opens its state store with when it runs as a local account
    (not root; uid from passwd_uid_min to passwd_uid_max) on SQLite: state_sqlite_path moved
    to that account's passwd_state_sqlite_template. Otherwise `settings` unchanged."""
    uid = os.geteuid()
    template = settings.passwd_state_sqlite_template
    if (settings.state_backend != "sqlite" or not template or uid == 0
            or not settings.passwd_uid_min <= uid <= settings.passwd_uid_max):
        return settings
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        return settings
    path = template.replace("{home}", account.pw_dir.rstrip("/")).replace("{user}", account.pw_name)
    if not home_ok(account.pw_dir) or not path.startswith("/") or "{" in path:
        raise DirectoryUnavailable(f"account {account.pw_name}: home {account.pw_dir!r} gives no "
                                   f"absolute state path from passwd_state_sqlite_template")
    return settings.replace(state_sqlite_path=path)


def account_name_ok(name: str) -> bool:
    """A plausible account name (see the module docstring): only these are looked up."""
    return (0 < len(name) <= NAME_MAX_BYTES and name[0] not in "-." and not name.isdigit()
            and all(c in _NAME_CHARS for c in name))


def home_ok(home: str) -> bool:
    """An absolute path without '.' or '..' components, NUL or control characters."""
    return (home.startswith("/") and not any(ord(c) < 0x20 or ord(c) == 0x7f for c in home)
            and not any(part in (".", "..") for part in home.split("/")))


def getpwnam_r_status(name: str) -> int:
    """What getpwnam_r(3) returns for `name` (0 when found or when not found); 0 when libc
    cannot be asked. Only called on a miss (ctypes loads then, never on the found path)."""
    try:
        import ctypes
        func = ctypes.CDLL(None, use_errno=True).getpwnam_r
    except (ImportError, OSError, AttributeError):
        return 0
    func.restype = ctypes.c_int
    func.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                     ctypes.POINTER(ctypes.c_void_p)]
    entry = ctypes.create_string_buffer(256)          # struct passwd: 48 bytes on LP64
    size = 4096
    while True:
        buf = ctypes.create_string_buffer(size)
        result = ctypes.c_void_p()
        status = func(name.encode("utf-8", "surrogateescape"), entry, buf, size, ctypes.byref(result))
        if status != errno.ERANGE or size >= 1 << 22:
            return status
        size *= 4


def system_getpwnam(name: str) -> Any:
    """pwd.getpwnam, except that a lookup that failed (rather than found no such name) raises
    OSError: KeyError means "no such account" only."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        status = getpwnam_r_status(name)
        if status not in _NOT_FOUND:
            raise OSError(status, f"getpwnam({name}): {os.strerror(status)}") from None
        raise


def system_getpwall() -> list[Any]:
    return pwd.getpwall()


class AccountMailbox(Mailbox, frozen=True):
    """A Mailbox that is a Unix account: its uid and gid own the files delivery creates, and it
    names its own Sieve script (None: none named)."""

    uid: int | None = None
    gid: int | None = None
    sieve_script: str | None = None


class AliasRecipient(Recipient, frozen=True):
    """An alias reaching targets only Postfix's local(8) can deliver (`undeliverable`: the
    |commands, /files and :include:s): it exists, so mail to it is accepted at RCPT, but it
    resolves to no mailbox, so delivery refuses it whole (see the module docstring)."""

    undeliverable: tuple[str, ...] = ()

    @property
    def reaches_nothing(self) -> bool:
        return not self.undeliverable and not self.mailboxes and not self.remote


class _Alias:
    """One aliases(5) entry: deliverable targets, and what only local(8) can do."""

    __slots__ = ("line", "targets", "undeliverable")

    def __init__(self, line: int, targets: list[str], undeliverable: list[str]):
        self.line, self.targets, self.undeliverable = line, targets, undeliverable


def _split_targets(text: str, path: str, number: int) -> list[str]:
    """The comma-separated targets of one entry; double quotes protect commas and spaces. An
    unquoted address or name list may also be separated by white space; a |command, /file or
    :include: stays whole up to the next comma."""
    out: list[str] = []
    token: list[str] = []
    quoted = False
    in_quotes = False
    i = 0

    def flush() -> None:
        raw = "".join(token).strip()
        token.clear()
        if not raw:
            return
        if quoted or raw.startswith(("|", "/")) or raw.lower().startswith(":include:"):
            out.append(raw)
        else:
            out.extend(raw.split())

    while i < len(text):
        c = text[i]
        if in_quotes:
            if c == "\\" and i + 1 < len(text):
                token.append(text[i + 1])
                i += 1
            elif c == '"':
                in_quotes = False
            else:
                token.append(c)
        elif c == '"':
            in_quotes = quoted = True
        elif c == ",":
            flush()
            quoted = False
        else:
            token.append(c)
        i += 1
    if in_quotes:
        raise MapError(path, number, "unterminated double quote")
    flush()
    return out


def read_aliases(path: str) -> Iterator[tuple[str, list[str], int]]:
    """(name, targets, line number) for each entry of an aliases(5) file."""
    for entry, start in logical_lines(path):
        yield _alias_entry(" ".join(entry), path, start)


def _alias_entry(text: str, path: str, number: int) -> tuple[str, list[str], int]:
    if text.startswith('"'):
        end = text.find('"', 1)
        if end < 0:
            raise MapError(path, number, "unterminated double quote in the name")
        name, rest = text[1:end], text[end + 1:].lstrip()
        if not rest.startswith(":"):
            raise MapError(path, number, f"expected ':' after the name {name!r}")
        rest = rest[1:]
    else:
        name, colon, rest = text.partition(":")
        name = name.strip()
        if not colon or not name or any(c.isspace() for c in name):
            raise MapError(path, number, "expected 'name: target, target'")
    targets = _split_targets(rest, path, number)
    if not targets:
        raise MapError(path, number, f"alias {name} has no target")
    return name, targets, number


def _is_undeliverable(target: str) -> bool:
    return target.startswith(("|", "/")) or target.lower().startswith(":include:")


class _Walk:
    """What one resolve() found so far."""

    __slots__ = ("mailboxes", "remote", "undeliverable")

    def __init__(self) -> None:
        self.mailboxes: dict[str, Mailbox] = {}
        self.remote: list[str] = []
        self.undeliverable: list[str] = []

    def size(self) -> int:
        return len(self.mailboxes) + len(self.remote) + len(self.undeliverable)


def config_error(settings: Any, key: str, reason: str) -> SettingsError:
    """A SettingsError naming `key` (and its file and line when the settings came from one)."""
    line_of = getattr(settings, "line_of", None)
    return SettingsError(reason, path=getattr(settings, "path", None), key=key,
                         line=line_of(key) if line_of else None)


def _check_template(settings: Any, name: str, template: str) -> None:
    """A template may use only the four fields and must give an absolute path."""
    def fail(reason: str) -> SettingsError:
        return config_error(settings, name, reason)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise fail(f"not a path template: {e}") from None
    for _, field_name, spec, conv in parsed:
        if field_name is not None and (field_name not in _TEMPLATE_FIELDS or spec or conv):
            raise fail(f"unknown field {{{field_name}}} (use {', '.join('{' + f + '}' for f in _TEMPLATE_FIELDS)})")
    if not template.startswith(("/", "{home}")):
        raise fail("must give an absolute path: start with / or {home}")


class PasswdDirectory(ReloadedOnChange, Directory):
    """Directory of local Unix accounts (see the module docstring).

    `getpwnam` / `getpwall`: the account source (tests inject one); default the system's
    (system_getpwnam, system_getpwall, looked up when the directory is made)."""

    def __init__(self, settings: Any, clock: Callable[[], float] = time.monotonic,
                 getpwnam: Callable[[str], Any] | None = None,
                 getpwall: Callable[[], list[Any]] | None = None):
        self.settings = settings
        self.clock = clock
        self._getpwnam = getpwnam if getpwnam is not None else system_getpwnam
        self._getpwall = getpwall if getpwall is not None else system_getpwall
        self.delimiters = settings.directory_recipient_delimiter
        self.case_sensitive = settings.directory_local_part_case_sensitive
        self.depth_max = settings.directory_alias_depth_max
        self.targets_max = settings.directory_alias_targets_max
        self.domains = self._domains(settings)
        self.canonical = self.domains[0]
        self.uid_min, self.uid_max = settings.passwd_uid_min, settings.passwd_uid_max
        if self.uid_min > self.uid_max:
            raise config_error(settings, "passwd_uid_min", f"{self.uid_min} is above passwd_uid_max ({self.uid_max})")
        self.maildir_template = settings.passwd_maildir_template
        _check_template(settings, "passwd_maildir_template", self.maildir_template)
        self.sieve_template = settings.passwd_sieve_script_template or None
        if self.sieve_template is not None:
            _check_template(settings, "passwd_sieve_script_template", self.sieve_template)
        self.aliases_path = settings.passwd_aliases
        self.interval = settings.passwd_check_interval
        self._warned: set[tuple[str, tuple[str, ...]]] = set()
        self._lock = threading.Lock()
        self._stamps = self._stat()
        self._last_check = clock()
        self.aliases = self._load()          # at start a broken file is an error, not a warning

    def _domains(self, settings: Any) -> tuple[str, ...]:
        domains: list[str] = []
        for raw in settings.passwd_domains:
            domain = raw.strip().lower().rstrip(".")
            if (not domain or domain.startswith(("@", ".")) or "/" in domain or "@" in domain
                    or any(c.isspace() or ord(c) < 0x20 for c in domain)):
                raise config_error(settings, "passwd_domains", f"{raw!r} is not a domain name")
            if domain not in domains:
                domains.append(domain)
        if not domains:
            raise config_error(
                settings, "passwd_domains", "directory_backend = \"passwd\" needs at least one domain (the domains "
                "whose local parts are the local accounts, e.g. [\"example.org\"])")
        return tuple(domains)

    # -- the aliases file ------------------------------------------------------------

    def _stat(self) -> Any:
        if self.aliases_path is None:
            return None
        try:
            st = os.stat(self.aliases_path)
        except OSError:
            return "missing"
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _fold(self, name: str) -> str:
        return name if self.case_sensitive else name.lower()

    def _load(self) -> dict[str, _Alias]:
        aliases: dict[str, _Alias] = {}
        if self.aliases_path is None:
            return aliases
        for name, targets, number in read_aliases(self.aliases_path):
            deliverable = [t for t in targets if not _is_undeliverable(t)]
            undeliverable = [t for t in targets if _is_undeliverable(t)]
            aliases[self._fold(name)] = _Alias(number, deliverable, undeliverable)
            key = (self._fold(name), tuple(undeliverable))
            if undeliverable and key not in self._warned:
                self._warned.add(key)
                log.warning("directory: %s:%d: alias %s: Owlery cannot deliver %s (only Postfix's local(8) "
                            "can: let it expand the alias through alias_maps); delivery refuses this alias",
                            self.aliases_path, number, name, ", ".join(undeliverable))
        return aliases

    def _maybe_reload(self) -> None:
        if self.aliases_path is not None:
            super()._maybe_reload()

    def _reload_logged(self) -> None:
        try:
            self.aliases = self._load()
            log.info("directory: %s re-read", self.aliases_path)
        except MapError as e:
            log.error("directory: keeping the previous aliases: %s", e)


    # -- accounts ----------------------------------------------------------------------

    def _account(self, name: str) -> Any:
        """The account `name` when it is a mailbox (a plausible name, known, uid in range), else None."""
        if not account_name_ok(name):
            return None
        try:
            pw = self._getpwnam(name)
        except KeyError:
            return None
        except OSError as e:
            raise DirectoryUnavailable(f"passwd: account database: {e}") from None
        if not self.uid_min <= pw.pw_uid <= self.uid_max:
            log.debug("directory: account %s (uid %d) is outside passwd_uid_min..passwd_uid_max: not a mailbox",
                      name, pw.pw_uid)
            return None
        return pw

    def _render(self, template: str, name: str, pw: Any) -> str:
        home = pw.pw_dir
        if "{home}" in template and not home_ok(home):
            log.warning("directory: account %s has home directory %r, not an absolute path: no mailbox path",
                        name, home)
            raise DirectoryUnavailable(f"passwd: account {name}: home directory {home!r} is not an absolute path")
        path = template.format(home=home.rstrip("/") if home != "/" else "", user=name, localpart=name,
                               domain=self.canonical)
        if not home_ok(path):
            raise DirectoryUnavailable(f"passwd: account {name}: {template!r} gives {path!r}, not an absolute path")
        return path

    def _mailbox(self, name: str, pw: Any) -> AccountMailbox:
        return AccountMailbox(
            address=f"{name}@{self.canonical}",
            maildir=self._render(self.maildir_template, name, pw),
            sieve_script=self._render(self.sieve_template, name, pw) if self.sieve_template else None,
            uid=pw.pw_uid, gid=pw.pw_gid)

    # -- lookups -------------------------------------------------------------------------

    def _parse(self, address: str) -> Address:
        # A bare account name is the account's mailbox, as Dovecot's passwd userdb takes one
        # (`owlery-lda -d "$USER"`, the mailbox_command `owlery postfix` prints for local(8)).
        if "@" not in address:
            address = f"{address}@{self.canonical}"
        return parse_address(address, self.delimiters, self.case_sensitive)

    def hosted_domains(self) -> list[str] | None:
        return sorted(self.domains)

    def hosts_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains

    def resolve(self, address: str) -> Recipient:
        self._maybe_reload()
        try:
            a = self._parse(address)
        except ValueError:
            return Recipient(address, "unknown")
        if a.domain not in self.domains:
            return Recipient(a.full, "not_local")
        walk = _Walk()
        kind = self._expand(a, walk, 0, set())
        if kind == "unknown":
            return Recipient(a.full, "unknown")
        if walk.undeliverable:
            return AliasRecipient(a.full, "alias", undeliverable=tuple(dict.fromkeys(walk.undeliverable)))
        return Recipient(a.full, kind, tuple(walk.mailboxes.values()), tuple(dict.fromkeys(walk.remote)))

    def _expand(self, a: Address, walk: _Walk, depth: int, seen: set[str]) -> str:
        """Add what the local address `a` reaches; "mailbox", "alias" or "unknown". An alias
        met a second time on one path (a loop, or `alice: alice, bob`) is not expanded again:
        the name is then its account's mailbox, as local(8) does."""
        aliases_allowed = a.local not in seen
        seen.add(a.local)
        full = a.full.rpartition("@")[0]
        for key in dict.fromkeys((full, a.local)):
            alias = self.aliases.get(key) if aliases_allowed else None
            if alias is not None:
                if depth >= self.depth_max:
                    log.warning("directory: alias %s nested deeper than %d; ignored", key, self.depth_max)
                    return "alias"
                walk.undeliverable.extend(alias.undeliverable)
                for target in alias.targets:
                    if walk.size() >= self.targets_max:
                        log.warning("directory: %s expands to more than %d targets; rest ignored",
                                    a.full, self.targets_max)
                        break
                    self._expand_target(key, target, walk, depth, seen)
                return "alias"
            pw = self._account(key)
            if pw is not None:
                box = self._mailbox(key, pw)
                walk.mailboxes.setdefault(box.address, box)
                return "mailbox"
        return "unknown"

    def _expand_target(self, key: str, target: str, walk: _Walk, depth: int, seen: set[str]) -> None:
        if target.startswith("\\"):
            name = self._fold(target[1:])
            pw = self._account(name)
            if pw is None:
                log.warning("directory: alias %s points at %s, which is no mailbox account", key, target)
                return
            box = self._mailbox(name, pw)
            walk.mailboxes.setdefault(box.address, box)
            return
        text = target if "@" in target else f"{target}@{self.canonical}"
        try:
            ta = self._parse(text)
        except ValueError:
            log.warning("directory: alias %s has a bad target %r; ignored", key, target)
            return
        if ta.domain not in self.domains:
            walk.remote.append(target)
            return
        if self._expand(ta, walk, depth + 1, seen) == "unknown":
            log.warning("directory: alias %s points at unknown local address %s", key, ta.full)

    def expand_once(self, key: str) -> list[str] | None:
        self._maybe_reload()
        text = key.strip()
        if text.startswith("@"):
            return None                     # aliases(5) has no catch-all
        try:
            k = normalise(text, self.case_sensitive)
        except ValueError:
            return None
        local, _, domain = k.rpartition("@")
        if domain not in self.domains:
            return None
        alias = self.aliases.get(local)
        if alias is not None:
            if alias.undeliverable:
                return [k]                  # Postfix stops here; its local(8) expands the alias
            out = []
            for target in alias.targets[: self.targets_max]:
                name = target[1:] if target.startswith("\\") else target
                out.append(name if "@" in name else f"{name}@{self.canonical}")
            return out
        return [k] if self._account(local) is not None else None

    def mailboxes(self) -> Iterator[Mailbox]:
        """Every account the account database lists (getpwall(3): with sssd, only when its
        enumerate option is on) whose uid is in range, by name."""
        try:
            entries = self._getpwall()
        except OSError as e:
            raise DirectoryUnavailable(f"passwd: account database: {e}") from None
        seen: set[str] = set()
        for pw in sorted(entries, key=lambda p: p.pw_name):
            name = pw.pw_name
            if name in seen or not account_name_ok(name) or self._fold(name) != name:
                continue
            seen.add(name)
            if not self.uid_min <= pw.pw_uid <= self.uid_max:
                continue
            try:
                box = self._mailbox(name, pw)
            except DirectoryUnavailable:
                continue                    # a bad home directory: logged, the walk goes on
            yield box

    def list_policy(self, address: str) -> None:
        return None                         # aliases(5) has no posting policy: no protected lists

    def identities(self, address: str) -> frozenset[str]:
        try:
            return frozenset({self._parse(address).base})
        except ValueError:
            return frozenset()
