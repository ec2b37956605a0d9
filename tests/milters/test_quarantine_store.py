"""Contract tests of the quarantine store, run against both backends (directory+SQLite and PostgreSQL).

PostgreSQL: the harness `pg_dsn` (the machine's server at 127.0.0.1:5432, else a private
one), one fresh schema per test; a test that cannot connect fails.
"""

import threading
import uuid

import pytest

from owlery.quarantine import (ID_LENGTH, PENDING, RELEASED, ListFilter, QuarantineNotFound,
                               QuarantineRecord, QuarantineUnavailable, RecipientState, is_valid_id,
                               new_id, open_store, secret_matches)
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.postgres import PostgresStore
from owlery.settings import Settings

NOW = 1_800_000_000.0
DAY = 86400.0


def make_record(reason="spam", created=NOW, rcpts=("a@example.test", "B@Example.test"), **kw):
    values = dict(mail_id=new_id(), secret_id=new_id(), created=created, reason=reason,
                  detail="score 12.5" if reason == "spam" else "Eicar-Test-Signature",
                  sender="src@sender.test", recipients=tuple(RecipientState(r) for r in rcpts),
                  size=42, queue_id="4F3A21C", client_addr="192.0.2.7", client_name="mx.sender.test",
                  helo="mx.sender.test", host="mx1", subject="Hello", header_from="Src <src@sender.test>",
                  message_id="<1@sender.test>", score=12.5, symbols=(("GTUBE", 1000.0, "spamd"),))
    values.update(kw)
    return QuarantineRecord(**values)


MSG = b"From: src@sender.test\r\nSubject: Hello\r\n\r\nbody \x00\xff bytes\r\n"


@pytest.fixture(params=["directory", "postgresql"])
def store(request, tmp_path):
    if request.param == "directory":
        s = DirectoryStore(str(tmp_path / "q"), timeout=5)
        yield s
        return
    dsn = request.getfixturevalue("pg_dsn")
    s = PostgresStore(dsn, schema="owlery_qtest_" + uuid.uuid4().hex[:12], timeout=5)
    try:
        s._setup()
    except QuarantineUnavailable as e:
        pytest.fail(f"PostgreSQL for the quarantine contract tests is not reachable at {dsn!r}: {e}")
    yield s
    s.drop_schema()


def test_ids_are_long_random_and_distinct():
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(is_valid_id(i) and len(i) == ID_LENGTH and not i.startswith("-") for i in ids)
    assert not is_valid_id("../../etc/pass") and not is_valid_id("") and not is_valid_id("A" * ID_LENGTH)
    assert not is_valid_id(next(iter(ids)) + "\n")         # a trailing newline is not an id


def test_put_get_message_roundtrip(store):
    rec = make_record()
    store.put(rec, MSG)
    got = store.get(rec.mail_id)
    assert got == rec
    assert store.message(rec.mail_id) == MSG
    assert got.pending() == ("a@example.test", "B@Example.test")
    assert secret_matches(got, rec.secret_id) and not secret_matches(got, new_id())


def test_unknown_and_malformed_ids(store):
    for bad in (new_id(), "nope", "../../etc/passwd", ""):
        with pytest.raises(QuarantineNotFound):
            store.get(bad)
        with pytest.raises(QuarantineNotFound):
            store.message(bad)
        with pytest.raises(QuarantineNotFound):
            store.delete(bad)
        with pytest.raises(QuarantineNotFound):
            store.mark_released(bad, ["a@example.test"], "root", NOW)


def test_same_id_twice_is_refused_and_first_kept(store):
    rec = make_record()
    store.put(rec, MSG)
    with pytest.raises(QuarantineUnavailable):
        store.put(rec, b"other")
    assert store.message(rec.mail_id) == MSG


def test_release_state_is_per_recipient(store):
    rec = make_record()
    store.put(rec, MSG)
    got = store.mark_released(rec.mail_id, ["b@example.test"], "alice", NOW + 10)
    b = got.recipient("b@example.test")
    assert (b.status, b.changed_by, b.changed_at, b.original) == (RELEASED, "alice", NOW + 10, True)
    assert got.recipient("a@example.test").status == PENDING
    assert got.pending() == ("a@example.test",)
    # an alternative address is recorded beside the originals, not instead of them
    got = store.mark_released(rec.mail_id, ["postmaster@example.test"], "root", NOW + 20)
    alt = got.recipient("postmaster@example.test")
    assert alt.status == RELEASED and alt.original is False
    assert [r.address for r in got.recipients][:2] == ["a@example.test", "B@Example.test"]
    assert got.pending() == ("a@example.test",)


def test_list_filters(store):
    old_virus = make_record("virus", created=NOW - 8 * DAY, rcpts=("x@example.test",), sender="bad@evil.test")
    spam = make_record("spam", created=NOW - 2 * DAY)
    banned = make_record("banned", created=NOW - 60, rcpts=("y@example.test",))
    for r in (old_virus, spam, banned):
        store.put(r, MSG)
    ids = lambda **kw: [r.mail_id for r in store.list(ListFilter(**kw), NOW)]   # noqa: E731
    assert ids() == [banned.mail_id, spam.mail_id, old_virus.mail_id]          # newest first
    assert ids(reason="virus") == [old_virus.mail_id]
    assert ids(recipient="b@EXAMPLE.test") == [spam.mail_id]
    assert ids(sender="BAD@evil.test") == [old_virus.mail_id]
    assert ids(older_than=DAY) == [spam.mail_id, old_virus.mail_id]
    assert ids(newer_than=3 * DAY) == [banned.mail_id, spam.mail_id]
    assert ids(limit=1) == [banned.mail_id]
    store.mark_released(spam.mail_id, ["a@example.test"], "root", NOW)
    assert ids(status=RELEASED) == [spam.mail_id]


def test_delete_removes_record_and_message(store):
    rec = make_record()
    store.put(rec, MSG)
    store.delete(rec.mail_id)
    with pytest.raises(QuarantineNotFound):
        store.get(rec.mail_id)
    with pytest.raises(QuarantineNotFound):
        store.message(rec.mail_id)
    assert store.list(ListFilter(), NOW) == []


@pytest.mark.parametrize("reason, age_days, expired", [
    ("virus", 6.9, False), ("virus", 7.1, True),
    ("spam", 9.9, False), ("spam", 10.1, True),
    ("banned", 29, False), ("banned", 31, True),       # default age for other reasons: 30 days
])
def test_expire_per_reason_ages(store, reason, age_days, expired):
    rec = make_record(reason, created=NOW - age_days * DAY)
    keep = make_record(reason, created=NOW)
    store.put(rec, MSG)
    store.put(keep, MSG)
    gone = store.expire(NOW, {"virus": 7 * DAY, "spam": 10 * DAY}, 30 * DAY)
    assert gone == ([rec.mail_id] if expired else [])
    assert [r.mail_id for r in store.list(ListFilter(), NOW)] == ([keep.mail_id] if expired
                                                                  else [keep.mail_id, rec.mail_id])


def test_concurrent_puts(store):
    records = [make_record() for _ in range(12)]
    errors = []

    def put(r):
        try:
            store.put(r, MSG + r.mail_id.encode())
        except Exception as e:  # noqa: BLE001  collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=put, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list(ListFilter(), NOW)) == 12
    assert all(store.message(r.mail_id) == MSG + r.mail_id.encode() for r in records)


def test_directory_layout_and_no_partial_files(tmp_path):
    store = DirectoryStore(str(tmp_path / "q"))
    rec = make_record()
    store.put(rec, MSG)
    path = tmp_path / "q" / "msg" / rec.mail_id[:2] / rec.mail_id
    assert path.read_bytes() == MSG
    assert oct(path.stat().st_mode & 0o777) == "0o600"        # private: not group postfix
    assert list((tmp_path / "q" / "tmp").iterdir()) == []


def test_directory_unwritable_is_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = DirectoryStore(str(blocker / "q"))
    with pytest.raises(QuarantineUnavailable):
        store.put(make_record(), MSG)


def test_postgres_unreachable_is_unavailable():
    store = PostgresStore("host=127.0.0.1 port=1 user=postgres dbname=test", timeout=2)
    with pytest.raises(QuarantineUnavailable):
        store.put(make_record(), MSG)


def test_open_store_follows_settings(tmp_path):
    s = Settings().replace(quarantine_directory=str(tmp_path / "q"))
    assert isinstance(open_store(s), DirectoryStore)
    s = s.replace(quarantine_backend="postgresql", quarantine_pg_dsn="host=db.example.test", quarantine_pg_schema="x")
    assert isinstance(open_store(s), PostgresStore)


def test_postgres_list_reads_every_listed_messages_recipients_in_one_query(pg_dsn):
    """A page of the web list (up to web_search_scan_max records) asked PostgreSQL once per
    message for its recipients; now once in all, each message keeping its own, in order."""
    import psycopg

    s = PostgresStore(pg_dsn, schema="owlery_qtest_" + uuid.uuid4().hex[:12], timeout=5)
    s._setup()
    try:
        recs = [make_record(created=NOW + i, rcpts=(f"a{i}@example.test", f"b{i}@example.test"))
                for i in range(12)]
        for rec in recs:
            s.put(rec, MSG)
        s.mark_released(recs[3].mail_id, ["b3@example.test"], "root", NOW + 100)
        statements = []
        real = psycopg.Connection.execute

        def counting(conn, query, *args, **kw):
            statements.append(str(query))
            return real(conn, query, *args, **kw)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(psycopg.Connection, "execute", counting)
            listed = s.list(ListFilter(), NOW + 200)
        assert [r.mail_id for r in listed] == [r.mail_id for r in reversed(recs)]
        assert [tuple(x.address for x in r.recipients) for r in listed] == \
            [(f"a{i}@example.test", f"b{i}@example.test") for i in range(11, -1, -1)]
        assert listed[8].pending() == ("a3@example.test",)
        assert sum("quarantine_recipients" in q for q in statements) <= 1, statements
    finally:
        s.drop_schema()
