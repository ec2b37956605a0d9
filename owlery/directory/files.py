"""Files directory backend: Postfix-style map files for mailboxes, aliases, quotas, lists, spam levels.

Every file uses Postfix's table syntax (postmap(1) "key whitespace value"): one entry per
logical line, `#` comments and blank lines ignored, a line starting with whitespace
continues the previous one. Values are separated by commas and/or spaces.

  files_mailboxes   alice@example.org     example.org/alice/Maildir    (path; relative to
                    @example.net          example.net/catchall/Maildir  files_maildir_base;
                    bob@example.org                                     none: delivery's template)
  files_aliases     sales@example.org     alice@example.org, bob@example.org, x@remote.test
                    @example.com          @example.org        (domain alias: user@com -> user@org)
                    @example.org          postmaster@example.org   (catch-all)
  files_quotas      alice@example.org     100M                 (or "104857600S,5000C", "0" = none)
                    @example.org          1G,10000C            (domain default)
  files_over_quota  carol@example.org                           (known full: refuse at RCPT)
  files_lists       csall@example.org     members, authenticated, @example.org, 192.0.2.0/24, boss@x.test
  files_domains     example.org                                 (hosted domains; unset: the
                                                                 domains named in the files above)
  files_spam_levels bob@example.org       tag2=4.5 quarantine=6          (per-recipient spam levels,
                    @example.org          tag=-999 quarantine=8            amavis style; kill= is
                    example.net           tag2=6.3 quarantine=10 reject=20 quarantine=)
  files_content_policy bob@example.org    banned_files_lover       (per-recipient content policy,
                    @example.net          spam_lover, bank=relaxed  owlery.content_policy; the most
                                                                    specific entry wins whole)
  files_mail_hosts  alice@example.org     backend-b.example.org   (a mailbox's back end, its "mail
                    @example.org          backend-a.example.org    home server": host name or IP;
                    carol@example.org     -                        @domain: the domain's default;
                                                                   "-": none, this host)

Lookups try user+detail@domain, then user@domain, then the @domain catch-all; unlike
Postfix's virtual_alias_maps a catch-all alias never hides a specific mailbox. A mailbox's
back end is looked up as its quota is (its address, the key it matched, @domain); the mail
hosts file adds no hosted domain. Spam levels
are looked up per level along user+detail@domain, user@domain, @domain (that domain only),
then domain and its parent domains (like access(5): the domain and its subdomains); a level
not set anywhere is the milter's global one. The spam levels file adds no hosted domain. The files
are re-read when one changes (checked at most every `files_check_interval`) and on
reload(); a broken file at re-read keeps the previous tables and logs why.
Talks to: the file system. Tests: tests/directory/test_contract.py, tests/directory/test_files.py
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from owlery.directory.base import (SPAM_LEVEL_NAMES, Address, Directory, ListPolicy, ListTooLarge, Mailbox,
                                   Recipient, SpamLevels, normalise, parse_address, parse_mail_host, parse_spam_levels)
from owlery.record import Record, field
from owlery.settings import Duration, Str, parse_size, setting

FILES_MAILBOXES = setting("files_mailboxes", Str, None,
                          "Mailbox map file: address (or @domain catch-all) and its Maildir path.")
FILES_ALIASES = setting("files_aliases", Str, None,
                        "Virtual alias map file: address (or @domain) and one or more target addresses. "
                        "Postfix can read the same file: virtual_alias_maps = texthash:FILE.")
FILES_QUOTAS = setting("files_quotas", Str, None,
                       "Quota map file: address or @domain and a limit (100M, 104857600S,5000C, or 0).")
FILES_OVER_QUOTA = setting("files_over_quota", Str, None,
                           "Over-quota list file: one address per line; these are refused at RCPT as full.")
FILES_LISTS = setting("files_lists", Str, None,
                      "Protected lists file: list address and who may post (members, authenticated, "
                      "user@domain, @domain, networks).")
FILES_SPAM_LEVELS = setting(
    "files_spam_levels", Str, None,
    "Spam levels map file: address, @domain or domain, and the recipient's own levels "
    "(tag=, tag2=, quarantine= (or kill=), reject=; any left out is the global spam_*_level). "
    "Read by the milter's spam stage when spam_directory_levels is on.")
FILES_CONTENT_POLICY = setting(
    "files_content_policy", Str, None,
    "Content policy map file: address, @domain or domain, and policy tokens (banned_files_lover, "
    "virus_lover, spam_lover, bank=NAME of content_policy_banks), like amavis' *_lovers; the most "
    "specific entry wins. Read by the milter's banned, antivirus, spam and quarantine stages.")
FILES_MAIL_HOSTS = setting(
    "files_mail_hosts", Str, None,
    "Mail hosts map file: address or @domain (the domain's default) and the back end holding the "
    "mailbox (its mail home server: a host name or IP address; \"-\" for none). Read by the policy "
    "daemon's quota check on relays and by the socketmap's transport_maps. Unset: no back ends.")
FILES_DOMAINS = setting("files_domains", Str, None,
                        "Hosted domains file, one per line. Unset: every domain named in the other files.")
FILES_MAILDIR_BASE = setting("files_maildir_base", Str, "/var/lib/owlery/mail",
                             "Base directory for relative Maildir paths in files_mailboxes "
                             "(like Postfix's virtual_mailbox_base).")
FILES_CHECK_INTERVAL = setting("files_check_interval", Duration, 2, unit="s",
                               doc="How often (at most) the files are checked for changes; 0: at every lookup.")

log = logging.getLogger("owlery.directory")
_SPLIT = re.compile(r"[,\s]+")


class MapError(ValueError):
    """A map file that cannot be read, with file and line (`message`: the whole text instead)."""

    def __init__(self, path: str, line: int | None, reason: str, message: str | None = None):
        self.path, self.line, self.reason = path, line, reason
        super().__init__(message or (f"{path}:{line}: {reason}" if line else f"{path}: {reason}"))


def read_map(path: str) -> Iterator[tuple[str, list[str], int]]:
    """(key, values, line number) for each logical line of a Postfix-style table."""
    for entry, start in logical_lines(path):
        yield _split_entry(entry, start)


def logical_lines(path: str) -> Iterator[tuple[list[str], int]]:
    """(the stripped physical lines, the first one's number) of each logical line of a Postfix
    table or aliases(5) file: '#' comment and empty lines skipped, a line starting with white
    space continues the one before (postmap(1), postalias(1))."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise MapError(path, None, f"cannot read: {e.strerror}") from None
    entry: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0].isspace():
            if not entry:
                raise MapError(path, number, "continuation line without an entry before it")
            entry.append(stripped)
            continue
        if entry:
            yield entry, start
        entry, start = [stripped], number
    if entry:
        yield entry, start


def _split_entry(parts: list[str], number: int) -> tuple[str, list[str], int]:
    text = " ".join(parts)
    key, _, rest = text.partition(" ")
    if "\t" in key:
        key, _, more = key.partition("\t")
        rest = more + " " + rest
    values = [v for v in _SPLIT.split(rest.strip()) if v]
    return key, values, number


def parse_quota(values: list[str]) -> tuple[int | None, int | None]:
    """(bytes, messages) from "100M", "104857600S,5000C", "1G 10000C", "0" / "none" (no limit)."""
    size: int | None = None
    count: int | None = None
    for v in (part for value in values for part in value.split(",") if part):
        low = v.lower()
        if low in ("0", "none", "unlimited"):
            continue
        if low.endswith("c") and low[:-1].isdigit():
            count = int(low[:-1]) or None
        elif low.endswith("s") and low[:-1].isdigit():
            size = int(low[:-1]) or None
        else:
            size = parse_size(v) or None       # raises ValueError on junk
    return size, count


class _Tables(Record):
    mailboxes: dict[str, str | None]
    aliases: dict[str, list[str]]
    quotas: dict[str, tuple[int | None, int | None]]
    over_quota: frozenset[str]
    lists: dict[str, list[str]]
    domains: frozenset[str]
    spam_levels: dict[str, SpamLevels] = field(default_factory=dict)
    mail_hosts: dict[str, str | None] = field(default_factory=dict)
    content_policy: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _key(text: str, case_sensitive: bool) -> str:
    """Normalise a map key: @domain stays @domain (lower); addresses by the address rules."""
    if text.startswith("@"):
        return text.lower()
    return normalise(text, case_sensitive) if "@" in text else text.lower()


class ReloadedOnChange:
    """Files re-read when their stamps (`_stat()`) change, looked at most every `interval`
    seconds of `clock`, and at reload(); `_reload_logged()` re-reads them, keeping what it had
    when the new text is broken. The class sets clock, interval, _lock, _stamps, _last_check."""

    clock: Any
    interval: float
    _lock: Any
    _stamps: Any
    _last_check: float

    def _stat(self) -> Any:
        raise NotImplementedError

    def _reload_logged(self) -> None:
        raise NotImplementedError

    def _maybe_reload(self) -> None:
        now = self.clock()
        if now - self._last_check < self.interval:
            return
        with self._lock:
            if now - self._last_check < self.interval:
                return
            self._last_check = now
            stamps = self._stat()
            if stamps != self._stamps:
                self._stamps = stamps
                self._reload_logged()

    def reload(self) -> None:
        with self._lock:
            self._stamps = self._stat()
            self._last_check = self.clock()
            self._reload_logged()


class FilesDirectory(ReloadedOnChange, Directory):
    """Directory read from map files (see the module docstring for formats)."""

    def __init__(self, settings: Any, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self.delimiters = settings.directory_recipient_delimiter
        self.case_sensitive = settings.directory_local_part_case_sensitive
        self.maildir_base = settings.files_maildir_base
        self.depth_max = settings.directory_alias_depth_max
        self.targets_max = settings.directory_alias_targets_max
        self.paths = {name: getattr(settings, "files_" + name)
                      for name in ("mailboxes", "aliases", "quotas", "over_quota", "lists", "domains",
                                   "spam_levels", "mail_hosts", "content_policy")}
        self.interval = settings.files_check_interval
        self._lock = threading.Lock()
        self._stamps = self._stat()
        self._last_check = clock()
        self.tables = self._load()          # at start a broken file is an error, not a warning

    # -- loading -----------------------------------------------------------------

    def _stat(self) -> dict[str, Any]:
        out = {}
        for name, path in self.paths.items():
            if path is None:
                continue
            try:
                st = os.stat(path)
                out[name] = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                out[name] = None
        return out

    def _load(self) -> _Tables:
        try:
            return self._load_tables()
        except MapError as e:
            raise self._naming_setting(e) from None

    def _naming_setting(self, e: MapError) -> MapError:
        """A file that cannot be read at all (missing, no permission) is a mistake in the
        settings: name the setting and where it is set, as a bad value is named
        ("owlery.toml:3: files_mailboxes: cannot read /x/mailboxes: No such file or directory")."""
        if e.line is not None:
            return e
        name = next((f"files_{key}" for key, path in self.paths.items() if path == e.path), None)
        if name is None:
            return e
        line = self.settings.line_of(name) if hasattr(self.settings, "line_of") else None
        where = f"{self.settings.path}:{line}: " if line and self.settings.path else ""
        reason = e.reason.removeprefix("cannot read: ")
        return MapError(e.path, None, e.reason, message=f"{where}{name}: cannot read {e.path}: {reason}")

    def _load_tables(self) -> _Tables:
        cs = self.case_sensitive
        mailboxes: dict[str, str | None] = {}
        aliases: dict[str, list[str]] = {}
        quotas: dict[str, tuple[int | None, int | None]] = {}
        over: set[str] = set()
        lists: dict[str, list[str]] = {}
        domains: set[str] = set()
        p = self.paths
        if p["mailboxes"]:
            for key, values, _ in read_map(p["mailboxes"]):
                path = values[0] if values and values[0] not in ("-", "none") else None
                if path is not None and not os.path.isabs(path):
                    path = os.path.join(self.maildir_base, path)
                mailboxes[_key(key, cs)] = path
        if p["aliases"]:
            for key, values, number in read_map(p["aliases"]):
                if not values:
                    raise MapError(p["aliases"], number, f"alias {key} has no target")
                aliases[_key(key, cs)] = values
        if p["quotas"]:
            for key, values, number in read_map(p["quotas"]):
                try:
                    quotas[_key(key, cs)] = parse_quota(values)
                except ValueError as e:
                    raise MapError(p["quotas"], number, f"bad quota for {key}: {e}") from None
        if p["over_quota"]:
            for key, _, _ in read_map(p["over_quota"]):
                over.add(_key(key, cs))
        if p["lists"]:
            for key, values, number in read_map(p["lists"]):
                try:
                    ListPolicy.from_tokens(key, values)
                except ValueError as e:
                    raise MapError(p["lists"], number, str(e)) from None
                lists[_key(key, cs)] = values
        if p["domains"]:
            for key, _, _ in read_map(p["domains"]):
                domains.add(key.lower().lstrip("@"))
        else:
            for table in (mailboxes, aliases, lists):
                for k in table:
                    domains.add(k.rpartition("@")[2])
        spam_levels: dict[str, SpamLevels] = {}
        if p["spam_levels"]:
            for key, values, number in read_map(p["spam_levels"]):
                try:
                    spam_levels[_key(key, cs)] = parse_spam_levels(values)
                except ValueError as e:
                    raise MapError(p["spam_levels"], number, f"{key}: {e}") from None
        mail_hosts: dict[str, str | None] = {}
        if p["mail_hosts"]:
            for key, values, number in read_map(p["mail_hosts"]):
                if len(values) != 1:
                    raise MapError(p["mail_hosts"], number, f"{key}: expected one host name, got {len(values)}")
                try:
                    mail_hosts[_key(key, cs)] = parse_mail_host(values[0])
                except ValueError as e:
                    raise MapError(p["mail_hosts"], number, f"{key}: {e}") from None
        content_policy: dict[str, tuple[str, ...]] = {}
        if p["content_policy"]:
            from owlery.content_policy import check_token, split_tokens
            for key, values, number in read_map(p["content_policy"]):
                try:
                    content_policy[_key(key, cs)] = tuple(check_token(t) for t in split_tokens(values))
                except ValueError as e:
                    raise MapError(p["content_policy"], number, f"{key}: {e}") from None
        return _Tables(mailboxes, aliases, quotas, frozenset(over), lists, frozenset(domains), spam_levels,
                       mail_hosts, content_policy)

    def _reload_logged(self) -> None:
        try:
            self.tables = self._load()
            log.info("directory: map files re-read")
        except MapError as e:
            log.error("directory: keeping the previous tables: %s", e)

    # -- lookups -------------------------------------------------------------------

    def _parse(self, address: str) -> Address:
        return parse_address(address, self.delimiters, self.case_sensitive)

    def hosted_domains(self) -> list[str] | None:
        self._maybe_reload()
        return sorted(self.tables.domains)

    def hosts_domain(self, domain: str) -> bool:
        self._maybe_reload()
        return domain.lower().rstrip(".") in self.tables.domains

    def expand_once(self, key: str) -> list[str] | None:
        self._maybe_reload()
        t = self.tables
        text = key.strip()
        if text.startswith("@"):
            k = text.lower().rstrip(".")
        else:
            try:
                k = normalise(text, self.case_sensitive)
            except ValueError:
                return None
        if k.rpartition("@")[2] not in t.domains:
            return None
        if k in t.aliases:
            return list(t.aliases[k][: self.targets_max])
        return [k] if k in t.mailboxes else None

    def resolve(self, address: str) -> Recipient:
        self._maybe_reload()
        t = self.tables
        try:
            a = self._parse(address)
        except ValueError:
            return Recipient(address, "unknown")
        if a.domain not in t.domains:
            return Recipient(a.full, "not_local")
        mailboxes: dict[str, Mailbox] = {}
        remote: list[str] = []
        lists: list[str] = []
        kind = self._expand(t, a, mailboxes, remote, 0, set(), lists=lists)
        if kind == "unknown":
            return Recipient(a.full, "unknown")
        return Recipient(a.full, kind, tuple(mailboxes.values()), tuple(dict.fromkeys(remote)),
                         lists=tuple(dict.fromkeys(lists)))

    def _lookup_keys(self, a: Address) -> list[str]:
        # Specific entries first in both tables, then the catch-all (see module docstring).
        return a.candidates()

    def _expand(self, t: _Tables, a: Address, mailboxes: dict[str, Mailbox], remote: list[str],
                depth: int, seen: set[str], lists: list[str] | None = None) -> str:
        """Add what `a` reaches; return "mailbox", "alias" or "unknown".

        `lists` (when not None) collects the first protected list on each path (see
        Recipient.lists); below one, None is passed on.
        """
        keys = self._lookup_keys(a)
        aliases_allowed = a.base not in seen
        seen.add(a.base)
        for key in keys:
            if (lists is not None and key in t.lists and not key.startswith("@")
                    and (key in t.mailboxes or (aliases_allowed and key in t.aliases))):
                lists.append(key)
                lists = None
            if aliases_allowed and key in t.aliases:
                if depth >= self.depth_max:
                    log.warning("directory: alias %s nested deeper than %d; ignored", key, self.depth_max)
                    return "alias"
                for target in t.aliases[key]:
                    if len(mailboxes) + len(remote) >= self.targets_max:
                        log.warning("directory: %s expands to more than %d targets; rest ignored",
                                    a.full, self.targets_max)
                        break
                    self._expand_target(t, a, key, target, mailboxes, remote, depth, seen, lists)
                return "alias"
            if key in t.mailboxes:
                box = self._mailbox(t, key if not key.startswith("@") else a.base, key)
                mailboxes.setdefault(box.address, box)
                return "mailbox"
        return "unknown"

    def _expand_target(self, t: _Tables, a: Address, key: str, target: str, mailboxes: dict[str, Mailbox],
                       remote: list[str], depth: int, seen: set[str], lists: list[str] | None = None) -> None:
        if target.startswith("@"):
            # Domain alias: user@old -> user@new, keeping the extension.
            target = f"{a.local}{a.delimiter}{a.detail}@{target[1:]}"
        try:
            ta = self._parse(target)
        except ValueError:
            log.warning("directory: alias %s has a bad target %r; ignored", key, target)
            return
        if ta.domain not in t.domains:
            remote.append(target)
            return
        if self._expand(t, ta, mailboxes, remote, depth + 1, seen, lists) == "unknown":
            log.warning("directory: alias %s points at unknown local address %s", key, ta.full)

    def _mailbox(self, t: _Tables, address: str, key: str) -> Mailbox:
        domain = address.rpartition("@")[2]
        size, count = t.quotas.get(address, t.quotas.get(key, t.quotas.get("@" + domain, (None, None))))
        host = t.mail_hosts.get(address, t.mail_hosts.get(key, t.mail_hosts.get("@" + domain)))
        return Mailbox(address=address, maildir=t.mailboxes[key], quota_bytes=size, quota_messages=count,
                       over_quota=address in t.over_quota, mail_host=host)

    def mailboxes(self) -> Iterator[Mailbox]:
        self._maybe_reload()
        t = self.tables
        for key in sorted(t.mailboxes):
            if not key.startswith("@"):              # a catch-all mailbox is reached, not walked
                yield self._mailbox(t, key, key)

    def list_policy(self, address: str) -> ListPolicy | None:
        self._maybe_reload()
        t = self.tables
        try:
            a = self._parse(address)
        except ValueError:
            return None
        for key in (a.full, a.base):
            if key in t.lists:
                members: set[str] = set()
                for target in t.aliases.get(key, ()):
                    if "@" in target and not target.startswith("@"):
                        members.add(normalise(target, self.case_sensitive))
                reached = self.resolve(key)
                members.update(m.address for m in reached.mailboxes if not m.address.startswith("@"))
                return ListPolicy.from_tokens(key, t.lists[key], members=frozenset(members))
        return None

    def list_member(self, list_address: str, address: str) -> bool | None:
        """An alias map entry is a group: a breadth-first walk of its targets and of the aliases
        they name, stopping at the first target equal to `address` (see Directory.list_member)."""
        self._maybe_reload()
        t = self.tables
        try:
            la = self._parse(list_address)
        except ValueError:
            return None
        if la.domain not in t.domains:
            return None
        key = next((k for k in dict.fromkeys((la.full, la.base)) if k in t.aliases), None)
        if key is None:
            return None
        if not address:
            return False
        try:
            want = normalise(address, self.case_sensitive)
        except ValueError:
            return False
        seen = {key}
        level = [key]
        visited = 0
        for _depth in range(self.depth_max):
            below = []
            for k in level:
                for target in t.aliases.get(k, ()):
                    visited += 1
                    if visited > self.targets_max:
                        raise ListTooLarge(f"{key}: deciding membership needs more than "
                                           f"{self.targets_max} entries (directory_alias_targets_max)")
                    if target.startswith("@"):
                        continue                # a domain alias names no member
                    try:
                        tn = normalise(target, self.case_sensitive)
                    except ValueError:
                        continue
                    if tn == want:
                        return True
                    if tn in t.aliases and tn not in seen:
                        seen.add(tn)
                        below.append(tn)
            if not below:
                return False
            level = below
        return False

    def identities(self, address: str) -> frozenset[str]:
        try:
            return frozenset({self._parse(address).base})
        except ValueError:
            return frozenset()

    def spam_levels(self, address: str) -> SpamLevels:
        self._maybe_reload()
        table = self.tables.spam_levels
        try:
            a = self._parse(address)
        except ValueError:
            return SpamLevels()
        labels = a.domain.split(".")
        keys = a.candidates() + [".".join(labels[i:]) for i in range(len(labels))]
        found = SpamLevels()
        for key in keys:
            if key in table:
                found = found.over(table[key])
                if all(getattr(found, name) is not None for name in SPAM_LEVEL_NAMES):
                    break
        return found

    def content_policy(self, address: str) -> tuple[str, ...]:
        self._maybe_reload()
        table = self.tables.content_policy
        if not table:
            return ()
        try:
            a = self._parse(address)
        except ValueError:
            return ()
        labels = a.domain.split(".")
        for key in a.candidates() + [".".join(labels[i:]) for i in range(len(labels))]:
            if key in table:
                return table[key]
        return ()
