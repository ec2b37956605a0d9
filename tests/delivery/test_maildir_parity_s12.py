"""Maildir++ names as Dovecot makes them: fixes found by tests/delivery/test_maildir_dovecot_differential.py.

- INBOX as a parent is case-insensitive (RFC 3501 5.1): "inbox.sub" is stored as `.INBOX.sub`
  (Dovecot's directory; Dovecot lists a `.inbox.sub` as INBOX.sub and then cannot SELECT it) and
  subscribed as INBOX.sub;
- a '~' inside a name ("a.~b") is a plain character of the one Maildir++ directory `.a.~b`:
  Dovecot creates it; only a name starting with '~' is refused, as Dovecot does;
- one folder named two ways in one script ("Work.Projects", "Work/Projects") gets one copy
  (RFC 5228 4.1), with both stores' flags.
"""

from __future__ import annotations

import pytest

from owlery.maildir import Maildir, MaildirError, folder_dirname
from sieve import api
from tests.delivery.test_executor import MSG, files, make


@pytest.mark.parametrize(
    "mailbox, dirname",
    [
        ("inbox.sub", ".INBOX.sub"),
        ("Inbox/x", ".INBOX.x"),
        ("iNbOx.a.b", ".INBOX.a.b"),
        ("INBOX.x", ".INBOX.x"),
        ("INBOXES", ".INBOXES"),
        ("x.inbox", ".x.inbox"),
    ],
)
def test_inbox_as_a_parent_is_uppercase(mailbox, dirname):
    assert folder_dirname(mailbox) == dirname


def test_delivery_into_an_inbox_child_matches_dovecot(tmp_path):
    md = Maildir(str(tmp_path / "Maildir"), fsync="never")
    stored = md.deliver(MSG, "inbox.sub")
    assert "/.INBOX.sub/new/" in stored.path
    assert not (tmp_path / "Maildir" / ".inbox.sub").exists()
    assert md.subscriptions() == ["INBOX.sub"]
    assert md.list_folders() == ["INBOX", "INBOX.sub"]
    md.deliver(MSG, "INBOX.sub")
    assert len(list((tmp_path / "Maildir" / ".INBOX.sub" / "new").iterdir())) == 2
    assert md.subscriptions() == ["INBOX.sub"]


@pytest.mark.parametrize("mailbox, dirname", [("a.~b", ".a.~b"), ("a/~b", ".a.~b"), ("a~b", ".a~b"), ("x.~", ".x.~")])
def test_tilde_inside_a_name_is_a_plain_character(mailbox, dirname):
    assert folder_dirname(mailbox) == dirname


@pytest.mark.parametrize("bad", ["~x", "~", "~x.y", "a.\x7f", "a..~b"])
def test_still_refused(bad):
    with pytest.raises(MaildirError) as e:
        folder_dirname(bad)
    assert not e.value.temporary


def test_canonical_mailbox_names():
    from owlery.maildir import canonical_mailbox

    assert canonical_mailbox("Work/Projects") == "Work.Projects"
    assert canonical_mailbox("inbox") == "INBOX"
    assert canonical_mailbox("inbox/sub") == "INBOX.sub"
    assert canonical_mailbox("work.Projects") == "work.Projects"


def test_one_folder_named_two_ways_gets_one_copy(tmp_path):
    ex, user, _ = make(
        tmp_path,
        [
            api.FileInto(mailbox="Work.Projects", flags=("\\Seen",)),
            api.FileInto(mailbox="Work/Projects", flags=("x1",)),
        ],
        keep=False,
    )
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok
    [f] = files(tmp_path, ".Work.Projects")
    assert f.name.endswith(":2,Sa")
    assert files(tmp_path) == []


def test_inbox_child_named_two_ways_gets_one_copy(tmp_path):
    ex, user, _ = make(tmp_path, [api.FileInto(mailbox="inbox/sub"), api.FileInto(mailbox="INBOX.sub")], keep=False)
    assert ex.deliver(MSG, "bob@remote.test", "alice@example.org", user).ok
    assert len(files(tmp_path, ".INBOX.sub")) == 1
    assert sorted(p.name for p in (tmp_path / "Maildir").iterdir() if p.name.startswith(".")) == [".INBOX.sub"]
