"""The directory interface: who our users are, where they live, their quotas, protected lists.

One interface, two backends (owlery/directory/files.py: Postfix-style map files;
owlery/directory/ldap.py: LDAP via ldap3), wrapped by a TTL cache
(owlery/directory/cache.py). Everything that asks "does this recipient exist, what
mailboxes does this address reach, how big may they get, who may post to this list"
goes through `Directory`:

    from owlery.directory import open_directory
    directory = open_directory(settings)           # cached backend chosen by directory_backend
    r = directory.resolve("Alice+news@Example.ORG")   # BLOCKING: run it in a thread pool
    r.kind        # "mailbox" | "alias" | "unknown" | "not_local"
    r.mailboxes   # local final mailboxes (Mailbox) the address delivers to, aliases expanded
    r.remote      # non-local addresses it forwards to
    r.lists       # protected lists whose posting policy governs it (itself, or reached through aliases)
    m = r.mailboxes[0]; m.address, m.maildir, m.quota_bytes, m.over_quota, m.mail_host
    directory.spam_levels("bob@example.org")   # SpamLevels(tag, tag2, quarantine, reject), None = global
    directory.content_policy("bob@example.org")  # ("banned_files_lover",): owlery.content_policy tokens
    directory.expand_once("sales@example.org")  # one alias step, exact key (the socketmap's virtual_alias_maps)

Addresses: the domain is always compared in lower case; the local part too unless
`directory_local_part_case_sensitive`. `directory_recipient_delimiter` (like Postfix's
recipient_delimiter, each character a delimiter) splits `user+detail`: lookups try
`user+detail@domain`, then `user@domain`, then the catch-all `@domain`. A domain we
do not host resolves to "not_local" (the policy daemon answers DUNNO: not our
business). Methods may raise `owlery.errors.DirectoryUnavailable` when the backend
cannot answer now (never "unknown" for a server that is down).
Tests: tests/directory/ (one contract suite run against both backends).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from owlery.record import Record
from owlery.settings import Bool, Str, int_range, setting

DIRECTORY_RECIPIENT_DELIMITER = setting(
    "directory_recipient_delimiter", Str, "+",
    "Characters that separate a local part from its extension (user+detail), like Postfix's "
    "recipient_delimiter; each character is a delimiter. Empty: no extensions.")
DIRECTORY_LOCAL_PART_CASE_SENSITIVE = setting(
    "directory_local_part_case_sensitive", Bool, False,
    "Compare local parts case-sensitively (RFC 5321 allows it; nearly nobody wants it).")

DIRECTORY_ALIAS_DEPTH_MAX = setting(
    "directory_alias_depth_max", int_range(1, 100), 20,
    "How deep aliases and forwarding addresses are followed (an alias pointing at an alias...); "
    "deeper targets are ignored and logged, like a loop.")
DIRECTORY_ALIAS_TARGETS_MAX = setting(
    "directory_alias_targets_max", int_range(1, 1_000_000), 10_000,
    "Most addresses one alias or list expands to; the rest are ignored and logged.")

Kind = Literal["mailbox", "alias", "unknown", "not_local"]


class ListTooLarge(Exception):
    """A membership question (Directory.list_member) the backend would have to walk more than
    directory_alias_targets_max entries to answer: refused rather than guessed."""


class Address(Record, frozen=True):
    """A parsed address: `local` without its extension, `detail` (or ""), `domain` lower-cased."""

    local: str
    detail: str
    domain: str
    delimiter: str = ""      # the delimiter character that was found ("" when no detail)

    @property
    def base(self) -> str:
        """user@domain, without the extension."""
        return f"{self.local}@{self.domain}"

    @property
    def full(self) -> str:
        """user+detail@domain as given (normalised case)."""
        if self.detail or self.delimiter:
            return f"{self.local}{self.delimiter}{self.detail}@{self.domain}"
        return self.base

    def candidates(self) -> list[str]:
        """Lookup keys, most specific first: user+detail@dom, user@dom, @dom."""
        keys = [self.full]
        if self.full != self.base:
            keys.append(self.base)
        keys.append("@" + self.domain)
        return keys


def parse_address(address: str, delimiters: str = "+", case_sensitive: bool = False) -> Address:
    """Split and normalise an address; raises ValueError if it has no domain or no local part."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, sep, domain = text.rpartition("@")
    if not sep or not local or not domain:
        raise ValueError(f"not an address with a domain: {address!r}")
    domain = domain.lower().rstrip(".")
    if not case_sensitive:
        local = local.lower()
    detail = ""
    found = ""
    # Split at the first delimiter character, never at the very start (Postfix does the same).
    for i, c in enumerate(local):
        if i > 0 and c in delimiters:
            found = c
            local, detail = local[:i], local[i + 1:]
            break
    return Address(local, detail, domain, found)


def normalise(address: str, case_sensitive: bool = False) -> str:
    """The comparison form of a whole address (domain lower-cased, local part unless case-sensitive)."""
    a = parse_address(address, "", case_sensitive)
    return a.base


_MAIL_HOST_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?$")


def parse_mail_host(text: str) -> str | None:
    """A mailbox's back end as the directory writes it, normalised: a host name (lower case, no
    final dot) or an IP address (IPv6 without brackets). "", "-" and blanks: None (no back end).

    Raises ValueError on anything else: the value goes into endpoints and transport entries
    (tcp:{host}:PORT, lmtp:inet:HOST:PORT), so a space, slash, colon or brace must not pass.
    """
    value = text.strip()
    if value in ("", "-"):
        return None
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.lower().rstrip(".") if value.endswith(".") and not value.endswith("..") else value.lower()
    if not _MAIL_HOST_RE.match(name) or ".." in name or any(label.startswith("-") or label.endswith("-")
                                                             for label in name.split(".")):
        raise ValueError(f"not a host name or IP address: {text!r}")
    return name


class Mailbox(Record, frozen=True):
    """A final local mailbox.

    `maildir`: the Maildir path (absolute) when the directory says where it is, else None
    (the delivery agent then applies its own layout). `quota_bytes`/`quota_messages`:
    limits, None = no limit known to the directory (the maildirsize file may still carry
    one). `over_quota`: the directory says it is full (over-quota list or attribute).
    `usage_bytes`: usage the directory knows (an attribute), None when not kept there.
    `mail_host`: the back end ("mail home server") that holds the mailbox, as the directory
    names it (files_mail_hosts, ldap_mail_host_attribute; normalised by parse_mail_host);
    None when the directory names none (this host, or a single-host site).
    """

    address: str
    maildir: str | None = None
    quota_bytes: int | None = None
    quota_messages: int | None = None
    over_quota: bool = False
    usage_bytes: int | None = None
    mail_host: str | None = None     # the back end ("mail home server") holding it; None = this host / unknown


class Recipient(Record, frozen=True):
    """What an address resolves to."""

    address: str                     # the normalised address asked about
    kind: Kind
    mailboxes: tuple[Mailbox, ...] = ()
    remote: tuple[str, ...] = ()     # forwarding targets outside our domains
    # Protected lists whose posting policy governs mail to this address: the address itself
    # when it is one, else the first protected list on each path of its expansion (through
    # aliases, forwards, domain aliases). Below a protected list nothing more is collected:
    # what a list reaches is its owner's choice, and its own policy already applied.
    lists: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return self.kind in ("mailbox", "alias")

    @property
    def reaches_nothing(self) -> bool:
        """An alias (or domain alias) whose expansion found no mailbox and nothing remote:
        unknown targets, a loop, too deep. Mail to it would only bounce."""
        return self.kind == "alias" and not self.mailboxes and not self.remote


class ListPolicy(Record, frozen=True):
    """Who may post to a protected list address.

    A sender may post if any rule matches: `allow_authenticated` and the client is
    SASL-authenticated; `allow_members` and the envelope sender or the SASL user is a
    member (`members`: normalised member addresses; backends that know members by
    identity, such as LDAP DNs, put those in `member_ids` and answer `identities()`);
    the sender is in `senders` or its domain in `domains`; the client address is in
    `networks`.
    """

    address: str
    allow_authenticated: bool = False
    allow_members: bool = False
    members: frozenset[str] = frozenset()
    member_ids: frozenset[str] = frozenset()
    senders: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    networks: tuple[Any, ...] = ()

    @classmethod
    def from_tokens(cls, address: str, tokens: Iterable[str], **extra: Any) -> "ListPolicy":
        """Build from the allowed-sender tokens of the lists map / LDAP attribute.

        `members`, `authenticated`, `user@domain`, `@domain` or `domain`, `192.0.2.0/24` or an IP.
        Raises ValueError on a token it cannot read.
        """
        allow_auth = allow_members = False
        senders: set[str] = set()
        domains: set[str] = set()
        networks = []
        for raw in tokens:
            tok = raw.strip().strip(",")
            if not tok:
                continue
            low = tok.lower()
            if low == "members":
                allow_members = True
            elif low in ("authenticated", "sasl"):
                allow_auth = True
            elif "@" in tok and not tok.startswith("@"):
                senders.add(normalise(tok))
            elif tok.startswith("@"):
                domains.add(low[1:])
            else:
                try:
                    networks.append(ipaddress.ip_network(tok, strict=False))
                    continue
                except ValueError:
                    pass
                if "." in tok and all(part for part in low.split(".")):
                    domains.add(low)
                else:
                    raise ValueError(f"cannot read allowed-sender entry {tok!r}")
        return cls(address, allow_auth, allow_members, senders=frozenset(senders),
                   domains=frozenset(domains), networks=tuple(networks), **extra)


SPAM_LEVEL_NAMES = ("tag", "tag2", "quarantine", "reject")
# Names a map file or a postmaster may use for a level (amavis calls the quarantine level "kill").
_SPAM_LEVEL_ALIASES = {"tag": "tag", "tag2": "tag2", "quarantine": "quarantine", "kill": "quarantine",
                       "reject": "reject"}


class SpamLevels(Record, frozen=True):
    """A recipient's own spam levels, as amavis keeps them per user; None = not set for this
    recipient (the milter's global spam_*_level applies).

    `tag`: spam-info headers from here; `tag2`: spam from here (X-Spam-Flag, subject tag);
    `quarantine`: amavis' kill level, the message is quarantined for this recipient;
    `reject`: refused (or, when other recipients still take the message, quarantined).
    """

    tag: float | None = None
    tag2: float | None = None
    quarantine: float | None = None
    reject: float | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in SPAM_LEVEL_NAMES)

    def over(self, more_general: "SpamLevels") -> "SpamLevels":
        """These levels, each unset one taken from `more_general` (user entry over domain default)."""
        return SpamLevels(**{name: getattr(self, name) if getattr(self, name) is not None
                             else getattr(more_general, name) for name in SPAM_LEVEL_NAMES})


def parse_spam_level(text: str) -> float:
    """One level: a finite number ("6.31", "-999"); ValueError otherwise."""
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"spam level must be a finite number, got {text!r}")
    return value


def parse_spam_levels(tokens: Iterable[str]) -> SpamLevels:
    """`tag=2 tag2=6.3 quarantine=10 reject=20` (`kill` = quarantine; any may be left out).

    Raises ValueError naming the bad token.
    """
    values: dict[str, float] = {}
    for raw in tokens:
        token = raw.strip().strip(",")
        if not token:
            continue
        name, sep, number = token.partition("=")
        key = _SPAM_LEVEL_ALIASES.get(name.strip().lower())
        if not sep or key is None:
            raise ValueError(f"cannot read spam level {token!r} (expected tag=, tag2=, quarantine= "
                             f"or kill=, reject= and a number)")
        try:
            values[key] = parse_spam_level(number)
        except ValueError:
            raise ValueError(f"spam level {token!r} is not a number") from None
    return SpamLevels(**values)


class Directory:
    """The interface every backend implements. All methods may block; all may raise DirectoryUnavailable."""

    def hosts_domain(self, domain: str) -> bool:
        """True if we host mail for this domain (lower-case)."""
        raise NotImplementedError

    def hosted_domains(self) -> list[str] | None:
        """Every hosted domain, sorted, when the backend can list them (for the Postfix lines
        `owlery postfix` prints); None when it can only answer hosts_domain() one at a time."""
        return None

    def resolve(self, address: str) -> Recipient:
        """What the address reaches: kind, local mailboxes (aliases expanded), remote targets."""
        raise NotImplementedError

    def expand_once(self, key: str) -> list[str] | None:
        """One step of alias expansion for exactly this key, as a Postfix virtual_alias_maps
        table holding the same entries would answer it (Postfix recurses on the result).

        `key` is user@domain (an extension is part of the key: nothing is stripped) or
        @domain. An alias or group at this key gives its targets one level deep (a domain
        alias target stays `@other.domain`; a group member that is a group gives the group's
        address); a mailbox gives its own address (the key; LDAP: the primary address) and
        then its forwarding addresses, so Postfix stops recursing there and a catch-all never
        hides it; [] for a group without members; None when nothing has this exact key or
        the domain is not ours. The socketmap (socketmap/maps.py) applies Postfix's lookup
        order on top. Blocking; may raise DirectoryUnavailable.
        """
        raise NotImplementedError

    def list_policy(self, address: str) -> ListPolicy | None:
        """The posting policy when the address is a protected list, else None."""
        raise NotImplementedError

    def list_member(self, list_address: str, address: str) -> bool | None:
        """Is `address` a member of the group or alias at `list_address` (Sieve extlists, RFC
        6134)? None when `list_address` is no group or alias (a mailbox, unknown, not ours).

        Members are what the group names (its targets, one level) and every address reached
        through member groups and aliases, down to final mailboxes: the members a protected
        list's `members` rule counts. Backends answer by a membership walk that stops at the
        first hit, never by listing a whole group to the caller; a walk that would visit more
        than directory_alias_targets_max entries without deciding raises ListTooLarge (a "no"
        past the cap would be a guess). "" as `address` asks only whether the list exists
        (False or None). This default knows no lists. Blocking; may raise DirectoryUnavailable.
        """
        return None

    def identities(self, address: str) -> frozenset[str]:
        """Identifiers that name the entry owning this address, matched against ListPolicy.member_ids.

        Files backend: the normalised address itself. LDAP: the DNs of the entries that carry it.
        """
        raise NotImplementedError

    def lookup_recipient(self, address: str) -> Mailbox | None:
        """Delivery convenience: the one local Mailbox an address reaches, None if unknown.

        A mailbox address gives its Mailbox; an alias that reaches exactly one local mailbox
        (and nothing remote) gives that one. Anything else (not ours, unknown, an alias with
        several targets) gives None: expand those with resolve() (or let Postfix do it with
        virtual_alias_maps). Blocking; may raise DirectoryUnavailable.
        """
        r = self.resolve(address)
        if r.kind == "mailbox" or (r.kind == "alias" and len(r.mailboxes) == 1 and not r.remote):
            return r.mailboxes[0]
        return None

    def mailboxes(self) -> Iterator[Mailbox]:
        """Every local mailbox the directory knows (upkeep walks them: `owlery mailbox expire
        --all-users`, `spam learn`, `quota report`), each once, in no promised order; disabled
        entries and groups are not mailboxes. Blocking; may raise DirectoryUnavailable."""
        raise NotImplementedError

    def spam_levels(self, address: str) -> SpamLevels:
        """The recipient's own spam levels (the milter's spam stage asks, one call per recipient).

        Lookup order, each level separately: user+detail@domain, user@domain, @domain (and,
        in map files, the bare domain and its parents). Unset levels are None; an address
        nobody set levels for gives SpamLevels() (all None), never an error. Backends that
        keep no levels answer that. Blocking; may raise DirectoryUnavailable.
        """
        return SpamLevels()

    def content_policy(self, address: str) -> tuple[str, ...]:
        """The recipient's content policy tokens (owlery.content_policy: banned_files_lover,
        virus_lover, spam_lover, bank=NAME) from the most specific entry that has any, looked
        up as spam_levels; () when none. Blocking; may raise DirectoryUnavailable."""
        return ()

    def reload(self) -> None:
        """Re-read configuration or files (SIGHUP)."""

    def close(self) -> None:
        """Release connections and files."""
