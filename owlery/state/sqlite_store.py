"""SQLite state engine: one table of (key, value, expires) in WAL mode, expired a little at a time.

One connection per calling thread (policyd's pool threads, the CLI), so readers never wait
for each other; writers wait at most `busy_timeout` and then raise StateUnavailable. Expiry
is judged at read time against `now`; cleanup deletes at most `expire_batch` dead rows every
`expire_every` writes, through the index on `expires`, so no request ever pays for a sweep.
Schema version in PRAGMA user_version. Declares `Capability.LOCAL_READS`: a point read in WAL
mode never waits for a writer (readers see the last commit), so policyd's greylist check reads
on its reactor; the busy timeout still bounds the rare wait (a fresh file's set-up).
The file is opened (and its schema made) in the constructor, so a bad path stops the daemon at
start-up; a full file system there (or out of descriptors) is logged and the store is opened
again at each use instead, every use failing with StateUnavailable (a 4xx) until it can be.
Talks to: the database file. Tests: tests/state/test_contract.py, tests/state/test_sqlite.py,
tests/e2e/test_exhaustion_s22.py (a full file system)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import sqlite3
import threading

from owlery.errors import StateUnavailable
from owlery.lazylog import get_logger
from owlery.state.base import Capability, Entry, StateStore, decode_bucket, take_all_math

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires);
"""


log = get_logger("owlery.state")

# Errors that a later attempt may not meet: the file system full (ENOSPC, EDQUOT; SQLite's
# SQLITE_FULL), out of descriptors, or an I/O error (SQLITE_IOERR: SQLite's own words for a write
# refused by a full tmpfs while it switches the file to WAL).
_PASSING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EIO})
_PASSING_SQLITE = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})


def _passing(e: BaseException | None) -> bool:
    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", 0) & 0xFF in _PASSING_SQLITE
    return isinstance(e, OSError) and e.errno in _PASSING_ERRNOS


class SQLiteStore(StateStore):
    name = "sqlite"
    capabilities = frozenset({Capability.TRANSACTIONS, Capability.LOCAL_READS})

    def __init__(self, path: str, *, busy_timeout: float = 2.0, expire_batch: int = 200,
                 expire_every: int = 100):
        self.path = path
        self.busy_timeout = busy_timeout
        self.expire_batch = expire_batch
        self.expire_every = expire_every
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._writes = itertools.count(1)
        self._savepoints = itertools.count(1)
        self._thread_lock = threading.Lock()
        self._lockfile_fd: int | None = None
        self._closed = False
        try:
            self._conn()  # create the file and schema now, so a bad path fails at startup
        except StateUnavailable as e:
            if not _passing(e.__cause__):
                raise
            # A full (or failing) file system is a passing condition, not a bad path: start, let
            # each use try again (StateUnavailable, a 4xx, until then) rather than exit and leave
            # the MTA with a refused connection (or a fail-open default action).
            log.warning("state: %s; the store is opened again at its next use", e)

    # --- connections --------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StateUnavailable("state store closed")
        try:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            # Created here, 0660, before SQLite would create it with the umask's mode: what it
            # holds (who wrote to whom, vacation replies, triplets) is nobody else's to read.
            # SQLite's -wal and -shm files copy this file's mode.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o660))
            except FileExistsError:
                pass
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves where a read-modify-write needs it.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            # Set-up under the writers' lock file: policyd workers start together on a fresh
            # file, and switching it to WAL takes SQLite's lock without waiting in its busy
            # handler ("database is locked" at once: a worker died at start).
            with self._file_lock():
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: durable against application crashes, fsync only at
                # checkpoints; losing the last greylist entries on power loss only means one more delay.
                conn.execute("PRAGMA synchronous=NORMAL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if version not in (0, SCHEMA_VERSION):
                conn.close()
                raise StateUnavailable(f"{self.path}: state schema version {version}, "
                                       f"this Owlery knows {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as e:
            raise StateUnavailable(f"{self.path}: {e}") from e
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass  # closing from another thread may fail; the process is going away anyway
        if self._lockfile_fd is not None:
            os.close(self._lockfile_fd)
            self._lockfile_fd = None

    def _run(self, fn):
        try:
            return fn(self._conn())
        except sqlite3.Error as e:
            conn = getattr(self._local, "conn", None)
            if conn is not None and conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise StateUnavailable(f"{self.path}: {e}") from e

    @contextlib.contextmanager
    def transaction(self):
        """One BEGIN IMMEDIATE ... COMMIT around the calls inside. Nested, it is a savepoint of
        the outer one: an error inside undoes only its own writes (then propagates), so a batch
        of decisions can share one commit and still each be atomic."""
        conn = self._conn()
        if getattr(self._local, "outer", False):
            if not conn.in_transaction:
                # An error earlier in this batch rolled the whole transaction back: every
                # later unit fails too (opening a new one here would wait on our own lock).
                raise StateUnavailable(f"{self.path}: transaction aborted by an earlier error")
            name = f"owlery_sp{next(self._savepoints)}"
            try:
                conn.execute(f"SAVEPOINT {name}")
            except sqlite3.Error as e:
                raise StateUnavailable(f"{self.path}: {e}") from e
            try:
                yield self
            except BaseException:
                try:
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                except sqlite3.Error:
                    pass   # the outer transaction fails and rolls back as a whole
                raise
            try:
                conn.execute(f"RELEASE {name}")
            except sqlite3.Error as e:
                raise StateUnavailable(f"{self.path}: {e}") from e
            return
        with self._writer():
            self._local.outer = True
            try:
                yield from self._outer(conn)
            finally:
                self._local.outer = False

    @contextlib.contextmanager
    def _writer(self):
        """Writers queue on a lock file (and a lock for this process's threads) before BEGIN
        IMMEDIATE: the kernel wakes the next one the moment the lock is free, where SQLite's
        own busy handler would sleep and poll (milliseconds per turn with several workers)."""
        with self._thread_lock, self._file_lock():
            yield

    @contextlib.contextmanager
    def _file_lock(self):
        """The lock file alone, which orders processes: writers (under the thread lock too,
        see _writer) and the set-up of a fresh file (before this thread writes anything)."""
        fd = self._lock_fd()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_fd(self) -> int | None:
        if self._lockfile_fd is None:
            try:
                self._lockfile_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
            except OSError:
                return None    # a read-only place: SQLite's busy handler alone orders writers
        return self._lockfile_fd

    def _outer(self, conn: sqlite3.Connection):
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StateUnavailable(f"{self.path}: {e}") from e
        try:
            yield self
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the connection is rolled back when it closes anyway
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise StateUnavailable(f"{self.path}: {e}") from e

    def _wrote(self, conn: sqlite3.Connection, now: float) -> None:
        if next(self._writes) % self.expire_every == 0:
            self._expire(conn, now, self.expire_batch)

    @staticmethod
    def _expire(conn: sqlite3.Connection, now: float, limit: int) -> int:
        cur = conn.execute("DELETE FROM kv WHERE key IN "
                           "(SELECT key FROM kv WHERE expires <= ? ORDER BY expires LIMIT ?)", (now, limit))
        return cur.rowcount

    # --- operations ---------------------------------------------------------------

    def get(self, key, now):
        def op(conn):
            row = conn.execute("SELECT value FROM kv WHERE key = ? AND expires > ?", (key, now)).fetchone()
            return None if row is None else row[0]
        return self._run(op)

    def get_many(self, keys, now):
        keys = list(keys)
        if not keys:
            return []

        def op(conn):
            marks = ",".join("?" * len(keys))
            rows = dict(conn.execute(f"SELECT key, value FROM kv WHERE key IN ({marks}) AND expires > ?",
                                     (*keys, now)).fetchall())
            return [rows.get(k) for k in keys]
        return self._run(op)

    def set(self, key, value, ttl, now):
        def op(conn):
            conn.execute("INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                         (key, value, now + ttl))
            self._wrote(conn, now)
        self._run(op)

    def add(self, key, value, ttl, now):
        def op(conn):
            # One statement: insert, or overwrite only a dead row; rowcount says which happened.
            cur = conn.execute("INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                               "expires = excluded.expires WHERE kv.expires <= ?",
                               (key, value, now + ttl, now))
            self._wrote(conn, now)
            return cur.rowcount == 1
        return self._run(op)

    def delete(self, key):
        def op(conn):
            return conn.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount == 1
        return self._run(op)

    def incr(self, key, amount, ttl, now):
        def op(conn):
            row = conn.execute("INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET "
                               "value = CASE WHEN kv.expires <= ? THEN excluded.value "
                               "ELSE CAST(CAST(kv.value AS INTEGER) + ? AS TEXT) END, "
                               "expires = excluded.expires RETURNING value",
                               (key, str(amount), now + ttl, now, amount)).fetchone()
            self._wrote(conn, now)
            return int(row[0])
        return self._run(op)

    def take_all(self, takes, now):
        takes = list(takes)
        if not takes:
            return []
        keys = list(dict.fromkeys(key for key, *_ in takes))

        def op(conn):
            marks = ",".join("?" * len(keys))
            rows = dict(conn.execute(f"SELECT key, value FROM kv WHERE key IN ({marks}) AND expires > ?",
                                     (*keys, now)).fetchall())
            out, writes = take_all_math({k: decode_bucket(rows.get(k)) for k in keys}, takes, now)
            if writes:
                conn.executemany("INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                                 "expires = excluded.expires",
                                 [(k, value, now + ttl) for k, (value, ttl) in writes.items()])
                self._wrote(conn, now)
            return out
        # Read and write in one write transaction (a savepoint inside a caller's, e.g. a
        # batch of take_all_many), so no other writer slips between the check and the charge.
        with self.transaction():
            return self._run(op)

    def scan(self, prefix, now, limit=1000):
        def op(conn):
            # Range on the primary key instead of LIKE, so '%' and '_' in keys mean nothing.
            rows = conn.execute("SELECT key, value, expires FROM kv WHERE key >= ? AND key < ? "
                                "AND expires > ? LIMIT ?", (prefix, prefix + "\U0010ffff", now, limit))
            return [Entry(k, v, e) for k, v, e in rows.fetchall()]
        return self._run(op)

    def count_live(self, prefix, now):
        # One pass over the primary key's range (a WITHOUT ROWID table is stored in key order):
        # 20-40 ms per 100,000 keys, read by the metrics at most once a minute, off the reactor.
        row = self._run(lambda conn: conn.execute(
            "SELECT count(*), coalesce(sum(instr(value, ' ') > 0), 0) FROM kv WHERE key >= ? AND key < ? "
            "AND expires > ?", (prefix, prefix + "\U0010ffff", now)).fetchone())
        return row[0] - row[1], row[1]

    def expire(self, now, limit):
        return self._run(lambda conn: self._expire(conn, now, limit))

    def count_expired(self, now: float) -> int:
        """How many dead rows wait for cleanup (for stats)."""
        return self._run(lambda conn: conn.execute("SELECT count(*) FROM kv WHERE expires <= ?",
                                                   (now,)).fetchone()[0])
