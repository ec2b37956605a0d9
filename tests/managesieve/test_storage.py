"""Script storage in Pigeonhole's layout (sieve/managesieve/storage.py): layout, atomic writes, links."""

import errno
import os
import pwd
import threading

import pytest

from owlery.maildir import Owner
from sieve.delivery.userfiles import read_user_file
from sieve.managesieve import storage as storage_mod
from sieve.managesieve.storage import ScriptStorage, StorageError, check_name


@pytest.fixture
def home(tmp_path):
    return tmp_path / "mail" / "example.org" / "alice"


@pytest.fixture
def st(home):
    return ScriptStorage(str(home / "sieve"), str(home / "sieve" / "active.sieve"))


def test_layout_is_pigeonholes(st, home):
    st.put("first", b"keep;\n")
    st.put("second", b"discard;\n")
    st.activate("first")
    sieve = home / "sieve"
    assert sorted(os.listdir(sieve)) == ["active.sieve", "first.sieve", "second.sieve"]   # no temporary left
    assert os.readlink(sieve / "active.sieve") == "first.sieve"                           # relative, same dir
    assert (sieve / "first.sieve").stat().st_mode & 0o777 == 0o600
    assert st.list() == [("first", True), ("second", False)]
    assert st.usage() == {"first": 6, "second": 9}
    assert st.reserved == {"active"}


def test_classic_dovecot_layout(home):
    st = ScriptStorage(str(home / "sieve"), str(home / ".dovecot.sieve"))
    st.put("x", b"keep;")
    st.activate("x")
    assert os.readlink(home / ".dovecot.sieve") == "sieve/x.sieve"
    assert st.list() == [("x", True)] and st.reserved == frozenset()
    st.put("active", b"keep;")               # not reserved in this layout
    st.activate(None)
    assert not os.path.lexists(home / ".dovecot.sieve")


def test_script_dir_must_be_below_the_link():
    with pytest.raises(ValueError):
        ScriptStorage("/var/sieve/alice", "/home/alice/.dovecot.sieve")


def test_replace_is_atomic(st, home):
    st.put("s", b"old;\n")
    path = home / "sieve" / "s.sieve"
    before = os.stat(path).st_ino
    with open(path, "rb") as reader:          # a delivery that opened the old script
        st.put("s", b"new;\n")
        assert reader.read() == b"old;\n"
    assert path.read_bytes() == b"new;\n" and os.stat(path).st_ino != before


def test_failed_write_leaves_the_old_script(st, home, monkeypatch):
    st.put("s", b"old;\n")

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(storage_mod.os, "write", full_disk)
    with pytest.raises(OSError):
        st.put("s", b"new;\n")
    monkeypatch.undo()
    assert (home / "sieve" / "s.sieve").read_bytes() == b"old;\n"
    assert sorted(os.listdir(home / "sieve")) == ["s.sieve"]


def test_activation_never_leaves_delivery_without_a_script(st, home):
    st.put("a", b"keep;\n")
    st.put("b", b"discard;\n")
    st.activate("a")
    link = home / "sieve" / "active.sieve"
    missing, stop = [], threading.Event()

    def deliver():
        while not stop.is_set():
            try:
                read_user_file(str(link), None, 1 << 20)      # as delivery reads it
            except FileNotFoundError:
                missing.append(1)
    reader = threading.Thread(target=deliver)
    reader.start()
    try:
        for i in range(300):
            st.activate("b" if i % 2 else "a")
            st.rename("a" if i % 2 == 0 else "b", "c")      # the active one renamed and back
            st.rename("c", "a" if i % 2 == 0 else "b")
    finally:
        stop.set()
        reader.join()
    assert missing == []


def test_rename_and_delete(st, home):
    st.put("old", b"keep;")
    st.activate("old")
    st.rename("old", "new")
    assert st.list() == [("new", True)] and os.readlink(home / "sieve" / "active.sieve") == "new.sieve"
    with pytest.raises(StorageError) as e:
        st.delete("new")
    assert e.value.code == "ACTIVE"
    st.put("other", b"keep;")
    with pytest.raises(StorageError) as e:
        st.rename("other", "new")
    assert e.value.code == "ALREADYEXISTS"
    st.activate(None)
    st.delete("new")
    assert st.list() == [("other", False)]
    with pytest.raises(StorageError) as e:
        st.get("new")
    assert e.value.code == "NONEXISTENT"


def test_nothing_stored_yet(st, home):
    assert st.list() == [] and st.usage() == {} and st.active() is None
    st.activate(None)
    assert not home.exists()                 # reading or deactivating creates nothing


def test_listing_ignores_other_files(st, home):
    st.put("real", b"keep;")
    sieve = home / "sieve"
    (sieve / "tmp").mkdir()                                       # Pigeonhole's upload directory
    (sieve / "tmp" / "x.sieve").write_text("keep;")
    (sieve / ".owlery-1234.tmp").write_text("half")
    (sieve / "real.svbin").write_bytes(b"\0")                     # Pigeonhole's compiled binary
    (sieve / "dir.sieve").mkdir()
    os.symlink("real.sieve", sieve / "alias.sieve")
    assert st.list() == [("real", False)]


def test_planted_link_is_never_read_nor_written_through(st, home, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("secret of someone else\n")
    st.put("x", b"keep;")
    os.symlink(victim, home / "sieve" / "evil.sieve")
    assert "evil" not in dict(st.list())
    with pytest.raises(StorageError) as e:
        st.get("evil")
    assert e.value.code == "NONEXISTENT"
    with pytest.raises(StorageError):
        st.activate("evil")
    st.put("evil", b"discard;")                       # replaces the link itself
    assert victim.read_text() == "secret of someone else\n"
    assert not os.path.islink(home / "sieve" / "evil.sieve")


def test_active_link_pointing_elsewhere_is_ignored(st, home, tmp_path):
    st.put("x", b"keep;")
    link = home / "sieve" / "active.sieve"
    for target in ("../../../../victim.sieve", str(tmp_path / "victim.sieve"), "sub/x.sieve", "x.txt"):
        (tmp_path / "victim.sieve").write_text("keep;")
        os.symlink(target, link)
        assert st.active() is None and st.list() == [("x", False)]
        os.unlink(link)
    os.symlink(str(home / "sieve" / "x.sieve"), link)      # absolute, but into the script dir: fine
    assert st.active() == "x"
    os.unlink(link)
    os.symlink("gone.sieve", link)                         # dangling
    assert st.active() is None


def test_sieve_dir_as_a_link_is_refused(home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home.mkdir(parents=True)
    os.symlink(elsewhere, home / "sieve")
    st = ScriptStorage(str(home / "sieve"), str(home / "sieve" / "active.sieve"))
    with pytest.raises(StorageError, match="symbolic link"):
        st.put("x", b"keep;")
    assert os.listdir(elsewhere) == []


def test_regular_active_file_is_kept_as_dovecot_orig(st, home):
    sieve = home / "sieve"
    sieve.mkdir(parents=True)
    (sieve / "active.sieve").write_text("# written by hand years ago\nkeep;\n")
    assert st.list() == [] and st.active() is None
    st.put("new", b"discard;")
    st.activate("new")
    assert (sieve / "dovecot.orig.sieve").read_text() == "# written by hand years ago\nkeep;\n"
    assert st.list() == [("dovecot.orig", False), ("new", True)]
    # Deactivating a regular file keeps it too (a second rescue takes the next free name).
    os.unlink(sieve / "active.sieve")
    (sieve / "active.sieve").write_text("keep;\n")
    st.activate(None)
    assert not os.path.lexists(sieve / "active.sieve")
    assert (sieve / "dovecot.orig-2.sieve").read_text() == "keep;\n"


@pytest.mark.parametrize("name,ok", [
    ("vacation", True), ("Ferien été", True), ("a" * 128, True), ("日本語", True),
    ("", False), (".x", True), ("..", True), ("a/b", False), ("a\0b", False), ("a\x7fb", False), ("a\x85b", False),
    ("a\u2029b", False), ("a" * 129, False), ("active", False), ("\udcff", False), ("日" * 84, False),
])
def test_check_name(name, ok):
    assert (check_name(name, 128, {"active"}) is None) == ok


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="ownership needs root")


@needs_root
def test_as_root_everything_belongs_to_the_mail_owner(home):
    nobody = pwd.getpwnam("nobody")
    owner = Owner(nobody.pw_uid, nobody.pw_gid)
    st = ScriptStorage(str(home / "sieve"), str(home / "sieve" / "active.sieve"), owner=owner)
    st.put("x", b"keep;")
    st.activate("x")
    for path in (home, home / "sieve", home / "sieve" / "x.sieve"):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (owner.uid, owner.gid), path
    assert os.lstat(home / "sieve" / "active.sieve").st_uid == owner.uid


@needs_root
def test_as_root_links_on_the_path(tmp_path):
    nobody = pwd.getpwnam("nobody")
    owner = Owner(nobody.pw_uid, nobody.pw_gid)
    real = tmp_path / "disk2" / "alice"
    real.mkdir(parents=True)
    os.chown(real, owner.uid, owner.gid)
    trusted = tmp_path / "trusted"                 # root's directory, 0755: an admin's link
    trusted.mkdir(mode=0o755)
    trusted.chmod(0o755)
    os.symlink(real, trusted / "alice")
    st = ScriptStorage(str(trusted / "alice" / "sieve"), str(trusted / "alice" / "sieve" / "active.sieve"), owner=owner)
    st.put("x", b"keep;")
    assert (real / "sieve" / "x.sieve").read_bytes() == b"keep;"
    planted = tmp_path / "userdir"                  # the mail owner's own directory
    planted.mkdir()
    os.chown(planted, owner.uid, owner.gid)
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(victim, planted / "home")
    st = ScriptStorage(str(planted / "home" / "sieve"), str(planted / "home" / "sieve" / "active.sieve"), owner=owner)
    with pytest.raises(StorageError, match="not followed"):
        st.put("x", b"keep;")
    assert os.listdir(victim) == []
    foreign = tmp_path / "foreign"                  # a directory of another uid is no sieve dir of ours
    foreign.mkdir()
    os.chown(foreign, owner.uid + 1, owner.gid)
    st = ScriptStorage(str(foreign), str(foreign / "active.sieve"), owner=owner)
    with pytest.raises(StorageError, match="not to the mail owner"):
        st.list()
