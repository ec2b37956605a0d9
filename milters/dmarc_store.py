"""DMARC results for aggregate reports: one row per evaluated message, in SQLite or PostgreSQL, written behind the milter.

The dmarc stage (milters/stages/dmarc.py) hands each message's `DmarcResult` (source IP,
identifiers, aligned and raw DKIM/SPF results, the policy as published, the disposition
applied) to a `Recorder` when `dmarc_report_record` is on; `owlery dmarc report`
(milters/dmarc_report.py) reads them back per policy domain and day. The recorder never
blocks and never fails a message: `record()` only puts the row on a bounded queue; one
writer thread per process stores batches. A store that is down (disk full, database gone,
queue full) costs the rows of that moment, with one log line per batch dropped, never a
tempfail: aggregate reports are statistics, mail delivery is not held hostage to them.
Backends: SQLite at `dmarc_report_store_path` (one host; the default) or PostgreSQL
(`dmarc_report_backend = "postgresql"`, shared by several MX hosts so that one report per
domain covers them all). The `dmarc_report_sent` table remembers which report went to which
destination, claimed before it is sent, so a second run (or a second host) sends none twice.
Light at import: sqlite3 and psycopg load when a store is opened.
Talks to: SQLite or PostgreSQL (psycopg 3). Tests: tests/milters/test_dmarc_report_store.py (both
backends), tests/milters/test_dmarc_report_policy.py (the recorder: outage, hanging store, full queue)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from owlery.errors import TemporaryFailure
from owlery.settings import Bool, Duration, Str, choice, int_range, setting

DMARC_REPORT_RECORD = setting(
    "dmarc_report_record", Bool, False,
    "Record the DMARC result of every message whose From domain publishes a DMARC record, for "
    "`owlery dmarc report` (aggregate reports to the domains' rua= addresses). Recording is "
    "asynchronous: a store that is down drops results (logged), it never delays or tempfails mail.")
DMARC_REPORT_BACKEND = setting(
    "dmarc_report_backend", choice("sqlite", "postgresql"), "sqlite",
    "Where DMARC results are kept: sqlite (the file dmarc_report_store_path, one host) or "
    "postgresql (dmarc_report_pg_dsn, shared by several MX hosts: one report covers them all).")
DMARC_REPORT_STORE_PATH = setting(
    "dmarc_report_store_path", Str, "/var/lib/owlery/dmarc/results.sqlite3",
    "SQLite file of DMARC results (created with its directory); writable by the milter, "
    "readable and writable by `owlery dmarc report`.")
DMARC_REPORT_PG_DSN = setting(
    "dmarc_report_pg_dsn", Str, None,
    "PostgreSQL connection string of the postgresql backend, e.g. \"host=db.example.org dbname=mail user=owlery\".")
DMARC_REPORT_PG_DSN_FILE = setting(
    "dmarc_report_pg_dsn_file", Str, None,
    "A file whose first line is dmarc_report_pg_dsn (keeps a password out of the settings file).")
DMARC_REPORT_PG_SCHEMA = setting(
    "dmarc_report_pg_schema", Str, "public", "PostgreSQL schema of the DMARC tables (created when missing).")
DMARC_REPORT_DB_TIMEOUT = setting(
    "dmarc_report_db_timeout", Duration, "5s",
    "Longest wait for the DMARC results store (connect, lock or statement).", unit="s")
DMARC_REPORT_QUEUE_SIZE = setting(
    "dmarc_report_queue_size", int_range(1, 1_000_000), 10000,
    "Most results waiting for the writer thread of one milter process; past it results are dropped "
    "(logged) rather than held in memory.", unit="results")
DMARC_REPORT_RETENTION = setting(
    "dmarc_report_retention", Duration, "14d",
    "`owlery dmarc report` deletes results (and its record of reports sent) older than this.", unit="s")

SCHEMA_VERSION = 1
log = logging.getLogger("owlery.milter")


class DmarcStoreUnavailable(TemporaryFailure):
    """The results store cannot be reached or written."""


@dataclasses.dataclass(frozen=True)
class DmarcResult:
    """One message's DMARC evaluation: what an aggregate report row needs (RFC 7489 Appendix C)."""

    date: float                     # when evaluated (seconds since the epoch)
    source_ip: str
    header_from: str
    envelope_from: str              # RFC5321.MailFrom domain ("" for the null sender)
    envelope_to: str                # domain of the first recipient
    policy_domain: str              # where the DMARC record was found (From or organizational domain)
    result: str                     # DMARC: pass | fail
    disposition: str                # applied: none | quarantine | reject
    dkim_aligned: str               # pass | fail
    spf_aligned: str                # pass | fail
    reasons: tuple[str, ...] = ()   # PolicyOverrideType: sampled_out, local_policy
    dkim: tuple[tuple[str, str, str], ...] = ()     # (d=, s=, result) per signature
    spf_domain: str = ""
    spf_scope: str = "mfrom"
    spf_result: str = "none"
    p: str = "none"                 # the record as published
    sp: str = ""                    # "" when absent
    np: str = ""                    # RFC 9091; "" when absent
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    fo: str = "0"
    rua: str = ""                   # the rua= tag as published
    host: str = ""                  # the MX host that evaluated it (several share PostgreSQL)


_FIELDS = [f.name for f in dataclasses.fields(DmarcResult)]
_NUMERIC = {"date": "{real}", "pct": "INTEGER"}


def _table_sql(real: str) -> list[str]:
    cols = ",\n  ".join(f"{name} {_NUMERIC.get(name, 'TEXT').format(real=real)} NOT NULL" for name in _FIELDS)
    return [
        "CREATE TABLE IF NOT EXISTS dmarc_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS dmarc_results (\n  {cols})",
        "CREATE INDEX IF NOT EXISTS dmarc_results_domain_date ON dmarc_results (policy_domain, date)",
        "CREATE INDEX IF NOT EXISTS dmarc_results_date ON dmarc_results (date)",
        f"""CREATE TABLE IF NOT EXISTS dmarc_report_sent (
          policy_domain TEXT NOT NULL, begin_ts BIGINT NOT NULL, destination TEXT NOT NULL,
          sent_at {real} NOT NULL, PRIMARY KEY (policy_domain, begin_ts, destination))""",
    ]


def _to_row(r: DmarcResult) -> tuple:
    values = dataclasses.asdict(r)
    values["reasons"] = ",".join(r.reasons)
    values["dkim"] = json.dumps([list(d) for d in r.dkim])
    return tuple(values[name] for name in _FIELDS)


def _from_row(row: Iterable[Any]) -> DmarcResult:
    values = dict(zip(_FIELDS, row))
    values["reasons"] = tuple(x for x in values["reasons"].split(",") if x)
    values["dkim"] = tuple(tuple(d) for d in json.loads(values["dkim"]))
    values["pct"] = int(values["pct"])
    values["date"] = float(values["date"])
    return DmarcResult(**values)


class DmarcStore:
    """The contract both backends keep; SQL is written once with `?` placeholders."""

    placeholder = "?"
    real = "REAL"

    def __init__(self) -> None:
        self._ready = False

    # -- plumbing (per backend) -------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _setup(self) -> None:
        if self._ready:
            return
        with self._db() as db:
            self._lock_schema(db)
            for statement in _table_sql(self.real):
                db.execute(statement)
            row = db.execute("SELECT value FROM dmarc_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute(self._sql("INSERT INTO dmarc_meta VALUES ('schema_version', ?)"), (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise DmarcStoreUnavailable(f"DMARC results schema version {row[0]} is newer than this "
                                            f"Owlery understands ({SCHEMA_VERSION})")
        self._ready = True

    def _lock_schema(self, db: Any) -> None:
        """Serialise concurrent first runs (PostgreSQL); SQLite's write lock does it already."""

    # -- the contract -------------------------------------------------------------------------
    def add_many(self, results: list[DmarcResult]) -> None:
        """Store results in one transaction."""
        self._setup()
        sql = self._sql(f"INSERT INTO dmarc_results ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})")
        with self._db() as db:
            cur = db.cursor()
            cur.executemany(sql, [_to_row(r) for r in results])

    def domains(self, begin: float, end: float) -> list[str]:
        """Policy domains with results in [begin, end), sorted."""
        self._setup()
        with self._db() as db:
            rows = db.execute(self._sql("SELECT DISTINCT policy_domain FROM dmarc_results WHERE date >= ? AND date < ? "
                                        "ORDER BY policy_domain"), (begin, end)).fetchall()
        return [r[0] for r in rows]

    def results(self, policy_domain: str, begin: float, end: float) -> list[DmarcResult]:
        """The results of one policy domain in [begin, end), oldest first."""
        self._setup()
        with self._db() as db:
            rows = db.execute(self._sql(f"SELECT {', '.join(_FIELDS)} FROM dmarc_results WHERE policy_domain = ? "
                                        "AND date >= ? AND date < ? ORDER BY date"),
                              (policy_domain, begin, end)).fetchall()
        return [_from_row(r) for r in rows]

    def claim_report(self, policy_domain: str, begin: int, destination: str, now: float) -> bool:
        """True when this run may send that report there (nobody claimed it before)."""
        self._setup()
        with self._db() as db:
            cur = db.execute(self._sql("INSERT INTO dmarc_report_sent VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                             (policy_domain, int(begin), destination, now))
            return cur.rowcount == 1

    def unclaim_report(self, policy_domain: str, begin: int, destination: str) -> None:
        """Forget a claim whose report could not be sent (the next run retries)."""
        self._setup()
        with self._db() as db:
            db.execute(self._sql("DELETE FROM dmarc_report_sent WHERE policy_domain = ? AND begin_ts = ? "
                                 "AND destination = ?"), (policy_domain, int(begin), destination))

    def expire(self, before: float) -> int:
        """Delete results (and records of reports sent) older than `before`; how many results went."""
        self._setup()
        with self._db() as db:
            n = db.execute(self._sql("DELETE FROM dmarc_results WHERE date < ?"), (before,)).rowcount
            db.execute(self._sql("DELETE FROM dmarc_report_sent WHERE begin_ts < ?"), (int(before),))
        return max(n, 0)

    def close(self) -> None:
        """Release what the backend holds."""


class SqliteStore(DmarcStore):
    """One SQLite file (WAL): the milter's writer thread and the report CLI each open their own connections."""

    def __init__(self, path: str, *, timeout: float = 5.0):
        super().__init__()
        self.path = path
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        import sqlite3
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o750, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise DmarcStoreUnavailable(f"DMARC results {self.path}: {e}") from e
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise DmarcStoreUnavailable(f"DMARC results {self.path}: {e}") from e
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()


class DmarcPostgresStore(DmarcStore):
    """The tables in one PostgreSQL schema; one short-lived connection per call, with timeouts."""

    placeholder = "%s"
    real = "DOUBLE PRECISION"

    def __init__(self, dsn: str, *, schema: str = "public", timeout: float = 5.0):
        super().__init__()
        self.dsn = dsn
        self.schema = schema
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"DmarcPostgresStore(schema={self.schema!r})"

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        import psycopg
        from psycopg import sql

        from owlery.secrets import redact
        ms = int(self.timeout * 1000)
        try:
            # client_min_messages: no NOTICE callbacks into Python from a pymilter thread
            # (see owlery/quarantine/postgres.py).
            conn = psycopg.connect(self.dsn, connect_timeout=max(1, int(self.timeout)),
                                   options=f"-c statement_timeout={ms} -c lock_timeout={ms} "
                                           "-c client_min_messages=error")
        except psycopg.Error as e:
            raise DmarcStoreUnavailable(redact(f"DMARC results database: cannot connect: {e}".strip())) from e
        try:
            with conn:          # commits on success, rolls back on an exception, then closes
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
                yield conn
        except psycopg.Error as e:
            raise DmarcStoreUnavailable(redact(f"DMARC results database: {e}")) from e

    def _lock_schema(self, db: Any) -> None:
        from psycopg import sql
        db.execute("SELECT pg_advisory_xact_lock(hashtext('owlery-dmarc-schema'))")
        db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))


def open_store(settings: Any) -> DmarcStore:
    """The configured backend (DmarcStoreUnavailable when its settings are incomplete)."""
    if settings.dmarc_report_backend == "postgresql":
        from owlery.secrets import SecretError, read_secret
        try:
            dsn = read_secret(settings, "dmarc_report_pg_dsn")
        except SecretError as e:
            raise DmarcStoreUnavailable(str(e)) from None
        if not dsn:
            raise DmarcStoreUnavailable("dmarc_report_backend = \"postgresql\" needs dmarc_report_pg_dsn")
        return DmarcPostgresStore(dsn, schema=settings.dmarc_report_pg_schema, timeout=settings.dmarc_report_db_timeout)
    return SqliteStore(settings.dmarc_report_store_path, timeout=settings.dmarc_report_db_timeout)


class Recorder:
    """Stores results behind the message: `record()` never blocks, never raises.

    One writer thread per process, started on the first `record()` (and again in a forked
    worker, where the parent's thread does not exist). It stores what the queue holds in
    batches of up to `batch`; when the store fails, that batch is dropped with one log line
    and the store is left alone for `retry_delay` seconds (rows arriving meanwhile are
    dropped and counted), so an outage costs neither memory nor a thread stuck per message.
    """

    _STOP = object()

    def __init__(self, open_store: Callable[[], DmarcStore], *, queue_size: int = 10000, batch: int = 500,
                 retry_delay: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._open_store = open_store
        self._queue_size = queue_size
        self._batch = batch
        self._retry_delay = retry_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._store: DmarcStore | None = None
        self._retry_at = 0.0
        self.stored = self.dropped = 0          # counters, for tests and the log
        self._full_logged = False

    @classmethod
    def from_settings(cls, settings: Any) -> "Recorder":
        return cls(lambda: open_store(settings), queue_size=settings.dmarc_report_queue_size)

    def record(self, result: DmarcResult) -> None:
        """Queue one result for the writer thread; drop it (logged once per overflow) when the queue is full."""
        try:
            self._ensure_thread()
            self._queue.put_nowait(result)
            self._full_logged = False
        except queue.Full:
            self.dropped += 1
            if not self._full_logged:
                self._full_logged = True
                log.warning("dmarc: results queue full (%d); dropping results until the store catches up",
                            self._queue_size)
        except Exception:  # noqa: BLE001 - recording must never fail the message
            self.dropped += 1
            log.exception("dmarc: cannot queue a result")

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid == pid and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid != pid:
                # A forked worker: the parent's queue and thread are not ours.
                self._queue = queue.Queue(self._queue_size)
                self._store = None
                self._pid = pid
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="dmarc-results", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            if item is self._STOP:
                q.task_done()
                return
            batch = [item]
            stop = False
            while len(batch) < self._batch:
                try:
                    more = q.get_nowait()
                except queue.Empty:
                    break
                if more is self._STOP:
                    stop = True
                    break
                batch.append(more)
            try:
                self._write(batch)
            finally:
                for _ in range(len(batch) + stop):
                    q.task_done()
            if stop:
                return

    def _write(self, batch: list[DmarcResult]) -> None:
        if self._clock() < self._retry_at:
            self.dropped += len(batch)
            return
        try:
            if self._store is None:
                self._store = self._open_store()
            self._store.add_many(batch)
            self.stored += len(batch)
        except Exception as e:  # noqa: BLE001 - any store failure: log, drop, go on
            self.dropped += len(batch)
            self._retry_at = self._clock() + self._retry_delay
            store, self._store = self._store, None
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()
            log.warning("dmarc: results store unavailable: %s; dropped %d result%s (not retried for %gs)",
                        str(e)[:300], len(batch), "" if len(batch) == 1 else "s", self._retry_delay)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is written (tests, shutdown); False on timeout."""
        q = self._queue
        with q.all_tasks_done:
            return q.all_tasks_done.wait_for(lambda: q.unfinished_tasks == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to `timeout`) and stop the writer thread."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            with contextlib.suppress(queue.Full):
                self._queue.put(self._STOP, timeout=timeout)
            thread.join(timeout)
        self._thread = None
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None
