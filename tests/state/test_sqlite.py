"""SQLite engine specifics: WAL mode, schema version, incremental expiry, errors as StateUnavailable."""

from __future__ import annotations

import sqlite3

import pytest

from owlery.errors import StateUnavailable
from owlery.state.sqlite_store import SCHEMA_VERSION, SQLiteStore

T0 = 1_700_000_000.0


def test_wal_and_schema_version(tmp_path):
    path = tmp_path / "s.sqlite"
    SQLiteStore(str(path)).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_unknown_schema_version_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StateUnavailable, match="schema version 99"):
        SQLiteStore(str(path))


def test_writes_clean_up_a_bounded_batch(tmp_path):
    """Each cleanup step removes at most expire_batch rows: no sweep on the request path."""
    s = SQLiteStore(str(tmp_path / "s.sqlite"), expire_every=1, expire_batch=3)
    for i in range(10):
        s.set(f"dead{i}", "x", 1, T0)
    s.set("k", "v", 100, T0 + 10)   # one write = one cleanup step = 3 rows
    assert s.count_expired(T0 + 10) == 7
    s.set("k", "v", 100, T0 + 10)
    assert s.count_expired(T0 + 10) == 4


def test_unwritable_path_is_state_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateUnavailable):
        SQLiteStore(str(blocker / "sub" / "s.sqlite"))


def test_two_handles_share_one_file(tmp_path):
    """The daemon and `owlery greylist` open the same file."""
    path = str(tmp_path / "s.sqlite")
    a, b = SQLiteStore(path), SQLiteStore(path)
    a.set("k", "v", 100, T0)
    assert b.get("k", T0) == "v"
    assert b.add("k", "w", 100, T0) is False


def test_open_store_from_settings(tmp_path):
    from owlery.settings import Settings
    from owlery.state import open_store
    s = open_store(Settings().replace(state_sqlite_path=str(tmp_path / "x.sqlite")))
    assert s.name == "sqlite"
    s.set("k", "v", 10, T0)
    assert s.get("k", T0) == "v"


def test_transaction_commits_together_or_not_at_all(tmp_path):
    path = str(tmp_path / "s.sqlite")
    store, other = SQLiteStore(path), SQLiteStore(path)
    with store.transaction():
        store.set("a", "1", 60, T0)
        assert store.add("b", "2", 60, T0)
        assert store.take("tb", 1, 1, 5, T0).allowed      # joins the outer transaction
        assert other.get("a", T0) is None                  # not visible before COMMIT
    assert other.get_many(["a", "b"], T0) == ["1", "2"]
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.set("c", "3", 60, T0)
            raise RuntimeError("boom")
    assert other.get("c", T0) is None                      # rolled back
    store.set("d", "4", 60, T0)                            # and the connection is usable again
    assert other.get("d", T0) == "4"
    store.close()
    other.close()


def test_nested_transaction_is_a_savepoint(tmp_path):
    """A batch shares one commit; an error in one nested unit undoes only that unit."""
    from owlery.state.sqlite_store import SQLiteStore
    store = SQLiteStore(str(tmp_path / "sp.sqlite"))
    with store.transaction():
        store.set("a", "1", 60, 0)
        try:
            with store.transaction():
                store.set("b", "1", 60, 0)
                raise ValueError("this unit fails")
        except ValueError:
            pass
        with store.transaction():
            store.set("c", "1", 60, 0)
    assert [store.get(k, 1) for k in "abc"] == ["1", None, "1"]
    store.close()


def test_take_all_many_sqlite_error_mid_batch_fails_it_whole(tmp_path, monkeypatch):
    """An SQLite error (disk full, I/O) in one call rolls back the shared transaction: the
    batch fails as a whole, nothing of it stands, and the store is usable afterwards (the
    batch stops there rather than open a new transaction under the writer lock it holds)."""
    import threading

    import owlery.state.sqlite_store as mod
    s = SQLiteStore(str(tmp_path / "s.sqlite"))
    real, calls = mod.take_all_math, []

    def failing_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args)
    monkeypatch.setattr(mod, "take_all_math", failing_second)
    outcome = []

    def run():
        try:
            outcome.append(s.take_all_many([([("a", 1, 1e-9, 1)], T0)] * 3))
        except Exception as e:  # noqa: BLE001 - the outcome under test
            outcome.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "take_all_many hung after an SQLite error"
    assert isinstance(outcome[0], StateUnavailable) and len(calls) == 2
    monkeypatch.setattr(mod, "take_all_math", real)
    assert s.take_all([("a", 1, 1e-9, 1)], T0)[0].allowed      # the first call's charge was undone
    s.close()


def test_unit_after_an_error_that_aborted_the_batch_fails_instead_of_hanging(tmp_path):
    """A database error inside a batch rolls the whole transaction back; the next unit of the
    same batch must fail at once (StateUnavailable), not wait on the writer lock its own
    thread holds."""
    import threading
    store = SQLiteStore(str(tmp_path / "abort.sqlite"))
    outcome = []

    def batch():
        try:
            with store.transaction():
                try:
                    with store.transaction():
                        store._run(lambda conn: conn.execute("SELECT * FROM no_such_table"))
                except StateUnavailable:
                    outcome.append("first failed")
                try:
                    with store.transaction():
                        store.set("k", "v", 60, 0)
                except StateUnavailable:
                    outcome.append("second failed")
        except StateUnavailable:
            outcome.append("batch failed")
    worker = threading.Thread(target=batch, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the batch hung on its own lock"
    assert outcome == ["first failed", "second failed", "batch failed"]
    store.set("k", "v", 60, 0)                      # the store is usable afterwards
    assert store.get("k", 1) == "v"
    store.close()


def test_the_database_file_is_not_world_readable(tmp_path):
    """What the store holds (who wrote to whom, vacation replies, triplets) is nobody else's:
    the file is created 0660 before SQLite would create it with the umask's mode."""
    import os
    import stat
    from owlery.state.sqlite_store import SQLiteStore
    old = os.umask(0o022)
    try:
        store = SQLiteStore(str(tmp_path / "state.sqlite"))
        store.add("k", "v", 60, 0)
        store.close()
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "state.sqlite").st_mode
    assert not mode & (stat.S_IROTH | stat.S_IWOTH), oct(mode)
