"""`owlery quarantine release|delete` write the store's audit (what `owlery web` shows admins); `expire` trims it.

Both store backends: a directory store in a temp dir and PostgreSQL (the harness `pg_dsn`,
one schema per test). The CLI runs in-process (owlery.app.cli.main) with SUDO_USER set, so
the actor is known: "cli:jo". A release goes through a real Postfix's re-injection port,
and the admin's audit page of the web core (tests/web/helpers.World over the same store)
lists it. Audit entries older than quarantine_audit_retention go with `expire`.
"""

import re
import time
import uuid

import pytest

from owlery.app.cli import main
from owlery.quarantine import AuditEntry, QuarantineUnavailable
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.postgres import PostgresStore
from tests.milters.test_quarantine_cli import MSG, record
from tests.web.helpers import World

DAY = 86400.0


@pytest.fixture(params=["directory", "postgresql"])
def cli(request, tmp_path, monkeypatch):
    """run(*argv) -> exit status, with .store and .write(**settings) (rewrites the config)."""
    monkeypatch.setenv("SUDO_USER", "jo")
    config = tmp_path / "owlery.toml"
    if request.param == "directory":
        base = [f'quarantine_directory = "{tmp_path / "q"}"']
        store = DirectoryStore(str(tmp_path / "q"), timeout=5)
    else:
        dsn, schema = request.getfixturevalue("pg_dsn"), "owlery_qcli_" + uuid.uuid4().hex[:12]
        base = ['quarantine_backend = "postgresql"', f'quarantine_pg_dsn = "{dsn}"',
                f'quarantine_pg_schema = "{schema}"']
        store = PostgresStore(dsn, schema=schema, timeout=5)
        try:
            store._setup()
        except QuarantineUnavailable as e:
            pytest.fail(f"PostgreSQL not reachable at {dsn!r}: {e}")

    def write(**extra):
        config.write_text("\n".join(base + [f'{k} = "{v}"' for k, v in extra.items()]) + "\n")

    def run(*argv):
        return main(list(argv[:2]) + ["--config", str(config)] + list(argv[2:]))
    write()
    run.store, run.write = store, write
    yield run
    if isinstance(store, PostgresStore):
        store.drop_schema()


def test_delete_and_failed_or_denied_releases_are_in_the_store_audit(cli, capsys):
    rec, gone = record(), record()
    cli.store.put(rec, MSG)
    cli.store.put(gone, MSG)
    cli.write(quarantine_release_smtp_endpoint="tcp:127.0.0.1:1", quarantine_release_smtp_timeout="2s")
    assert cli("quarantine", "release", rec.mail_id) == 1
    assert cli("quarantine", "release", rec.mail_id, "--secret", "wrong") == 1
    assert cli("quarantine", "delete", gone.mail_id, "--by", "helpdesk") == 0
    entries = cli.store.audit_log()
    assert [(e.by, e.action, e.mail_id) for e in entries] == [
        ("cli:jo", "delete", gone.mail_id), ("cli:jo", "release-denied", rec.mail_id),
        ("cli:jo", "release-failed", rec.mail_id)]
    delete, denied, failed = entries
    # --by is what the helpdesk says; the Unix user answers for it
    assert delete.detail == "by=helpdesk reason=spam from=src@sender.test"
    assert denied.detail == "reason=bad secret"
    assert failed.detail.startswith("to=bob@example.test,carol@example.test error=") and failed.host
    assert all(time.time() - e.at < 60 for e in entries)
    # the audit outlives the deleted message
    assert [e.action for e in cli.store.audit_log(mail_id=gone.mail_id)] == ["delete"]


def test_a_cli_release_shows_on_the_web_audit_page(tmp_path, monkeypatch, capsys, postfix):
    monkeypatch.setenv("SUDO_USER", "jo")
    config = tmp_path / "owlery.toml"
    config.write_text(f'quarantine_directory = "{tmp_path / "q"}"\n'
                      f'quarantine_release_smtp_endpoint = "tcp:127.0.0.1:{postfix.reinject_port}"\n')
    world = World(tmp_path)             # the web core over the same directory store
    rec = record()
    world.store.put(rec, MSG)
    assert main(["quarantine", "release", "--config", str(config), rec.mail_id, "--to", "carol@example.test"]) == 0
    [sent] = postfix.wait_sent(1)
    assert sent.rcpts == ["carol@example.test"]
    [entry] = world.store.audit_log()
    assert (entry.by, entry.action, entry.mail_id) == ("cli:jo", "release", rec.mail_id)
    assert entry.detail == "to=carol@example.test reason=spam from=src@sender.test method=smtp"
    admin = world.client()
    admin.login("admin@example.test")
    page = admin.get("/audit").body.decode()
    assert re.search(rf'<td[^>]*>cli:jo</td>\s*<td[^>]*>release</td>\s*<td[^>]*><a href="/audit\?mail_id={rec.mail_id}">'
                     rf'{rec.mail_id}</a></td>', page), page
    assert "to=carol@example.test" in page


def test_expire_drops_audit_entries_past_their_retention(cli, capsys):
    now = time.time()
    for age, mail_id in ((400 * DAY, "oldoldoldoldold"), (30 * DAY, "monthmonthmonth"), (3600, "hourhourhourhou")):
        cli.store.add_audit(AuditEntry(now - age, "admin@example.test", "release", mail_id, "to=a@example.test", "mx1"))

    def left():
        return sorted(e.mail_id for e in cli.store.audit_log())

    assert cli("quarantine", "expire", "--dry-run") == 0
    assert "would drop 1 audit entry from before" in capsys.readouterr().out
    assert len(left()) == 3
    assert cli("quarantine", "expire") == 0          # the default: 365 days
    assert "dropped 1 audit entry" in capsys.readouterr().out
    assert left() == ["hourhourhourhou", "monthmonthmonth"]
    cli.write(quarantine_audit_retention="7d")
    assert cli("quarantine", "expire") == 0
    assert "dropped 1 audit entry" in capsys.readouterr().out
    assert left() == ["hourhourhourhou"]
    cli.store.add_audit(AuditEntry(now - 4000 * DAY, "cli:root", "delete", "ancientancienta", "", "mx1"))
    cli.write(quarantine_audit_retention="0")         # kept for ever
    assert cli("quarantine", "expire") == 0
    assert "audit" not in capsys.readouterr().out
    assert left() == ["ancientancienta", "hourhourhourhou"]
