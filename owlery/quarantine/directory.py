"""Quarantine directory backend: one file per message plus a SQLite index (the embedded default).

Layout under the quarantine directory: `msg/<2 chars>/<mail_id>` (the message, written
tmp -> fsync -> rename -> fsync of the directory), `tmp/` (partial writes, same file
system), `index.sqlite3` (records and per-recipient release state; WAL, synchronous=FULL,
so a commit is on disk when it returns). The file lands before its index row, so a crash
can leave an unindexed file (harmless, never a row without its message).
Private whatever the umask (the milter runs with group postfix): directories 0700, message
files and the index 0600 (SQLite gives its -wal and -shm files the index's mode), set
explicitly (chmod/fchmod); an older store's group-readable directories and index are
tightened when the store is opened. Run as root (the quarantine CLI), what the store creates
goes to the owner of the quarantine directory (of its parent, for the directory itself), so
that the milter, running as that user, can still write it.
Talks to: the file system and sqlite3 (one short-lived connection per call, busy timeout).
Tests: tests/milters/test_quarantine_store.py, tests/milters/test_low_hardening.py (modes, owner)
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping

from owlery.quarantine.base import (PENDING, RELEASED, SCHEMA_VERSION, AuditEntry, ListFilter, QuarantineNotFound,
                                    QuarantineRecord, QuarantineStore, QuarantineUnavailable,
                                    RecipientState, cutoffs, fold_case, from_column, recipient_sql, stored_recipients,
                                    to_column, unnotified_sql)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    mail_id TEXT PRIMARY KEY, secret_id TEXT NOT NULL, created REAL NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, sender TEXT NOT NULL, size INTEGER NOT NULL,
    queue_id TEXT NOT NULL, client_addr TEXT NOT NULL, client_name TEXT NOT NULL,
    helo TEXT NOT NULL, host TEXT NOT NULL, subject TEXT NOT NULL, header_from TEXT NOT NULL,
    message_id TEXT NOT NULL, score REAL, symbols TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_created ON messages (created);
CREATE TABLE IF NOT EXISTS recipients (
    mail_id TEXT NOT NULL REFERENCES messages (mail_id) ON DELETE CASCADE,
    address TEXT NOT NULL, address_lc TEXT NOT NULL, status TEXT NOT NULL,
    changed_at REAL, changed_by TEXT, original INTEGER NOT NULL,
    PRIMARY KEY (mail_id, address_lc));
CREATE INDEX IF NOT EXISTS recipients_address ON recipients (address_lc);
CREATE TABLE IF NOT EXISTS notices (
    kind TEXT NOT NULL,
    mail_id TEXT NOT NULL REFERENCES messages (mail_id) ON DELETE CASCADE,
    address_lc TEXT NOT NULL, sent_at REAL NOT NULL,
    PRIMARY KEY (kind, mail_id, address_lc));
CREATE INDEX IF NOT EXISTS notices_sent ON notices (kind, address_lc, sent_at);
CREATE TABLE IF NOT EXISTS audit (
    at REAL NOT NULL, by TEXT NOT NULL, action TEXT NOT NULL, mail_id TEXT NOT NULL,
    detail TEXT NOT NULL, host TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
"""

DIR_MODE = 0o700
FILE_MODE = 0o600

_COLUMNS = ("mail_id", "secret_id", "created", "reason", "detail", "sender", "size", "queue_id",
            "client_addr", "client_name", "helo", "host", "subject", "header_from", "message_id",
            "score", "symbols")


class DirectoryStore(QuarantineStore):
    def __init__(self, directory: str, *, timeout: float = 10.0, owner: tuple[int, int] | None = None,
                 local_part_case_sensitive: bool = False):
        """`owner`: (uid, gid) that what root creates here is given to (the milter's daemon_user);
        None: the owner of the store (or of its parent directory), unless that is root.
        `local_part_case_sensitive`: directory_local_part_case_sensitive, how recipients match
        (owlery.quarantine.base.recipient_key)."""
        self.directory = os.path.abspath(directory)
        self.timeout = timeout
        self.local_part_case_sensitive = local_part_case_sensitive
        self._setup_lock = threading.Lock()
        self._index = os.path.join(self.directory, "index.sqlite3")
        self._ready = False
        self._daemon_owner = owner
        self._owner: tuple[int, int] | None = None     # (uid, gid) for what root creates here

    def __repr__(self) -> str:
        return f"DirectoryStore({self.directory!r})"

    # -- plumbing --------------------------------------------------------------------------

    def _setup(self) -> None:
        if self._ready:
            return
        # One thread sets up; libmilter runs a thread per connection and the first
        # messages may all arrive together.
        with self._setup_lock:
            if not self._ready:
                self._setup_locked()

    def _setup_locked(self) -> None:
        try:
            parent = os.path.dirname(self.directory)
            os.makedirs(parent, exist_ok=True)
            if os.geteuid() == 0 and self._daemon_owner is not None:
                # root (the CLI, `owlery quarantine list` first thing) creates the store as
                # the milter's daemon_user, else the milter could no longer write it
                self._owner = self._daemon_owner
            elif os.geteuid() == 0:
                # no daemon_user: hand what root creates to whoever owns the store
                st = os.stat(self.directory if os.path.isdir(self.directory) else parent)
                self._owner = (st.st_uid, st.st_gid) if st.st_uid != 0 else None
            for sub in ("", "msg", "tmp"):
                self._private_dir(os.path.join(self.directory, sub))
            self._private_file(self._index)
            for extra in ("-wal", "-shm", "-journal"):
                self._tighten(self._index + extra, FILE_MODE)
            # WAL is a property of the file: set it once, outside any transaction
            # (switching it while other connections work fails at once with "locked").
            try:
                wal = sqlite3.connect(self._index, timeout=self.timeout, isolation_level=None)
                try:
                    wal.execute("PRAGMA journal_mode = WAL")
                finally:
                    wal.close()
            except sqlite3.Error as e:
                raise QuarantineUnavailable(f"quarantine index {self._index}: {e}") from e
            with self._db() as db:
                # one statement at a time: executescript() would commit our transaction
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise QuarantineUnavailable(f"{self._index}: schema version {row[0]} is newer than "
                                                f"this Owlery understands ({SCHEMA_VERSION})")
        except OSError as e:
            raise QuarantineUnavailable(f"quarantine directory {self.directory}: {e}") from e
        self._ready = True

    @contextlib.contextmanager
    def _db(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self._index, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise QuarantineUnavailable(f"quarantine index {self._index}: {e}") from e
        try:
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            # lower() as PostgreSQL's (the sender filter): SQLite's own folds ASCII only
            db.create_function("lower", 1, _sql_lower, deterministic=True)
            # a writer takes the lock up front, so it waits (busy timeout) instead of failing midway
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise QuarantineUnavailable(f"quarantine index {self._index}: {e}") from e
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _path(self, mail_id: str) -> str:
        return os.path.join(self.directory, "msg", mail_id[:2], mail_id)

    def _give(self, path: str, fd: int | None = None) -> None:
        """Root: hand a new entry to the store's owner."""
        if self._owner is not None:
            if fd is not None:
                os.fchown(fd, *self._owner)
            else:
                os.chown(path, *self._owner, follow_symlinks=False)

    def _private_dir(self, path: str) -> None:
        """Make a 0700 directory (mode set explicitly: the umask only removes bits), or tighten ours."""
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            self._tighten(path, DIR_MODE)
            return
        os.chmod(path, DIR_MODE)
        self._give(path)

    def _private_file(self, path: str) -> None:
        """Create an empty 0600 file (the index, before SQLite makes it with 0644 & ~umask), or
        tighten an existing one."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        except FileExistsError:
            self._tighten(path, FILE_MODE)
            return
        try:
            os.fchmod(fd, FILE_MODE)
            self._give(path, fd)
        finally:
            os.close(fd)

    def _tighten(self, path: str, mode: int) -> None:
        """Drop group and other bits from an existing entry that belongs to us (an older store
        was group-readable); someone else's (root's, seen by the milter) is left alone."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() and os.geteuid() != 0:
            return
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, stat.S_IMODE(st.st_mode) & mode)

    # -- the contract --------------------------------------------------------------------

    def put(self, record: QuarantineRecord, message: bytes) -> None:
        self._check_id(record.mail_id)
        self._setup()
        final = self._path(record.mail_id)
        tmp = os.path.join(self.directory, "tmp", f"{record.mail_id}.{os.getpid()}")
        try:
            self._private_dir(os.path.dirname(final))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
            try:
                os.fchmod(fd, FILE_MODE)
                self._give(tmp, fd)
                view = memoryview(message)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            if os.path.exists(final):
                raise QuarantineUnavailable(f"quarantine id {record.mail_id} already used")
            os.rename(tmp, final)
            _fsync_dir(os.path.dirname(final))
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise QuarantineUnavailable(f"quarantine directory {self.directory}: {e}") from e
        try:
            with self._db() as db:
                db.execute(f"INSERT INTO messages ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                           _row(record))
                db.executemany("INSERT INTO recipients VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [(record.mail_id, to_column(r.address), to_column(r.address.lower()), r.status,
                                 r.changed_at, _column_or_none(r.changed_by), int(r.original))
                                for r in stored_recipients(record.recipients)])
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(final)
            raise

    def get(self, mail_id: str) -> QuarantineRecord:
        self._check_id(mail_id)
        self._setup()
        with self._db(write=False) as db:
            records = self._records(db, "m.mail_id = ?", [mail_id])
        if not records:
            raise QuarantineNotFound(f"no quarantined message with id {mail_id}")
        return records[0]

    def message(self, mail_id: str) -> bytes:
        self.get(mail_id)
        try:
            with open(self._path(mail_id), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise QuarantineNotFound(f"quarantined message {mail_id} has an index entry but no file") from None
        except OSError as e:
            raise QuarantineUnavailable(f"quarantine file of {mail_id}: {e}") from e

    def list(self, filters: ListFilter, now: float) -> list[QuarantineRecord]:
        self._setup()
        where, args = filters.sql_where(now, "?", "recipients",
                                        local_part_case_sensitive=self.local_part_case_sensitive)
        with self._db(write=False) as db:
            return self._records(db, where, args, filters.limit)

    def mark_released(self, mail_id: str, addresses: Iterable[str], by: str, now: float) -> QuarantineRecord:
        self._check_id(mail_id)
        self._setup()
        with self._db() as db:
            if db.execute("SELECT 1 FROM messages WHERE mail_id = ?", (mail_id,)).fetchone() is None:
                raise QuarantineNotFound(f"no quarantined message with id {mail_id}")
            for address in addresses:
                updated = db.execute("UPDATE recipients SET status = ?, changed_at = ?, changed_by = ? "
                                     "WHERE mail_id = ? AND address_lc = ?",
                                     (RELEASED, now, to_column(by), mail_id, to_column(address.lower()))).rowcount
                if not updated:
                    db.execute("INSERT INTO recipients VALUES (?, ?, ?, ?, ?, ?, 0)",
                               (mail_id, to_column(address), to_column(address.lower()), RELEASED, now,
                                to_column(by)))
        return self.get(mail_id)

    def delete(self, mail_id: str) -> None:
        self._check_id(mail_id)
        self._setup()
        with self._db() as db:
            gone = db.execute("DELETE FROM messages WHERE mail_id = ?", (mail_id,)).rowcount
            db.execute("DELETE FROM recipients WHERE mail_id = ?", (mail_id,))
            db.execute("DELETE FROM notices WHERE mail_id = ?", (mail_id,))
        if not gone:
            raise QuarantineNotFound(f"no quarantined message with id {mail_id}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(mail_id))

    def expire(self, now: float, ages: Mapping[str, float], default_age: float) -> list[str]:
        self._setup()
        per_reason, other = cutoffs(now, ages, default_age)
        clauses, args = [], []
        for reason, limit in per_reason.items():
            clauses.append("(reason = ? AND created < ?)")
            args += [reason, limit]
        known = list(per_reason)
        clauses.append(f"(reason NOT IN ({', '.join('?' * len(known))}) AND created < ?)" if known
                       else "(created < ?)")
        args += known + [other]
        with self._db() as db:
            ids = [r[0] for r in db.execute(f"SELECT mail_id FROM messages WHERE {' OR '.join(clauses)}", args)]
            for mail_id in ids:
                db.execute("DELETE FROM recipients WHERE mail_id = ?", (mail_id,))
                db.execute("DELETE FROM notices WHERE mail_id = ?", (mail_id,))
                db.execute("DELETE FROM messages WHERE mail_id = ?", (mail_id,))
        for mail_id in ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(mail_id))
        return ids

    # -- notices ---------------------------------------------------------------------------

    def unnotified(self, kind: str, since: float, *, reasons: Iterable[str] | None = None,
                   skip_reasons: Iterable[str] = (), limit: int = 1000) -> list[tuple[QuarantineRecord, str]]:
        self._setup()
        sql, args = unnotified_sql(kind, since, reasons, skip_reasons, limit, "?",
                                   ("messages", "recipients", "notices"))
        with self._db(write=False) as db:
            rows = db.execute(sql, args).fetchall()
            ids = list(dict.fromkeys(mail_id for mail_id, _ in rows))
            records = {r.mail_id: r for r in self._records(db, f"m.mail_id IN ({', '.join('?' * len(ids))})", ids)} \
                if ids else {}
        return [(records[mail_id], from_column(address)) for mail_id, address in rows if mail_id in records]

    def claim_notices(self, kind: str, pairs: Iterable[tuple[str, str]], now: float) -> list[tuple[str, str]]:
        self._setup()
        claimed = []
        with self._db() as db:
            for mail_id, address in pairs:
                if db.execute("INSERT INTO notices (kind, mail_id, address_lc, sent_at) SELECT ?, ?, ?, ? "
                              "WHERE EXISTS (SELECT 1 FROM messages WHERE mail_id = ?) ON CONFLICT DO NOTHING",
                              (kind, mail_id, to_column(address.lower()), now, mail_id)).rowcount:
                    claimed.append((mail_id, address))
        return claimed

    def unclaim_notices(self, kind: str, pairs: Iterable[tuple[str, str]]) -> None:
        self._setup()
        with self._db() as db:
            db.executemany("DELETE FROM notices WHERE kind = ? AND mail_id = ? AND address_lc = ?",
                           [(kind, mail_id, to_column(address.lower())) for mail_id, address in pairs])

    def last_notice(self, kind: str, address: str) -> float | None:
        self._setup()
        if not self.local_part_case_sensitive:
            with self._db(write=False) as db:
                return db.execute("SELECT max(sent_at) FROM notices WHERE kind = ? AND address_lc = ?",
                                  (kind, to_column(address.lower()))).fetchone()[0]
        # notices keep only the lower-cased address: the recipient row says whose mailbox it was
        condition, args = recipient_sql(address, "?", True, "r.")
        with self._db(write=False) as db:
            return db.execute("SELECT max(n.sent_at) FROM notices n JOIN recipients r ON r.mail_id = n.mail_id "
                              f"AND r.address_lc = n.address_lc WHERE n.kind = ? AND {condition}",
                              [kind, *args]).fetchone()[0]

    def notices_since(self, kind: str, since: float) -> int:
        self._setup()
        with self._db(write=False) as db:
            return db.execute("SELECT count(*) FROM notices WHERE kind = ? AND sent_at >= ?",
                              (kind, since)).fetchone()[0]

    # -- audit -----------------------------------------------------------------------------

    def add_audit(self, entry: AuditEntry) -> None:
        self._setup()
        with self._db() as db:
            db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
                       (entry.at, *map(to_column, (entry.by, entry.action, entry.mail_id, entry.detail, entry.host))))

    def audit_log(self, *, limit: int = 200, mail_id: str | None = None) -> list[AuditEntry]:
        self._setup()
        where, args = ("WHERE mail_id = ?", [to_column(mail_id)]) if mail_id else ("", [])
        with self._db(write=False) as db:
            rows = db.execute(f"SELECT at, by, action, mail_id, detail, host FROM audit {where} "
                              f"ORDER BY at DESC, rowid DESC LIMIT {int(limit)}", args).fetchall()
        return [AuditEntry(at, *map(from_column, rest)) for at, *rest in rows]

    def expire_audit(self, before: float, *, dry_run: bool = False) -> int:
        self._setup()
        with self._db(write=not dry_run) as db:
            if dry_run:
                return db.execute("SELECT count(*) FROM audit WHERE at < ?", (before,)).fetchone()[0]
            return db.execute("DELETE FROM audit WHERE at < ?", (before,)).rowcount

    # -- rows ------------------------------------------------------------------------------

    def _records(self, db: sqlite3.Connection, where: str, args: list, limit: int | None = None) \
            -> list[QuarantineRecord]:
        sql = (f"SELECT {', '.join('m.' + c for c in _COLUMNS)} FROM messages m WHERE {where} "
               "ORDER BY m.created DESC, m.mail_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = db.execute(sql, args).fetchall()
        out = []
        for row in rows:
            rcpts = db.execute("SELECT address, status, changed_at, changed_by, original FROM recipients "
                               "WHERE mail_id = ? ORDER BY original DESC, rowid", (row[0],)).fetchall()
            out.append(_record(row, rcpts, self.local_part_case_sensitive))
        return out


def _row(r: QuarantineRecord) -> tuple:
    # text columns through to_column: an 8-bit envelope sender, recipient or client name
    # (surrogateescape) is kept exactly instead of failing the put (tempfailed for ever)
    return (r.mail_id, r.secret_id, r.created, *map(to_column, (r.reason, r.detail, r.sender)), r.size,
            *map(to_column, (r.queue_id, r.client_addr, r.client_name, r.helo, r.host, r.subject,
                             r.header_from, r.message_id)),
            r.score, json.dumps([list(s) for s in r.symbols]))       # (JSON escapes surrogates itself)


def _record(row: tuple, rcpts: list[tuple], local_part_case_sensitive: bool) -> QuarantineRecord:
    values = {name: from_column(v) if isinstance(v, str) and name != "symbols" else v
              for name, v in zip(_COLUMNS, row)}
    values["symbols"] = tuple((str(n), float(s), str(d)) for n, s, d in json.loads(values["symbols"]))
    values["recipients"] = tuple(RecipientState(from_column(a), st, at, from_column(by), bool(orig))
                                 for a, st, at, by, orig in rcpts)
    return QuarantineRecord(**values, local_part_case_sensitive=local_part_case_sensitive)


def _column_or_none(text: str | None) -> str | None:
    return None if text is None else to_column(text)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["DirectoryStore", "PENDING", "RELEASED"]


def _sql_lower(value: object) -> object:
    """SQLite's lower() for this store's connections: fold_case, as PostgreSQL's lower() folds."""
    return fold_case(value) if isinstance(value, str) else value
