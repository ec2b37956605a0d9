"""Redis and PostgreSQL for tests: the machine's own servers when they answer, else private ones.

Machine defaults: Redis 127.0.0.1:6379, PostgreSQL 127.0.0.1:5432 (user postgres, db test,
trust auth). A private Redis runs `redis-server --port P --save '' --appendonly no`; a private
PostgreSQL is initdb'd and run as user postgres in a temp dir. Tests get isolation by key
prefix (Redis) and schema (PostgreSQL) from tests/harness/fixtures.py. Tested by
tests/harness_selftest.
"""

import glob
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

from .procs import (LOOPBACK, HarnessError, ManagedProcess, free_port, make_dir,
                    retry_on_port_race, wait_until)

MACHINE_REDIS = (LOOPBACK, 6379)
MACHINE_PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_USER = "postgres"


def redis_ping(host, port, timeout=1.0):
    """True if a Redis server answers PING with +PONG (raw RESP, no client library)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def pg_ping(dsn, timeout=2):
    """True if PostgreSQL at dsn accepts a connection and answers SELECT 1."""
    import psycopg
    try:
        with psycopg.connect(dsn, connect_timeout=timeout) as conn:
            return conn.execute("select 1").fetchone()[0] == 1
    except psycopg.Error:
        return False


def unique_name(prefix):
    """A name unique to this test run (for key prefixes and schemas): prefix + 10 hex chars."""
    return "%s%s" % (prefix, secrets.token_hex(5))


class RedisServer:
    """A private redis-server on a free loopback port, nothing persisted. `.url`, `.port`."""

    def __init__(self, workdir):
        self.workdir = make_dir(workdir)
        self.host = LOOPBACK
        self.port = None
        self.proc = None

    @property
    def url(self):
        return "redis://%s:%d/0" % (self.host, self.port)

    def start(self, timeout=15.0):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"

        def attempt():
            self.port = free_port()
            self.proc = ManagedProcess(
                [binary, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir), "--daemonize", "no"],
                "redis-server", self.workdir / "redis.log").start()
            try:
                wait_until(lambda: redis_ping(self.host, self.port), timeout,
                           "redis-server on port %d" % self.port, self.proc)
            except HarnessError:
                self.proc.stop()
                raise
        retry_on_port_race(attempt)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not dirs:
        raise HarnessError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
    return Path(dirs[-1])


class PostgresServer:
    """A private PostgreSQL cluster (initdb as user postgres, trust auth, fsync off), run as a
    child process on a free loopback port with database `test`. `.dsn`, `.port`."""

    def __init__(self, workdir, bindir=None):
        self.workdir = make_dir(workdir, 0o755, owner=PG_USER)
        self.datadir = self.workdir / "data"
        self.sockdir = make_dir(self.workdir / "sock", 0o755, owner=PG_USER)
        self.bindir = Path(bindir) if bindir else None
        self.port = None
        self.proc = None

    @property
    def dsn(self):
        return "host=%s port=%d user=postgres dbname=test" % (LOOPBACK, self.port)

    def _initdb(self):
        if (self.datadir / "PG_VERSION").exists():
            return
        log = self.workdir / "initdb.log"
        with open(log, "wb") as out:
            rc = subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", PG_USER,
                 "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                stdout=out, stderr=subprocess.STDOUT, user=PG_USER, group=PG_USER, cwd=self.workdir,
                timeout=120).returncode
        if rc != 0:
            raise HarnessError("initdb failed (exit %d):\n%s" % (rc, log.read_text(errors="replace")[-3000:]))

    def start(self, timeout=60.0):
        self.bindir = self.bindir or _pg_bindir()
        self._initdb()

        def attempt():
            self.port = free_port()
            self.proc = ManagedProcess(
                [self.bindir / "postgres", "-D", self.datadir, "-p", str(self.port), "-k", self.sockdir,
                 "-c", "listen_addresses=%s" % LOOPBACK, "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off"],
                "postgres", self.workdir / "postgres.log", user=PG_USER, group=PG_USER,
                cwd=self.workdir, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}).start()
            admin = self.dsn.replace("dbname=test", "dbname=postgres")
            try:
                wait_until(lambda: pg_ping(admin, 1), timeout, "postgres on port %d" % self.port, self.proc)
            except HarnessError:
                self.proc.stop(sig=2)
                raise
            import psycopg
            with psycopg.connect(admin, autocommit=True) as conn:
                if not conn.execute("select 1 from pg_database where datname = 'test'").fetchone():
                    conn.execute("create database test")
        retry_on_port_race(attempt)
        return self

    def stop(self):
        if self.proc:
            # SIGINT = "fast" shutdown: SIGTERM would wait for clients to disconnect.
            self.proc.stop(timeout=20, sig=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def machine_or_private_redis(workdir):
    """(url, RedisServer or None): the machine's Redis if it answers, else a private one."""
    if os.environ.get("OWLERY_TEST_PRIVATE_SERVERS") != "1" and redis_ping(*MACHINE_REDIS):
        return "redis://%s:%d/0" % MACHINE_REDIS, None
    server = RedisServer(workdir).start()
    return server.url, server


def machine_or_private_pg(workdir):
    """(dsn, PostgresServer or None): the machine's PostgreSQL if it answers, else a private one."""
    if os.environ.get("OWLERY_TEST_PRIVATE_SERVERS") != "1" and pg_ping(MACHINE_PG_DSN):
        return MACHINE_PG_DSN, None
    server = PostgresServer(workdir).start()
    return server.dsn, server


def drop_redis_prefix(url, prefix):
    """Delete every key starting with prefix (SCAN, so it never blocks the server)."""
    import redis
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        batch = []
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


def _glob_escape(s):
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)
