"""Quarantine store: the interface, the record it keeps, id generation and the backend factory.

A quarantined message is stored with its envelope, client, reasons and scores, durably
(fsynced or committed) before the milter answers. Each one gets an unguessable `mail_id`
(shown in logs and headers) and a separate `secret_id` that authorises release, as amavis
does; release state is kept per recipient. Backends: `directory` (message files plus a
SQLite index, the embedded default) and `postgresql` (shared by several MX hosts).
Talks to: the file system or PostgreSQL through the backends.
Tests: tests/milters/test_quarantine_store.py (one contract suite run against both backends).
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
from owlery.settings import Duration, Str, choice, setting

QUARANTINE_BACKEND = setting("quarantine_backend", choice("directory", "postgresql"), "directory",
                             "Where quarantined messages are kept: directory (files plus a SQLite index, "
                             "one host) or postgresql (shared by several MX hosts).")
QUARANTINE_DIRECTORY = setting("quarantine_directory", Str, "/var/lib/owlery/quarantine",
                               "Directory of the directory backend: messages under msg/, the index in "
                               "index.sqlite3. Must be writable by the milter and the quarantine CLI.")
QUARANTINE_PG_DSN_FILE = setting("quarantine_pg_dsn_file", Str, None,
                                  "A file whose first line is quarantine_pg_dsn (keeps its password out "
                                  "of the settings file); setting both is an error.")
QUARANTINE_PG_DSN = setting("quarantine_pg_dsn", Str, None,
                            "PostgreSQL connection string of the postgresql backend, e.g. "
                            "\"host=db.example.org dbname=mail user=owlery\".")
QUARANTINE_PG_SCHEMA = setting("quarantine_pg_schema", Str, "public",
                               "PostgreSQL schema holding the quarantine tables (created when missing).")
QUARANTINE_DB_TIMEOUT = setting("quarantine_db_timeout", Duration, "10s",
                                "Longest wait for the quarantine index or database (connect, lock or "
                                "statement); past it the milter answers with a temporary failure.", unit="s")

SCHEMA_VERSION = 1

# 32 symbols without look-alikes (no 0/o, 1/l): 15 of them carry 75 bits, more than
# amavis' 72-bit mail_id, and an id can never start with "-" and pass for a CLI option.
ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
ID_LENGTH = 15
_ID_RE = re.compile(f"^[{ID_ALPHABET}]{{{ID_LENGTH}}}$")

PENDING, RELEASED = "pending", "released"


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
    return bool(_ID_RE.match(text or ""))


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

    def recipient(self, address: str) -> RecipientState | None:
        for r in self.recipients:
            if r.address.lower() == address.lower():
                return r
        return None

    def pending(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients if r.status == PENDING and r.original)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("secret_id")
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

    def sql_where(self, now: float, placeholder: str, recipients_table: str) -> tuple[str, list[Any]]:
        """The WHERE clause (over messages `m`) and its arguments, for either SQL backend."""
        where: list[str] = []
        args: list[Any] = []
        def in_recipients(column: str) -> str:
            return f"m.mail_id IN (SELECT mail_id FROM {recipients_table} WHERE {column} = {placeholder})"
        if self.recipient:
            where.append(in_recipients("address_lc"))
            args.append(self.recipient.lower())
        if self.sender is not None:
            where.append(f"lower(m.sender) = {placeholder}")
            args.append(self.sender.lower())
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
            where.append(in_recipients("status"))
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


def open_store(settings: Any) -> QuarantineStore:
    """The configured backend."""
    if settings.quarantine_backend == "postgresql":
        from milters.quarantine.postgres import PostgresStore
        from owlery.secrets import SecretError, read_secret
        try:
            dsn = read_secret(settings, "quarantine_pg_dsn")
        except SecretError as e:
            raise QuarantineError(str(e)) from None
        if not dsn:
            raise QuarantineError("quarantine_backend = \"postgresql\" needs quarantine_pg_dsn")
        return PostgresStore(dsn, schema=settings.quarantine_pg_schema,
                             timeout=settings.quarantine_db_timeout)
    from milters.quarantine.directory import DirectoryStore
    return DirectoryStore(settings.quarantine_directory, timeout=settings.quarantine_db_timeout,
                          owner=_daemon_owner(settings))


def _daemon_owner(settings: Any) -> tuple[int, int] | None:
    """(uid, gid) of daemon_user (and daemon_group), who must own the store; None when unset."""
    if not settings.daemon_user:
        return None
    import grp
    import pwd
    try:
        pw = pwd.getpwnam(settings.daemon_user)
        gid = grp.getgrnam(settings.daemon_group).gr_gid if settings.daemon_group else pw.pw_gid
    except KeyError as e:
        raise QuarantineError(f"daemon_user/daemon_group: no such user or group {e}") from None
    return pw.pw_uid, gid
