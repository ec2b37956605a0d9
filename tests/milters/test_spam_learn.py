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


def _users_config(tmp_path: Path, users, per_user: bool = True) -> tuple[Path, str]:
    template = str(tmp_path / "mail/{domain}/{localpart}/Maildir")
    (tmp_path / "mailboxes").write_text("".join(f"{u}@example.org\n" for u in users))
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'maildir_path_template = "{template}"\nfiles_mailboxes = "{tmp_path / "mailboxes"}"\n'
                   f'spam_learn_per_user = {"true" if per_user else "false"}\n'
                   f'state_sqlite_path = "{tmp_path}/state.sqlite"\n')
    return cfg, template


def test_an_unreadable_junk_a_linked_junk_or_an_unusable_root_is_reported_and_the_others_learn(
        tmp_path, capsys, monkeypatch):
    users = ("alice", "bob", "carol", "dave")
    cfg, template = _users_config(tmp_path, users)
    roots = {}
    for user in users:
        md = Maildir(template.format(domain="example.org", localpart=user), fsync="never")
        md.deliver(_msg(f"{user}-junk"), "Junk", now=NOW - DAY)
        roots[user] = md.root
    elsewhere = tmp_path / "elsewhere"          # carol's Junk is a link to a folder outside
    os.rename(Path(roots["carol"], ".Junk"), elsewhere)
    os.symlink(elsewhere, Path(roots["carol"], ".Junk"))
    unreadable = {os.path.join(roots["alice"], ".Junk", "new"), roots["dave"]}
    real_listdir = os.listdir

    def listdir(path="."):
        if isinstance(path, str) and path in unreadable:     # what chmod 000 does to a non-root user
            raise PermissionError(13, "Permission denied", path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    spamd = FakeSpamd()
    monkeypatch.setattr("milters.clients.spamd.SpamdClient.tell", lambda self, m, k, user=None: spamd.tell(m, k, user))
    rc = main(["spam", "learn", "-c", str(cfg), "--all-users", "--progress", "never"])
    captured = capsys.readouterr()
    assert rc == 75, captured                   # as `owlery mailbox expire`: run again later
    assert [u for _, _, u in spamd.told] == ["bob@example.org"]
    err = captured.err
    assert f"{roots['alice']}/.Junk/new: cannot be listed: Permission denied" in err
    assert f"{roots['carol']}/.Junk: is a symbolic link, not followed" in err
    assert f"{roots['dave']}: cannot be listed: Permission denied" in err
    assert "Traceback" not in err
    assert "spam: 1 messages, learned 1, already known 0, skipped 0 (over spamd_max_size), failed 3" in captured.out


def _teach_stdin(monkeypatch, cfg: Path, *argv: str):
    spamd = FakeSpamd()
    monkeypatch.setattr("milters.clients.spamd.SpamdClient.tell", lambda self, m, k, user=None: spamd.tell(m, k, user))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(_msg("moved"))))
    rc = main(["spam", "learn", "-c", str(cfg), "--stdin", *argv])
    return rc, [(k, u) for _, k, u in spamd.told]


def test_for_names_the_mailbox_whose_bayes_database_learns(tmp_path, monkeypatch, capsys):
    cfg, _ = _users_config(tmp_path, ("alice",), per_user=True)
    assert _teach_stdin(monkeypatch, cfg, "--spam", "--for", "Alice@Example.org") == (
        0, [("spam", "alice@example.org")])
    assert _teach_stdin(monkeypatch, cfg, "--ham", "--for=alice@example.org") == (0, [("ham", "alice@example.org")])
    # Site-wide Bayes: the address names the mailbox only, spamd_user's database learns.
    cfg.write_text(cfg.read_text().replace("spam_learn_per_user = true", 'spamd_user = "site"'))
    assert _teach_stdin(monkeypatch, cfg, "--spam", "--for", "alice@example.org") == (0, [("spam", "site")])
    capsys.readouterr()
    for bad in ("", "-x", "alice@example.org\nUser: root", "a b"):
        assert _teach_stdin(monkeypatch, cfg, "--spam", f"--for={bad}") == (2, [])
        assert "--for takes one mailbox's address" in capsys.readouterr().err
    assert _teach_stdin(monkeypatch, cfg, "--spam", "--for", "a@b.test", "--user", "x")[0] == 2
