"""The quarantine store's audit (what `owlery web` shows admins), on both backends; it outlives the message."""

import uuid

import pytest

from owlery.quarantine import AuditEntry, QuarantineUnavailable
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.postgres import PostgresStore

from .helpers import make_record, plain_message


@pytest.fixture(params=["directory", "postgresql"])
def store(request, tmp_path):
    if request.param == "directory":
        yield DirectoryStore(str(tmp_path / "q"), timeout=5)
        return
    s = PostgresStore(request.getfixturevalue("pg_dsn"), schema="owlery_wtest_" + uuid.uuid4().hex[:12], timeout=5)
    try:
        s._setup()
    except QuarantineUnavailable as e:
        pytest.fail(f"PostgreSQL not reachable: {e}")
    yield s
    s.drop_schema()


def test_audit_newest_first_by_message_and_after_delete(store):
    rec = make_record()
    store.put(rec, plain_message())
    store.add_audit(AuditEntry(10.0, "admin@example.test", "release", rec.mail_id, "to=a@example.test", "mx1"))
    store.add_audit(AuditEntry(20.0, "admin@example.test", "delete", rec.mail_id, "reason=spam", "mx2"))
    store.add_audit(AuditEntry(15.0, "link:b@example.test", "release", "othermailid2345", "", "mx1"))
    store.delete(rec.mail_id)
    assert [e.action for e in store.audit_log()] == ["delete", "release", "release"]
    assert [e.at for e in store.audit_log(mail_id=rec.mail_id)] == [20.0, 10.0]
    assert store.audit_log(limit=1)[0] == AuditEntry(20.0, "admin@example.test", "delete", rec.mail_id,
                                                     "reason=spam", "mx2")
