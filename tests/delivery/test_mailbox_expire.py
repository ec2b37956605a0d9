"""`owlery mailbox expire`: the rules (sieve/delivery/expire.py), Maildir.expunge, the command,
and a real Dovecot that keeps the UIDs of what remains."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from owlery import settings as settings_mod
from owlery.maildir import Maildir, Owner, Quota
from owlery.maildir import delivery_time
from sieve.delivery.expire import ExpiryRules, age_limit

DAY = 86400.0
NOW = 1_800_000_000.0
MSG = b"From: a@b.test\nSubject: x\n\nbody\n"


# --- rules --------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("1733400000.M1P2Q3R4.host,S=10,W=11:2,S", 1733400000),
    ("1733400000.M1P2.host", 1733400000),
    ("abc.M1P2.host", None),
    ("1733400000", None),            # no dot: not Maildir-shaped
    ("\u00b2\u00b3.M1.host", None),  # non-ASCII digits
    ("", None),
])
def test_delivery_time_comes_from_the_name(name, expected):
    assert delivery_time(name) == expected


AGES = {"junk": 10 * DAY, "\\trash": 30 * DAY, "archive.junk": 90 * DAY}


@pytest.mark.parametrize("folder, expected", [
    ("Junk", 10 * DAY), ("JUNK", 10 * DAY),
    ("Trash", 30 * DAY), ("Deleted Items", 30 * DAY),     # special use by the usual names
    ("Archive/Junk", 90 * DAY), ("Archive.Junk", 90 * DAY),
    ("INBOX", None), ("Spam", None),                       # \\Junk not configured: Spam stays
    ("Junkyard", None),
])
def test_age_limit_by_name_then_special_use(folder, expected):
    assert age_limit(folder, AGES) == expected


def test_a_named_folder_beats_its_special_use():
    assert age_limit("Junk", {"\\junk": 5 * DAY, "junk": 50 * DAY}) == 50 * DAY
    assert age_limit("Spam", {"\\junk": 5 * DAY, "junk": 50 * DAY}) == 5 * DAY


def test_rules_select_only_old_dated_messages_and_count_the_undated():
    rules = ExpiryRules({"junk": 10 * DAY}, NOW)
    assert rules.select("Junk", f"{int(NOW - 11 * DAY)}.M1.h,S=5")
    assert not rules.select("Junk", f"{int(NOW - 9 * DAY)}.M1.h,S=5")
    assert not rules.select("INBOX", f"{int(NOW - 999 * DAY)}.M1.h,S=5")
    assert not rules.select("Junk", "garbage-name")
    assert rules.undated == 1


@pytest.mark.parametrize("value, message", [
    ('{ Junk = "soon" }', "Junk"),
    ('{ "\\\\Spamfolder" = "3d" }', "unknown special use"),
    ('{ Junk = "0s" }', "positive"),
    ('"30d"', "table"),
])
def test_bad_ages_are_refused_with_file_and_line(value, message):
    with pytest.raises(settings_mod.SettingsError) as e:
        settings_mod.parse_text(f"# first\nmailbox_expire_ages = {value}\n", path="owlery.toml")
    text = str(e.value)
    assert "owlery.toml:2" in text and message in text


def test_ages_parse_from_toml():
    s = settings_mod.parse_text('mailbox_expire_ages = { Junk = "30d", "\\\\Trash" = "7d" }\n')
    assert s.mailbox_expire_ages == {"junk": 30 * DAY, "\\trash": 7 * DAY}


# --- Maildir.expunge ------------------------------------------------------------

@pytest.fixture
def maildir(tmp_path):
    return Maildir(str(tmp_path / "Maildir"), fsync="never")


def _fill(md: Maildir) -> dict[str, list[str]]:
    """Old and new messages in INBOX, Junk and Trash; returns folder -> delivered paths."""
    got: dict[str, list[str]] = {}
    for folder, ages in (("INBOX", (40, 1)), ("Junk", (40, 12, 1)), ("Trash", (40, 1))):
        for days in ages:
            d = md.deliver(MSG, folder, now=NOW - days * DAY, flags=("\\Seen",) if days == 12 else ())
            got.setdefault(folder, []).append(d.path)
    return got


def test_expunge_removes_old_messages_of_ruled_folders_and_fixes_maildirsize(maildir):
    quota = Quota(10_000_000, 0)
    paths = _fill(maildir)
    before = maildir.recalculate(quota)
    rules = ExpiryRules({"junk": 10 * DAY, "\\trash": 30 * DAY}, NOW)
    done = maildir.expunge(rules.select, now=NOW)
    assert done.per_folder == {"Junk": 2, "Trash": 1}
    assert done.messages == 3 and done.message_bytes == 3 * len(MSG)
    gone = [paths["Junk"][0], paths["Junk"][1], paths["Trash"][0]]
    for p in gone:
        assert not os.path.exists(p)
    for p in set(sum(paths.values(), [])) - set(gone):
        assert os.path.exists(p)
    # The negative delta keeps maildirsize equal to a recount: no drift, no recalc needed.
    assert maildir.usage(quota, now=NOW).bytes == before.bytes - 3 * len(MSG)
    assert maildir.usage(quota, now=NOW) == maildir.recalculate(quota)


def test_dry_run_counts_and_removes_nothing(maildir):
    paths = _fill(maildir)
    done = maildir.expunge(ExpiryRules({"junk": 10 * DAY}, NOW).select, now=NOW, dry_run=True)
    assert done.messages == 2
    assert all(os.path.exists(p) for p in sum(paths.values(), []))


def test_tmp_leftovers_go_by_age_fresh_ones_stay(maildir):
    maildir.ensure("INBOX")
    tmp = Path(maildir.root, "tmp")
    old, fresh = tmp / "old.leftover", tmp / "fresh.leftover"
    old.write_bytes(b"x" * 10)
    fresh.write_bytes(b"y")
    os.utime(old, (NOW - 2 * DAY, NOW - 2 * DAY))
    os.utime(fresh, (NOW - 60, NOW - 60))
    done = maildir.expunge(lambda folder, name: False, tmp_older_than=36 * 3600, now=NOW)
    assert done.tmp_files == 1 and done.messages == 0
    assert not old.exists() and fresh.exists()


def test_links_are_never_followed(maildir, tmp_path):
    maildir.ensure("INBOX")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / f"{int(NOW - 99 * DAY)}.M1.h,S=5"
    victim.write_bytes(b"keep!")
    # A folder that is a link, and a message name that is a link to a file outside.
    os.symlink(outside, Path(maildir.root, ".Junk"))
    os.symlink(victim, Path(maildir.root, "cur", victim.name))
    done = maildir.expunge(ExpiryRules({"junk": DAY, "inbox": DAY}, NOW).select, now=NOW)
    assert done.messages == 0
    assert victim.read_bytes() == b"keep!"
    assert os.path.islink(Path(maildir.root, "cur", victim.name))


def test_a_cur_that_is_a_link_is_reported_and_skipped(maildir, tmp_path):
    maildir.ensure("Junk")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / f"{int(NOW - 99 * DAY)}.M1.h,S=5").write_bytes(b"x")
    junk = Path(maildir.root, ".Junk")
    shutil.rmtree(junk / "cur")
    os.symlink(target, junk / "cur")
    done = maildir.expunge(ExpiryRules({"junk": DAY}, NOW).select, now=NOW)
    assert done.messages == 0 and any("cur" in p for p in done.problems)
    assert len(list(target.iterdir())) == 1


def test_a_garbage_maildirsize_still_ends_equal_to_a_recount(maildir):
    quota = Quota(10_000_000, 0)
    _fill(maildir)
    Path(maildir.root, "maildirsize").write_bytes(b"\x00garbage\n12 x\n-\n")
    done = maildir.expunge(ExpiryRules({"junk": 10 * DAY}, NOW).select, now=NOW)
    assert done.messages == 2
    assert maildir.usage(quota, now=NOW) == maildir.recalculate(quota)


def _unreadable(monkeypatch, *suffixes):
    """os.listdir of a directory (an fd) whose path ends so raises EACCES, as chmod 000 does
    for a mail owner who is not root (the tests run as root, whom chmod does not stop)."""
    real_listdir = os.listdir

    def listdir(path="."):
        if isinstance(path, int) and os.readlink(f"/proc/self/fd/{path}").endswith(suffixes):
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)
    monkeypatch.setattr(os, "listdir", listdir)


def test_an_unreadable_folder_is_reported_and_the_others_are_still_expired(maildir, monkeypatch):
    paths = _fill(maildir)
    _unreadable(monkeypatch, "/.Trash/cur", "/.Trash/new")
    done = maildir.expunge(ExpiryRules({"junk": 10 * DAY, "\\trash": 30 * DAY}, NOW).select, now=NOW)
    assert done.per_folder == {"Junk": 2}
    assert [os.path.exists(p) for p in paths["Junk"]] == [False, False, True]
    assert all(os.path.exists(p) for p in paths["Trash"])
    assert sorted(done.problems) == [".Trash/cur: Permission denied", ".Trash/new: Permission denied"]


def test_a_message_renamed_while_expiring_is_skipped_not_counted(maildir, monkeypatch):
    quota = Quota(10_000_000, 0)
    paths = _fill(maildir)
    maildir.recalculate(quota)
    real_unlink, raced = os.unlink, []

    def unlink(path, *, dir_fd=None):
        if not raced:                    # Dovecot renamed it (a flag change) just before
            raced.append(path)
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_unlink(path, dir_fd=dir_fd)
    monkeypatch.setattr(os, "unlink", unlink)
    done = maildir.expunge(ExpiryRules({"junk": 10 * DAY}, NOW).select, now=NOW)
    assert len(raced) == 1 and done.messages == 1 and done.per_folder == {"Junk": 1}
    assert [os.path.exists(p) for p in paths["Junk"]].count(True) == 2
    assert done.problems == []
    monkeypatch.undo()
    assert maildir.usage(quota, now=NOW) == maildir.recalculate(quota)


def test_a_missing_maildir_is_nothing_to_do(tmp_path):
    done = Maildir(str(tmp_path / "none")).expunge(lambda f, n: True, now=NOW)
    assert done.messages == 0 and done.problems == []


# --- the command ------------------------------------------------------------------

def _run_cli(*argv):
    from owlery.app.cli import main
    return main(list(argv))


def test_the_command_expires_the_configured_folders(tmp_path, capsys):
    md = Maildir(str(tmp_path / "Maildir"), fsync="never")
    paths = _fill(md)
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('mailbox_expire_ages = { Junk = "10d" }\n')
    rc = _run_cli("mailbox", "expire", "-c", str(cfg), "--maildir", md.root, "--now", str(NOW), "-n")
    out = capsys.readouterr().out
    assert rc == 0 and "messages=2" in out and "dry_run=yes" in out
    assert all(os.path.exists(p) for p in paths["Junk"])
    rc = _run_cli("mailbox", "expire", "-c", str(cfg), "--maildir", md.root, "--now", str(NOW))
    assert rc == 0 and "messages=2" in capsys.readouterr().out
    assert [os.path.exists(p) for p in paths["Junk"]] == [False, False, True]


def test_the_command_resolves_addresses_through_the_templates(tmp_path, capsys):
    template = str(tmp_path / "mail/{domain}/{localpart}/Maildir")
    md = Maildir(template.format(domain="example.org", localpart="alice"), fsync="never")
    paths = _fill(md)
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'mailbox_expire_ages = {{ "\\\\Trash" = "30d" }}\nmaildir_path_template = "{template}"\n'
                   "delivery_use_directory = false\n")
    rc = _run_cli("mailbox", "expire", "-c", str(cfg), "alice@example.org", "--now", str(NOW))
    assert rc == 0 and "messages=1" in capsys.readouterr().out
    assert not os.path.exists(paths["Trash"][0]) and os.path.exists(paths["Trash"][1])


def test_an_unusable_mailbox_is_reported_and_the_run_says_try_again(tmp_path, capsys):
    md = Maildir(str(tmp_path / "Maildir"), fsync="never")
    _fill(md)
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('mailbox_expire_ages = { Junk = "10d" }\nmaildir_owner = "nobody"\n')
    # With maildir_owner set, a Maildir root owned by someone else (here: us, not `nobody`)
    # is refused, not entered.
    rc = _run_cli("mailbox", "expire", "-c", str(cfg), "--maildir", md.root, "--now", str(NOW))
    captured = capsys.readouterr()
    assert rc == 75 and "failed=1" in captured.out


class FakeTerminal:
    """stdout and stderr of one terminal: what they write lands on one screen."""

    def __init__(self):
        self.written: list[str] = []

    def write(self, text):
        self.written.append(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return True

    def screen(self) -> list[str]:
        """The lines as a terminal shows them: \\r returns to the line's start, then overwrites."""
        lines = []
        for raw in "".join(self.written).split("\n"):
            line: list[str] = []
            col = 0
            for ch in raw:
                if ch == "\r":
                    col = 0
                    continue
                line[col:col + 1] = [ch]
                col += 1
            lines.append("".join(line).rstrip())
        return lines


def test_the_progress_bar_is_drawn_and_cleared_before_each_mailbox_line(tmp_path, monkeypatch):
    roots = []
    for user in ("alice", "bob"):
        md = Maildir(str(tmp_path / user / "Maildir"), fsync="never")
        _fill(md)
        roots.append(md.root)
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('mailbox_expire_ages = { Junk = "10d" }\n')
    tty = FakeTerminal()
    monkeypatch.setattr("sys.stdout", tty)
    monkeypatch.setattr("sys.stderr", tty)
    rc = _run_cli("mailbox", "expire", "-c", str(cfg), "--maildir", roots[0], "--maildir", roots[1],
                  "--now", str(NOW), "--verbose")
    monkeypatch.undo()
    assert rc == 0
    raw = "".join(tty.written)
    assert "] 1/2" in raw and "[" + "#" * 30 + "] 2/2 messages=4 failed=0" in raw     # drawn
    screen = [line for line in tty.screen() if line]
    # Each mailbox line starts at the left edge, nothing of the bar glued before or after it.
    assert screen == [f"{roots[0]}: 2 messages ({2 * len(MSG)} bytes), 0 tmp files: Junk=2",
                      f"{roots[1]}: 2 messages ({2 * len(MSG)} bytes), 0 tmp files: Junk=2",
                      "[" + "#" * 30 + "] 2/2 messages=4 failed=0",
                      "mailbox: expire: mailboxes=2 messages=4 bytes=%d tmp=0 failed=0 undated=0" % (4 * len(MSG))]


# --- beside a real Dovecot ----------------------------------------------------------

def _imap_uids(imap, folder):
    typ, _ = imap.select(f'"{folder}"')
    assert typ == "OK"
    typ, data = imap.uid("SEARCH", None, "ALL")
    assert typ == "OK"
    uids = [int(x) for x in data[0].split()]
    subjects = {}
    for uid in uids:
        typ, got = imap.uid("FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects[uid] = got[0][1].decode().strip()
    return subjects


@pytest.mark.skipif(shutil.which("dovecot") is None, reason="Dovecot is installed by scripts/install-deps --test")
def test_dovecot_keeps_the_uids_of_what_remains(tmp_path):
    import pwd

    from tests.harness.dovecot import DovecotInstance
    work = Path(tempfile.mkdtemp(prefix="owlery-expire-dovecot-"))
    os.chmod(work, 0o755)
    home = work / "home"
    home.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    try:
        md = Maildir(str(home / "Maildir"), fsync="never", owner=Owner(nobody.pw_uid, nobody.pw_gid))
        for i, days in enumerate((40, 20, 5, 1)):
            md.deliver(b"From: a@b.test\nSubject: m%d\n\nbody\n" % i, "Junk", now=NOW - days * DAY)
        with DovecotInstance(work / "dovecot", {"alice@example.org": str(home)}) as dovecot:
            imap = dovecot.imap("alice@example.org")
            before = _imap_uids(imap, "Junk")       # Dovecot assigns UIDs, writes dovecot-uidlist
            assert sorted(before.values()) == ["Subject: m0", "Subject: m1", "Subject: m2", "Subject: m3"]
            imap.close()
            done = md.expunge(ExpiryRules({"junk": 10 * DAY}, NOW).select, now=NOW)
            assert done.messages == 2
            after = _imap_uids(imap, "Junk")
            imap.logout()
        kept = {uid: subj for uid, subj in before.items() if subj.endswith(("m2", "m3"))}
        assert len(kept) == 2 and after == kept, (before, after)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def test_all_users_walks_every_mailbox_the_directory_lists(tmp_path, capsys):
    template = str(tmp_path / "mail/{domain}/{localpart}/Maildir")
    paths = {}
    for user in ("alice", "bob"):
        paths[user] = _fill(Maildir(template.format(domain="example.org", localpart=user), fsync="never"))
    (tmp_path / "mailboxes").write_text("alice@example.org\nbob@example.org\ncarol@example.org\n")
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'mailbox_expire_ages = {{ Junk = "10d" }}\nmaildir_path_template = "{template}"\n'
                   f'files_mailboxes = "{tmp_path / "mailboxes"}"\n')
    rc = _run_cli("mailbox", "expire", "-c", str(cfg), "--all-users", "--now", str(NOW))
    out = capsys.readouterr().out
    # carol has no Maildir yet: nothing to do, not a failure.
    assert rc == 0 and "mailboxes=3 messages=4" in out, out
    for user in ("alice", "bob"):
        assert [os.path.exists(p) for p in paths[user]["Junk"]] == [False, False, True]


def test_all_users_without_a_directory_is_refused(tmp_path, capsys):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text("delivery_use_directory = false\n")
    assert _run_cli("mailbox", "expire", "-c", str(cfg), "--all-users") == 1
    assert "--all-users needs the directory" in capsys.readouterr().err
