"""`owlery lda -m FOLDER` with a folder that cannot be used: delivered into INBOX, as dovecot-lda does.

A bad mailbox name, or one whose folder cannot be created (a file in the way), used to defer the
message (exit 75) for ever; now the LDA logs the problem and keeps the message in INBOX. Both
commands (`owlery lda` and the fast `owlery-lda`) are run, as Postfix's pipe(8) would.
"""

from __future__ import annotations

import pytest

from tests.delivery import test_lda

lda = test_lda.lda      # the fixture: both commands, run as pipe(8) would


def config(tmp_path, extra=""):
    """test_lda's settings, plus the LDA's own log, where the fallback is reported."""
    return test_lda.config(tmp_path, f'lda_log_path = "{tmp_path}/lda.log"\n{extra}')


def maildir(tmp_path):
    return tmp_path / "mail/example.org/alice/Maildir"


def inbox(tmp_path):
    base = maildir(tmp_path)
    return [p for sub in ("new", "cur") if (base / sub).exists() for p in (base / sub).iterdir()]


@pytest.mark.parametrize("folder", ["../../etc", "Archive..2026", "~root", "bad\x01name", "a/" * 300 + "b"])
def test_bad_folder_name_falls_back_to_inbox(tmp_path, lda, folder):
    conf = config(tmp_path)
    r = lda(conf, "-f", "bob@remote.test", "-d", "alice@example.org", "-m", folder)
    assert r.returncode == 0, r.stderr
    [f] = inbox(tmp_path)
    assert f.read_bytes().endswith(b"Subject: t\n\nhello\n")
    log = (tmp_path / "lda.log").read_text()
    assert "delivering into INBOX" in log and "alice@example.org" in log
    assert not (tmp_path / "etc").exists()


def test_folder_that_cannot_be_created_falls_back_to_inbox(tmp_path, lda):
    conf = config(tmp_path)
    base = maildir(tmp_path)
    for sub in ("cur", "new", "tmp"):
        (base / sub).mkdir(parents=True)
    (base / ".Archive").write_text("a file in the way\n")
    r = lda(conf, "-f", "", "-d", "alice@example.org", "-m", "Archive")
    assert r.returncode == 0, r.stderr
    assert len(inbox(tmp_path)) == 1
    assert (base / ".Archive").read_text() == "a file in the way\n"
    assert "cannot use -m folder 'Archive'" in (tmp_path / "lda.log").read_text()


def test_good_folder_is_still_used(tmp_path, lda):
    conf = config(tmp_path)
    assert lda(conf, "-f", "", "-d", "alice@example.org", "-m", "Archive/2026").returncode == 0
    assert inbox(tmp_path) == []
    assert len(list((maildir(tmp_path) / ".Archive.2026" / "new").iterdir())) == 1


@pytest.mark.parametrize("folder", ["Var." + "x" * 300, "\u00e9" * 100, "a." * 127 + "b"])
def test_sieve_fileinto_a_name_too_long_for_a_directory_keeps_in_inbox(tmp_path, lda, folder):
    """A Maildir++ folder is one directory whose name (mUTF-7, levels joined by '.') must fit
    the file system's 255 bytes. A longer one is refused by rule (owlery.maildir.NAME_MAX;
    before, mkdir failed with ENAMETOOLONG, with the same outcome) and the message is kept
    in INBOX, as Pigeonhole does ("Mailbox name too long")."""
    script = tmp_path / "mail/example.org/alice/sieve/active.sieve"
    script.parent.mkdir(parents=True)
    script.write_text('require ["fileinto", "mailbox"];\nfileinto :create "%s";\n' % folder)
    r = lda(config(tmp_path), "-f", "bob@remote.test", "-d", "alice@example.org")
    assert r.returncode == 0, r.stderr
    assert len(inbox(tmp_path)) == 1
    assert [p.name for p in maildir(tmp_path).iterdir() if p.name.startswith(".")] == []
