"""The quarantine store's interface, the record it keeps and id generation: what every
backend builds on.

A leaf: it imports no backend, so the backends (directory, postgres) import it and the
factory in `owlery.quarantine` imports them, with no cycle.
Tests: tests/milters/test_quarantine_store.py (one contract suite run against both backends),
tests/core/test_quarantine_8bit_sender.py (text that is not UTF-8: to_column, from_column),
tests/core/test_quarantine_8bit_audit.py (shown, fold_case: audit lines, the sender filter),
tests/milters/test_quarantine_case_s20.py (recipient_key, recipient_sql: which mailbox a recipient is).
"""

from __future__ import annotations

import abc
import dataclasses
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from owlery.errors import TemporaryFailure
from owlery.reply import Reply

SCHEMA_VERSION = 1

# 32 symbols without look-alikes (no 0/o, 1/l): 15 of them carry 75 bits, more than
# amavis' 72-bit mail_id, and an id can never start with "-" and pass for a CLI option.
ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
ID_LENGTH = 15
_ID_RE = re.compile(f"^[{ID_ALPHABET}]{{{ID_LENGTH}}}$")

PENDING, RELEASED = "pending", "released"
ARCHIVED = "archived"           # an archive copy's recipients: delivered already, nothing to release
ARCHIVE_REASON = "archive"
NOTICE_RECIPIENT, NOTICE_ADMIN = "recipient", "admin"
ADMIN = ""                      # the address of admin notices in the notices table


# Text the MTA hands over may hold octets that are not UTF-8: Postfix passes an 8-bit local
# part through the milter, which gets it as surrogateescape's lone surrogates (U+DC80-U+DCFF).
# Neither SQLite's nor PostgreSQL's text takes those (nor PostgreSQL a NUL), and a put that
# raised would tempfail that sender's mail for ever; so such a value is kept as COLUMN_MARK
# (a noncharacter no address or header starts with) and the text with "\\" doubled and each
# surrogate or NUL as \uXXXX, and read back exactly (release re-sends the sender's octets).
# Text without any of them is stored as it is, so existing rows read as before.
COLUMN_MARK = "\ufffe"
_COLUMN_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_COLUMN_ESCAPE = re.compile("[\\\\\x00\ud800-\udfff]")
_COLUMN_ESCAPED = re.compile(r"(?:[^\\]|\\\\|\\u[0-9a-f]{4})*")
_COLUMN_UNESCAPE = re.compile(r"\\(\\|u[0-9a-f]{4})")


def to_column(text: str) -> str:
    """`text` as a SQL text column can hold it (see COLUMN_MARK); from_column gives it back.
    Tests: tests/core/test_quarantine_8bit_sender.py"""
    if not text.startswith(COLUMN_MARK) and not _COLUMN_UNSTORABLE.search(text):
        return text
    return COLUMN_MARK + _COLUMN_ESCAPE.sub(lambda m: "\\\\" if m[0] == "\\" else f"\\u{ord(m[0]):04x}", text)


def from_column(value: str | None) -> str | None:
    """The text `to_column` stored (None stays None; a value it did not escape comes back as it is)."""
    if value is None or not value.startswith(COLUMN_MARK) or not _COLUMN_ESCAPED.fullmatch(value, 1):
        return value
    return _COLUMN_UNESCAPE.sub(lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)), value[1:])


def shown(text: str) -> str:
    """`text` fit for one log or audit line with every octet named: an octet that was not UTF-8 (a lone
    surrogate of surrogateescape, as an 8-bit envelope sender arrives) as \\xNN, the octet itself,
    and any other character that is not printable as \\xNN, \\uNNNN or \\UNNNNNNNN, as
    `owlery quarantine list`/`show` and the web show them (never "?").
    Tests: tests/core/test_quarantine_8bit_audit.py"""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else escaped(ord(c)) for c in text)


def escaped(n: int) -> str:
    """One character as `shown` and `owlery quarantine list` name it: a lone surrogate of
    surrogateescape as \\xNN, the octet it stands for; anything else as \\xNN, \\uNNNN or \\UNNNNNNNN."""
    if 0xdc80 <= n <= 0xdcff:
        return f"\\x{n - 0xdc00:02x}"
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def fold_case(text: str) -> str:
    """`text` in lower case one character for one, as PostgreSQL's lower() folds it (Unicode's
    simple mapping: a final capital sigma becomes σ, not ς, and İ becomes i, not i + U+0307 as
    str.lower() makes them); lone surrogates and other caseless characters stay. The sender
    filter compares lower(sender) with it in both stores (SQLite's own lower() knows ASCII only:
    the directory store gives it this function instead).
    Tests: tests/core/test_quarantine_8bit_audit.py"""
    if text.isascii():
        return text.lower()
    return "".join(_fold_char(c) for c in text)


def _fold_char(c: str) -> str:
    low = c.lower()
    return low if len(low) == 1 else low[0]          # (only U+0130 lowers to two: "i\u0307")


def recipient_key(address: str, local_part_case_sensitive: bool = False) -> str:
    """The form in which two recipient addresses name the same mailbox, as the directory compares
    them (owlery.directory.base.parse_address): the domain without case always (RFC 5321 2.4),
    the local part without case unless directory_local_part_case_sensitive, where Alice@ and
    alice@ are two mailboxes. Under the default it is address.lower(), the stores' address_lc.
    Tests: tests/milters/test_quarantine_case_s20.py"""
    if not local_part_case_sensitive:
        return address.lower()
    local, at, domain = address.rpartition("@")
    return local + at + domain.lower() if at else address


def stored_recipients(recipients: Iterable["RecipientState"]) -> list["RecipientState"]:
    """The rows `put` writes: one per lower-cased address, the first spelling kept. The recipients
    tables are keyed by (mail_id, address_lc) since schema 1, so a message to both Alice@ and
    alice@ (one mailbox by default; RFC 5321 2.4 lets a site make them two) would break the key
    and leave the message deferred at every retry; it is quarantined once for that address.
    Tests: tests/milters/test_quarantine_case_s20.py (test_two_spellings_of_one_address_quarantine)"""
    seen: set[str] = set()
    out = []
    for r in recipients:
        key = r.address.lower()
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def recipient_sql(address: str, placeholder: str, local_part_case_sensitive: bool,
                  alias: str = "") -> tuple[str, list[Any]]:
    """A condition over a recipients row (`alias`: "r." or "") true when the row names `address`'s
    mailbox (recipient_key), and its arguments, for either SQL backend.

    Rows keep the address as given and address_lc, its lower case (indexed, part of the key; every
    version stored it so). The default compares address_lc alone. With a case-sensitive local part
    the row must also spell the local part exactly: address_lc = lower(address) then leaves only the
    domain to differ in case, and the stored address must begin with the local part and its "@"
    (compared as to_column stores both, character for character, so an escaped 8-bit address too).
    Rows written before the setting was turned on match by the spelling they were stored with."""
    p, a = placeholder, alias
    lower = to_column(address.lower())
    if not local_part_case_sensitive:
        return f"{a}address_lc = {p}", [lower]
    stored = to_column(address)
    head = stored[:stored.rfind("@") + 1] if "@" in address else stored
    return f"{a}address_lc = {p} AND substr({a}address, 1, {p}) = {p}", [lower, len(head), head]


def unnotified_sql(kind: str, since: float, reasons: Iterable[str] | None, skip_reasons: Iterable[str],
                   limit: int, placeholder: str, tables: tuple[str, str, str]) -> tuple[str, list[Any]]:
    """The query of `unnotified` for either SQL backend: (mail_id, address) rows, oldest first.
    `tables`: the names of the messages, recipients and notices tables."""
    messages, recipients, notices = tables
    p = placeholder
    args: list[Any] = [kind]
    if kind == NOTICE_RECIPIENT:
        sql = (f"SELECT m.mail_id, r.address FROM {messages} m JOIN {recipients} r ON r.mail_id = m.mail_id "
               f"WHERE r.status = '{PENDING}' AND r.original = {'TRUE' if p == '%s' else '1'} AND NOT EXISTS "
               f"(SELECT 1 FROM {notices} n WHERE n.kind = {p} AND n.mail_id = m.mail_id "
               f"AND n.address_lc = r.address_lc)")
    elif kind == NOTICE_ADMIN:
        sql = (f"SELECT m.mail_id, '' FROM {messages} m WHERE NOT EXISTS "
               f"(SELECT 1 FROM {notices} n WHERE n.kind = {p} AND n.mail_id = m.mail_id)")
    else:
        raise ValueError(f"unknown notice kind {kind!r}")
    sql += f" AND m.created >= {p}"
    args.append(since)
    for values, negate in ((reasons, False), (skip_reasons, True)):
        if values is None:
            continue
        values = list(values)
        if not values:
            if not negate:
                sql += " AND 1 = 0"
            continue
        sql += f" AND m.reason {'NOT ' if negate else ''}IN ({', '.join([p] * len(values))})"
        args += values
    return sql + f" ORDER BY m.created, m.mail_id LIMIT {int(limit)}", args


class QuarantineError(Exception):
    """A quarantine operation that cannot be done as asked (bad id, wrong secret ...)."""


class QuarantineNotFound(QuarantineError):
    """No quarantined message has that id."""


class QuarantineUnavailable(TemporaryFailure):
    """The store cannot be written or read now; the milter must answer 4xx, never accept-and-drop."""

    reply = Reply(451, "4.3.0", "Quarantine temporarily unavailable, please try again later")


def new_id() -> str:
    """A fresh random id (mail_id or secret_id) from the OS's CSPRNG."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def is_valid_id(text: str) -> bool:
    return bool(_ID_RE.fullmatch(text or ""))      # ($ alone would let a trailing newline pass)


def secret_matches(record: "QuarantineRecord", secret: str) -> bool:
    """Constant-time comparison, so timing does not reveal how much of a guess was right."""
    return hmac.compare_digest(record.secret_id.encode(), (secret or "").encode())


@dataclasses.dataclass(frozen=True)
class RecipientState:
    """Release state of one recipient: pending until released (by whom, when, to which address)."""

    address: str
    status: str = PENDING
    changed_at: float | None = None
    changed_by: str | None = None
    original: bool = True          # False for an alternative address given at release time


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """One thing done to quarantined mail (release, delete ...): kept after the message is gone."""

    at: float
    by: str                        # who: a logged-in address, "token:<recipient>", a CLI user
    action: str                    # release | release-failed | delete ...
    mail_id: str
    detail: str = ""               # to=..., reason=..., the error
    host: str = ""                 # the host that did it


@dataclasses.dataclass(frozen=True)
class QuarantineRecord:
    """Everything known about one quarantined message, except its bytes."""

    mail_id: str
    secret_id: str
    created: float                 # seconds since the epoch
    reason: str                    # virus | spam | banned | score | ...
    detail: str                    # the virus name, the banned file, "score 12.5" ...
    sender: str                    # envelope sender, "" for <>
    recipients: tuple[RecipientState, ...]
    size: int
    queue_id: str = ""
    client_addr: str = ""
    client_name: str = ""
    helo: str = ""
    host: str = ""                 # the MX host that quarantined it
    subject: str = ""
    header_from: str = ""
    message_id: str = ""
    score: float | None = None
    symbols: tuple[tuple[str, float, str], ...] = ()   # (name, score, detail)
    # How recipient() compares addresses: the store that read the record sets it from
    # directory_local_part_case_sensitive (not part of the record's value).
    local_part_case_sensitive: bool = dataclasses.field(default=False, compare=False, repr=False)

    def recipient(self, address: str) -> RecipientState | None:
        """The state of the recipient that is `address`'s mailbox (recipient_key), or None."""
        key = recipient_key(address, self.local_part_case_sensitive)
        for r in self.recipients:
            if recipient_key(r.address, self.local_part_case_sensitive) == key:
                return r
        return None

    def pending(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients if r.status == PENDING and r.original)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("secret_id")
        d.pop("local_part_case_sensitive")
        return d


@dataclasses.dataclass(frozen=True)
class ListFilter:
    """Filters of `list()`: all given ones must match; ages compare with `now`."""

    recipient: str | None = None
    sender: str | None = None
    reason: str | None = None
    older_than: float | None = None     # seconds
    newer_than: float | None = None     # seconds
    status: str | None = None           # pending | released: any recipient in that state
    limit: int | None = None

    def sql_where(self, now: float, placeholder: str, recipients_table: str, *,
                  local_part_case_sensitive: bool = False) -> tuple[str, list[Any]]:
        """The WHERE clause (over messages `m`) and its arguments, for either SQL backend; the
        recipient compared as the directory does (recipient_sql)."""
        where: list[str] = []
        args: list[Any] = []
        def in_recipients(condition: str) -> str:
            return f"m.mail_id IN (SELECT mail_id FROM {recipients_table} WHERE {condition})"
        if self.recipient:
            condition, values = recipient_sql(self.recipient, placeholder, local_part_case_sensitive)
            where.append(in_recipients(condition))
            args += values
        if self.sender is not None:
            where.append(f"lower(m.sender) = {placeholder}")      # (SQLite's is fold_case too)
            args.append(to_column(fold_case(self.sender)))
        if self.reason:
            where.append(f"m.reason = {placeholder}")
            args.append(self.reason)
        if self.older_than is not None:
            where.append(f"m.created <= {placeholder}")
            args.append(now - self.older_than)
        if self.newer_than is not None:
            where.append(f"m.created >= {placeholder}")
            args.append(now - self.newer_than)
        if self.status:
            where.append(in_recipients(f"status = {placeholder}"))
            args.append(self.status)
        return " AND ".join(where) or "1 = 1", args


class QuarantineStore(abc.ABC):
    """The contract every backend keeps (tests/milters/test_quarantine_store.py checks it).

    `put` returns only once the message and its record are durable. Every method raises
    QuarantineUnavailable when the backend cannot be reached in time, QuarantineNotFound
    for an unknown id.
    """

    @abc.abstractmethod
    def put(self, record: QuarantineRecord, message: bytes) -> None:
        """Store a new message under record.mail_id (which must not exist yet)."""

    @abc.abstractmethod
    def get(self, mail_id: str) -> QuarantineRecord:
        """The record of one message."""

    @abc.abstractmethod
    def message(self, mail_id: str) -> bytes:
        """The stored message bytes."""

    @abc.abstractmethod
    def list(self, filters: ListFilter, now: float) -> list[QuarantineRecord]:
        """Records matching the filters, newest first."""

    @abc.abstractmethod
    def mark_released(self, mail_id: str, addresses: Iterable[str], by: str, now: float) -> QuarantineRecord:
        """Record a release to these addresses (alternatives are added as non-original recipients)."""

    @abc.abstractmethod
    def delete(self, mail_id: str) -> None:
        """Remove the message and its record."""

    @abc.abstractmethod
    def expire(self, now: float, ages: Mapping[str, float], default_age: float) -> list[str]:
        """Delete messages older than the age for their reason; return their ids."""

    # notices: who was told of which message (owlery.quarantine.notify) ---------------------

    @abc.abstractmethod
    def unnotified(self, kind: str, since: float, *, reasons: Iterable[str] | None = None,
                   skip_reasons: Iterable[str] = (), limit: int = 1000) -> list[tuple[QuarantineRecord, str]]:
        """(record, address) pairs nobody has told of yet, oldest first: for NOTICE_RECIPIENT each
        pending original recipient, for NOTICE_ADMIN each message (address ADMIN), of messages
        created at or after `since` with a reason in `reasons` (None: any) and not in `skip_reasons`."""

    @abc.abstractmethod
    def claim_notices(self, kind: str, pairs: Iterable[tuple[str, str]], now: float) -> list[tuple[str, str]]:
        """Record (mail_id, address) pairs as told of at `now`; return those this call recorded
        (not told of before, message still there), so two hosts never send the same notice."""

    @abc.abstractmethod
    def unclaim_notices(self, kind: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Forget claimed pairs (their notice could not be sent; the next run tries again)."""

    @abc.abstractmethod
    def last_notice(self, kind: str, address: str) -> float | None:
        """When `address` was last told of anything (None: never, or all of it expired)."""

    @abc.abstractmethod
    def notices_since(self, kind: str, since: float) -> int:
        """How many notices of that kind were recorded at or after `since` (admin rate limit)."""

    # audit: who released or deleted what (read by `owlery web`) -----------------------------

    @abc.abstractmethod
    def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (durable when this returns; no reference to the message)."""

    @abc.abstractmethod
    def audit_log(self, *, limit: int = 200, mail_id: str | None = None) -> list[AuditEntry]:
        """The newest audit entries first, all or of one message."""

    @abc.abstractmethod
    def expire_audit(self, before: float, *, dry_run: bool = False) -> int:
        """Drop the audit entries made before `before` (seconds since the epoch) and return how
        many went; with `dry_run`, only count them (`owlery quarantine expire`)."""

    def close(self) -> None:
        """Release any held resources (connections)."""

    # shared helpers -------------------------------------------------------------------

    @staticmethod
    def _check_id(mail_id: str) -> None:
        if not is_valid_id(mail_id):
            raise QuarantineNotFound(f"{mail_id!r} is not a quarantine id "
                                     f"({ID_LENGTH} characters from {ID_ALPHABET})")


def cutoffs(now: float, ages: Mapping[str, float], default_age: float) -> tuple[dict[str, float], float]:
    """Creation-time limits per reason (older records expire) and for all other reasons."""
    return {reason: now - age for reason, age in ages.items()}, now - default_age
