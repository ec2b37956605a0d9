"""`owlery quarantine ...` and `owlery spam learn` as a postmaster runs them.

Messages are put in a directory store, then the CLI lists, shows, releases (over SMTP to
a real Postfix's reinjection port; the sink receives the released copy), deletes and
expires them. Bad ids exit 1 with a clear message; every release and delete leaves an
audit line. `spam learn` trains the real spamd from a Maildir.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from owlery.quarantine import QuarantineRecord, RecipientState, new_id
from owlery.quarantine.directory import DirectoryStore
from owlery.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
MSG = (b"From: Src <src@sender.test>\r\nTo: bob@example.test\r\nSubject: Cheap pills\r\n"
       b"Message-ID: <q1@sender.test>\r\n\r\nBuy now\r\n")


def record(reason="spam", age=0.0, rcpts=("bob@example.test", "carol@example.test"), sender="src@sender.test"):
    return QuarantineRecord(mail_id=new_id(), secret_id=new_id(), created=time.time() - age, reason=reason,
                            detail="score 12" if reason == "spam" else "Eicar", sender=sender,
                            recipients=tuple(RecipientState(r) for r in rcpts), size=len(MSG),
                            client_addr="192.0.2.7", client_name="mx.sender.test", helo="mx.sender.test",
                            host="mx1", subject="Cheap pills", header_from="Src <src@sender.test>",
                            score=12.0, symbols=(("SPAMD", 12.0, "BAYES_99"),))


@pytest.fixture
def env(tmp_path):
    audit = tmp_path / "audit.log"
    config = tmp_path / "owlery.toml"

    def write(**extra):
        lines = [f'quarantine_directory = "{tmp_path / "q"}"', f'quarantine_audit_log_path = "{audit}"']
        lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {str(v).lower()}"
                  for k, v in extra.items()]
        config.write_text("\n".join(lines) + "\n")
    write()
    store = DirectoryStore(str(tmp_path / "q"))

    def run(*argv):
        return main(list(argv[:2]) + ["--config", str(config)] + list(argv[2:]))
    run.store, run.audit, run.write, run.config = store, audit, write, config
    return run


def test_list_filters_and_show(env, capsys):
    spam, virus = record("spam"), record("virus", age=3 * 86400, rcpts=("dave@example.test",))
    env.store.put(spam, MSG)
    env.store.put(virus, MSG)
    assert env("quarantine", "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [spam.mail_id, virus.mail_id]
    assert env("quarantine", "list", "--reason", "virus") == 0
    assert capsys.readouterr().out.split()[0] == virus.mail_id
    assert env("quarantine", "list", "--recipient", "carol@example.test", "--newer-than", "1d") == 0
    assert capsys.readouterr().out.split()[0] == spam.mail_id
    assert env("quarantine", "list", "--older-than", "2d", "--json") == 0
    out = capsys.readouterr().out
    assert virus.mail_id in out and spam.mail_id not in out and "secret" not in out
    assert env("quarantine", "show", spam.mail_id) == 0
    out = capsys.readouterr().out
    for text in (f"Quarantine-ID: {spam.mail_id}", "Reason: spam: score 12", "SPAMD=12  BAYES_99",
                 "Recipient: <bob@example.test> pending", "Subject: Cheap pills"):
        assert text in out
    assert spam.secret_id not in out
    assert env("quarantine", "show", spam.mail_id, "--secret") == 0
    assert f"Secret: {spam.secret_id}" in capsys.readouterr().out


@pytest.mark.parametrize("action", [("show",), ("release",), ("delete",)])
@pytest.mark.parametrize("bad", ["abcdefghijkmnpq", "nonsense", "../../etc/passwd"])
def test_bad_id_is_a_clear_error_with_status_1(env, capsys, action, bad):
    assert env("quarantine", *action, bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("owlery: quarantine: ") and bad in err


def test_bad_id_exit_status_from_the_real_command(env):
    proc = subprocess.run([sys.executable, "-m", "owlery.app.cli", "quarantine", "release", "--config",
                           str(env.config), "nosuchid"], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert proc.returncode == 1 and "not a quarantine id" in proc.stderr


def test_release_reinjects_through_postfix_and_records_per_recipient(env, capsys, postfix):
    env.write(quarantine_release_smtp_endpoint=f"tcp:127.0.0.1:{postfix.reinject_port}")
    rec = record()
    env.store.put(rec, MSG)
    assert env("quarantine", "release", rec.mail_id, "--to", "carol@example.test", "--by", "alice") == 0
    assert capsys.readouterr().out == f"released {rec.mail_id} to <carol@example.test>\n"
    [sent] = postfix.wait_sent(1)
    assert sent.rcpts == ["carol@example.test"] and sent.mail_from == "src@sender.test"
    assert sent["X-Quarantine-Released"].startswith("by alice on ") and f"id={rec.mail_id}" in \
        sent["X-Quarantine-Released"]
    assert sent["Subject"] == "Cheap pills" and sent.raw.rstrip().endswith(b"Buy now")
    got = env.store.get(rec.mail_id)
    assert got.recipient("carol@example.test").status == "released"
    assert got.recipient("carol@example.test").changed_by == "alice"
    assert got.pending() == ("bob@example.test",)
    # without --to: the pending recipients only
    postfix.clear_sent()
    assert env("quarantine", "release", rec.mail_id) == 0
    [sent] = postfix.wait_sent(1)
    assert sent.rcpts == ["bob@example.test"]
    assert env.store.get(rec.mail_id).pending() == ()
    assert env("quarantine", "release", rec.mail_id) == 1           # nothing left to release
    audit = env.audit.read_text().splitlines()
    assert len(audit) == 2 and all(f"quarantine: release: quarantine_id={rec.mail_id}" in a for a in audit)
    assert "by=alice to=<carol@example.test>" in audit[0]


def test_release_failure_exits_1_and_records_nothing(env, capsys):
    env.write(quarantine_release_smtp_endpoint="tcp:127.0.0.1:1", quarantine_release_smtp_timeout="2s")
    rec = record()
    env.store.put(rec, MSG)
    assert env("quarantine", "release", rec.mail_id) == 1
    assert "release of" in capsys.readouterr().err
    assert env.store.get(rec.mail_id).pending() == ("bob@example.test", "carol@example.test")
    assert "release-failed" in env.audit.read_text()


def test_release_through_the_sendmail_of_a_private_postfix(env, capsys, postfix):
    env.write(quarantine_release_method="sendmail", quarantine_release_sendmail_path="/usr/sbin/sendmail",
              quarantine_release_sendmail_config_directory=str(postfix.config_dir))
    rec = record()
    bounce = record(sender="", rcpts=("dave@example.test",))          # the null sender stays <>
    env.store.put(rec, MSG)
    env.store.put(bounce, MSG)
    assert env("quarantine", "release", rec.mail_id, "--by", "alice") == 0
    assert capsys.readouterr().out == (f"released {rec.mail_id} to <bob@example.test>\n"
                                       f"released {rec.mail_id} to <carol@example.test>\n")
    assert env("quarantine", "release", bounce.mail_id) == 0
    sent = {m.mail_from: m for m in postfix.wait_sent(2)}
    assert sorted(sent["src@sender.test"].rcpts) == ["bob@example.test", "carol@example.test"]
    assert sent[""].rcpts == ["dave@example.test"]
    copy = sent["src@sender.test"]
    assert f"id={rec.mail_id}" in copy["X-Quarantine-Released"] and copy["Subject"] == "Cheap pills"
    assert copy["Message-ID"] == "<q1@sender.test>" and copy.raw.rstrip().endswith(b"Buy now")
    assert b"\r" not in copy.raw                         # handed over with LF line ends
    assert env.store.get(rec.mail_id).pending() == () and env.store.get(bounce.mail_id).pending() == ()
    assert "method=sendmail" in env.audit.read_text()


@pytest.mark.parametrize("command", ["/bin/false", "/nonexistent/sendmail"])
def test_sendmail_failure_exits_1_and_records_nothing(env, capsys, command):
    env.write(quarantine_release_method="sendmail", quarantine_release_sendmail_path=command)
    rec = record()
    env.store.put(rec, MSG)
    assert env("quarantine", "release", rec.mail_id) == 1
    assert f"release of {rec.mail_id} failed: {command}" in capsys.readouterr().err
    assert env.store.get(rec.mail_id).pending() == ("bob@example.test", "carol@example.test")
    assert "release-failed" in env.audit.read_text()


def test_release_secret(env, capsys, postfix):
    env.write(quarantine_release_secret_required=True,
              quarantine_release_smtp_endpoint=f"tcp:127.0.0.1:{postfix.reinject_port}")
    rec = record(rcpts=("bob@example.test",))
    env.store.put(rec, MSG)
    assert env("quarantine", "release", rec.mail_id) == 1
    assert env("quarantine", "release", rec.mail_id, "--secret", new_id()) == 1
    assert "wrong or missing secret" in capsys.readouterr().err
    assert env("quarantine", "release", rec.mail_id, "--secret", rec.secret_id) == 0
    postfix.wait_sent(1)
    assert env.audit.read_text().count("release-denied") == 2


def test_delete_and_expire_with_audit(env, capsys):
    keep_spam = record("spam", age=9 * 86400)
    old_spam = record("spam", age=11 * 86400)
    old_virus = record("virus", age=8 * 86400)
    young_virus = record("virus", age=6 * 86400)
    gone = record()
    for r in (keep_spam, old_spam, old_virus, young_virus, gone):
        env.store.put(r, MSG)
    assert env("quarantine", "delete", gone.mail_id, "--by", "bob") == 0
    assert env("quarantine", "expire", "--dry-run") == 0
    assert sorted(line.split()[2] for line in capsys.readouterr().out.splitlines() if "would expire" in line) == \
        sorted([old_spam.mail_id, old_virus.mail_id])
    assert env("quarantine", "expire") == 0
    assert "expired 2 messages" in capsys.readouterr().out
    left = {r.mail_id for r in env.store.list(__import__("owlery.quarantine").quarantine.ListFilter(), time.time())}
    assert left == {keep_spam.mail_id, young_virus.mail_id}
    audit = env.audit.read_text()
    assert f"quarantine: delete: quarantine_id={gone.mail_id} by=bob" in audit
    assert audit.count("quarantine: expire:") == 2


def test_expire_ages_come_from_settings(env, capsys):
    env.write(quarantine_expire_spam_age="1h")
    r = record("spam", age=7200)
    env.store.put(r, MSG)
    assert env("quarantine", "expire") == 0
    assert "expired 1 message" in capsys.readouterr().out


def test_spam_learn_from_maildir_with_progress(env, capsys, spamd, tmp_path):
    # the learn memory in this test's own state file, never the system's default path
    env.write(spamd_endpoint=f"tcp:127.0.0.1:{spamd.port}", state_sqlite_path=str(tmp_path / "state.sqlite"))
    junk = tmp_path / "Maildir" / ".Junk"
    for sub in ("cur", "new", "tmp"):
        (junk / sub).mkdir(parents=True)
    for i in range(4):
        (junk / ("cur" if i % 2 else "new") / f"{i}.msg").write_bytes(
            b"From: x@spam.test\r\nSubject: offer %d %s\r\n\r\nVery special offer number %d %s\r\n"
            % (i, new_id().encode(), i, new_id().encode()))
    assert env("spam", "learn", "--spam", str(junk), "--progress", "always") == 0
    captured = capsys.readouterr()
    assert "spam: 4 messages, learned 4, already known 0" in captured.out
    assert "[" + "#" * 30 + "] 4/4 learned=4" in captured.err
    assert env("spam", "learn", "--spam", str(junk), "--progress", "never") == 0
    captured = capsys.readouterr()
    assert "learned 0, already known 4" in captured.out and captured.err == ""
    assert env("spam", "learn", "--ham", str(tmp_path / "missing")) == 1
