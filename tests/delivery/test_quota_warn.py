"""Quota warning mails (sieve/delivery/quota_warn.py, wired in sieve/delivery/executor.py).

The decision alone (which threshold a delivery crossed), the message it writes (RFC 5322,
RFC 2047, RFC 3834 Auto-Submitted, cleaned header values), the settings' checks at load; then
real deliveries: the LMTP state machine (sieve.delivery.lmtp) answered by the real UserResolver
and Executor on a files directory with a quota, and the LDA in-process (`lda_main`), as in
tests/delivery/test_quota_edge.py. Optionally a private Dovecot (tests/harness/dovecot.py)
lists the warning over IMAP.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from owlery.directory import open_directory
from owlery.maildir import Maildir, MaildirError, Quota
from owlery.reply import Reply
from owlery.settings import Settings, SettingsError
from sieve.delivery import lmtp, quota_warn
from sieve.delivery import executor as executor_mod
from sieve.delivery.users import UserResolver

LIMIT = 100_000
QUEUE_ID = "4QW1xY2z3Kz9abc"
RECEIVED = (b"Received: from client.test (client.test [192.0.2.7])\n\tby mx.example.org (Postfix) with ESMTP "
            b"id " + QUEUE_ID.encode() + b"\n\tfor <alice@example.org>; Mon, 1 Jan 2024 00:00:00 +0000 (UTC)\n")


# --- the decision ----------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, thresholds, expected", [
    (79_000, 81_000, (80,), 80),               # crossing 80% sends one
    (81_000, 85_000, (80,), None),             # staying above sends none
    (70_000, 99_000, (80, 95), 95),            # two crossed at once: only the highest
    (79_999, 80_000, (80,), 80),               # at the threshold counts
    (80_000, 80_500, (80,), None),             # already at it before
    (79_000, 81_000, (), None),                # off
    (90_000, 120_000, (80, 95, 100), 100),     # past the limit (overrun): 100% too
    (85_000, 84_000, (80,), None),             # usage went down
])
def test_crossed(before, after, thresholds, expected):
    assert quota_warn.crossed(LIMIT, before, after, thresholds) == expected


def test_no_limit_sends_none():
    assert quota_warn.crossed(0, 0, 10**9, (1, 50, 100)) is None


def test_off_by_default():
    s = Settings()
    assert s.quota_warning_thresholds == ()
    assert quota_warn.crossed(LIMIT, 0, LIMIT, s.quota_warning_thresholds) is None


@pytest.mark.parametrize("value, why", [
    ([95, 80], "ascending"), ([80, 80], "without repeats"), ([0], "from 1 to 100"), ([101], "from 1 to 100"),
    (["x"], "integer"),
])
def test_thresholds_are_checked_at_load(value, why):
    with pytest.raises(SettingsError, match=why):
        Settings().replace(quota_warning_thresholds=value)


def test_thresholds_load_from_a_file():
    from owlery.settings import parse_text
    assert parse_text("quota_warning_thresholds = [80, 95]\n").quota_warning_thresholds == (80, 95)


@pytest.mark.parametrize("key, value, why", [
    ("quota_warning_subject", "{nope}% full", "unknown placeholder"),
    ("quota_warning_subject", "{percent.__class__}", "unknown placeholder"),
    ("quota_warning_body", "{percent!r}", "no conversion"),
    ("quota_warning_body", "a { b", "braces"),
    ("quota_warning_from", "postmaster@{percent}", "unknown placeholder"),
    ("quota_warning_from", "nobody", "one address"),
])
def test_templates_are_checked_at_load(key, value, why):
    with pytest.raises(SettingsError, match=why):
        Settings().replace(**{key: value})


# --- the message -------------------------------------------------------------------------------

def build(**over):
    args = dict(threshold=80, address="alice@example.org", usage=81_000, limit=LIMIT,
                from_template="postmaster@{domain}", subject_template="Your mailbox is {percent}% full",
                body_template=Settings().quota_warning_body, now=1_700_000_000, hostname="mx.example.org")
    args.update(over)
    return quota_warn.build_message(**args)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_message_headers_and_body():
    raw = build()
    assert b"\r" not in raw                                  # stored with LF ends, as every delivery
    m = parse(raw)
    assert m["From"] == "postmaster@example.org" and m["To"] == "alice@example.org"
    assert m["Subject"] == "Your mailbox is 80% full"
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["Message-ID"].startswith("<1700000000.") and m["Message-ID"].endswith("@mx.example.org>")
    assert m["Date"].datetime.timestamp() == 1_700_000_000
    assert m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"
    body = m.get_content()
    assert "alice@example.org has reached 80%" in body and "79.1 KiB of 97.7 KiB" in body
    assert not m.defects


def test_non_ascii_subject_is_rfc2047_and_controls_are_cleaned():
    raw = build(subject_template="Postfach {percent}% voll\r\nBcc: evil@attacker.test",
                from_template="Système <postmaster@{domain}>")
    head = raw.split(b"\n\n", 1)[0]
    assert head.isascii()
    assert b"\nBcc:" not in head and b"=?utf-8?" in head
    m = parse(raw)
    assert m["Subject"] == "Postfach 80% voll Bcc: evil@attacker.test"
    assert m["From"].addresses[0].display_name == "Système"
    assert m["Bcc"] is None


def test_an_address_that_cannot_be_a_header_is_refused():
    with pytest.raises(ValueError):
        build(address="al\nice@example.org")


def test_body_file_variant(tmp_path):
    s = Settings().replace(quota_warning_body_file=str(tmp_path / "body.txt"))
    raw = quota_warn.from_settings(s, threshold=95, address="alice@example.org", usage=96_000, limit=LIMIT,
                                   now=1_700_000_000, hostname="mx", read_file=lambda p: "Fast voll: {percent}%\n")
    assert parse(raw).get_content() == "Fast voll: 95%\n"
    with pytest.raises(ValueError, match="unknown placeholder"):
        quota_warn.from_settings(s, threshold=95, address="alice@example.org", usage=1, limit=LIMIT,
                                 now=0, hostname="mx", read_file=lambda p: "{oops}")


# --- through real deliveries ---------------------------------------------------------------------

def settings_for(tmp_path, **over) -> Settings:
    (tmp_path / "mailboxes").write_text("alice@example.org example.org/alice\n")
    (tmp_path / "quotas").write_text(f"alice@example.org {LIMIT}S\n")
    values = dict(files_mailboxes=str(tmp_path / "mailboxes"), files_quotas=str(tmp_path / "quotas"),
                  files_maildir_base=str(tmp_path / "mail"),
                  maildir_path_template=str(tmp_path / "mail/{domain}/{localpart}"),
                  delivery_sieve_script_template=str(tmp_path / "sieve/{localpart}.sieve"),
                  state_backend="memory", maildir_fsync="never", quota_warning_thresholds=[80, 95])
    values.update(over)
    return Settings().replace(**values)


def mailbox(tmp_path) -> Path:
    return tmp_path / "mail/example.org/alice"


def fill(root: Path, used: int) -> None:
    """A mailbox using `used` bytes of its LIMIT (as our delivery or Dovecot keeps maildirsize)."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # A filler message on disk that sums to the file (in .Filler/: inbox() reads new/ and cur/),
    # so a recount agrees with maildirsize.
    (root / ".Filler/cur").mkdir(parents=True, exist_ok=True)
    (root / f".Filler/cur/1.M1P1.fill,S={used}:2,S").write_bytes(b"")
    (root / "maildirsize").write_text(f"{LIMIT}S\n{used} 1\n")


def message(size: int) -> bytes:
    head = RECEIVED + b"From: bob@sender.test\nTo: alice@example.org\nSubject: hello\n\n"
    return head + b"x" * (size - len(head) - 1) + b"\n"


def lmtp_session(settings, msg: bytes) -> list[str]:
    """One LMTP transaction for alice@example.org (queue id as lmtpd takes it); the final replies."""
    resolver = UserResolver(settings, open_directory(settings))
    executor = executor_mod.DeliveryExecutor(settings, program="lmtpd")
    server = lmtp.LMTPServer("mx.example.org", lmtp.Limits())
    out: list[bytes] = []

    def act(actions):
        for a in actions:
            if isinstance(a, lmtp.SendReply):
                out.append(a.data)
            elif isinstance(a, lmtp.CheckRecipient):
                user = resolver.lookup(a.address)
                reply = Reply(250, "2.1.5", "Ok") if user else Reply(550, "5.1.1", "unknown")
                act(server.recipient_checked(reply, user))
            elif isinstance(a, lmtp.Deliver):
                t = a.transaction
                qid = lmtp.postfix_queue_id(t.message)
                act(server.delivered([executor.deliver(t.message, t.sender, r.address, r.user, queue_id=qid).reply
                                      for r in t.recipients]))

    act(server.start())
    act(server.feed(b"LHLO mx.example.org\r\nMAIL FROM:<bob@sender.test>\r\n"
                    b"RCPT TO:<alice@example.org>\r\nDATA\r\n"))
    act(server.feed(msg.replace(b"\n", b"\r\n") + b".\r\nQUIT\r\n"))
    executor.close()
    return [line for line in b"".join(out).decode().split("\r\n") if line and not line.startswith("250-")]


def inbox(root: Path) -> list[bytes]:
    return [p.read_bytes() for sub in ("new", "cur") if (root / sub).is_dir() for p in sorted((root / sub).iterdir())]


def warnings_in(root: Path) -> list:
    return [parse(raw) for raw in inbox(root) if b"\nAuto-Submitted: auto-generated\n" in raw]


def warning_lines(caplog, action="quota-warning"):
    return [r for r in caplog.records if f": {action}:" in r.getMessage()]


def test_crossing_stores_one_warning_and_the_next_delivery_none(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    s = settings_for(tmp_path)
    root = mailbox(tmp_path)
    fill(root, 79_000)
    replies = lmtp_session(s, message(2_000))
    assert replies[-2].startswith("250 2.0.0 <alice@example.org>"), replies
    [w] = warnings_in(root)
    assert w["Subject"] == "Your mailbox is 80% full"
    assert (w["From"], w["To"], w["Auto-Submitted"]) == ("postmaster@example.org", "alice@example.org",
                                                         "auto-generated")
    assert w["Message-ID"] and w["Date"] and w.get_content_charset() == "utf-8"
    assert "has reached 80%" in w.get_content()
    warning_size = len([raw for raw in inbox(root) if b"Auto-Submitted" in raw][0])
    used = Maildir(str(root)).usage(Quota(LIMIT))
    assert used.bytes == 79_000 + 2_000 + len(b"Return-Path: <bob@sender.test>\nDelivered-To: alice@example.org\n") \
        + warning_size                                                    # the warning is counted
    [line] = warning_lines(caplog)
    text = line.getMessage()
    assert text.startswith(f"lmtpd: {QUEUE_ID}: quota-warning:") and "to=<alice@example.org>" in text \
        and "threshold=80%" in text and f"limit={LIMIT}" in text
    # the next message, still between 80% and 95%: no second warning
    caplog.clear()
    assert lmtp_session(s, message(1_000))[-2].startswith("250 2.0.0"), replies
    assert len(inbox(root)) == 3 and len(warnings_in(root)) == 1
    assert not warning_lines(caplog)


def test_from_70_to_99_warns_once_for_95(tmp_path):
    s = settings_for(tmp_path)
    root = mailbox(tmp_path)
    fill(root, 70_000)
    assert lmtp_session(s, message(29_000))[-2].startswith("250 2.0.0")
    assert [w["Subject"] for w in warnings_in(root)] == ["Your mailbox is 95% full"]


def test_off_by_default_no_warning(tmp_path):
    s = settings_for(tmp_path, quota_warning_thresholds=[])
    root = mailbox(tmp_path)
    fill(root, 79_000)
    assert lmtp_session(s, message(2_000))[-2].startswith("250 2.0.0")
    assert len(inbox(root)) == 1 and not warnings_in(root)


def test_a_failed_warning_write_leaves_the_delivery_successful(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    real = Maildir.deliver

    def deliver(self, msg, *args, **kw):
        if b"Auto-Submitted: auto-generated" in msg:
            raise MaildirError("disk on fire")
        return real(self, msg, *args, **kw)

    monkeypatch.setattr(Maildir, "deliver", deliver)
    s = settings_for(tmp_path)
    root = mailbox(tmp_path)
    fill(root, 79_000)
    replies = lmtp_session(s, message(2_000))
    assert replies[-2].startswith("250 2.0.0 <alice@example.org>"), replies
    assert len(inbox(root)) == 1 and not warnings_in(root)
    [line] = warning_lines(caplog, "quota-warning-failed")
    assert line.levelno == logging.WARNING and QUEUE_ID in line.getMessage() and "disk on fire" in line.getMessage()
    assert not warning_lines(caplog)


def test_a_bad_body_file_costs_the_warning_only(tmp_path, caplog):
    s = settings_for(tmp_path, quota_warning_body_file=str(tmp_path / "missing.txt"))
    root = mailbox(tmp_path)
    fill(root, 79_000)
    assert lmtp_session(s, message(2_000))[-2].startswith("250 2.0.0")
    assert len(inbox(root)) == 1
    assert warning_lines(caplog, "quota-warning-failed")


def test_lda_user_over_quota_still_gets_the_warning(tmp_path, caplog):
    """The overrun allowance takes the mailbox past 100%; the warning is stored anyway (never
    refused for quota) and counted, through `owlery lda` in-process."""
    from sieve.delivery.cli import lda_main
    caplog.set_level(logging.INFO)
    root = tmp_path / "mail/example.org/alice/Maildir"
    conf = tmp_path / "owlery.toml"
    conf.write_text(f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n'
                    f'delivery_sieve_script_template = "{tmp_path}/sieve/{{localpart}}.sieve"\n'
                    'state_backend = "memory"\ndelivery_use_directory = false\nmaildir_fsync = "never"\n'
                    f'delivery_quota_size = {LIMIT}\nquota_warning_thresholds = [80, 100]\n')
    fill(root, LIMIT - 500)
    status = lda_main(["-c", str(conf), "-f", "bob@sender.test", "-d", "alice@example.org"], message(2_000))
    assert status == 0
    [w] = warnings_in(root)
    assert w["Subject"] == "Your mailbox is 100% full"
    used = Maildir(str(root)).usage(Quota(LIMIT))
    assert used.bytes > LIMIT and used.bytes == LIMIT - 500 + sum(len(raw) for raw in inbox(root))
    [line] = warning_lines(caplog)
    assert line.getMessage().startswith(f"lda: {QUEUE_ID}: quota-warning:")
    # the mailbox is full now: the next message is refused, and no warning comes with it
    assert lda_main(["-c", str(conf), "-f", "bob@sender.test", "-d", "alice@example.org"], message(2_000)) == 77
    assert len(warnings_in(root)) == 1


# --- Dovecot lists it (optional: needs root and dovecot) ----------------------------------------

@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dovecot"), reason="needs root and dovecot")
def test_dovecot_lists_the_warning():
    from tests.harness.dovecot import DovecotInstance
    work = Path(tempfile.mkdtemp(prefix="owlery-quota-warn-"))
    try:
        os.chmod(work, 0o755)
        home = work / "home"
        home.mkdir()
        nobody = pwd.getpwnam("nobody")
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        fill(home / "Maildir", 79_000)
        for d, _, files in os.walk(home):
            for name in [d] + [os.path.join(d, f) for f in files]:
                os.chown(name, nobody.pw_uid, nobody.pw_gid)
        s = settings_for(work, maildir_path_template=str(home / "Maildir"), maildir_owner="nobody")
        (work / "mailboxes").write_text("alice@example.org\n")     # the path template, not the base
        assert lmtp_session(s, message(2_000))[-2].startswith("250 2.0.0")
        with DovecotInstance(work / "dovecot", {"alice@example.org": str(home)}) as dovecot:
            imap = dovecot.imap("alice@example.org")
            imap.select("INBOX")
            typ, data = imap.search(None, "HEADER", "Auto-Submitted", "auto-generated")
            assert typ == "OK" and len(data[0].split()) == 1, data
            typ, got = imap.fetch(data[0].split()[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert b"Your mailbox is 80% full" in got[0][1]
            imap.logout()
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
