"""Maildir++ writer: atomic delivery, unique names, flags, keywords, folders, quota."""

from __future__ import annotations

import os
import re

import pytest

from owlery import maildirsize
from owlery.maildir import (Maildir, MaildirError, Quota, QuotaExceeded, decode_mutf7, encode_mutf7,
                            folder_dirname, path_for, split_flags)


@pytest.mark.parametrize("name, encoded", [
    ("INBOX", "INBOX"), ("Work", "Work"), ("a&b", "a&-b"), ("Entwürfe", "Entw&APw-rfe"),
    ("日本語", "&ZeVnLIqe-"), ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
])
def test_modified_utf7_round_trip(name, encoded):
    assert encode_mutf7(name) == encoded
    assert decode_mutf7(encoded) == name


@pytest.mark.parametrize("mailbox, dirname", [
    ("INBOX", None), ("inbox", None), ("Work", ".Work"), ("Work/Projects", ".Work.Projects"),
    ("Work.Projects", ".Work.Projects"), ("Entwürfe", ".Entw&APw-rfe"),
])
def test_folder_dirnames(mailbox, dirname):
    assert folder_dirname(mailbox) == dirname


@pytest.mark.parametrize("bad", ["", "a..b", "../x", "~x", "a/\x01", ".hidden"])
def test_bad_folder_names_are_permanent_errors(bad):
    with pytest.raises(MaildirError) as e:
        folder_dirname(bad)
    assert not e.value.temporary


def test_a_folder_must_fit_one_file_name():
    """The Maildir++ directory (a dot, the levels in mUTF-7 joined by dots) fits 255 bytes or
    the name is refused; the store would fail at mkdir otherwise (a differential run's
    difference: Pigeonhole says "Mailbox name too long")."""
    from sieve.extensions.fileinto import store_name_error
    assert folder_dirname("a" * 254) == "." + "a" * 254
    for bad in ("a" * 255, "Var." + "x" * 300, "\u00e9" * 100):
        with pytest.raises(MaildirError, match="too long") as e:
            folder_dirname(bad)
        assert not e.value.temporary
        assert store_name_error(bad)


def test_path_template_refuses_escapes():
    assert path_for("/m/{domain}/{localpart}", "Al@Ex.org") == "/m/ex.org/al"
    for bad in ("../x@d", "a/b@d", "a@../d"):
        with pytest.raises(MaildirError):
            path_for("/m/{domain}/{localpart}", bad)


def test_deliver_into_new_with_size_in_name_and_no_tmp_left(tmp_path):
    md = Maildir(str(tmp_path / "Maildir"))
    d = md.deliver(b"Subject: x\n\nbody\n")
    name = os.path.basename(d.path)
    assert os.path.dirname(d.path).endswith("/new")
    assert re.fullmatch(r"\d+\.M\d+P\d+Q\d+R[0-9a-f]+\..+,S=17,W=20", name)
    assert os.listdir(tmp_path / "Maildir/tmp") == []
    assert open(d.path, "rb").read() == b"Subject: x\n\nbody\n"
    assert oct(os.stat(d.path).st_mode & 0o777) == "0o600"


def test_names_are_unique(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    names = {os.path.basename(md.deliver(b"x\n", now=1000.0).path) for _ in range(200)}
    assert len(names) == 200


def test_flags_go_to_cur_with_sorted_letters_and_keywords_file(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    d = md.deliver(b"x\n", "Work", flags=["\\Seen", "\\Flagged", "$Label1", "Important", "\\Recent"])
    assert "/.Work/cur/" in d.path
    assert d.path.endswith(":2,FSab")
    assert (tmp_path / "M/.Work/dovecot-keywords").read_text() == "0 $Label1\n1 Important\n"
    d2 = md.deliver(b"y\n", "Work", flags=["Important"])
    assert d2.path.endswith(":2,b")


def test_keywords_beyond_26_are_dropped(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    d = md.deliver(b"x\n", flags=[f"k{i}" for i in range(30)])
    assert d.path.endswith(":2," + "".join(chr(97 + i) for i in range(26)))


def test_split_flags():
    assert split_flags(["\\seen", "\\ANSWERED", "\\Draft", "\\Deleted", "$Junk", "bad word", "x(y"]) == \
        (["S", "R", "D", "T"], ["$Junk"])


def test_folders_created_on_demand_and_subscribed(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    md.deliver(b"x\n", "Lists/Owlery")
    md.deliver(b"x\n", "Entwürfe")
    md.deliver(b"x\n", "Lists/Owlery")
    assert (tmp_path / "M/.Lists.Owlery/maildirfolder").exists()
    assert md.subscriptions() == ["Lists.Owlery", "Entwürfe"]
    assert (tmp_path / "M/subscriptions").read_text() == "Lists.Owlery\nEntw&APw-rfe\n"
    assert md.list_folders() == ["INBOX", "Entwürfe", "Lists.Owlery"]


def test_missing_folder_without_create_is_permanent(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    with pytest.raises(MaildirError) as e:
        md.deliver(b"x\n", "Nope", create=False)
    assert not e.value.temporary


def test_quota_tracked_and_enforced(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    q = Quota(bytes=100, messages=3)
    md.deliver(b"a" * 40 + b"\n", quota=q)
    md.deliver(b"b" * 40 + b"\n", quota=q)
    ms = maildirsize.parse((tmp_path / "M/maildirsize").read_text())
    assert Quota.from_file(ms) == q and (ms.used_bytes, ms.used_messages) == (82, 2) and not ms.suspect
    with pytest.raises(QuotaExceeded):
        md.deliver(b"c" * 40 + b"\n", quota=q)
    md.deliver(b"d\n", quota=q)
    with pytest.raises(QuotaExceeded):     # message count limit
        md.deliver(b"e\n", quota=q)


def test_quota_recalculated_when_definition_changes_or_file_is_long(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    md.deliver(b"x" * 10 + b"\n", quota=Quota(bytes=1000))
    md.deliver(b"y" * 10 + b"\n")            # not counted (no quota in effect)
    used = md.usage(Quota(bytes=2000))       # new definition -> recount from names
    assert used.bytes == 22 and used.messages == 2
    # A long file of deltas is folded back into one line.
    with open(tmp_path / "M/maildirsize", "a") as f:
        f.write("0 0\n" * 2000)
    assert md.usage(Quota(bytes=2000)).bytes == 22
    assert len((tmp_path / "M/maildirsize").read_text().splitlines()) == 2


@pytest.mark.parametrize("junk", ["xx 1\n", "1 2 3\n", "-900 -9\n", "\xff\xfe 1\n"])
def test_junk_in_maildirsize_means_a_recount(tmp_path, junk):
    # The same tolerant reader policyd uses (owlery.maildirsize); what it skips, we recount.
    md = Maildir(str(tmp_path / "M"))
    q = Quota(bytes=1000)
    md.deliver(b"x\n", quota=q)
    with open(tmp_path / "M/maildirsize", "ab") as f:
        f.write(junk.encode("latin-1"))
    assert maildirsize.read(str(tmp_path / "M")).suspect
    assert md.usage(q).bytes == 2
    assert not maildirsize.read(str(tmp_path / "M")).suspect      # rewritten


def test_bad_definition_means_a_recount(tmp_path):
    md = Maildir(str(tmp_path / "M"))
    (tmp_path / "M").mkdir()
    (tmp_path / "M/maildirsize").write_text("1000S,zz\n5 1\n")
    assert md.usage(Quota(bytes=1000)).bytes == 0
    assert (tmp_path / "M/maildirsize").read_text().splitlines()[0] == "1000S"


def test_stale_over_quota_file_is_recalculated(tmp_path):
    md = Maildir(str(tmp_path / "M"), quota_recalc_age=900)
    q = Quota(bytes=100)
    md.deliver(b"x\n", quota=q)
    with open(tmp_path / "M/maildirsize", "a") as f:
        f.write("500 1\n")                  # drifted: says over quota
    st = os.stat(tmp_path / "M/maildirsize")
    # Over quota with several delta lines: recounted even when fresh, as Dovecot and Courier do
    # (tests/e2e/test_quota_dovecot_differential.py)
    assert md.usage(q, now=st.st_mtime + 10).bytes == 2
    assert md.usage(q, now=st.st_mtime + 1000).bytes == 2      # stale and over: recounted


def test_owner_applied_to_created_files(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test runs as root (the delivery agent's situation)")
    import pwd
    from owlery.maildir import Owner
    nobody = pwd.getpwnam("nobody")
    md = Maildir(str(tmp_path / "M"), owner=Owner(nobody.pw_uid, nobody.pw_gid))
    d = md.deliver(b"x\n", "F", flags=["kw"], quota=Quota(bytes=10_000))
    for p in [d.path, tmp_path / "M", tmp_path / "M/.F", tmp_path / "M/.F/cur", tmp_path / "M/subscriptions",
              tmp_path / "M/.F/dovecot-keywords", tmp_path / "M/maildirsize"]:
        assert os.stat(p).st_uid == nobody.pw_uid, p
