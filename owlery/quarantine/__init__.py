"""Quarantine store: its settings and the backend factory; the interface, the record it keeps and
id generation are in owlery.quarantine.base (re-exported here).

A quarantined message is stored with its envelope, client, reasons and scores, durably
(fsynced or committed) before the milter answers. Each one gets an unguessable `mail_id`
(shown in logs and headers) and a separate `secret_id` that authorises release, as amavis
does; release state is kept per recipient. Backends: `directory` (message files plus a
SQLite index, the embedded default) and `postgresql` (shared by several MX hosts).
In the core because two products use it: the milter writes it, `owlery web` and the
quarantine CLI read it; release.py (re-injection) and tokens.py (digest links) are shared too.
Talks to: the file system or PostgreSQL through the backends.
Tests: tests/milters/test_quarantine_store.py (one contract suite run against both backends).
"""

from __future__ import annotations

from typing import Any

# the interface, records and ids live in a leaf the backends import (no package cycle)
from owlery.quarantine.base import (ADMIN, ARCHIVE_REASON, ARCHIVED, ID_ALPHABET, ID_LENGTH, NOTICE_ADMIN,
                                    NOTICE_RECIPIENT, PENDING, RELEASED, SCHEMA_VERSION, AuditEntry,
                                    ListFilter, QuarantineError, QuarantineNotFound, QuarantineRecord,
                                    QuarantineStore, QuarantineUnavailable, RecipientState, cutoffs,
                                    is_valid_id, new_id, secret_matches, unnotified_sql)
from owlery.settings import Bool, Duration, Str, choice, setting

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

QUARANTINE_ARCHIVE = setting(
    "quarantine_archive", Bool, False,
    "Keep a copy of every message that got a verdict (spam-tagged, over milter_score_tag, "
    "discarded) but was delivered or dropped rather than quarantined, as amavis' archive "
    "quarantine: reason \"archive\", never announced to recipients, expired after "
    "quarantine_archive_retention. Quarantined messages are kept anyway; rejected ones are not.")
QUARANTINE_ARCHIVE_RETENTION = setting(
    "quarantine_archive_retention", Duration, "30d", unit="s",
    doc="`owlery quarantine expire` deletes archive copies older than this.")
QUARANTINE_AUDIT_RETENTION = setting(
    "quarantine_audit_retention", Duration, "365d", unit="s",
    doc="`owlery quarantine expire` drops entries of the store's audit (every release and delete, "
        "what the web's audit page shows) older than this; 0 keeps them for ever.")

__all__ = ["ADMIN", "ARCHIVE_REASON", "ARCHIVED", "ID_ALPHABET", "ID_LENGTH", "NOTICE_ADMIN", "NOTICE_RECIPIENT",
           "PENDING", "RELEASED", "SCHEMA_VERSION", "AuditEntry", "ListFilter", "QuarantineError",
           "QuarantineNotFound", "QuarantineRecord", "QuarantineStore", "QuarantineUnavailable",
           "RecipientState", "cutoffs", "is_valid_id", "new_id", "secret_matches", "unnotified_sql",
           "open_store", "daemon_owner"]


def open_store(settings: Any) -> QuarantineStore:
    """The configured backend, matching recipients as the directory does
    (directory_local_part_case_sensitive; base.recipient_key)."""
    if settings.quarantine_backend == "postgresql":
        from owlery.quarantine.postgres import PostgresStore
        from owlery.secrets import SecretError, read_secret
        try:
            dsn = read_secret(settings, "quarantine_pg_dsn")
        except SecretError as e:
            raise QuarantineError(str(e)) from None
        if not dsn:
            raise QuarantineError("quarantine_backend = \"postgresql\" needs quarantine_pg_dsn")
        return PostgresStore(dsn, schema=settings.quarantine_pg_schema,
                             timeout=settings.quarantine_db_timeout,
                             local_part_case_sensitive=settings.directory_local_part_case_sensitive)
    from owlery.quarantine.directory import DirectoryStore
    return DirectoryStore(settings.quarantine_directory, timeout=settings.quarantine_db_timeout,
                          owner=daemon_owner(settings),
                          local_part_case_sensitive=settings.directory_local_part_case_sensitive)


def daemon_owner(settings: Any) -> tuple[int, int] | None:
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
