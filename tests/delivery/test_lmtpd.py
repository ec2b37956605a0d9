"""`owlery lmtpd` as a real process: LMTP over TCP into Maildir, users from the files directory.

Proves: one reply per recipient after DATA (one over quota: 552 5.2.2, the other 250),
unknown users refused at RCPT, Return-Path/Delivered-To added, a Received header per
recipient (`for <rcpt>`), decision log lines keyed by the Postfix queue id, files owned by
maildir_owner.
"""

from __future__ import annotations

import os
import pwd
import re
import socket

import pytest

from tests.delivery.daemon import Lmtpd
from tests.harness.procs import wait_for_text


@pytest.fixture(scope="module")
def lmtpd(tmp_path_factory):
    work = tmp_path_factory.mktemp("lmtpd")
    os.chmod(work, 0o755)
    (work / "mailboxes").write_text("alice@example.org\nbob@example.org\n")
    (work / "quotas").write_text("bob@example.org 1k\n")
    lmtpd = Lmtpd(work, f"""
maildir_path_template = "{work}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{work}/mail/{{domain}}/{{localpart}}/active.sieve"
files_mailboxes = "{work}/mailboxes"
files_quotas = "{work}/quotas"
state_sqlite_path = "{work}/state.sqlite"
maildir_owner = "nobody"
""")
    try:
        yield lmtpd.start().port, work
    finally:
        lmtpd.stop()


def converse(port, lines, data=None, replies_after_data=0):
    """Send commands one by one; return every reply line (the DATA replies at the end)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")

        def reply():
            out = []
            while True:
                line = f.readline().decode()
                out.append(line.rstrip("\r\n"))
                if line[3:4] != "-":
                    return out
        got = reply()
        for line in lines:
            s.sendall(line.encode() + b"\r\n")
            got += reply()
        if data is not None:
            s.sendall(data)
            for _ in range(replies_after_data):
                got += reply()
        s.sendall(b"QUIT\r\n")
        got += reply()
    return got


def test_two_recipients_one_over_quota_get_two_replies(lmtpd):
    port, work = lmtpd
    big = b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n.\r\n"
    got = converse(port, ["LHLO test", "MAIL FROM:<sender@remote.test>", "RCPT TO:<alice@example.org>",
                          "RCPT TO:<bob@example.org>", "DATA"], big, replies_after_data=2)
    assert got[-3].startswith("250 2.0.0 <alice@example.org>"), got
    assert got[-2].startswith("552 5.2.2 <bob@example.org>"), got
    new = list((work / "mail/example.org/alice/Maildir/new").iterdir())
    assert len(new) == 1
    text = new[0].read_bytes()
    assert text.startswith(b"Return-Path: <sender@remote.test>\nDelivered-To: alice@example.org\n")
    assert new[0].stat().st_uid == pwd.getpwnam("nobody").pw_uid or os.geteuid() != 0
    assert not list((work / "mail/example.org/bob/Maildir/new").iterdir()) \
        if (work / "mail/example.org/bob/Maildir/new").exists() else True


def test_unknown_user_refused_at_rcpt_and_detail_delivers_to_user(lmtpd):
    port, work = lmtpd
    got = converse(port, ["LHLO test", "MAIL FROM:<>", "RCPT TO:<nobody@example.org>",
                          "RCPT TO:<alice+tag@example.org>", "DATA"], b"Subject: d\r\n\r\nhi\r\n.\r\n",
                   replies_after_data=1)
    assert got[-5].startswith("550 5.1.1"), got
    assert got[-2].startswith("250 2.0.0 <alice+tag@example.org>"), got
    files = list((work / "mail/example.org/alice/Maildir/new").iterdir())
    assert any(b"Delivered-To: alice+tag@example.org" in p.read_bytes() for p in files)


def test_received_header_and_queue_id_in_the_log_line(lmtpd):
    port, work = lmtpd
    msg = (b"Received: from mail.remote.test (mail.remote.test [192.0.2.7])\r\n"
           b"\tby mx.example.org (Postfix) with ESMTP id 7QxTraceId1\r\n"
           b"\tfor <alice@example.org>; Sat, 21 Nov 2026 10:00:00 +0000\r\n"
           b"Subject: traced\r\n\r\nhi\r\n.\r\n")
    got = converse(port, ["LHLO mx.example.org", "MAIL FROM:<s@remote.test>", "RCPT TO:<alice@example.org>",
                          "DATA"], msg, replies_after_data=1)
    assert got[-2].startswith("250 2.0.0"), got
    [f] = [p for p in (work / "mail/example.org/alice/Maildir/new").iterdir() if b"traced" in p.read_bytes()]
    lines = f.read_bytes().split(b"\n")
    assert lines[:2] == [b"Return-Path: <s@remote.test>", b"Delivered-To: alice@example.org"]
    assert lines[2] == b"Received: from mx.example.org ([127.0.0.1])"
    assert lines[3].startswith(b"\tby ") and lines[3].endswith(b" (Owlery) with LMTP")
    assert lines[4].startswith(b"\tfor <alice@example.org>; ")
    assert lines[5].startswith(b"Received: from mail.remote.test")
    wait_for_text(lambda: (work / "lmtpd.log").read_text(),     # decision lines follow the reply
                  re.compile(r"lmtpd: 7QxTraceId1: delivered:.*to=<alice@example\.org>"))
