"""Writes that stand for a message, on a real full file system (a small tmpfs): Maildir and the quarantine.

Proves: a message that does not fit raises a temporary MaildirError and leaves nothing in new/,
cur/ or tmp/; a maildirsize delta line that does not fit whole (a short write at a page
boundary, or ENOSPC) is never left cut in the file, where the next appender's line would be
glued onto it into a plausible wrong total: the file is removed so the next delivery recounts
it (Maildir++'s rule for a missing maildirsize), and the committed message stands; a folder
that cannot be made is a temporary failure and is completed (subscribed) by the next delivery;
out of inodes is temporary too. The milter's quarantine store on a full file system: the
message is tempfailed (451), even where the stage's milter_stage_on_error is "continue"
(before: accepted, the virus delivered and its quarantine copy lost).
`mounted_tmpfs`, `fill` and `free_pages` are shared with tests/e2e/test_exhaustion_s22.py.
Runs as root (mount(2)); every mount is undone in a finaliser, even on failure.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from owlery import maildirsize
from owlery.maildir import Maildir, MaildirError, Quota

PAGE = os.sysconf("SC_PAGE_SIZE")


@contextmanager
def mounted_tmpfs(options: str, target: Path | None = None):
    """A fresh tmpfs (`options`: size=..., nr_inodes=...) on `target` (an empty directory the
    test made in its own tmp directory) or on a new /tmp directory; unmounted afterwards
    whatever happens (and the new directory removed)."""
    base = target or Path(tempfile.mkdtemp(prefix="owlery-exh-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options},mode=0755", "tmpfs", str(base)], check=True)
    try:
        yield base
    finally:
        subprocess.run(["umount", "-l", str(base)], check=False)
        if target is None:
            os.rmdir(base)


def fill(where: Path, name: str = "filler") -> Path:
    """Take every free data page of the file system holding `where` (a file written until ENOSPC)."""
    path = where / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (64 * PAGE, PAGE):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as e:
                assert e.errno == 28, e
    finally:
        os.close(fd)
    assert os.statvfs(where).f_bavail == 0
    return path


def free_pages(filler: Path, pages: int) -> None:
    """Give back `pages` pages of a file made by fill()."""
    os.truncate(filler, filler.stat().st_size - pages * PAGE)


def fill_inodes(where: Path) -> int:
    """Take every free inode (empty files until ENOSPC); how many were made."""
    n = 0
    try:
        while True:
            (where / f"inode-{n}").touch()
            n += 1
    except OSError as e:
        assert e.errno == 28, e
    return n


def entries(maildir: Path) -> dict[str, list[str]]:
    return {sub: sorted(p.name for p in (maildir / sub).iterdir()) for sub in ("new", "cur", "tmp")
            if (maildir / sub).is_dir()}


@pytest.fixture
def small_fs():
    with mounted_tmpfs("size=64k") as fs:
        yield fs


QUOTA = Quota(bytes=10**6, messages=0)


def test_message_that_does_not_fit_leaves_nothing_and_is_temporary(small_fs):
    md = Maildir(str(small_fs / "Maildir"))
    md.deliver(b"Subject: first\n\nfits\n", quota=QUOTA)
    before = entries(small_fs / "Maildir")
    fill(small_fs)
    with pytest.raises(MaildirError) as e:
        md.deliver(b"Subject: big\n\n" + b"x" * 3 * PAGE, quota=QUOTA)
    assert e.value.temporary
    assert entries(small_fs / "Maildir") == before
    ms = maildirsize.read(str(small_fs / "Maildir"))
    assert ms is not None and not ms.suspect and (ms.used_bytes, ms.used_messages) == (21, 1)


def _maildirsize_ending_before_page_end(maildir: Path, room: int) -> None:
    """Pad maildirsize with zero deltas so that it ends `room` bytes before a page boundary."""
    path = maildir / "maildirsize"
    text = path.read_text()
    pad = PAGE - room - len(text)
    text += "0 0\n" * ((pad - 6) // 4) + "0" * (2 + (pad - 6) % 4) + "0 0\n"
    assert len(text) == PAGE - room
    assert maildirsize.parse(text).delta_lines > 0 and not maildirsize.parse(text).suspect
    path.write_text(text)


@pytest.mark.parametrize("room", [3, 0], ids=["short-write", "enospc"])
def test_delta_line_that_does_not_fit_is_never_left_cut_nor_lost(small_fs, room):
    """One page left: the message takes it; then the delta line "18 1\\n" needs a new page.
    With 3 bytes left in the file's last page write() stores "18 " and returns 3; with none
    it fails with ENOSPC. The delivery is committed either way and must stand."""
    root = small_fs / "Maildir"
    md = Maildir(str(root))
    md.deliver(b"a\n", quota=QUOTA)
    _maildirsize_ending_before_page_end(root, room)
    free_pages(fill(small_fs), 1)
    stored = md.deliver(b"Subject: x\n\nhello\n", quota=QUOTA)     # committed: must not raise
    assert Path(stored.path).read_bytes() == b"Subject: x\n\nhello\n"
    path = root / "maildirsize"
    # Never a cut line: either the whole line went in, or the file is gone (recounted later).
    assert not path.exists() or path.read_bytes().endswith(b"\n"), path.read_bytes()[-12:]
    (small_fs / "filler").unlink()
    # The next delivery's total must match the messages on disk (a delta lost to ENOSPC
    # would leave the file trusted and short of it).
    md.deliver(b"Subject: y\n\nagain\n", quota=QUOTA)
    ms = maildirsize.read(str(root))
    assert ms is not None and not ms.suspect
    on_disk = md.count()
    assert (ms.used_bytes, ms.used_messages) == (on_disk.bytes, on_disk.messages) == (2 + 18 + 18, 3)


def test_no_space_for_a_new_folder_is_temporary_and_completed_later(small_fs):
    md = Maildir(str(small_fs / "Maildir"))
    md.deliver(b"a\n")
    filler = fill(small_fs)
    with pytest.raises(MaildirError) as e:
        md.deliver(b"Subject: x\n\nhello\n", "Projects")
    assert e.value.temporary
    assert not list((small_fs / "Maildir").glob(".Projects/new/*"))
    filler.unlink()
    stored = md.deliver(b"Subject: x\n\nhello\n", "Projects")
    assert stored.folder == "Projects"
    assert (small_fs / "Maildir/subscriptions").read_text() == "Projects\n"
    assert sorted(p.name for p in (small_fs / "Maildir/.Projects").iterdir()) == ["cur", "maildirfolder", "new", "tmp"]


def test_out_of_inodes_is_temporary_and_leaves_nothing():
    with mounted_tmpfs("size=1m,nr_inodes=64") as fs:
        md = Maildir(str(fs / "Maildir"))
        md.deliver(b"a\n", quota=QUOTA)
        before = entries(fs / "Maildir")
        assert fill_inodes(fs) > 0
        for folder in ("INBOX", "Projects"):
            with pytest.raises(MaildirError) as e:
                md.deliver(b"Subject: x\n\nhello\n", folder, quota=QUOTA)
            assert e.value.temporary
        assert entries(fs / "Maildir") == before
        ms = maildirsize.read(str(fs / "Maildir"))
        assert ms is not None and not ms.suspect and ms.used_messages == 1


# --- the milter's quarantine store on a full file system -----------------------------------------

VIRUS_MAIL = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: invoice\r\n"
              b"Message-ID: <v1@sender.test>\r\n\r\n" + b"X5O!P%@AP" * 200 + b"\r\n")


@pytest.mark.parametrize("on_error", ["tempfail", "continue"])
def test_quarantine_that_cannot_be_stored_is_a_tempfail_whatever_the_stage_on_error(on_error):
    """milter_stage_on_error "continue" is for a scanner that is down (mail goes on unscanned);
    here the scanner gave its verdict and only the quarantine copy could not be stored: going on
    would deliver the virus with its quarantine copy lost. Before: accepted under "continue"."""
    from milters import effects as fx
    from milters.clients.clamav import ScanResult
    from milters.stages import Services
    from milters.stages.antivirus import AntivirusStage
    from owlery.quarantine import ListFilter
    from owlery.quarantine.directory import DirectoryStore
    from owlery.settings import Settings
    from tests.milters.session_driver import NOW, run_session

    class Clamd:
        def scan(self, data):
            return ScanResult(True, "Eicar-Test-Signature")

    settings = Settings().replace(quarantine_host_name="mx1",
                                  milter_authserv_id="mx.owlery.test", antivirus_infected_action="quarantine",
                                  milter_stage_on_error={"antivirus": on_error})

    def run():
        return run_session(settings, [AntivirusStage(settings, Services(resolver=None, now=lambda: NOW), client=Clamd())], VIRUS_MAIL,
                           on_error=on_error)

    with mounted_tmpfs("size=1m") as fs:
        settings = settings.replace(quarantine_directory=str(fs / "q"))
        assert run().action == fx.DISCARD                # stored, then discarded (quarantine_action)
        fill(fs)
        out = run()
        assert out.action == fx.TEMPFAIL and out.reply.code == 451, out
        (fs / "filler").unlink()
        [kept] = DirectoryStore(str(fs / "q")).list(ListFilter(), NOW)
        assert sorted(p.name for p in (fs / "q/msg").rglob("*") if p.is_file()) == [kept.mail_id]
        assert not list((fs / "q/tmp").iterdir())
