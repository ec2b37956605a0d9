"""`owlery spam learn`: what is taught (milters/spam_cli.py), the memory (milters/spam_learn.py),
and a real spamd learning from a user's Maildir and from stdin."""

from __future__ import annotations

import io
import os
import secrets
import time
from pathlib import Path

import pytest

from milters.clients import ScannerUnavailable
from milters.spam_cli import maildir_jobs
from milters.spam_learn import Teacher, memory_key
from owlery.app.cli import main
from owlery.errors import StateUnavailable
from owlery.maildir import Maildir
from owlery.state.memory_store import MemoryStore

NOW = 1_800_000_000.0
DAY = 86400.0


class FakeSpamd:
    def __init__(self, fail=False):
        self.told: list[tuple[bytes, str, str]] = []
        self.fail = fail

    def tell(self, message, klass, user=None):
        if self.fail:
            raise ScannerUnavailable("down")
        self.told.append((message, klass, user))

        class Answer:
            @staticmethod
            def did_set():
                return ("local",)
        return Answer()


class BrokenStore(MemoryStore):
    def get(self, key, now):
        raise StateUnavailable("redis is down")


def test_the_memory_saves_a_second_tell_and_a_moved_message_is_taught_again():
    spamd, store = FakeSpamd(), MemoryStore()
    t = Teacher(spamd, store, memory=30 * DAY, now=NOW)
    assert t.teach(b"m1", "spam", "owlery") == "learned"
    assert t.teach(b"m1", "spam", "owlery") == "known"
    assert len(spamd.told) == 1
    assert t.teach(b"m1", "ham", "owlery") == "learned"          # moved out of Junk: relearn as ham
    assert t.teach(b"m1", "spam", "alice@example.org") == "learned"   # another Bayes database
    assert [k for _, k, _ in spamd.told] == ["spam", "ham", "spam"]
    assert store.get(memory_key("owlery", b"m1"), NOW) == "ham"


def test_memory_off_or_a_broken_store_still_teaches():
    for store, memory in ((MemoryStore(), 0), (BrokenStore(), 30 * DAY)):
        spamd = FakeSpamd()
        t = Teacher(spamd, store, memory=memory, now=NOW)
        assert t.teach(b"m", "spam", "u") == "learned"
        assert t.teach(b"m", "spam", "u") == "learned"
        assert len(spamd.told) == 2


def test_spamd_down_is_an_error_not_a_silent_skip():
    with pytest.raises(ScannerUnavailable):
        Teacher(FakeSpamd(fail=True), MemoryStore(), memory=DAY, now=NOW).teach(b"m", "spam", "u")
    with pytest.raises(ValueError):
        Teacher(FakeSpamd(), None, memory=0, now=NOW).teach(b"m", "eggs", "u")


def _msg(tag: str) -> bytes:
    token = secrets.token_hex(8)
    return (f"From: x@spam.test\nSubject: {tag} {token}\nMessage-ID: <{token}@spam.test>\n\n"
            f"Cheap offer {tag} {token} buy now\n").encode()


def _maildir(tmp_path: Path, now: float) -> Maildir:
    md = Maildir(str(tmp_path / "Maildir"), fsync="never")
    for i in range(3):
        md.deliver(_msg(f"junk{i}"), "Junk", now=now - DAY)
    md.deliver(_msg("spamfolder"), "spam", now=now - DAY)        # any case
    md.deliver(_msg("old"), now=now - 30 * DAY)
    md.deliver(_msg("fresh"), now=now - DAY)                    # too young to count as ham
    md.deliver(_msg("archive"), "Archive", now=now - 30 * DAY)
    return md


def test_maildir_jobs_pick_spam_folders_and_old_inbox_mail(tmp_path):
    md = _maildir(tmp_path, NOW)
    os.symlink("/etc/passwd", Path(md.root, ".Junk/cur", f"{int(NOW)}.M1.evil"))
    jobs = list(maildir_jobs(md.root, ("Junk", "Spam"), True, 14 * DAY, NOW))
    assert sorted(k for _, k in jobs) == ["ham"] + ["spam"] * 4
    assert not any("evil" in p for p, _ in jobs)                 # a planted link is not read
    assert len(list(maildir_jobs(md.root, ("Junk",), False, 14 * DAY, NOW))) == 3


def _config(tmp_path: Path, spamd_port: int) -> Path:
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'spamd_endpoint = "tcp:127.0.0.1:{spamd_port}"\nstate_sqlite_path = "{tmp_path}/state.sqlite"\n'
                   'spamd_timeout = "10s"\n')
    return cfg


def test_a_maildir_is_taught_once_then_remembered_even_with_spamd_gone(tmp_path, capsys, spamd):
    md = _maildir(tmp_path, time.time())
    cfg = _config(tmp_path, spamd.port)
    assert main(["spam", "learn", "-c", str(cfg), "--maildir", md.root, "--ham-inbox", "--progress", "never"]) == 0
    assert "ham+spam: 5 messages, learned 5, already known 0" in capsys.readouterr().out
    # Every message is in the memory now: the second run needs no spamd at all.
    from tests.harness.procs import free_port
    cfg = _config(tmp_path, free_port())
    assert main(["spam", "learn", "-c", str(cfg), "--maildir", md.root, "--ham-inbox", "--progress", "never"]) == 0
    assert "learned 0, already known 5" in capsys.readouterr().out
    md.deliver(_msg("late"), "Junk")
    assert main(["spam", "learn", "-c", str(cfg), "--maildir", md.root, "--progress", "never"]) == 75
    assert "spamd" in capsys.readouterr().err


def test_stdin_teaches_one_message(tmp_path, capsys, spamd, monkeypatch):
    cfg = _config(tmp_path, spamd.port)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(_msg("stdin"))))
    assert main(["spam", "learn", "-c", str(cfg), "--stdin", "--spam"]) == 0
    assert capsys.readouterr().out.strip() == "spam: learned"


@pytest.mark.parametrize("argv, message", [
    (["--stdin"], "--spam or --ham"),
    ([], "FOLDERs, --maildir or --all-users, or --stdin"),
    (["--stdin", "--spam", "/tmp"], "FOLDERs, --maildir or --all-users, or --stdin"),
])
def test_usage_errors(tmp_path, capsys, argv, message):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text("")
    assert main(["spam", "learn", "-c", str(cfg), *argv]) == 2
    assert message in capsys.readouterr().err


def test_all_users_teaches_each_mailbox_into_its_own_bayes_user(tmp_path, capsys, monkeypatch):
    template = str(tmp_path / "mail/{domain}/{localpart}/Maildir")
    for user in ("alice", "bob"):
        md = Maildir(template.format(domain="example.org", localpart=user), fsync="never")
        md.deliver(_msg(f"{user}-junk"), "Junk", now=NOW - DAY)
    (tmp_path / "mailboxes").write_text("alice@example.org\nbob@example.org\n")
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'maildir_path_template = "{template}"\nfiles_mailboxes = "{tmp_path / "mailboxes"}"\n'
                   f'spam_learn_per_user = true\nstate_sqlite_path = "{tmp_path}/state.sqlite"\n')
    spamd = FakeSpamd()
    monkeypatch.setattr("milters.clients.spamd.SpamdClient.tell", lambda self, m, k, user=None: spamd.tell(m, k, user))
    assert main(["spam", "learn", "-c", str(cfg), "--all-users", "--progress", "never"]) == 0
    assert sorted(u for _, _, u in spamd.told) == ["alice@example.org", "bob@example.org"]
    assert "spam: 2 messages, learned 2" in capsys.readouterr().out
