"""A real Dovecot reads what `owlery lmtpd` wrote: folders, flags, keywords, bytes.

The LMTP server (running as root, files owned by `nobody` via maildir_owner) delivers a
message that the user's Sieve script files into a new folder with a UTF-8 name and flags it
(\\Flagged + the keyword $Label1), and one into INBOX. A private Dovecot on the same Maildir
then lists and subscribes the folder, shows the flags and keyword, and imaplib fetches the
delivered message byte for byte.
"""

from __future__ import annotations

import imaplib
import smtplib

import pytest

from tests.delivery.daemon import Lmtpd, base_config, remove_workdir, shared_workdir
from tests.harness.dovecot import DovecotInstance

SCRIPT = """require ["fileinto", "imap4flags", "mailbox"];
if header :contains "Subject" "[owlery]" {
    addflag ["\\\\Flagged", "$Label1"];
    fileinto :create "Lists/Entwürfe";
    stop;
}
"""
USER = "alice@example.org"


@pytest.fixture(scope="module")
def setup():
    work = shared_workdir("owlery-dovecot-e2e-")
    home = work / "mail/example.org/alice"
    (home / "sieve").mkdir(parents=True)
    (home / "sieve/active.sieve").write_text(SCRIPT, encoding="utf-8")
    lmtpd = Lmtpd(work, base_config(work) + "delivery_use_directory = false\n").start()
    try:
        yield work, home, lmtpd
    finally:
        lmtpd.stop()
        remove_workdir(work)


def lmtp_send(port, msg: bytes):
    with smtplib.LMTP("127.0.0.1", port, timeout=30) as s:
        refused = s.sendmail("bob@remote.test", [USER], msg)
    assert refused == {}


def test_dovecot_imap_sees_folders_flags_keywords_and_exact_bytes(setup):
    work, home, lmtpd = setup
    listed = (b"From: Bob <bob@remote.test>\r\nTo: alice@example.org\r\nSubject: [owlery] release\r\n"
              b"Message-ID: <e2e-1@remote.test>\r\n\r\nBody line 1\r\n..dotted\r\n\tTab \xc3\xa9\r\n")
    plain = b"From: bob@remote.test\r\nTo: alice@example.org\r\nSubject: plain\r\n\r\nhello\r\n"
    lmtp_send(lmtpd.port, listed)
    lmtp_send(lmtpd.port, plain)
    folder_files = list((home / "Maildir/.Lists.Entw&APw-rfe/cur").iterdir())
    assert len(folder_files) == 1, lmtpd.log()
    on_disk = folder_files[0].read_bytes()

    dovecot = DovecotInstance(work / "dovecot", {USER: str(home)}).start()
    try:
        imap = dovecot.imap(USER)
        typ, boxes = imap.list()
        assert typ == "OK"
        names = [b.decode().rsplit(" ", 1)[-1].strip('"') for b in boxes]
        assert "INBOX" in names and "Lists.Entw&APw-rfe" in names, boxes
        typ, subscribed = imap.lsub()
        assert any(b"Lists.Entw&APw-rfe" in s for s in subscribed), subscribed

        typ, data = imap.select('"Lists.Entw&APw-rfe"', readonly=True)
        assert typ == "OK" and data == [b"1"]
        typ, data = imap.fetch("1", "(FLAGS BODY.PEEK[] RFC822.SIZE)")
        assert typ == "OK"
        meta, body = data[0]
        assert b"\\Flagged" in meta and b"$Label1" in meta, meta
        trace = b"Return-Path: <bob@remote.test>\r\nDelivered-To: alice@example.org\r\n"
        # lmtpd's own Received header (3 folded lines, its date varies) sits between.
        received = b"\r\n".join(body[len(trace):].split(b"\r\n")[:3]) + b"\r\n"
        assert received.startswith(b"Received: from ") and b"\r\n\tfor <alice@example.org>; " in received
        expected = trace + received + listed
        assert body == expected
        assert body == on_disk.replace(b"\n", b"\r\n")
        assert f"RFC822.SIZE {len(expected)}".encode() in meta

        typ, data = imap.select("INBOX", readonly=True)
        assert data == [b"1"]
        typ, data = imap.fetch("1", "(FLAGS BODY.PEEK[])")
        assert data[0][1].endswith(plain) and b"\\Seen" not in data[0][0]
        imap.logout()
    except imaplib.IMAP4.error as e:
        pytest.fail(f"IMAP error {e}\n{dovecot.log()}")
    finally:
        dovecot.stop()
