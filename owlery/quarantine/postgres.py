"""Quarantine PostgreSQL backend: records, per-recipient release state and message bytes in one database.

For several MX hosts: any of them quarantines, any host's CLI lists and releases. A
message and its record go in one transaction; PostgreSQL's commit (synchronous_commit
on, the default) makes it durable before `put` returns. Tables live in the configured
schema (created when missing) with the schema version in `quarantine_meta`.
Talks to: PostgreSQL through psycopg 3 (one short-lived connection per call, connect
and statement timeouts). Tests: tests/milters/test_quarantine_store.py,
tests/e2e/test_fault_injection.py (the milter restarted over existing tables)
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from owlery.quarantine.base import (PENDING, RELEASED, SCHEMA_VERSION, AuditEntry, ListFilter, QuarantineNotFound,
                                    QuarantineRecord, QuarantineStore, QuarantineUnavailable,
                                    RecipientState, cutoffs, from_column, recipient_sql, stored_recipients, to_column,
                                    unnotified_sql)

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS quarantine_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS quarantine_messages (
        mail_id TEXT PRIMARY KEY, secret_id TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL, detail TEXT NOT NULL, sender TEXT NOT NULL, size BIGINT NOT NULL,
        queue_id TEXT NOT NULL, client_addr TEXT NOT NULL, client_name TEXT NOT NULL,
        helo TEXT NOT NULL, host TEXT NOT NULL, subject TEXT NOT NULL, header_from TEXT NOT NULL,
        message_id TEXT NOT NULL, score DOUBLE PRECISION, symbols TEXT NOT NULL,
        message BYTEA NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS quarantine_messages_created ON quarantine_messages (created)",
    """CREATE TABLE IF NOT EXISTS quarantine_recipients (
        seq BIGSERIAL,
        mail_id TEXT NOT NULL REFERENCES quarantine_messages (mail_id) ON DELETE CASCADE,
        address TEXT NOT NULL, address_lc TEXT NOT NULL, status TEXT NOT NULL,
        changed_at DOUBLE PRECISION, changed_by TEXT, original BOOLEAN NOT NULL,
        PRIMARY KEY (mail_id, address_lc))""",
    "CREATE INDEX IF NOT EXISTS quarantine_recipients_address ON quarantine_recipients (address_lc)",
    """CREATE TABLE IF NOT EXISTS quarantine_notices (
        kind TEXT NOT NULL,
        mail_id TEXT NOT NULL REFERENCES quarantine_messages (mail_id) ON DELETE CASCADE,
        address_lc TEXT NOT NULL, sent_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (kind, mail_id, address_lc))""",
    "CREATE INDEX IF NOT EXISTS quarantine_notices_sent ON quarantine_notices (kind, address_lc, sent_at)",
    """CREATE TABLE IF NOT EXISTS quarantine_audit (
        seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, by_whom TEXT NOT NULL,
        action TEXT NOT NULL, mail_id TEXT NOT NULL, detail TEXT NOT NULL, host TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS quarantine_audit_at ON quarantine_audit (at)",
]

_COLUMNS = ("mail_id", "secret_id", "created", "reason", "detail", "sender", "size", "queue_id",
            "client_addr", "client_name", "helo", "host", "subject", "header_from", "message_id",
            "score", "symbols")


class PostgresStore(QuarantineStore):
    def __init__(self, dsn: str, *, schema: str = "public", timeout: float = 10.0,
                 local_part_case_sensitive: bool = False):
        """`local_part_case_sensitive`: directory_local_part_case_sensitive, how recipients match
        (owlery.quarantine.base.recipient_key)."""
        self.dsn = dsn
        self.schema = schema
        self.timeout = timeout
        self.local_part_case_sensitive = local_part_case_sensitive
        self._ready = False

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"

    # -- plumbing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        import psycopg
        from psycopg import sql
        started = time.monotonic()
        try:
            # client_min_messages: no NOTICE/WARNING ("relation ... already exists, skipping" from the
            # schema set-up of a fresh process): psycopg's notice callback, entered from C in a
            # pymilter connection thread, crashed `owlery milter` (SIGSEGV; bench/bench_faults.py).
            conn = psycopg.connect(self.dsn, connect_timeout=max(1, int(self.timeout)),
                                   options=f"-c statement_timeout={int(self.timeout * 1000)} "
                                           f"-c lock_timeout={int(self.timeout * 1000)} "
                                           "-c client_min_messages=error")
        except psycopg.Error as e:
            raise QuarantineUnavailable(f"quarantine database: cannot connect: {e}".strip()) from e
        try:
            with conn:          # commits on success, rolls back on an exception, then closes
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
                yield conn
        except psycopg.Error as e:
            raise QuarantineUnavailable(f"quarantine database: {e} (after {time.monotonic() - started:.1f}s)") from e

    def _setup(self) -> None:
        if self._ready:
            return
        from psycopg import sql
        with self._db() as db:
            # Serialise concurrent first runs (two MX hosts starting together).
            db.execute("SELECT pg_advisory_xact_lock(hashtext('owlery-quarantine-schema'))")
            db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM quarantine_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO quarantine_meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise QuarantineUnavailable(f"quarantine database schema version {row[0]} is newer than "
                                            f"this Owlery understands ({SCHEMA_VERSION})")
        self._ready = True

    # -- the contract --------------------------------------------------------------------

    def put(self, record: QuarantineRecord, message: bytes) -> None:
        self._check_id(record.mail_id)
        self._setup()
        with self._db() as db:
            db.execute(f"INSERT INTO quarantine_messages ({', '.join(_COLUMNS)}, message) "
                       f"VALUES ({', '.join(['%s'] * (len(_COLUMNS) + 1))})", _row(record) + (message,))
            with db.cursor() as cur:
                cur.executemany("INSERT INTO quarantine_recipients (mail_id, address, address_lc, status, "
                                "changed_at, changed_by, original) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                [(record.mail_id, to_column(r.address), to_column(r.address.lower()), r.status,
                                  r.changed_at, None if r.changed_by is None else to_column(r.changed_by),
                                  r.original) for r in stored_recipients(record.recipients)])

    def get(self, mail_id: str) -> QuarantineRecord:
        self._check_id(mail_id)
        self._setup()
        with self._db() as db:
            records = self._records(db, "m.mail_id = %s", [mail_id])
        if not records:
            raise QuarantineNotFound(f"no quarantined message with id {mail_id}")
        return records[0]

    def message(self, mail_id: str) -> bytes:
        self._check_id(mail_id)
        self._setup()
        with self._db() as db:
            row = db.execute("SELECT message FROM quarantine_messages WHERE mail_id = %s", (mail_id,)).fetchone()
        if row is None:
            raise QuarantineNotFound(f"no quarantined message with id {mail_id}")
        return bytes(row[0])

    def list(self, filters: ListFilter, now: float) -> list[QuarantineRecord]:
        self._setup()
        where, args = filters.sql_where(now, "%s", "quarantine_recipients",
                                        local_part_case_sensitive=self.local_part_case_sensitive)
        with self._db() as db:
            return self._records(db, where, args, filters.limit)

    def mark_released(self, mail_id: str, addresses: Iterable[str], by: str, now: float) -> QuarantineRecord:
        self._check_id(mail_id)
        self._setup()
        with self._db() as db:
            if db.execute("SELECT 1 FROM quarantine_messages WHERE mail_id = %s FOR UPDATE",
                          (mail_id,)).fetchone() is None:
                raise QuarantineNotFound(f"no quarantined message with id {mail_id}")
            for address in addresses:
                db.execute("INSERT INTO quarantine_recipients (mail_id, address, address_lc, status, changed_at, "
                           "changed_by, original) VALUES (%s, %s, %s, %s, %s, %s, FALSE) "
                           "ON CONFLICT (mail_id, address_lc) DO UPDATE SET status = EXCLUDED.status, "
                           "changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by",
                           (mail_id, to_column(address), to_column(address.lower()), RELEASED, now,
                            to_column(by)))
        return self.get(mail_id)

    def totals(self) -> tuple[int, int]:
        """(messages, bytes) held, for the owlery_quarantine_* gauges (the milter's metrics read it
        at most once a minute, off its mail threads): one pass over the records, whose message
        bytes PostgreSQL keeps out of line (TOAST). Creates nothing: no table yet is (0, 0)."""
        with self._db() as db:
            if db.execute("SELECT to_regclass('quarantine_messages')").fetchone()[0] is None:
                return 0, 0
            count, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM quarantine_messages").fetchone()
        return int(count), int(size)

    def delete(self, mail_id: str) -> None:
        self._check_id(mail_id)
        self._setup()
        with self._db() as db:
            gone = db.execute("DELETE FROM quarantine_messages WHERE mail_id = %s", (mail_id,)).rowcount
        if not gone:
            raise QuarantineNotFound(f"no quarantined message with id {mail_id}")

    def expire(self, now: float, ages: Mapping[str, float], default_age: float) -> list[str]:
        self._setup()
        per_reason, other = cutoffs(now, ages, default_age)
        clauses, args = [], []
        for reason, limit in per_reason.items():
            clauses.append("(reason = %s AND created < %s)")
            args += [reason, limit]
        clauses.append("(NOT (reason = ANY(%s)) AND created < %s)")
        args += [list(per_reason), other]
        with self._db() as db:
            rows = db.execute(f"DELETE FROM quarantine_messages WHERE {' OR '.join(clauses)} RETURNING mail_id",
                              args).fetchall()
        return [r[0] for r in rows]

    # -- notices ---------------------------------------------------------------------------

    def unnotified(self, kind: str, since: float, *, reasons: Iterable[str] | None = None,
                   skip_reasons: Iterable[str] = (), limit: int = 1000) -> list[tuple[QuarantineRecord, str]]:
        self._setup()
        sql, args = unnotified_sql(kind, since, reasons, skip_reasons, limit, "%s",
                                   ("quarantine_messages", "quarantine_recipients", "quarantine_notices"))
        with self._db() as db:
            rows = db.execute(sql, args).fetchall()
            ids = list(dict.fromkeys(mail_id for mail_id, _ in rows))
            records = {r.mail_id: r for r in self._records(db, "m.mail_id = ANY(%s)", [ids])} if ids else {}
        return [(records[mail_id], from_column(address)) for mail_id, address in rows if mail_id in records]

    def claim_notices(self, kind: str, pairs: Iterable[tuple[str, str]], now: float) -> list[tuple[str, str]]:
        self._setup()
        claimed = []
        with self._db() as db:
            for mail_id, address in pairs:
                if db.execute("INSERT INTO quarantine_notices (kind, mail_id, address_lc, sent_at) "
                              "SELECT %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM quarantine_messages "
                              "WHERE mail_id = %s) ON CONFLICT DO NOTHING",
                              (kind, mail_id, to_column(address.lower()), now, mail_id)).rowcount:
                    claimed.append((mail_id, address))
        return claimed

    def unclaim_notices(self, kind: str, pairs: Iterable[tuple[str, str]]) -> None:
        self._setup()
        with self._db() as db:
            for mail_id, address in pairs:
                db.execute("DELETE FROM quarantine_notices WHERE kind = %s AND mail_id = %s AND address_lc = %s",
                           (kind, mail_id, to_column(address.lower())))

    def last_notice(self, kind: str, address: str) -> float | None:
        self._setup()
        if not self.local_part_case_sensitive:
            with self._db() as db:
                return db.execute("SELECT max(sent_at) FROM quarantine_notices WHERE kind = %s AND address_lc = %s",
                                  (kind, to_column(address.lower()))).fetchone()[0]
        # notices keep only the lower-cased address: the recipient row says whose mailbox it was
        condition, args = recipient_sql(address, "%s", True, "r.")
        with self._db() as db:
            return db.execute("SELECT max(n.sent_at) FROM quarantine_notices n JOIN quarantine_recipients r "
                              "ON r.mail_id = n.mail_id AND r.address_lc = n.address_lc "
                              f"WHERE n.kind = %s AND {condition}", [kind, *args]).fetchone()[0]

    def notices_since(self, kind: str, since: float) -> int:
        self._setup()
        with self._db() as db:
            return db.execute("SELECT count(*) FROM quarantine_notices WHERE kind = %s AND sent_at >= %s",
                              (kind, since)).fetchone()[0]

    # -- rows ------------------------------------------------------------------------------

    def add_audit(self, entry: AuditEntry) -> None:
        self._setup()
        with self._db() as db:
            db.execute("INSERT INTO quarantine_audit (at, by_whom, action, mail_id, detail, host) "
                       "VALUES (%s, %s, %s, %s, %s, %s)",
                       (entry.at, *map(to_column, (entry.by, entry.action, entry.mail_id, entry.detail, entry.host))))

    def audit_log(self, *, limit: int = 200, mail_id: str | None = None) -> list[AuditEntry]:
        self._setup()
        where, args = ("WHERE mail_id = %s", [to_column(mail_id)]) if mail_id else ("", [])
        with self._db() as db:
            rows = db.execute(f"SELECT at, by_whom, action, mail_id, detail, host FROM quarantine_audit {where} "
                              f"ORDER BY at DESC, seq DESC LIMIT {int(limit)}", args).fetchall()
        return [AuditEntry(at, *map(from_column, rest)) for at, *rest in rows]

    def expire_audit(self, before: float, *, dry_run: bool = False) -> int:
        self._setup()
        with self._db() as db:
            if dry_run:
                return db.execute("SELECT count(*) FROM quarantine_audit WHERE at < %s", (before,)).fetchone()[0]
            return db.execute("DELETE FROM quarantine_audit WHERE at < %s", (before,)).rowcount

    def _records(self, db: Any, where: str, args: list, limit: int | None = None) -> list[QuarantineRecord]:
        sql = (f"SELECT {', '.join('m.' + c for c in _COLUMNS)} FROM quarantine_messages m WHERE {where} "
               "ORDER BY m.created DESC, m.mail_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = db.execute(sql, args).fetchall()
        # every listed message's recipients in one query (one per message made a page of 5,000
        # on a remote PostgreSQL 5,000 round trips)
        by_message: dict[str, list[tuple]] = {row[0]: [] for row in rows}
        if rows:
            for mail_id, *rcpt in db.execute(
                    "SELECT mail_id, address, status, changed_at, changed_by, original FROM quarantine_recipients "
                    "WHERE mail_id = ANY(%s) ORDER BY mail_id, original DESC, seq", (list(by_message),)):
                by_message[mail_id].append(rcpt)
        out = []
        for row in rows:
            rcpts = by_message[row[0]]
            values = {name: from_column(v) if isinstance(v, str) and name != "symbols" else v
                      for name, v in zip(_COLUMNS, row)}
            values["symbols"] = tuple((str(n), float(s), str(d)) for n, s, d in json.loads(values["symbols"]))
            values["recipients"] = tuple(RecipientState(from_column(a), st, at, from_column(by), bool(o))
                                         for a, st, at, by, o in rcpts)
            out.append(QuarantineRecord(**values, local_part_case_sensitive=self.local_part_case_sensitive))
        return out

    def drop_schema(self) -> None:
        """Remove the schema and everything in it (tests use one schema each)."""
        from psycopg import sql
        with self._db() as db:
            db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
        self._ready = False


def _row(r: QuarantineRecord) -> tuple:
    # text columns through to_column: an 8-bit envelope sender, recipient or client name
    # (surrogateescape) is kept exactly instead of failing the put (tempfailed for ever)
    return (r.mail_id, r.secret_id, r.created, *map(to_column, (r.reason, r.detail, r.sender)), r.size,
            *map(to_column, (r.queue_id, r.client_addr, r.client_name, r.helo, r.host, r.subject,
                             r.header_from, r.message_id)),
            r.score, json.dumps([list(s) for s in r.symbols]))       # (JSON escapes surrogates itself)


__all__ = ["PostgresStore", "PENDING", "RELEASED"]
