"""The DMARC results store (milters/dmarc_store.py): one contract, run against SQLite and PostgreSQL.

PostgreSQL is the harness `pg_dsn` (the machine's server or a private one), in a schema
made for the test and dropped after.
"""

from __future__ import annotations

import pytest

from milters.dmarc_store import DmarcResult, DmarcStoreUnavailable, DmarcPostgresStore, SqliteStore, open_store
from owlery.settings import Settings


def result(i: int = 0, **kw) -> DmarcResult:
    base = dict(date=1000.0 + i, source_ip="192.0.2.10", header_from="example.net", envelope_from="example.net",
                envelope_to="example.test", policy_domain="example.net", result="fail", disposition="quarantine",
                dkim_aligned="fail", spf_aligned="pass", reasons=("sampled_out", "local_policy"),
                dkim=(("example.net", "r1", "fail"), ("ex'ample.org", "s;1\"", "pass")),
                spf_domain="example.net", spf_result="pass", p="reject", sp="quarantine", np="reject",
                pct=50, adkim="s", aspf="r", fo="1", rua="mailto:a@example.net!10m", host="mx1")
    base.update(kw)
    return DmarcResult(**base)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteStore(str(tmp_path / "new-dir" / "results.sqlite3"))
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = request.getfixturevalue("pg_schema")
    yield DmarcPostgresStore(dsn, schema=schema, timeout=5)


def test_results_round_trip_by_domain_and_period(store):
    rows = [result(0), result(1, policy_domain="example.com"), result(2), result(86400)]
    store.add_many(rows)
    assert store.domains(1000, 1003) == ["example.com", "example.net"]
    assert store.results("example.net", 1000, 1003) == [rows[0], rows[2]]
    assert store.results("example.net", 1001, 1002) == []
    assert store.domains(1000 + 86400, 1000 + 86401) == ["example.net"]


def test_a_report_is_claimed_once(store):
    assert store.claim_report("example.net", 86400, "a@example.net", 1.0)
    assert not store.claim_report("example.net", 86400, "a@example.net", 2.0)
    assert store.claim_report("example.net", 86400, "b@example.net", 2.0)
    store.unclaim_report("example.net", 86400, "a@example.net")
    assert store.claim_report("example.net", 86400, "a@example.net", 3.0)


def test_expire_deletes_old_results_and_claims(store):
    store.add_many([result(0), result(5000)])
    store.claim_report("example.net", 900, "a@example.net", 1.0)
    assert store.expire(2000) == 1
    assert [r.date for r in store.results("example.net", 0, 10**7)] == [6000.0]
    assert store.claim_report("example.net", 900, "a@example.net", 2.0)


def test_two_stores_on_one_database_share_results(store, request):
    other = SqliteStore(store.path) if isinstance(store, SqliteStore) else DmarcPostgresStore(
        store.dsn, schema=store.schema, timeout=5)
    store.add_many([result(0)])
    other.add_many([result(1, host="mx2")])
    assert {r.host for r in store.results("example.net", 0, 10**7)} == {"mx1", "mx2"}


def test_unreachable_stores_raise_their_typed_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DmarcStoreUnavailable):
        SqliteStore(str(blocker / "r.sqlite3")).add_many([result()])
    with pytest.raises(DmarcStoreUnavailable, match="cannot connect") as e:
        DmarcPostgresStore("host=127.0.0.1 port=9 dbname=x user=x password=secret", timeout=1).add_many([result()])
    assert "secret" not in str(e.value)


def test_open_store_follows_the_settings(tmp_path):
    s = Settings().replace(dmarc_report_store_path=str(tmp_path / "r.sqlite3"))
    assert isinstance(open_store(s), SqliteStore)
    with pytest.raises(DmarcStoreUnavailable, match="needs dmarc_report_pg_dsn"):
        open_store(s.replace(dmarc_report_backend="postgresql"))
    pg = open_store(s.replace(dmarc_report_backend="postgresql", dmarc_report_pg_dsn="host=db.example.test",
                              dmarc_report_pg_schema="dmarc"))
    assert isinstance(pg, DmarcPostgresStore) and pg.schema == "dmarc"
