"""dovecot-lda's command lines and input, taken by `owlery lda` as dovecot-lda takes them.

A postmaster replacing dovecot-lda keeps the command line Postfix runs (a mailbox_command, an
alias's |command, a pipe(8) transport). Against the real dovecot-lda (Debian's dovecot-core, a
private instance: tests/harness/dovecot.py), with a Sieve script that files by `envelope "from"`:
- the leading mbox "From sender date" line that local(8) writes (and pipe(8) with flag F), in
  generated variants (senders plain, MAILER-DAEMON, empty, bracketed, quoted; Postfix's time
  stamp, other spacing, zones, a missing or broken one; LF and CRLF; a line alone): both drop
  the line, and both take the same envelope sender from it when -f is absent (none from a line
  without a valid time stamp); -f wins over it;
- -p FILE (the message from a file, stdin ignored), -e and -k (accepted; Owlery always reports a
  refusal as exit 77 on stderr and never clears the environment), -m "" (INBOX, no folder).
Owlery alone, where there is no peer behaviour to compare: -r names Delivered-To while Sieve's
envelope "to" stays -a (as dovecot-lda's envelope, checked above); with no -a, -d or -r the
recipient is $RECIPIENT, which local(8) sets; the MTA's Return-Path/X-Original-To/Delivered-To
(local(8)'s order) are kept and none added; the handoff to a running lmtpd stores the same
message. Real Postfix local(8): tests/e2e/test_lda_local_postfix.py.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from sieve.delivery.mta_input import split_mbox_from
from tests.delivery.daemon import remove_workdir, shared_workdir
from tests.delivery.test_lda_lmtp import lmtpd  # noqa: F401  (the fixture: a real lmtpd)
from tests.harness.dovecot import DOVECOT_LDA, DovecotInstance

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")
COMMANDS = {"owlery lda": [OWLERY, "lda"], "owlery-lda": [OWLERY + "-lda"]}
USER = "alice@example.org"
SCRIPT = ('require ["envelope", "fileinto", "variables", "mailbox"];\n'
          'if envelope :matches "from" "*" { fileinto :create "f-${1}"; }\n')
BODY = b"Subject: t\n\nFrom here on\nhello\n"
SEED = 20261207

SENDERS = ["bob@remote.test", "MAILER-DAEMON", "mailer-daemon", "", "<bob@remote.test>",
           "bob", "b.o-b+x@sub.remote.test", '"a b"@remote.test', '"ab"@remote.test', "bob@[192.0.2.1]",
           "@remote.test", "bob@", "b\xc3\xb6b@r\xc3\xa9mote.test"]
STAMPS = ["  Mon Dec  7 11:41:53 2026", " Mon Dec  7 11:41:53 2026", " Tue Feb 10 09:05:00 2026",
          " Mon Dec 7 11:41 2026", " Mon Dec  7 11:41:53 +0200 2026", " Mon Dec  7 11:41:53 2026 +0200",
          " Mon Dec  7 11:41:53 EET 2026", "", " Mon", " yesterday", " Mon Foo  7 11:41:53 2026",
          " Mon Dec 32 11:41:53 2026", " Mon Dec  7 1:41:53 2026", " Mon Dec  7 11:41:53",
          " Mon Dec  7 11:41:53 2026 remote from uucphost", " Mon, 7 Dec 2026 11:41:53 +0000",
          "\tMon Dec  7 11:41:53 2026", " Mon Dec  7 11:41:53 26"]


def from_line_cases() -> list[bytes]:
    """Every sender with Postfix's stamp, every stamp with a plain sender, then random pairs."""
    cases = [b"From " + s.encode("latin-1") + STAMPS[0].encode() for s in SENDERS]
    cases += [b"From bob@remote.test" + t.encode() for t in STAMPS[1:]]
    rnd = random.Random(SEED)
    cases += [b"From " + rnd.choice(SENDERS).encode("latin-1") + rnd.choice(STAMPS).encode() for _ in range(24)]
    out = []
    for i, line in enumerate(cases):
        eol = b"\r\n" if i % 5 == 4 else b"\n"
        out.append(line + eol + BODY.replace(b"\n", eol))
    return out + [b"From bob@remote.test  Mon Dec  7 11:41:53 2026", b"From: bob@remote.test\n" + BODY]


@pytest.fixture(scope="module")
def dovecot_lda():
    """run(message, *args) -> (sender the script saw, stored bytes) through the real dovecot-lda."""
    work = shared_workdir("owlery-dovecot-lda-")       # Dovecot's auth process must reach it
    home = work / "home" / "alice"
    (home / "sieve").mkdir(parents=True)
    (home / "sieve" / "active.sieve").write_text(SCRIPT)
    inst = DovecotInstance(work / "dovecot", {USER: str(home)}).start()

    def run(message: bytes, *args: str, stdin: bytes | None = None):
        maildir = home / "Maildir"
        shutil.rmtree(maildir, ignore_errors=True)
        r = subprocess.run([DOVECOT_LDA, "-c", str(inst.conf_path), *args], input=message if stdin is None else stdin,
                           capture_output=True, timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, inst.log())
        return stored_one(maildir)
    try:
        yield run
    finally:
        inst.stop()
        remove_workdir(work)


def stored_one(maildir: Path) -> tuple[str | None, bytes]:
    """(sender the script filed by, or None for INBOX; the message) of the one stored message."""
    found = [(d.name, f) for d in [maildir, *maildir.glob(".*")] for sub in ("new", "cur")
             if (d / sub).is_dir() for f in (d / sub).iterdir()]
    assert len(found) == 1, found
    name, f = found[0]
    return (name[3:] if name.startswith(".f-") else None), f.read_bytes()


def owlery_config(tmp_path: Path, extra: str = "") -> str:
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
lmtpd_listen = ["unix:{tmp_path}/no-lmtpd-here.sock"]
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_backend = "memory"
delivery_use_directory = false
{extra}
""")
    script = tmp_path / "mail/example.org/alice/sieve/active.sieve"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SCRIPT)
    return str(conf)


def owlery_run(tmp_path: Path, command: str, message: bytes, *args: str, env: dict | None = None,
               conf: str | None = None):
    maildir = tmp_path / "mail/example.org/alice/Maildir"
    shutil.rmtree(maildir, ignore_errors=True)
    r = subprocess.run([*COMMANDS[command], "-c", conf or owlery_config(tmp_path), *args], input=message,
                       capture_output=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return stored_one(maildir)


def owlery_trace(sender: str, recipient: str = USER) -> bytes:
    return f"Return-Path: <{sender}>\nDelivered-To: {recipient}\n".encode()


def test_from_lines_are_dropped_and_name_the_sender_as_for_dovecot_lda(dovecot_lda):
    """The pure function against dovecot-lda on every generated variant; then, for a few of
    them, the two real commands, which store dovecot-lda's message behind their own trace lines."""
    cases = from_line_cases()
    disagreements = []
    for message in cases:
        peer_sender, peer_stored = dovecot_lda(message, "-d", USER)
        sender, rest = split_mbox_from(message)
        ours = (sender or "", rest.replace(b"\r\n", b"\n"))    # no sender named: <>
        if ours != (peer_sender, peer_stored):
            disagreements.append((message[:60], ours[0], peer_sender, ours[1][:40], peer_stored[:40]))
    assert not disagreements, "\n".join(map(repr, disagreements))
    assert len(cases) >= 50


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_commands_store_what_dovecot_lda_stores(tmp_path, dovecot_lda, command):
    conf = owlery_config(tmp_path)
    for message, args in [(b"From bob@remote.test  Mon Dec  7 11:41:53 2026\n" + BODY, ()),
                          (b"From MAILER-DAEMON  Mon Dec  7 11:41:53 2026\r\n" + BODY.replace(b"\n", b"\r\n"), ()),
                          (b"From bob@remote.test yesterday\n" + BODY, ()),
                          (b"From bob@remote.test  Mon Dec  7 11:41:53 2026\n" + BODY, ("-f", "carol@x.test")),
                          (b"From bob@remote.test  Mon Dec  7 11:41:53 2026\n" + BODY, ("-f", "")),
                          (BODY, ())]:
        peer_sender, peer_stored = dovecot_lda(message, "-d", USER, *args)
        sender, stored = owlery_run(tmp_path, command, message, "-d", USER, *args, conf=conf)
        assert sender == peer_sender, (message, args)
        assert stored == owlery_trace(sender or "") + peer_stored, (message, args)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_p_e_k_and_empty_m_as_in_dovecot_lda(tmp_path, dovecot_lda, command):
    conf = owlery_config(tmp_path)
    shared = shared_workdir("owlery-lda-p-")       # dovecot-lda reads it as the mail user
    source = shared / "queued.eml"
    source.write_bytes(b"Subject: from the file\n\nhello\n")
    source.chmod(0o644)
    try:
        _p_e_k_and_empty_m(tmp_path, dovecot_lda, command, conf, source)
    finally:
        remove_workdir(shared)


def _p_e_k_and_empty_m(tmp_path, dovecot_lda, command, conf, source):
    for args, stdin in [(("-p", str(source)), b"Subject: from stdin\n\nx\n"), (("-e", "-k"), None),
                        (("-ek",), None), (("-m", ""), None)]:
        peer = dovecot_lda(BODY, "-d", USER, "-f", "s@remote.test", *args, stdin=stdin)
        ours = owlery_run(tmp_path, command, BODY if stdin is None else stdin, "-d", USER, "-f", "s@remote.test",
                          *args, conf=conf)
        assert ours[0] == peer[0] == "s@remote.test", args
        assert ours[1] == owlery_trace("s@remote.test") + peer[1], args


def test_unreadable_p_file_is_a_temporary_failure(tmp_path):
    r = subprocess.run([OWLERY, "lda", "-c", owlery_config(tmp_path), "-d", USER, "-p", str(tmp_path / "gone")],
                       input=BODY, capture_output=True, timeout=60)
    assert r.returncode == 75 and r.stderr.startswith(b"4.3.0 owlery lda: cannot read the message"), r.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_r_names_delivered_to_and_envelope_to_stays_a(tmp_path, command):
    conf = owlery_config(tmp_path)
    script = tmp_path / "mail/example.org/alice/sieve/active.sieve"
    script.write_text('require ["envelope", "fileinto", "variables", "mailbox"];\n'
                      'if envelope :matches "to" "*" { fileinto :create "f-${1}"; }\n')
    sender, stored = owlery_run(tmp_path, command, BODY, "-f", "s@remote.test", "-a", "alice+a@example.org",
                                "-r", "alice+r@example.org", "-d", USER, conf=conf)
    assert sender == "alice+a@example.org"
    assert stored == owlery_trace("s@remote.test", "alice+r@example.org") + BODY
    # -r alone is the recipient as well
    sender, stored = owlery_run(tmp_path, command, BODY, "-f", "s@remote.test", "-r", "alice+r@example.org",
                                conf=conf)
    assert sender == "alice+r@example.org" and stored == owlery_trace("s@remote.test", "alice+r@example.org") + BODY


LOCAL8 = (b"From bob@remote.test  Mon Dec  7 11:41:53 2026\nReturn-Path: <bob@remote.test>\n"
          b"X-Original-To: alice+x@example.org\nDelivered-To: alice+x@example.org\n")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bare_mailbox_command_takes_the_recipient_from_local8s_environment(tmp_path, command):
    env = {**os.environ, "RECIPIENT": "alice+x@example.org"}
    sender, stored = owlery_run(tmp_path, command, LOCAL8 + BODY, env=env)
    assert sender == "bob@remote.test"
    assert stored == LOCAL8.split(b"\n", 1)[1] + BODY      # the MTA's trace kept, none added
    env.pop("RECIPIENT")
    r = subprocess.run([*COMMANDS[command], "-c", owlery_config(tmp_path)], input=BODY, capture_output=True,
                       timeout=60, env=env)
    assert r.returncode == 75 and r.stderr.startswith(b"4.3.5"), r.stderr


@pytest.mark.parametrize("head", [b"X-Original-To: alice@example.org\nDelivered-To: alice@example.org\n",
                                  b"X-Original-To: alice@example.org\nReturn-Path: <s@remote.test>\n"])
def test_trace_fields_after_x_original_to_are_the_mtas(tmp_path, head):
    sender, stored = owlery_run(tmp_path, "owlery-lda", head + BODY, "-f", "s@remote.test", "-d", USER)
    assert stored == head + BODY


def test_a_trace_field_further_down_came_with_the_message(tmp_path):
    head = b"Subject: t\nDelivered-To: someone@else.test\n"
    sender, stored = owlery_run(tmp_path, "owlery-lda", head + b"\nx\n", "-f", "s@remote.test", "-d", USER)
    assert stored == owlery_trace("s@remote.test") + head + b"\nx\n"


def test_handoff_to_lmtpd_drops_the_from_line_and_the_mtas_doubles(tmp_path, lmtpd):  # noqa: F811
    """Through lmtpd: the From line names the sender, local(8)'s Return-Path and Delivered-To
    (X-Original-To between them) are replaced by lmtpd's own, so each is there once."""
    port, work = lmtpd
    (work / "mail/example.org/alice").mkdir(parents=True, exist_ok=True)
    (work / "mail/example.org/alice/active.sieve").write_text(SCRIPT)
    conf = owlery_config(tmp_path, f'lda_lmtp_endpoint = "tcp:127.0.0.1:{port}"')
    env = {**os.environ, "RECIPIENT": "alice+x@example.org"}
    r = subprocess.run([*COMMANDS["owlery-lda"], "-c", conf], input=LOCAL8 + BODY, capture_output=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "mail/example.org/alice/Maildir").exists()      # not in-process
    sender, stored = stored_one(work / "mail/example.org/alice/Maildir")
    assert sender == "bob@remote.test"
    assert stored.startswith(b"Return-Path: <bob@remote.test>\nDelivered-To: alice+x@example.org\n")
    assert stored.count(b"Return-Path:") == 1 and stored.count(b"Delivered-To:") == 1
    assert b"X-Original-To: alice+x@example.org\n" in stored and stored.endswith(BODY)
    assert b"From bob" not in stored
