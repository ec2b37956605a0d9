"""LDAP directory backend (ldap3): users, alternate addresses, forwards, quotas, groups as lists.

One search per question, with every user-supplied value escaped (RFC 4515) before it goes
into a filter; an address that is not valid UTF-8 or holds a control character (NUL
included) is answered "unknown" without a search (see lookup_value). The attribute names are
settings whose defaults follow the common schemas: `mail`, `mailAlternateAddress`
(qmail-ldap), `mailLocalAddress` (misc.schema) for addresses; `mailForwardingAddress` for
forwards; `mailQuotaSize` (bytes) for quota; `accountStatus` (disabled/deleted entries do
not receive mail); groups are entries of class groupOfNames / groupOfUniqueNames whose
`member` / `uniqueMember` DNs are the members. A group with an address is an alias to its
members' mailboxes and, with `ldap_lists_protect_groups`, a protected list whose allowed
senders are the values of `ldap_list_policy_attribute` on the group or else
`ldap_list_default_policy`. Per-recipient spam levels come from amavis' LDAP attributes
(`amavisSpamTagLevel`, `amavisSpamTag2Level`, `amavisSpamKillLevel`; the reject level has no
amavis attribute: `ldap_spam_reject_level_attribute` names one of your schema), looked up
per level on the entries of user+detail@domain, user@domain, then an `@domain` entry (a
domain default). A mailbox's back end (mail home server) is the value of
`ldap_mail_host_attribute` (none by default); a protected group reached through a forward
is named in the Recipient's `lists`, so its posting policy still applies.

Connections: a small pool (`ldap_pool_size`, one connection per concurrent lookup),
simple bind (or anonymous), `ldaps://` URIs or `ldap_start_tls` (on the ldap:// ones), connect
and response timeouts; several `ldap_servers` are tried in order, the next one also when a
server's certificate does not verify or it refuses StartTLS. TLS verifies the chain
(`ldap_tls_ca_file`, else the system's CAs) and the URI's host name or IP address against the
certificate, both by OpenSSL in the handshake (see _tls_class). A connection that fails is
dropped and the lookup retried once on a fresh one (a restarted server); if that
fails too the lookup raises DirectoryUnavailable (4xx upstream, never "unknown"). A search
that raises anything else discards its connection too (the pool never leaks one).
Blocking: call from a thread (the policy daemon's pool).
Talks to: an LDAP server. Tests: tests/directory/test_contract.py (real slapd), tests/directory/test_ldap.py,
tests/directory/test_ldap_tls.py (LDAPS and StartTLS against a TLS slapd),
tests/directory/test_ldap_hostile.py (hostile addresses, escaping, the pool)
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from owlery.directory.base import (SPAM_LEVEL_NAMES, Address, Directory, ListPolicy, ListTooLarge, Mailbox,
                                   Recipient, SpamLevels, parse_address, parse_mail_host, parse_spam_level)
from owlery.errors import DirectoryUnavailable
from owlery.settings import Bool, Duration, Str, StrList, int_range, setting

LDAP_SERVERS = setting("ldap_servers", StrList, ["ldap://127.0.0.1:389"],
                       "LDAP server URIs (ldap:// or ldaps://), tried in order.")
LDAP_BASE_DN = setting("ldap_base_dn", Str, "dc=example,dc=org", "Search base for users and groups.")
LDAP_BIND_DN = setting("ldap_bind_dn", Str, None, "DN to bind as; unset: anonymous.")
LDAP_BIND_PASSWORD = setting("ldap_bind_password", Str, None,
                             "Password for ldap_bind_dn (prefer ldap_bind_password_file).")
LDAP_BIND_PASSWORD_FILE = setting("ldap_bind_password_file", Str, None,
                                  "File holding the bind password (first line), readable by the daemon only.")
LDAP_START_TLS = setting("ldap_start_tls", Bool, False,
                         "Require StartTLS on ldap:// connections (a server refusing it is unavailable); "
                         "ldaps:// servers are TLS already.")
LDAP_TLS_CA_FILE = setting("ldap_tls_ca_file", Str, None,
                           "PEM file of the CA certificates to verify the server with (StartTLS and "
                           "ldaps://); unset: the system's.")
LDAP_TLS_VERIFY = setting("ldap_tls_verify", Bool, True,
                          "Verify the server certificate for StartTLS and ldaps:// (turn off only to test).")
LDAP_CONNECT_TIMEOUT = setting("ldap_connect_timeout", Duration, 3, unit="s",
                               doc="Timeout for opening a connection to one server.")
LDAP_TIMEOUT = setting("ldap_timeout", Duration, 5, unit="s",
                       doc="Timeout for one LDAP response (also sent as the search time limit).")
LDAP_POOL_SIZE = setting("ldap_pool_size", int_range(1, 256), 4,
                         "Connections kept open; lookups beyond this wait for a free one.")
LDAP_ADDRESS_ATTRIBUTES = setting(
    "ldap_address_attributes", StrList, ["mail", "mailAlternateAddress", "mailLocalAddress"],
    "Attributes holding the addresses an entry receives mail for (the first is the primary address).")
LDAP_PAGE_SIZE = setting(
    "ldap_page_size", int_range(1, 100000), 500,
    "Entries per page when a command walks every mailbox (paged results, RFC 2696); at most the "
    "server's size limit.")
LDAP_USER_FILTER = setting(
    "ldap_user_filter", Str, "(objectClass=*)",
    "Extra filter ANDed to every address search, e.g. (objectClass=inetOrgPerson).")
LDAP_FORWARD_ATTRIBUTE = setting("ldap_forward_attribute", Str, "mailForwardingAddress",
                                 "Attribute of addresses mail is forwarded to; empty: none.")
LDAP_QUOTA_ATTRIBUTE = setting("ldap_quota_attribute", Str, "mailQuotaSize",
                               "Attribute holding the mailbox quota in bytes; empty: none.")
LDAP_QUOTA_MESSAGES_ATTRIBUTE = setting("ldap_quota_messages_attribute", Str, "",
                                        "Attribute holding the message-count quota; empty: none.")
LDAP_USAGE_ATTRIBUTE = setting("ldap_usage_attribute", Str, "",
                               "Attribute holding current usage in bytes (if something maintains it); "
                               "empty: usage comes from the Maildir's maildirsize.")
LDAP_OVER_QUOTA_ATTRIBUTE = setting("ldap_over_quota_attribute", Str, "",
                                    "Attribute that, when TRUE (or yes/1), marks the mailbox full; empty: none.")
LDAP_MAILDIR_ATTRIBUTE = setting("ldap_maildir_attribute", Str, "",
                                 "Attribute holding the Maildir path (e.g. mailMessageStore); empty: "
                                 "the delivery agent's maildir_path_template.")
LDAP_MAIL_HOST_ATTRIBUTE = setting(
    "ldap_mail_host_attribute", Str, "",
    "Attribute naming the back end that holds a user's mailbox (its mail home server), e.g. "
    "univentionMailHomeServer (UCS) or mailHost (misc.schema, qmail-ldap); a host name or IP "
    "address. Read by the policy daemon's quota check on relays and by the socketmap's "
    "transport_maps. Empty: none (every mailbox is on this host).")
LDAP_STATUS_ATTRIBUTE = setting("ldap_status_attribute", Str, "accountStatus",
                                "Attribute holding the account status; empty: every entry is active.")
LDAP_STATUS_REFUSED = setting("ldap_status_refused", StrList, ["disabled", "deleted"],
                              "Status values (case-insensitive) whose entries receive no mail (unknown user).")
LDAP_GROUP_CLASSES = setting("ldap_group_classes", StrList, ["groupOfNames", "groupOfUniqueNames"],
                             "Object classes that make an entry a group (an alias to its members).")
LDAP_MEMBER_ATTRIBUTES = setting("ldap_member_attributes", StrList, ["member", "uniqueMember"],
                                 "Attributes holding a group's member DNs.")
LDAP_LISTS_PROTECT_GROUPS = setting("ldap_lists_protect_groups", Bool, True,
                                    "Every group with an address is a protected list (see lists check).")
LDAP_LIST_POLICY_ATTRIBUTE = setting("ldap_list_policy_attribute", Str, "",
                                     "Group attribute whose values say who may post (members, "
                                     "authenticated, user@domain, @domain, networks); empty: none.")
LDAP_LIST_DEFAULT_POLICY = setting("ldap_list_default_policy", StrList, ["members", "authenticated"],
                                   "Who may post to a protected group without its own policy values.")
LDAP_SPAM_TAG_LEVEL_ATTRIBUTE = setting(
    "ldap_spam_tag_level_attribute", Str, "amavisSpamTagLevel",
    "Attribute holding a recipient's spam tag level (amavis' LDAP schema); empty: none.")
LDAP_SPAM_TAG2_LEVEL_ATTRIBUTE = setting(
    "ldap_spam_tag2_level_attribute", Str, "amavisSpamTag2Level",
    "Attribute holding a recipient's spam tag2 level (spam from here); empty: none.")
LDAP_SPAM_QUARANTINE_LEVEL_ATTRIBUTE = setting(
    "ldap_spam_quarantine_level_attribute", Str, "amavisSpamKillLevel",
    "Attribute holding a recipient's spam quarantine level (amavis' kill level); empty: none.")
LDAP_SPAM_REJECT_LEVEL_ATTRIBUTE = setting(
    "ldap_spam_reject_level_attribute", Str, "",
    "Attribute holding a recipient's spam reject level (amavis' schema has none; e.g. "
    "owlerySpamRejectLevel, see README); empty: the global spam_reject_level only.")
LDAP_CONTENT_POLICY_ATTRIBUTE = setting(
    "ldap_content_policy_attribute", Str, "",
    "Attribute holding a recipient's content policy tokens (banned_files_lover, virus_lover, "
    "spam_lover, bank=NAME; owlery.content_policy), one or several per value, e.g. "
    "owleryContentPolicy; empty: none looked up.")
LDAP_DOMAINS = setting("ldap_domains", StrList, [],
                       "Hosted domains. Empty: a domain is hosted when some entry has an address in it "
                       "(one search, cached).")

log = logging.getLogger("owlery.directory")
_RETRYABLE_RESULTS = {51, 52, 80, 81}   # busy, unavailable, other, server down


# RFC 4515 section 3: in an assertion value NUL, "(", ")", "*" and "\\" must be written \XX.
_FILTER_ESCAPES = {ord(c): f"\\{ord(c):02x}" for c in "\\*()\0"}


def escape(value: str) -> str:
    """RFC 4515 filter escaping of an assertion value (other characters, UTF-8 included, stay)."""
    return value.translate(_FILTER_ESCAPES)


def lookup_value(text: str) -> str:
    """`text` if it can be looked up, else ValueError (the caller answers "unknown", never an outage).

    Refused: text that is not valid UTF-8 (the lone surrogates surrogateescape makes of
    undecodable bytes; LDAP strings are UTF-8, RFC 4511 section 4.1.2) and control
    characters, NUL included (no SMTP address holds one, RFC 5321 section 4.1.2).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"not valid UTF-8: {text!r}") from None
    if any(c < " " or c == "\x7f" for c in text):
        raise ValueError(f"control character in {text!r}")
    return text


@functools.cache
def _tls_class() -> type:
    """The Tls class below, made on first use: ldap3 is imported only when a connection is."""
    from ldap3 import Tls

    class HandshakeVerifiedTls(Tls):
        """ldap3's Tls with the server name checked by OpenSSL during the handshake.

        ldap3 2.9 turns the context's check_hostname off and matches the name afterwards with
        ssl.match_hostname; Python 3.12 removed that, and ldap3's fallback never matches an IP
        address, so ldaps://10.0.0.5 with an IP SAN would never connect. server_hostname
        makes OpenSSL check DNS names and IP addresses alike (and sends SNI for names).
        """

        def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
            ctx = ssl.create_default_context(cafile=self.ca_certs_file)   # None: the system's CAs
            if self.validate == ssl.CERT_NONE:                            # ldap_tls_verify = false
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            connection.socket = ctx.wrap_socket(connection.socket, server_hostname=connection.server.host,
                                                do_handshake_on_connect=do_handshake)

    return HandshakeVerifiedTls


class _Entry:
    """A search result entry with case-insensitive attribute access."""

    def __init__(self, dn: str, attrs: dict[str, Any]):
        self.dn = dn
        self.attrs = {k.lower(): (v if isinstance(v, list) else [v]) for k, v in attrs.items()}

    def values(self, name: str) -> list[str]:
        if not name:
            return []
        out = []
        for v in self.attrs.get(name.lower(), []):
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            out.append(str(v))
        return out

    def first(self, name: str) -> str | None:
        vals = self.values(name)
        return vals[0] if vals else None


def normalise_dn(dn: str) -> str:
    return ",".join(part.strip() for part in dn.lower().split(","))


class LdapDirectory(Directory):
    """Directory backed by LDAP (see module docstring)."""

    def __init__(self, settings: Any):
        self.s = settings
        self.delimiters = settings.directory_recipient_delimiter
        self.case_sensitive = settings.directory_local_part_case_sensitive
        self.address_attrs = list(settings.ldap_address_attributes)
        if not self.address_attrs:
            raise ValueError("ldap_address_attributes must name at least one attribute")
        self.group_classes = {c.lower() for c in settings.ldap_group_classes}
        self.refused = {v.lower() for v in settings.ldap_status_refused}
        self.domains = frozenset(d.lower() for d in settings.ldap_domains)
        self.spam_level_attrs = {name: attr for name, attr in zip(SPAM_LEVEL_NAMES, (
            settings.ldap_spam_tag_level_attribute, settings.ldap_spam_tag2_level_attribute,
            settings.ldap_spam_quarantine_level_attribute, settings.ldap_spam_reject_level_attribute)) if attr}
        from owlery.secrets import read_secret
        self.password = read_secret(settings, "ldap_bind_password")
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()
        self.attributes = sorted({*self.address_attrs, "objectClass", *settings.ldap_member_attributes,
                                  *(a for a in (settings.ldap_forward_attribute, settings.ldap_quota_attribute,
                                                settings.ldap_quota_messages_attribute,
                                                settings.ldap_usage_attribute, settings.ldap_over_quota_attribute,
                                                settings.ldap_maildir_attribute, settings.ldap_status_attribute,
                                                settings.ldap_mail_host_attribute,
                                                settings.ldap_list_policy_attribute) if a),
                                  *self.spam_level_attrs.values(),
                                  *([settings.ldap_content_policy_attribute]
                                    if settings.ldap_content_policy_attribute else [])})

    # -- connections ---------------------------------------------------------------

    def _servers(self) -> list[Any]:
        from ldap3 import NONE, Server
        s = self.s
        # Built per connection: a CA file replaced on disk is used by the next connection.
        tls = _tls_class()(validate=ssl.CERT_REQUIRED if s.ldap_tls_verify else ssl.CERT_NONE,
                             ca_certs_file=s.ldap_tls_ca_file)
        return [Server(uri, use_ssl=uri.lower().startswith("ldaps://"), tls=tls, get_info=NONE,
                       connect_timeout=s.ldap_connect_timeout) for uri in s.ldap_servers]

    def _connect(self) -> Any:
        """A bound connection to the first server that takes one, or DirectoryUnavailable.

        Our own loop rather than ldap3's ServerPool: the pool only probes TCP, so a server
        whose certificate fails verification (or that refuses StartTLS) was picked every time
        and the next server never tried.
        """
        from ldap3 import AUTO_BIND_NONE, Connection
        from ldap3.core.exceptions import LDAPBindError, LDAPException, LDAPStartTLSError
        s = self.s
        try:
            servers = self._servers()
        except LDAPException as e:        # e.g. ldap_tls_ca_file missing
            raise DirectoryUnavailable(f"LDAP {', '.join(s.ldap_servers)}: {e}") from None
        errors = []
        for server in servers:
            conn = Connection(server, user=s.ldap_bind_dn, password=self.password, auto_bind=AUTO_BIND_NONE,
                              # ldap3 packs receive_timeout into a struct timeval: whole seconds only.
                              read_only=True, receive_timeout=max(1, math.ceil(s.ldap_timeout)),
                              raise_exceptions=False, check_names=False)
            try:
                conn.open(read_server_info=False)      # ldaps://: the handshake (and verification) is here
                # StartTLS on an ldaps:// connection is refused by ldap3 and pointless: only ldap:// gets it.
                if s.ldap_start_tls and not server.ssl and not conn.start_tls(read_server_info=False):
                    raise LDAPStartTLSError(conn.last_error or "StartTLS not started")
                if not conn.bind(read_server_info=False):
                    raise LDAPBindError(f"bind failed: {(conn.result or {}).get('description')}")
                return conn
            except LDAPException as e:
                errors.append(f"{server.name}: {e}")
                try:
                    conn.unbind()                  # close the socket now, not at garbage collection
                except Exception:  # noqa: BLE001 - a half-open connection may fail any way while closing
                    pass
        raise DirectoryUnavailable("LDAP " + "; ".join(errors))

    def _acquire(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            create = self._created < self.s.ldap_pool_size
            if create:
                self._created += 1
        if create:
            try:
                return self._connect()
            except DirectoryUnavailable:
                with self._lock:
                    self._created -= 1
                raise
        try:
            return self._pool.get(timeout=self.s.ldap_timeout)
        except queue.Empty:
            raise DirectoryUnavailable("LDAP: no free connection in time") from None

    def _discard(self, conn: Any) -> None:
        with self._lock:
            self._created -= 1
        try:
            conn.unbind()
        except Exception:  # noqa: BLE001 - a broken connection may fail any way while closing
            pass

    def search(self, flt: str, *, base: str | None = None, scope: str = "SUBTREE",
               size_limit: int = 0) -> list[_Entry]:
        """Run one search (retrying once on a fresh connection); entries, or DirectoryUnavailable.

        The connection goes back to the pool only after a clean answer; on anything else,
        including an exception that is not ldap3's (a value ldap3 cannot encode, a bug), it
        is discarded, so the pool never shrinks by a leaked connection.
        """
        from ldap3.core.exceptions import LDAPException
        last: Exception | None = None
        for _attempt in (1, 2):
            conn = self._acquire()
            reusable = False
            try:
                try:
                    conn.search(base or self.s.ldap_base_dn, flt, search_scope=scope, attributes=self.attributes,
                                size_limit=size_limit, time_limit=max(1, int(self.s.ldap_timeout)))
                except LDAPException as e:
                    # The server went away (restart, idle cut): the pooled siblings are stale too.
                    self.close()
                    last = e
                    continue
                code = conn.result.get("result") if conn.result else None
                if code in (0, 4):          # success, sizeLimitExceeded (we asked for a limit)
                    entries = [_Entry(r["dn"], dict(r.get("attributes", {})))
                               for r in conn.response or () if r.get("type") == "searchResEntry"]
                    reusable = True
                    return entries
                if code == 32:              # noSuchObject: the base (or a member DN) does not exist
                    reusable = True
                    return []
                last = RuntimeError(f"result {code} {conn.result.get('description') if conn.result else ''}")
                if code not in _RETRYABLE_RESULTS and code is not None:
                    break
            finally:
                if reusable:
                    self._pool.put(conn)
                else:
                    self._discard(conn)
        log.warning("directory: LDAP search %s failed: %s", flt, last)
        raise DirectoryUnavailable(f"LDAP search failed: {last}")

    # -- helpers ---------------------------------------------------------------------

    def _address_filter(self, addresses: Iterable[str]) -> str:
        terms = "".join(f"({attr}={escape(a)})" for a in addresses for attr in self.address_attrs)
        return f"(&{self.s.ldap_user_filter}(|{terms}))"

    def _parse(self, address: str) -> Address:
        """The parsed address; ValueError also for one that cannot be looked up (see lookup_value)."""
        return parse_address(lookup_value(address), self.delimiters, self.case_sensitive)

    def _by_address(self, a: Address) -> tuple[str, list[_Entry]] | None:
        """The most specific candidate key with entries: (key, entries), or None."""
        keys = a.candidates()
        entries = self.search(self._address_filter(keys))
        if not entries:
            return None
        for key in keys:
            matching = [e for e in entries if self._has_address(e, key)]
            if matching:
                return key, matching
        return keys[0], entries

    def _has_address(self, entry: _Entry, key: str) -> bool:
        for attr in self.address_attrs:
            for v in entry.values(attr):
                if (v if self.case_sensitive else v.lower()) == key or v.lower() == key.lower():
                    return True
        return False

    def _is_group(self, entry: _Entry) -> bool:
        return any(c.lower() in self.group_classes for c in entry.values("objectClass"))

    def _active(self, entry: _Entry) -> bool:
        status = entry.first(self.s.ldap_status_attribute)
        return status is None or status.lower() not in self.refused

    def _int(self, entry: _Entry, attr: str) -> int | None:
        v = entry.first(attr)
        if v is None:
            return None
        try:
            return int(v) if int(v) > 0 else None
        except ValueError:
            log.warning("directory: %s: %s is not a number: %r", entry.dn, attr, v)
            return None

    def _mailbox(self, entry: _Entry) -> Mailbox:
        s = self.s
        primary = entry.first(self.address_attrs[0]) or entry.dn
        over = (entry.first(s.ldap_over_quota_attribute) or "").lower() in ("true", "yes", "1")
        return Mailbox(address=primary if self.case_sensitive else primary.lower(),
                       maildir=entry.first(s.ldap_maildir_attribute),
                       quota_bytes=self._int(entry, s.ldap_quota_attribute),
                       quota_messages=self._int(entry, s.ldap_quota_messages_attribute),
                       over_quota=over, usage_bytes=self._int(entry, s.ldap_usage_attribute),
                       mail_host=self._mail_host(entry))

    def _mail_host(self, entry: _Entry) -> str | None:
        attr = self.s.ldap_mail_host_attribute
        text = entry.first(attr) if attr else None
        if text is None:
            return None
        try:
            return parse_mail_host(text)
        except ValueError as e:
            log.warning("directory: %s: %s ignored: %s", entry.dn, attr, e)
            return None

    def _members(self, group: _Entry) -> list[str]:
        dns: list[str] = []
        for attr in self.s.ldap_member_attributes:
            dns.extend(group.values(attr))
        return dns

    # -- Directory -------------------------------------------------------------------

    def hosted_domains(self) -> list[str] | None:
        """ldap_domains when set; without it the domains are only found one lookup at a time."""
        return sorted(self.domains) if self.domains else None

    def hosts_domain(self, domain: str) -> bool:
        try:
            domain = lookup_value(domain).lower().rstrip(".")
        except ValueError:
            return False                     # no domain of ours is unreadable
        if self.domains:
            return domain in self.domains
        suffix = "@" + escape(domain)
        terms = "".join(f"({attr}=*{suffix})" for attr in self.address_attrs)
        return bool(self.search(f"(|{terms})", size_limit=1))

    def resolve(self, address: str) -> Recipient:
        try:
            a = self._parse(address)
        except ValueError:
            return Recipient(address, "unknown")
        if not self.hosts_domain(a.domain):
            return Recipient(a.full, "not_local")
        mailboxes: dict[str, Mailbox] = {}
        remote: list[str] = []
        lists: list[str] = []
        kind = self._expand(a, mailboxes, remote, 0, set(), lists=lists)
        if kind == "unknown":
            return Recipient(a.full, "unknown")
        return Recipient(a.full, kind, tuple(mailboxes.values()), tuple(dict.fromkeys(remote)),
                         lists=tuple(dict.fromkeys(lists)))

    def _expand(self, a: Address, mailboxes: dict[str, Mailbox], remote: list[str],
                depth: int, seen: set[str], lists: list[str] | None = None) -> str:
        """Add what `a` reaches; `lists` (when not None) collects the protected groups met first
        on each path (see Recipient.lists): a group's members and their forwards are governed
        by the group's own policy, so nothing is collected below one."""
        found = self._by_address(a)
        if found is None:
            return "unknown"
        key, entries = found
        kind = "unknown"
        for entry in entries:
            dn = normalise_dn(entry.dn)
            if dn in seen or not self._active(entry):
                continue
            seen.add(dn)
            if self._is_group(entry):
                kind = "alias"
                protected = self.s.ldap_lists_protect_groups and not key.startswith("@")
                if lists is not None and protected:
                    lists.append(key)
                if depth < self.s.directory_alias_depth_max:
                    self._expand_group(entry, mailboxes, remote, depth, seen)
                continue
            kind = "mailbox" if kind != "alias" else kind
            box = self._mailbox(entry)
            mailboxes.setdefault(box.address, box)
            for fwd in entry.values(self.s.ldap_forward_attribute):
                self._add_target(fwd, mailboxes, remote, depth, seen, lists)
        return kind

    def _add_target(self, target: str, mailboxes: dict[str, Mailbox], remote: list[str],
                    depth: int, seen: set[str], lists: list[str] | None = None) -> None:
        try:
            ta = self._parse(target)
        except ValueError:
            return
        if depth + 1 >= self.s.directory_alias_depth_max or not self.hosts_domain(ta.domain):
            remote.append(target)
            return
        if self._expand(ta, mailboxes, remote, depth + 1, seen, lists) == "unknown":
            log.warning("directory: forward to unknown local address %s", target)

    def _expand_group(self, group: _Entry, mailboxes: dict[str, Mailbox], remote: list[str],
                      depth: int, seen: set[str]) -> None:
        for dn in self._members(group)[: self.s.directory_alias_targets_max]:
            key = normalise_dn(dn)
            if key in seen:
                continue
            members = self.search("(objectClass=*)", base=dn, scope="BASE")
            for entry in members:
                seen.add(key)
                if not self._active(entry):
                    continue
                if self._is_group(entry):
                    if depth + 1 < self.s.directory_alias_depth_max:
                        self._expand_group(entry, mailboxes, remote, depth + 1, seen)
                    continue
                if entry.first(self.address_attrs[0]):
                    box = self._mailbox(entry)
                    mailboxes.setdefault(box.address, box)
                    for fwd in entry.values(self.s.ldap_forward_attribute):
                        self._add_target(fwd, mailboxes, remote, depth + 1, seen)

    def expand_once(self, key: str) -> list[str] | None:
        try:
            text = lookup_value(key.strip())
            if text.startswith("@"):
                k = text.lower().rstrip(".")
                domain = k[1:]
            else:
                a = parse_address(text, "", self.case_sensitive)
                k, domain = a.base, a.domain
        except ValueError:
            return None
        if not domain or not self.hosts_domain(domain):
            return None
        entries = [e for e in self.search(self._address_filter([k])) if self._has_address(e, k) and self._active(e)]
        if not entries:
            return None
        targets: list[str] = []
        for entry in entries:
            if self._is_group(entry):
                self._group_targets(entry, targets, {normalise_dn(entry.dn)}, 0)
            else:
                targets.append(self._mailbox(entry).address)
                targets.extend(entry.values(self.s.ldap_forward_attribute))
        return list(dict.fromkeys(targets))[: self.s.directory_alias_targets_max]

    def _group_targets(self, group: _Entry, targets: list[str], seen: set[str], depth: int) -> None:
        """A group's active members one level deep, by primary address (a member group too:
        Postfix expands it in turn); a member group without an address is expanded here."""
        for dn in self._members(group)[: self.s.directory_alias_targets_max]:
            dn_key = normalise_dn(dn)
            if dn_key in seen:
                continue
            seen.add(dn_key)
            for entry in self.search("(objectClass=*)", base=dn, scope="BASE"):
                primary = entry.first(self.address_attrs[0])
                if not self._active(entry):
                    continue
                if primary:
                    targets.append(primary if self.case_sensitive else primary.lower())
                elif self._is_group(entry) and depth + 1 < self.s.directory_alias_depth_max:
                    self._group_targets(entry, targets, seen, depth + 1)

    def mailboxes(self) -> Iterator[Mailbox]:
        """Every active, non-group entry with a primary address, by a paged search (RFC 2696,
        ldap_page_size entries a page), so a server's size limit (slapd: 500) does not cut the
        walk short. The connection is held for the walk and discarded on any failure."""
        from ldap3.core.exceptions import LDAPException
        flt = f"(&{self.s.ldap_user_filter}({self.address_attrs[0]}=*))"
        conn = self._acquire()
        reusable = False
        try:
            pages = conn.extend.standard.paged_search(
                self.s.ldap_base_dn, flt, attributes=self.attributes, paged_size=self.s.ldap_page_size,
                time_limit=max(1, int(self.s.ldap_timeout)), generator=True)
            for r in pages:
                if r.get("type") != "searchResEntry":
                    continue
                entry = _Entry(r["dn"], dict(r.get("attributes", {})))
                if self._is_group(entry) or not self._active(entry):
                    continue
                mailbox = self._mailbox(entry)
                if not mailbox.address.startswith("@"):      # a domain's defaults entry
                    yield mailbox
            code = conn.result.get("result") if conn.result else None
            if code not in (0, None):
                raise DirectoryUnavailable(f"LDAP paged search {flt}: result {code}")
            reusable = True
        except LDAPException as e:
            self.close()
            raise DirectoryUnavailable(f"LDAP paged search {flt}: {e}") from None
        finally:
            if reusable:
                self._pool.put(conn)
            else:
                self._discard(conn)

    def list_policy(self, address: str) -> ListPolicy | None:
        if not self.s.ldap_lists_protect_groups:
            return None
        try:
            a = self._parse(address)
        except ValueError:
            return None
        found = self._by_address(a)
        if found is None:
            return None
        key, entries = found
        if key.startswith("@"):
            return None                      # a catch-all is not a list
        for entry in entries:
            if not self._is_group(entry):
                continue
            tokens = entry.values(self.s.ldap_list_policy_attribute) or list(self.s.ldap_list_default_policy)
            member_ids = frozenset(normalise_dn(dn) for dn in self._members(entry))
            try:
                return ListPolicy.from_tokens(key, tokens, member_ids=member_ids)
            except ValueError as e:
                log.error("directory: %s: bad list policy (%s); only members may post", entry.dn, e)
                return ListPolicy(key, allow_members=True, member_ids=member_ids)
        return None

    def list_member(self, list_address: str, address: str) -> bool | None:
        """A group entry is a list. Membership is asked of the server, upwards: the groups that
        name the address's entries as `member`, then the groups naming those, one search per
        level, until the list's group is met (see Directory.list_member); a group's member
        values are never listed here."""
        try:
            la = self._parse(list_address)
            if address:
                lookup_value(address)
        except ValueError:
            return None if not address else False
        if not self.hosts_domain(la.domain):
            return None
        groups = {normalise_dn(e.dn) for e in self.search(self._address_filter([la.base]))
                  if self._has_address(e, la.base) and self._active(e) and self._is_group(e)}
        if not groups:
            return None
        if not address:
            return False
        try:
            a = self._parse(address)
        except ValueError:
            return False
        frontier = [e.dn for e in self.search(self._address_filter([a.base])) if self._active(e)]
        seen = {normalise_dn(dn) for dn in frontier}
        classes = "".join(f"(objectClass={escape(c)})" for c in self.s.ldap_group_classes)
        for _depth in range(self.s.directory_alias_depth_max):
            if not frontier:
                return False
            named = "".join(f"({attr}={escape(dn)})" for dn in frontier for attr in self.s.ldap_member_attributes)
            found = self.search(f"(&(|{classes})(|{named}))")
            frontier = []
            for e in found:
                dn = normalise_dn(e.dn)
                if dn in groups:
                    return True
                if dn not in seen and self._active(e):
                    seen.add(dn)
                    frontier.append(e.dn)
            if len(seen) > self.s.directory_alias_targets_max:
                raise ListTooLarge(f"{la.base}: deciding membership needs more than "
                                   f"{self.s.directory_alias_targets_max} entries (directory_alias_targets_max)")
        return False

    def identities(self, address: str) -> frozenset[str]:
        try:
            a = self._parse(address)
        except ValueError:
            return frozenset()
        entries = self.search(self._address_filter([a.base]))
        return frozenset(normalise_dn(e.dn) for e in entries if self._active(e))

    def spam_levels(self, address: str) -> SpamLevels:
        if not self.spam_level_attrs:
            return SpamLevels()
        try:
            a = self._parse(address)
        except ValueError:
            return SpamLevels()
        keys = a.candidates()
        entries = [e for e in self.search(self._address_filter(keys)) if self._active(e)]
        found = SpamLevels()
        for key in keys:                       # most specific first, each level separately
            for entry in (e for e in entries if self._has_address(e, key)):
                found = found.over(self._entry_levels(entry))
        return found

    def content_policy(self, address: str) -> tuple[str, ...]:
        attr = self.s.ldap_content_policy_attribute
        if not attr:
            return ()
        try:
            a = self._parse(address)
        except ValueError:
            return ()
        from owlery.content_policy import split_tokens
        keys = a.candidates()
        entries = [e for e in self.search(self._address_filter(keys)) if self._active(e)]
        for key in keys:                       # the most specific entry with a policy wins
            for entry in (e for e in entries if self._has_address(e, key)):
                tokens = split_tokens(entry.values(attr))
                if tokens:
                    return tuple(tokens)       # checked where used: a bad one is logged, not fatal
        return ()

    def _entry_levels(self, entry: _Entry) -> SpamLevels:
        values: dict[str, float] = {}
        for name, attr in self.spam_level_attrs.items():
            text = entry.first(attr)
            if text is None:
                continue
            try:
                values[name] = parse_spam_level(text)
            except ValueError:
                # One bad value must not stop mail: that level falls back to the global one.
                log.warning("directory: %s: %s is not a number: %r; global level used", entry.dn, attr, text)
        return SpamLevels(**values)

    def close(self) -> None:
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                break
            self._discard(conn)
