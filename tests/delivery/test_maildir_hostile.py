"""The Maildir writer against a hostile mail owner and against its own failure modes.

Run as root (the delivery agent's situation with `maildir_owner`): the mail owner ("nobody"
here) plants symbolic links, hard links and FIFOs in its Maildir to make root read or write
root-only files; every such delivery must fail temporarily and leave the outside untouched.
Also: errors after the commit point (the rename into new/) must not fail the delivery;
concurrent updates of `subscriptions` and `dovecot-keywords` must not lose entries; a
corrupt maildirsize is recounted, never a crash; concurrent first deliveries into a Maildir
not made yet all succeed (none sees the new root before it is handed to the mail owner).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import multiprocessing
import os
import pwd
import re
import shutil
import socket
import stat
import threading
import types

import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from owlery import maildir as maildir_mod
from owlery import maildirsize
from owlery.maildir import Maildir, MaildirError, Owner, Quota, parse_size_from_name
from owlery.settings import parse_text
from owlery.state.memory_store import MemoryStore
from sieve import api
from sieve.delivery.executor import DeliveryExecutor, Plan
from sieve.delivery.users import MailUser

NOBODY = pwd.getpwnam("nobody")
OWNER = Owner(NOBODY.pw_uid, NOBODY.pw_gid)
# Shaped like a keywords line and a subscription, so a writer that reads it copies it along.
SECRET = b"0 hunter2-root-secret\n"
MSG = b"From: a@b.test\nSubject: x\n\nbody\n"


@pytest.fixture(autouse=True)
def _as_root():
    if os.geteuid() != 0:
        pytest.fail("these tests run as root (the delivery agent's situation with maildir_owner)")


def _chown(path, owner=OWNER):
    os.chown(path, owner.uid, owner.gid, follow_symlinks=False)


@pytest.fixture
def box(tmp_path):
    """home/ (the mail owner's, writable by it) holding Maildir/ with one message, and
    rootonly/ (root, 0700) holding a secret file and an empty directory `d`."""
    home = tmp_path / "home"
    home.mkdir()
    _chown(home)
    rootonly = tmp_path / "rootonly"
    rootonly.mkdir(mode=0o700)
    secret = rootonly / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    (rootonly / "d").mkdir(mode=0o700)
    md = Maildir(str(home / "Maildir"), owner=OWNER, fsync="never")
    md.deliver(b"first\n")
    assert os.stat(home / "Maildir").st_uid == OWNER.uid
    return types.SimpleNamespace(tmp=tmp_path, home=home, root=home / "Maildir", md=md,
                                 rootonly=rootonly, secret=secret)


def _refused(fn, *args, **kw):
    with pytest.raises(MaildirError) as e:
        fn(*args, **kw)
    assert e.value.temporary, e.value
    return str(e.value)


def _assert_outside_untouched(box, extra=()):
    st_ = os.stat(box.secret)
    assert box.secret.read_bytes() == SECRET
    assert (st_.st_uid, stat.S_IMODE(st_.st_mode)) == (0, 0o600)
    assert sorted(os.listdir(box.rootonly)) == sorted(["secret", "d", *extra])
    assert os.listdir(box.rootonly / "d") == []
    for dirpath, _dirs, files in os.walk(box.root):       # os.walk does not follow links
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p) and stat.S_ISREG(os.lstat(p).st_mode) \
                    and not os.path.samefile(p, box.secret):      # (the planted hard link itself)
                with open(p, "rb") as fh:
                    assert b"hunter2" not in fh.read(), f"secret copied into {p}"


# ---------------------------------------------------------------------------
# 1. Links planted by the mail owner
# ---------------------------------------------------------------------------

def test_symlinked_subscriptions_is_refused(box):
    os.symlink(box.secret, box.root / "subscriptions")
    why = _refused(box.md.deliver, MSG, "Work")
    assert "subscriptions is a symbolic link" in why
    _assert_outside_untouched(box)


def test_symlinked_dovecot_keywords_is_refused(box):
    box.md.deliver(MSG, "Work")
    os.symlink(box.secret, box.root / ".Work/dovecot-keywords")
    _refused(box.md.deliver, MSG, "Work", flags=["Urgent"])
    _assert_outside_untouched(box)
    assert os.listdir(box.root / ".Work/cur") == []


def test_symlinked_maildirsize_is_refused(box):
    quota = Quota(bytes=1_000_000)
    target = box.rootonly / "quota"
    target.write_text(f"{quota.definition()}\n0 0\n")     # what a trusting writer would append to
    os.symlink(target, box.root / "maildirsize")
    _refused(box.md.deliver, MSG, quota=quota)
    assert target.read_text() == "1000000S\n0 0\n"
    _assert_outside_untouched(box, extra=["quota"])


def test_symlinked_maildirfolder_creates_nothing_outside(box):
    (box.root / ".Work").mkdir()
    _chown(box.root / ".Work")
    os.symlink(box.rootonly / "planted", box.root / ".Work/maildirfolder")    # dangling
    _refused(box.md.deliver, MSG, "Work")
    assert not os.path.lexists(box.rootonly / "planted")
    _assert_outside_untouched(box)


def test_symlinked_folder_directory_is_refused(box):
    for sub in ("cur", "new", "tmp"):
        (box.rootonly / "d" / sub).mkdir()
    os.symlink(box.rootonly / "d", box.root / ".Work")
    assert "is a symbolic link" in _refused(box.md.deliver, MSG, "Work", flags=["kw"])
    assert sorted(os.listdir(box.rootonly / "d")) == ["cur", "new", "tmp"]
    for sub in ("cur", "new", "tmp"):
        assert os.listdir(box.rootonly / "d" / sub) == []
    with pytest.raises(MaildirError):
        box.md.folder_exists("Work")
    assert box.md.list_folders() == ["INBOX"]                # listed folders never follow links


@pytest.mark.parametrize("sub", ["tmp", "new", "cur"])
def test_symlinked_tmp_new_cur_are_refused(box, sub):
    shutil.rmtree(box.root / sub)
    os.symlink(box.rootonly / "d", box.root / sub)
    _refused(box.md.deliver, MSG, flags=["\\Seen"] if sub == "cur" else ())
    _assert_outside_untouched(box)


def test_symlinked_subdir_of_a_folder_is_refused(box):
    box.md.deliver(MSG, "Work")
    os.rmdir(box.root / ".Work/tmp")
    os.symlink(box.rootonly / "d", box.root / ".Work/tmp")
    _refused(box.md.deliver, MSG, "Work")
    _assert_outside_untouched(box)


def test_hard_linked_subscriptions_is_refused(box):
    os.link(box.secret, box.root / "subscriptions")    # root may; the owner may where protected_hardlinks=0
    assert "hard links" in _refused(box.md.deliver, MSG, "Work")
    _assert_outside_untouched(box)


def test_fifo_in_place_of_subscriptions_does_not_hang(box):
    fifo = box.root / "subscriptions"
    os.mkfifo(fifo)
    result = []

    def run():
        try:
            box.md.deliver(MSG, "Work")
            result.append("delivered")
        except MaildirError as e:
            result.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():                      # unblock the reader stuck in open() before failing
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("delivery blocked opening a FIFO planted as subscriptions")
    assert isinstance(result[0], MaildirError) and result[0].temporary


def test_swapping_a_directory_for_a_link_after_the_checks_changes_nothing(box, monkeypatch):
    # The owner replaces new/ with a link between our checks and the rename: the delivery
    # keeps using the directory it opened (now named new.moved), never the link's target.
    real = maildir_mod.unique_name

    def swap(*a, **kw):
        os.rename(box.root / "new", box.root / "new.moved")
        os.symlink(box.rootonly / "d", box.root / "new")
        return real(*a, **kw)
    monkeypatch.setattr(maildir_mod, "unique_name", swap)
    box.md.deliver(MSG)
    assert os.listdir(box.rootonly / "d") == []
    assert len(os.listdir(box.root / "new.moved")) == 2


def test_maildir_root_linked_from_an_owner_writable_directory_is_refused(box):
    victim = box.rootonly / "victim"
    for sub in ("", "cur", "new", "tmp"):
        (victim / sub).mkdir(exist_ok=True)
    os.symlink(victim, box.home / "Linked")
    md = Maildir(str(box.home / "Linked"), owner=OWNER, fsync="never")
    assert "symbolic link 'Linked'" in _refused(md.deliver, MSG)
    assert _refused(md.check_quota, Quota(bytes=10), 1)
    assert os.listdir(victim / "new") == [] and os.listdir(victim / "tmp") == []


def test_link_above_the_root_in_an_owner_writable_directory_is_refused(box):
    # /…/vmail/example.org/alice/Maildir with vmail/ owned by the mail owner: it swaps
    # example.org for a link into a root-only tree; no directory may be created there.
    vmail = box.tmp / "vmail"
    vmail.mkdir()
    _chown(vmail)
    os.symlink(box.rootonly / "d", vmail / "example.org")
    md = Maildir(str(vmail / "example.org/alice/Maildir"), owner=OWNER, fsync="never")
    _refused(md.deliver, MSG)
    _assert_outside_untouched(box)


def test_links_set_up_by_root_are_followed(box):
    # An administrator's links (in directories the mail owner cannot write) are followed,
    # at the root and above it, relative or absolute.
    real = box.tmp / "disk2"
    real.mkdir()
    _chown(real)
    srv = box.tmp / "srv"
    srv.mkdir(mode=0o755)
    os.symlink("../disk2", srv / "alice")                  # relative, in a root-owned directory
    os.symlink(str(srv), box.tmp / "mail")                 # absolute, above the root
    md = Maildir(str(box.tmp / "mail/alice/Maildir"), owner=OWNER, fsync="never")
    d = md.deliver(MSG, "Work", flags=["kw"])
    assert d.path.startswith(str(box.tmp / "mail/alice/Maildir/.Work/cur/"))
    assert len(os.listdir(real / "Maildir/.Work/cur")) == 1
    assert os.stat(real / "Maildir").st_uid == OWNER.uid


def test_maildir_root_not_owned_by_the_mail_owner_is_refused(box):
    other = box.tmp / "rootowned"
    other.mkdir(mode=0o755)                                # e.g. a mail path naming /etc
    md = Maildir(str(other), owner=OWNER, fsync="never")
    assert "owned by uid 0" in _refused(md.deliver, MSG)
    assert os.listdir(other) == []


def test_executor_tempfails_with_a_clear_log_line(box, caplog):
    s = parse_text('maildir_owner = "nobody"\nmaildir_fsync = "never"')
    ex = DeliveryExecutor(s, state=MemoryStore(), program="test")
    ex.plan = lambda message, *a, **kw: Plan(actions=[api.FileInto(mailbox="Work")], keep=False,
                                            message=message)
    for sub in ("cur", "new", "tmp"):
        (box.rootonly / "d" / sub).mkdir()
    os.symlink(box.rootonly / "d", box.root / ".Work")
    user = MailUser("alice@example.org", str(box.root), None, None)
    with caplog.at_level(logging.WARNING):
        o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert o.action == "tempfail" and o.exit_code == 75 and str(o.reply).startswith("451 4.3.0")
    [line] = [r.getMessage() for r in caplog.records if r.name == "owlery.maildir"]
    assert re.search(r"refused: \.Work is a symbolic link", line), line
    for sub in ("cur", "new", "tmp"):
        assert os.listdir(box.rootonly / "d" / sub) == []


# ---------------------------------------------------------------------------
# 2. The rename into new/ is the commit point
# ---------------------------------------------------------------------------

def _new(root):
    return sorted(os.listdir(os.path.join(root, "new")))


def _fail_dir_fsync(monkeypatch):
    real = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "injected directory fsync failure")
        return real(fd)
    monkeypatch.setattr(os, "fsync", fsync)


def _fail_maildirsize_append(monkeypatch):
    real = os.open

    def open_(path, flags, *a, **kw):
        if os.path.basename(path) == "maildirsize" and flags & os.O_APPEND:
            raise PermissionError(errno.EACCES, "injected", path)
        return real(path, flags, *a, **kw)
    monkeypatch.setattr(os, "open", open_)


def test_directory_fsync_error_after_the_rename_still_delivers(tmp_path, monkeypatch, caplog):
    md = Maildir(str(tmp_path / "M"), fsync="always")
    md.ensure()
    _fail_dir_fsync(monkeypatch)
    with caplog.at_level(logging.WARNING):
        d = md.deliver(MSG)
    assert _new(tmp_path / "M") == [os.path.basename(d.path)]
    assert "delivered, but the directory fsync failed" in caplog.text


def test_maildirsize_error_after_the_rename_still_delivers(tmp_path, monkeypatch, caplog):
    md = Maildir(str(tmp_path / "M"), fsync="never")
    q = Quota(bytes=10_000)
    md.deliver(MSG, quota=q)                               # creates maildirsize
    _fail_maildirsize_append(monkeypatch)
    with caplog.at_level(logging.WARNING):
        md.deliver(MSG, quota=q)
    assert len(_new(tmp_path / "M")) == 2
    assert "maildirsize was not updated" in caplog.text
    monkeypatch.undo()
    assert md.recalculate(q).messages == 2                 # the drift is repaired by a recount


@pytest.mark.parametrize("inject, conf", [
    (_fail_dir_fsync, 'maildir_fsync = "always"'),
    (_fail_maildirsize_append, 'maildir_fsync = "never"'),
])
def test_executor_reports_success_after_the_commit_point(tmp_path, monkeypatch, inject, conf):
    ex = DeliveryExecutor(parse_text(conf), state=MemoryStore(), program="test")
    ex.plan = lambda message, *a, **kw: Plan(message=message)
    user = MailUser("alice@example.org", str(tmp_path / "Maildir"), None, Quota(bytes=10_000))
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok    # Maildir, maildirsize exist
    inject(monkeypatch)
    o = ex.deliver(MSG, "bob@remote.test", "alice@example.org", user)
    assert o.ok and o.exit_code == 0
    assert len(_new(tmp_path / "Maildir")) == 2                                # exactly one more


# ---------------------------------------------------------------------------
# 3. Concurrent updates of subscriptions and dovecot-keywords
# ---------------------------------------------------------------------------

def _interleave(monkeypatch, file_name, first, second):
    """Run `first` until it is about to rename its new `file_name` into place, then run
    `second`; `first` goes on once `second` has finished or is waiting for a lock.
    Without a lock `second` reads the old file and one update is lost."""
    a_ready, b_progress = threading.Event(), threading.Event()
    paused = []

    def hook(real):
        def call(src, dst, *a, **kw):
            if threading.current_thread().name == "first" and not paused \
                    and os.path.basename(dst) == file_name:
                paused.append(True)
                a_ready.set()
                assert b_progress.wait(20), "second writer neither finished nor waited for a lock"
            return real(src, dst, *a, **kw)
        return call
    monkeypatch.setattr(os, "rename", hook(os.rename))
    monkeypatch.setattr(os, "replace", hook(os.replace))
    real_sleep = maildir_mod.time.sleep

    def sleep(seconds):
        b_progress.set()
        real_sleep(seconds)
    monkeypatch.setattr(maildir_mod, "_sleep", sleep, raising=False)
    errors = []

    def run(fn, done=None):
        try:
            fn()
        except (MaildirError, OSError, AssertionError) as e:     # reported below
            errors.append(e)
        finally:
            if done is not None:
                done.set()
    t1 = threading.Thread(target=run, args=(first,), name="first")
    t1.start()
    assert a_ready.wait(20), "first writer never reached the rename"
    t2 = threading.Thread(target=run, args=(second, b_progress), name="second")
    t2.start()
    t1.join(20)
    t2.join(20)
    assert not t1.is_alive() and not t2.is_alive() and not errors, errors


def test_concurrent_subscriptions_lose_nothing(tmp_path, monkeypatch):
    root = str(tmp_path / "M")
    Maildir(root).ensure()
    _interleave(monkeypatch, "subscriptions",
                lambda: Maildir(root, fsync="never").deliver(MSG, "Alpha"),
                lambda: Maildir(root, fsync="never").deliver(MSG, "Beta"))
    assert sorted(Maildir(root).subscriptions()) == ["Alpha", "Beta"]
    assert not os.path.exists(os.path.join(root, "subscriptions.lock"))


def test_concurrent_keywords_lose_nothing_and_never_share_a_letter(tmp_path, monkeypatch):
    root = str(tmp_path / "M")
    Maildir(root).ensure()
    paths = {}
    _interleave(monkeypatch, "dovecot-keywords",
                lambda: paths.setdefault("Alpha", Maildir(root, fsync="never").deliver(MSG, flags=["Alpha"]).path),
                lambda: paths.setdefault("Beta", Maildir(root, fsync="never").deliver(MSG, flags=["Beta"]).path))
    table = dict(line.split(" ", 1)[::-1] for line in open(os.path.join(root, "dovecot-keywords")).read().splitlines())
    assert sorted(table) == ["Alpha", "Beta"] and table["Alpha"] != table["Beta"]
    for kw, path in paths.items():
        assert path.endswith(":2," + chr(ord("a") + int(table[kw]))), (kw, path, table)
    assert not [n for n in os.listdir(root) if n.endswith(".lock")]


def _deliver_many(root, i):
    md = Maildir(root, fsync="never")
    for j in range(3):
        md.deliver(MSG, f"P{i}/F{j}")
    md.deliver(MSG, flags=[f"Kw{i}"])


def test_many_processes_add_distinct_folders_and_keywords(tmp_path):
    root = str(tmp_path / "M")
    Maildir(root).ensure()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_deliver_many, args=(root, i)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 6
    md = Maildir(root)
    assert sorted(md.subscriptions()) == sorted(f"P{i}.F{j}" for i in range(6) for j in range(3))
    lines = open(os.path.join(root, "dovecot-keywords")).read().splitlines()
    indexes = [line.split(" ", 1)[0] for line in lines]
    assert sorted(line.split(" ", 1)[1] for line in lines) == [f"Kw{i}" for i in range(6)]
    assert len(set(indexes)) == 6


def test_a_stale_subscriptions_lock_is_broken(tmp_path, monkeypatch):
    # A lock unchanged for the stale time (Dovecot's 30 s, shortened here; the ctime that
    # counts too cannot be set back) was left by a crash: it is removed and the update made.
    monkeypatch.setattr(maildir_mod, "SUBSCRIPTIONS_LOCK_STALE_S", 0.05)
    md = Maildir(str(tmp_path / "M"), fsync="never")
    md.ensure()
    lock = tmp_path / "M/subscriptions.lock"
    lock.write_text("Half written by a crashed process\n")
    md.deliver(MSG, "Work")
    assert md.subscriptions() == ["Work"] and not lock.exists()


def test_a_uidlist_lock_of_a_dead_process_is_broken(tmp_path, monkeypatch):
    # Dovecot's rule: a lock older than 2 s (shortened here) naming a dead local pid is stale,
    # long before its 120 s stale time.
    monkeypatch.setattr(maildir_mod, "LOCK_STALE_PID_CHECK_S", 0.05)
    md = Maildir(str(tmp_path / "M"), fsync="never")
    md.ensure()
    p = multiprocessing.get_context("fork").Process(target=int)
    p.start()
    p.join()
    lock = tmp_path / "M/dovecot-uidlist.lock"
    lock.write_text(f"{p.pid}:{socket.gethostname()}")
    d = md.deliver(MSG, flags=["Kw"])
    assert d.path.endswith(":2,a") and not lock.exists()
    lock.write_text(f"{os.getppid()}:{socket.gethostname()}")     # a live holder: waited for
    md.lock_timeout = 0.1
    assert "still locked" in _refused(md.deliver, MSG, flags=["Other"])
    assert lock.exists()


def test_a_held_lock_is_waited_for_then_a_temporary_failure(tmp_path):
    md = Maildir(str(tmp_path / "M"), fsync="never")
    md.lock_timeout = 0.05
    md.ensure()
    lock = tmp_path / "M/subscriptions.lock"
    lock.write_text("")                          # Dovecot is rewriting subscriptions right now
    assert "still locked" in _refused(md.deliver, MSG, "Work")
    assert lock.exists()
    lock.unlink()
    md.deliver(MSG, "Work")                      # the folder left without tmp/ is completed and subscribed
    assert md.subscriptions() == ["Work"]
    assert len(os.listdir(tmp_path / "M/.Work/new")) == 1


# ---------------------------------------------------------------------------
# 4. Numbers in maildirsize and dovecot-keywords: ASCII digits only, never a crash
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "²S\n",                          # str.isdigit() says yes, int() says no
    "1000S,²C\n",
    "9" * 5000 + "S\n",              # int() refuses more than 4300 digits
    "1000S\n² 1\n",
    "1000S\n١٢ 1\n",                 # Arabic-Indic digits: int() would read 12
    "1000S\n1_000 1\n",              # int() reads 1000
    "1000S\n+5 1\n",
    "1000S\n5 ０\n",                  # fullwidth zero
    "1000S\n" + "9" * 5000 + " 1\n",
])
def test_maildirsize_non_ascii_or_huge_numbers_are_junk(text):
    ms = maildirsize.parse(text)
    assert ms.suspect
    assert ms.used_bytes == 0


@hsettings(max_examples=300, deadline=None)
@example("²S\n1 1\n")
@example("1" * 4301 + "C\n")
@given(st.text(alphabet=st.sampled_from("0123456789²١０SC,-+_ \n")) | st.text())
def test_maildirsize_parse_never_raises(text):
    ms = maildirsize.parse(text)
    assert ms.used_bytes >= 0 and ms.used_messages >= 0


@pytest.mark.parametrize("content", ["9" * 5000 + "S\n5 1\n", "1000000S\n٥ 1\n", "²S\n"])
def test_corrupt_maildirsize_is_recounted_at_delivery(tmp_path, content):
    md = Maildir(str(tmp_path / "M"), fsync="never")
    q = Quota(bytes=1_000_000)
    md.deliver(b"x\n", quota=q)
    (tmp_path / "M/maildirsize").write_text(content)
    md.deliver(b"y\n", quota=q)
    ms = maildirsize.read(str(tmp_path / "M"))
    assert not ms.suspect and (ms.limit_bytes, ms.used_bytes, ms.used_messages) == (1_000_000, 4, 2)


def test_junk_indexes_in_dovecot_keywords_are_ignored(tmp_path):
    md = Maildir(str(tmp_path / "M"), fsync="never")
    md.ensure()
    (tmp_path / "M/dovecot-keywords").write_text("² Junk\n30 Far\n١ Arabic\n1 Kept\n")
    d = md.deliver(b"x\n", flags=["New", "Kept"])
    assert d.path.endswith(":2,ab")
    assert (tmp_path / "M/dovecot-keywords").read_text() == "0 New\n1 Kept\n"


@pytest.mark.parametrize("name, size", [
    ("1.M1P1.h,S=12,W=14:2,S", 12), ("1.M1P1.h,S=١٢:2,", None), ("1.M1P1.h:2,", None)])
def test_size_from_name_is_ascii_only(name, size):
    assert parse_size_from_name(name) == size


def test_owner_spec_digits_are_ascii_only():
    with pytest.raises(ValueError, match="no such user"):
        Owner.parse("²")


# ---------------------------------------------------------------------------
# 5. Concurrent first deliveries: one creates the Maildir, the others open it
# ---------------------------------------------------------------------------

def _race_the_creator(monkeypatch, creator, target, second):
    """Run `creator` (a first delivery, in a thread) until it has made the directory `target`
    and is about to fchown() it to the mail owner, then call `second` here while `target` is
    still root's. The creator goes on once `second` has finished or is waiting for a lock
    (maildir._sleep). Returns what `second` returned; an error in either is raised."""
    paused, release = threading.Event(), threading.Event()
    real_fchown, real_sleep = os.fchown, maildir_mod.time.sleep

    def fchown(fd, uid, gid):
        if threading.current_thread().name == "creator" and not paused.is_set() \
                and os.path.lexists(target) and os.path.samestat(os.fstat(fd), os.lstat(target)):
            paused.set()
            assert release.wait(20), "the second delivery neither finished nor waited for a lock"
        return real_fchown(fd, uid, gid)

    def sleep(seconds):
        release.set()
        real_sleep(seconds)
    monkeypatch.setattr(os, "fchown", fchown)
    monkeypatch.setattr(maildir_mod, "_sleep", sleep)
    errors = []

    def run():
        try:
            creator()
        except (MaildirError, OSError, AssertionError) as e:      # reported below, in the test's thread
            errors.append(e)
    t = threading.Thread(target=run, name="creator", daemon=True)
    t.start()
    try:
        assert paused.wait(20), f"the creator never reached the fchown of {target}"
        assert os.lstat(target).st_uid == 0                       # the window is open
        result = second()
    finally:
        release.set()
        t.join(20)
    assert not t.is_alive(), "the creator did not finish"
    if errors:
        raise errors[0]
    return result


def _all_owned_by_the_mail_owner(root):
    for dirpath, dirs, files in os.walk(root):
        for name in [""] + dirs + files:
            st_ = os.lstat(os.path.join(dirpath, name))
            assert (st_.st_uid, st_.st_gid) == (OWNER.uid, OWNER.gid), os.path.join(dirpath, name)


def test_a_maildir_being_created_is_waited_for_not_refused(tmp_path, monkeypatch):
    # The load test's bug: the second of two first deliveries opened the new Maildir
    # between the creator's mkdir and its fchown, saw root as its owner and tempfailed.
    root = tmp_path / "vmail/example.org/alice/Maildir"
    d = _race_the_creator(monkeypatch,
                          lambda: Maildir(str(root), owner=OWNER, fsync="never").deliver(MSG),
                          root,
                          lambda: Maildir(str(root), owner=OWNER, fsync="never").deliver(MSG))
    assert d.path.startswith(str(root / "new") + "/")
    assert len(os.listdir(root / "new")) == 2
    _all_owned_by_the_mail_owner(root)


@pytest.mark.parametrize("target, mailbox", [
    ("vmail/example.org", "INBOX"),            # a directory above the root, made by the walk
    ("vmail/example.org/alice/Maildir/cur", "INBOX"),
    ("vmail/example.org/alice/Maildir/.Work", "Work"),
    ("vmail/example.org/alice/Maildir/.Work/tmp", "Work"),
])
def test_directories_being_created_around_the_root_are_not_refused(tmp_path, monkeypatch, target, mailbox):
    # Below the root root-owned directories are trusted (only we are root), above it only
    # links are judged: a directory caught between mkdir and fchown refuses nothing.
    root = tmp_path / "vmail/example.org/alice/Maildir"
    _race_the_creator(monkeypatch,
                      lambda: Maildir(str(root), owner=OWNER, fsync="never").deliver(MSG, mailbox),
                      tmp_path / target,
                      lambda: Maildir(str(root), owner=OWNER, fsync="never").deliver(MSG, mailbox))
    folder = root if mailbox == "INBOX" else root / ".Work"
    assert len(os.listdir(folder / "new")) == 2
    _all_owned_by_the_mail_owner(tmp_path / "vmail/example.org")
    if mailbox != "INBOX":
        assert Maildir(str(root)).subscriptions() == ["Work"]


def test_a_root_owned_maildir_is_still_refused_after_the_wait(tmp_path, monkeypatch):
    # The wait is for a delivery still creating the root; nobody is, so it is refused at once
    # (a mail path naming /etc, or a Maildir left root's), however often it is tried.
    other = tmp_path / "rootowned"
    other.mkdir(mode=0o700)
    waits = []
    monkeypatch.setattr(maildir_mod, "_sleep", waits.append)
    md = Maildir(str(other), owner=OWNER, fsync="never")
    for _ in range(3):
        assert "owned by uid 0" in _refused(md.deliver, MSG)
    assert waits == [] and os.listdir(other) == []
    assert os.stat(other).st_uid == 0


def test_a_creation_lock_held_forever_is_a_temporary_failure(tmp_path):
    # The mail owner can lock its own directory (flock) where its Maildir is to be made:
    # the delivery gives up after maildir_lock_timeout, leaving nothing root-owned behind.
    home = tmp_path / "home"
    home.mkdir()
    _chown(home)
    md = Maildir(str(home / "Maildir"), owner=OWNER, fsync="never", lock_timeout=0.05)
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert "still locked" in _refused(md.deliver, MSG)
        assert os.listdir(home) == []
    finally:
        os.close(fd)
    md.deliver(MSG)
    _all_owned_by_the_mail_owner(home)


def test_many_threads_deliver_first_messages_concurrently(tmp_path):
    # 8 threads x 50 fresh Maildirs, all released at once for each: nothing refused.
    threads, rounds = 8, 50
    roots = [tmp_path / f"vmail/d{r % 5}/u{r}/Maildir" for r in range(rounds)]
    barrier = threading.Barrier(threads, timeout=20)
    errors = []

    def run(i):
        try:
            for root in roots:
                barrier.wait()
                Maildir(str(root), owner=OWNER, fsync="never").deliver(MSG, "Work" if i % 2 else "INBOX")
        except (MaildirError, OSError, threading.BrokenBarrierError) as e:      # reported below
            errors.append(e)
            barrier.abort()
    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors[:3]
    for root in roots:
        assert len(os.listdir(root / "new")) == len(os.listdir(root / ".Work/new")) == threads // 2
        assert Maildir(str(root)).subscriptions() == ["Work"]
    _all_owned_by_the_mail_owner(tmp_path / "vmail")


def _first_deliveries(roots, barrier, failures):
    for root in roots:
        barrier.wait()
        try:
            Maildir(root, owner=OWNER, fsync="never").deliver(MSG)
        except MaildirError:
            with failures.get_lock():
                failures.value += 1


def test_many_processes_deliver_first_messages_concurrently(tmp_path):
    ctx = multiprocessing.get_context("fork")
    roots = [str(tmp_path / f"u{r}/Maildir") for r in range(20)]
    barrier, failures = ctx.Barrier(4, timeout=20), ctx.Value("i", 0)
    procs = [ctx.Process(target=_first_deliveries, args=(roots, barrier, failures)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    assert failures.value == 0
    for root in roots:
        assert len(os.listdir(os.path.join(root, "new"))) == 4
        _all_owned_by_the_mail_owner(os.path.dirname(root))
