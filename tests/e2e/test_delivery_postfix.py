"""Sieve delivery behind a real Postfix: over LMTP (`owlery lmtpd`); through pipe(8)
transports running as user nobody: `owlery lda` in-process (pipe.test), the pipe command
`owlery postfix` prints (`owlery-lda`) in-process (ldain.test), and `owlery-lda` with
lda_lmtp_endpoint, handing the message on to lmtpd (fast.test).

For each transport: a user's script files mail into a folder and flags it; a script sees the
+detail of the address (through the pipes: -a dora+x@ differs from -d dora@, which the
fast path hands to lmtpd as X-OWLERY-USER); a vacation reply
goes out once (not again within :days) and never to a list message; a redirect loop between
two users stops (the message ends in the first user's INBOX, Postfix's queue empties).
Generated mail (vacation, redirects) goes back into Postfix's reinjection port; replies to
remote addresses land in the instance's smtp-sink. lmtpd's decision lines carry the queue id
Postfix gave the message (read from its Received header), for both LMTP and the fast path.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from owlery.app.postfix import lda_command
from tests.delivery.daemon import Lmtpd, base_config, remove_workdir, shared_workdir
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
OWLERY = ROOT / ".venv" / "bin" / "owlery"
OWLERY_LDA = lda_command(str(OWLERY))      # what `owlery postfix` puts in master.cf

SCRIPTS = {
    "frank": """require ["fileinto", "imap4flags", "mailbox"];
if header :contains "Subject" "[owlery]" { fileinto :create :flags "\\\\Flagged" "Projects/Owlery"; stop; }
""",
    "carol": """require "vacation";
vacation :days 1 :subject "Away" "I am away until Monday.";
""",
    "alice": 'redirect "bob@{domain}";\n',
    "bob": 'redirect "alice@{domain}";\n',
    "dora": """require ["envelope", "subaddress", "fileinto", "mailbox"];
if envelope :detail "to" "x" { fileinto :create "Detail"; }
""",
}
DOMAINS = ("lmtp.test", "pipe.test", "ldain.test", "fast.test")
# The pipe transports that deliver in-process, as nobody, with lda.toml.
IN_PROCESS = {"pipe.test": "owlerylda", "ldain.test": "owlerylda2"}


@pytest.fixture(scope="module")
def stack(postfix_factory):
    work = shared_workdir("owlery-delivery-e2e-")
    nobody = pwd.getpwnam("nobody")
    for domain in DOMAINS:
        for user, script in SCRIPTS.items():
            d = work / "mail" / domain / user / "sieve"
            d.mkdir(parents=True)
            (d / "active.sieve").write_text(script.replace("{domain}", domain))
    # The LDA runs as nobody: its mail tree and state directory are nobody's.
    for domain in IN_PROCESS:
        for root, dirs, files in os.walk(work / "mail" / domain):
            for p in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
    (work / "state-lda").mkdir()
    os.chown(work / "state-lda", nobody.pw_uid, nobody.pw_gid)
    (work / "mail").chmod(0o755)
    os.chown(work / "mail", nobody.pw_uid, nobody.pw_gid)

    lda_conf = work / "lda.toml"
    fast_conf = work / "lda-fast.toml"
    pf = postfix_factory(
        name="delivery-postfix",
        main_cf={"recipient_delimiter": "+",
                 **{f"{t}_destination_recipient_limit": "1" for t in ("owlerylda", "owlerylda2", "owlerylmtplda")}},
        master_cf_extra=(
            "owlerylda unix - n n - - pipe\n"
            f"  flags=DRhu user=nobody argv={OWLERY} lda -c {lda_conf} -f ${{sender}} "
            "-a ${original_recipient} -d ${user}@${nexthop}\n"
            "owlerylda2 unix - n n - - pipe\n"
            f"  flags=DRhu user=nobody argv={OWLERY_LDA} -c {lda_conf} -f ${{sender}} "
            "-a ${original_recipient} -d ${user}@${nexthop}\n"
            "owlerylmtplda unix - n n - - pipe\n"
            f"  flags=DRhu user=nobody argv={OWLERY_LDA} -c {fast_conf} -f ${{sender}} "
            "-a ${original_recipient} -d ${user}@${nexthop}\n"),
        transports={"pipe.test": "owlerylda:"})
    submission = f'submission_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n'
    lda_conf.write_text(base_config(work).replace(f"{work}/state/", f"{work}/state-lda/")
                        + submission + "delivery_use_directory = false\n"
                        + f'lda_log_path = "{work}/state-lda/lda.log"\n')
    lmtpd = Lmtpd(work, base_config(work) + submission + "delivery_use_directory = false\n").start()
    # The fast path's settings: only the endpoint (the in-process fallback would use defaults).
    fast_conf.write_text(f'lda_lmtp_endpoint = "tcp:127.0.0.1:{lmtpd.port}"\n')
    pf.configure(transports={"pipe.test": "owlerylda:", "ldain.test": "owlerylda2:",
                             "lmtp.test": f"lmtp:inet:127.0.0.1:{lmtpd.port}", "fast.test": "owlerylmtplda:"})
    try:
        yield pf, work, lmtpd
    finally:
        pf.stop()
        lmtpd.stop()
        remove_workdir(work)


def mail_files(work, domain, user, folder=""):
    base = work / "mail" / domain / user / "Maildir" / folder
    return [p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir()]


def debug(pf, work, lmtpd):
    lda_log = work / "state-lda" / "lda.log"
    return (f"--- lmtpd ---\n{lmtpd.log()[-3000:]}\n--- lda ---\n"
            f"{lda_log.read_text()[-3000:] if lda_log.exists() else ''}\n--- maillog ---\n{pf.maillog()[-3000:]}")


@pytest.mark.parametrize("domain", DOMAINS)
def test_script_files_into_folder_with_flag(stack, domain):
    pf, work, lmtpd = stack
    msg = build_message(sender="dev@remote.test", to=f"frank@{domain}", subject="[owlery] build green")
    assert pf.send("dev@remote.test", [f"frank@{domain}"], msg).accepted
    try:
        [f] = wait_until(lambda: mail_files(work, domain, "frank", ".Projects.Owlery"), 30, "filed message")
    except Exception:  # noqa: BLE001  show the stack state, whatever went wrong
        pytest.fail(debug(pf, work, lmtpd))
    assert f.name.endswith(":2,F")
    data = f.read_bytes()
    assert data.startswith((b"Return-Path: <dev@remote.test>\n", b"Delivered-To: frank@")), data[:200]
    assert b"Subject: [owlery] build green" in data
    assert mail_files(work, domain, "frank") == []
    pf.wait_queue_empty(timeout=20)
    if domain not in IN_PROCESS:
        # lmtpd delivered it (directly, or handed over by the fast-path LDA), and its decision
        # line starts with the queue id Postfix logged for this message.
        m = lmtpd.wait_log(re.compile(r"lmtpd: ([0-9A-Za-z]+): delivered: .*to=<frank@" + re.escape(domain) + ">"))
        # Postfix writes its own line for the delivery after the queue file is gone: wait for it.
        try:
            pf.wait_for_log(re.escape(m.group(1)) + r": to=<frank@" + re.escape(domain), timeout=20)
        except Exception:  # noqa: BLE001  show the stack state, whatever went wrong
            pytest.fail(debug(pf, work, lmtpd))


@pytest.mark.parametrize("domain", DOMAINS)
def test_script_sees_the_address_detail(stack, domain):
    pf, work, lmtpd = stack
    msg = build_message(sender="dev@remote.test", to=f"dora+x@{domain}", subject="detail")
    assert pf.send("dev@remote.test", [f"dora+x@{domain}"], msg).accepted
    try:
        [f] = wait_until(lambda: mail_files(work, domain, "dora", ".Detail"), 30, "message filed by detail")
    except Exception:  # noqa: BLE001  show the stack state, whatever went wrong
        pytest.fail(debug(pf, work, lmtpd))
    assert f"Delivered-To: dora+x@{domain}\n".encode() in f.read_bytes()
    pf.wait_queue_empty(timeout=20)
    if domain == "fast.test":     # lmtpd stored it (the fast path's settings name no Maildir)
        lmtpd.wait_log(re.compile(r"lmtpd: \S+: delivered: .*to=<dora\+x@fast\.test>"))


@pytest.mark.parametrize("domain", DOMAINS)
def test_vacation_replies_once_and_never_to_a_list(stack, domain):
    pf, work, lmtpd = stack
    sender = f"dave-{domain.split('.')[0]}@remote.test"
    lister = f"list-{domain.split('.')[0]}@remote.test"
    for n in range(2):
        msg = build_message(sender=sender, to=f"carol@{domain}", subject=f"question {n}")
        assert pf.send(sender, [f"carol@{domain}"], msg).accepted
    listmsg = build_message(sender=lister, to=f"carol@{domain}", subject="newsletter",
                            headers={"List-Id": "<news.remote.test>"})
    assert pf.send(lister, [f"carol@{domain}"], listmsg).accepted
    wait_until(lambda: len(mail_files(work, domain, "carol")) == 3, 30, "three messages for carol")
    pf.wait_queue_empty(timeout=20)
    replies = [m for m in pf.sent_messages() if m.rcpts in ([sender], [lister])]
    assert [m.rcpts for m in replies] == [[sender]], debug(pf, work, lmtpd)
    reply = replies[0]
    assert reply.mail_from == ""          # RFC 5230 5.1 (vacation_envelope_from = "null")
    assert reply["Subject"] == "Away" and reply["Auto-Submitted"].startswith("auto-replied")


@pytest.mark.parametrize("domain", DOMAINS)
def test_redirect_loop_stops(stack, domain):
    """alice redirects to bob, bob back to alice. Over LMTP our X-Sieve-Redirected-From check
    stops it (alice keeps the message). Through pipe(8) with flag D the copy that returns to
    alice carries her Delivered-To header, so Postfix itself stops it first (5.4.6 bounce);
    either way the message does not circulate and the queue empties."""
    pf, work, lmtpd = stack
    msg = build_message(sender="eve@remote.test", to=f"alice@{domain}", subject="loop me")
    assert pf.send("eve@remote.test", [f"alice@{domain}"], msg).accepted
    if domain == "fast.test":
        # Either stop is fine: Postfix's Delivered-To check before the pipe, or lmtpd's own.
        def stopped():
            if re.search(r"to=<alice@fast\.test>, relay=owlerylmtplda.*mail forwarding loop", pf.maillog()):
                return "postfix"
            return "lmtpd" if "redirect loop: alice@fast.test" in lmtpd.log() else None
        wait_until(stopped, 30, "loop stopped")
        pf.wait_queue_empty(timeout=20)
        assert mail_files(work, domain, "bob") == []
        return
    if domain in IN_PROCESS:
        pf.wait_for_log(rf"to=<alice@{re.escape(domain)}>, relay={IN_PROCESS[domain]},.*status=bounced "
                        r"\(mail forwarding loop", 30)
        pf.wait_queue_empty(timeout=20)
        assert b"loop me" not in b"".join(p.read_bytes() for p in mail_files(work, domain, "alice"))
        assert mail_files(work, domain, "bob") == []
        return
    try:
        [f] = wait_until(lambda: mail_files(work, domain, "alice"), 30, "looped message kept by alice")
    except Exception:  # noqa: BLE001  show the stack state, whatever went wrong
        pytest.fail(debug(pf, work, lmtpd))
    pf.wait_queue_empty(timeout=20)
    data = f.read_bytes()
    assert b"X-Sieve-Redirected-From: alice@" + domain.encode() in data
    assert b"X-Sieve-Redirected-From: bob@" + domain.encode() in data
    assert mail_files(work, domain, "bob") == []
    lmtpd.wait_log("redirect loop: alice@lmtp.test already redirected this message")
