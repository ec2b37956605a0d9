"""Several processes opening a fresh SQLite state file at once (policyd workers at start).

Switching a new file to WAL needs SQLite's write lock and does not wait in the busy handler:
a second worker got "database is locked" at once and died at start (seen in
tests/core/test_many_connections.py with two workers). Set-up now queues on the writers' lock
file. The interleaving is forced, not hoped for: another "worker" holds the lock file and an
exclusive SQLite lock on the fresh file until the store under test asks for the lock file.
"""

import fcntl
import os
import sqlite3
import threading

from owlery.state import sqlite_store
from owlery.state.sqlite_store import SQLiteStore


def test_a_store_opening_while_another_sets_up_waits_instead_of_failing(tmp_path, monkeypatch):
    path = str(tmp_path / "state.sqlite")
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    other.execute("BEGIN EXCLUSIVE")                     # the other worker is setting up
    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o660)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    asked = threading.Event()
    real_flock = fcntl.flock

    def flock(fd, op):
        if op == fcntl.LOCK_EX:
            asked.set()
        return real_flock(fd, op)
    monkeypatch.setattr(sqlite_store.fcntl, "flock", flock)
    result = {}

    def open_store():
        try:
            result["store"] = SQLiteStore(path, busy_timeout=0.2)
        except Exception as e:  # noqa: BLE001  reported below
            result["error"] = e
    t = threading.Thread(target=open_store)
    t.start()
    opened_or_asked = asked.wait(10) or not t.is_alive()
    other.execute("COMMIT")                              # the other worker is done
    other.close()
    fcntl.flock(lock_fd, fcntl.LOCK_UN)
    os.close(lock_fd)
    t.join(10)
    assert opened_or_asked
    assert "error" not in result, result.get("error")
    store = result["store"]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
