"""`owlery lda` run by Postfix's local(8): as mailbox_command and as an alias's |command.

local(8) hands a command the message behind a "From sender time_stamp" line, with Return-Path,
X-Original-To and Delivered-To prepended, and the recipient in $RECIPIENT (local(8), "EXTERNAL
COMMAND DELIVERY"). A bare `mailbox_command = .../owlery-lda -c FILE` (no -f, -a or -d, as
dovecot-lda is often configured) must store the message without that line and with each trace
field once, see the sender the line names (Sieve's envelope "from"; <> for MAILER-DAEMON), and
deliver to $RECIPIENT's mailbox; an alias `|command` likewise, and a vacation reply from it goes
to the sender the line named, through Postfix. The user `nobody` is the passwd account
local(8) runs the mailbox_command for (the test needs no account of its own).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from owlery.app.postfix import lda_command
from tests.delivery.daemon import base_config, remove_workdir, shared_workdir
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
OWLERY_LDA = lda_command(str(ROOT / ".venv" / "bin" / "owlery"))
FILE_BY_SENDER = ('require ["envelope", "fileinto", "variables", "mailbox"];\n'
                  'if envelope :matches "from" "*" { fileinto :create "f-${1}"; }\n')
VACATION = 'require "vacation";\nvacation :days 1 :subject "Away" "Back on Monday.";\n'


@pytest.fixture(scope="module")
def stack(postfix_factory):
    work = shared_workdir("owlery-lda-local8-")
    nobody = pwd.getpwnam("nobody")
    scripts = {"nobody": FILE_BY_SENDER, "dora": FILE_BY_SENDER, "erin": VACATION}
    for user, script in scripts.items():
        d = work / "mail" / "local.test" / user / "sieve"
        d.mkdir(parents=True)
        (d / "active.sieve").write_text(script)
    (work / "state").mkdir()
    for root, dirs, files in os.walk(work):
        for p in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
    conf = work / "lda.toml"
    aliases = work / "aliases"
    # Alias commands run as default_privs (nobody), the mailbox_command as the user (nobody).
    aliases.write_text(f'dora: "|{OWLERY_LDA} -c {conf} -d dora@local.test"\n'
                       f'erin: "|{OWLERY_LDA} -c {conf} -d erin@local.test"\n')
    pf = postfix_factory(name="lda-local8", main_cf={
        "mydestination": "local.test", "local_transport": "local", "recipient_delimiter": "+",
        "mailbox_command": f"{OWLERY_LDA} -c {conf}",
        "alias_maps": f"hash:{aliases}", "alias_database": f"hash:{aliases}"})
    subprocess.run(["postalias", "-c", str(pf.config_dir), str(aliases)], check=True, timeout=30)
    conf.write_text(base_config(work) + f'submission_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n'
                    + "delivery_use_directory = false\n" + f'lda_log_path = "{work}/state/lda.log"\n'
                    + f'lmtpd_listen = ["unix:{work}/no-lmtpd.sock"]\n')
    try:
        yield pf, work
    finally:
        pf.stop()
        remove_workdir(work)


def stored(work: Path, user: str) -> list[tuple[str, bytes]]:
    base = work / "mail" / "local.test" / user / "Maildir"
    return [(d.name, f.read_bytes()) for d in [base, *base.glob(".*")] for sub in ("new", "cur")
            if (d / sub).is_dir() for f in (d / sub).iterdir()]


def debug(pf, work) -> str:
    log = work / "state" / "lda.log"
    return f"--- lda ---\n{log.read_text()[-2000:] if log.exists() else ''}\n--- maillog ---\n{pf.maillog()[-3000:]}"


def one_message(pf, work, user, subject):
    try:
        found = wait_until(lambda: [m for m in stored(work, user) if f"Subject: {subject}".encode() in m[1]],
                           30, f"{subject} for {user}")
    except Exception:  # noqa: BLE001  show the stack's state, whatever went wrong
        pytest.fail(debug(pf, work))
    assert len(found) == 1
    return found[0]


def test_bare_mailbox_command_takes_sender_and_recipient_from_local8(stack):
    pf, work = stack
    msg = build_message(sender="dev@remote.test", to="nobody+x@local.test", subject="via mailbox_command")
    assert pf.send("dev@remote.test", ["nobody+x@local.test"], msg).accepted
    folder, data = one_message(pf, work, "nobody", "via mailbox_command")
    assert folder == ".f-dev@remote.test", debug(pf, work)
    assert data.startswith(b"Return-Path: <dev@remote.test>\nX-Original-To: nobody+x@local.test\n"
                           b"Delivered-To: nobody+x@local.test\nReceived: "), data[:300]
    assert data.count(b"Return-Path:") == 1 and data.count(b"Delivered-To:") == 1
    assert b"\nFrom dev@remote.test " not in data and not data.startswith(b"From ")
    pf.wait_for_log(r"to=<nobody\+x@local\.test>.*status=sent \(delivered to command")


def test_bounce_through_mailbox_command_has_the_null_sender(stack):
    pf, work = stack
    msg = build_message(sender="", to="nobody@local.test", subject="a bounce")
    assert pf.send("", ["nobody@local.test"], msg).accepted
    folder, data = one_message(pf, work, "nobody", "a bounce")
    assert folder == ".f-", debug(pf, work)             # envelope "from" is "" (local(8): MAILER-DAEMON)
    assert data.startswith(b"Return-Path: <>\n") and data.count(b"Return-Path:") == 1


def test_alias_command_and_a_vacation_reply_to_the_sender_the_line_named(stack):
    pf, work = stack
    msg = build_message(sender="ann@remote.test", to="dora@local.test", subject="via alias")
    assert pf.send("ann@remote.test", ["dora@local.test"], msg).accepted
    folder, data = one_message(pf, work, "dora", "via alias")
    assert folder == ".f-ann@remote.test" and data.startswith(b"Return-Path: <ann@remote.test>\n"), data[:300]
    assert data.count(b"Delivered-To:") == 1 and not data.startswith(b"From ")

    pf.clear_sent()
    msg = build_message(sender="gus@remote.test", to="erin@local.test", subject="are you there")
    assert pf.send("gus@remote.test", ["erin@local.test"], msg).accepted
    one_message(pf, work, "erin", "are you there")
    try:
        replies = [m for m in pf.wait_sent(1, timeout=30) if m.rcpts == ["gus@remote.test"]]
    except Exception:  # noqa: BLE001
        pytest.fail(debug(pf, work))
    assert len(replies) == 1 and replies[0]["Subject"] == "Away", debug(pf, work)
