"""The postmaster's trail: `grep QUEUEID` over Owlery's logs shows every decision about a message.

A real Postfix wired (owlery.app.postfix.main_cf) to `owlery policyd` (recipient check),
`owlery milter` (banned attachments) and `owlery lmtpd` (a Sieve script that files into Work
and answers with a vacation reply through Postfix's reinjection port). One message from an
outside client (XCLIENT) to alice@ (known) and then nobody@ (unknown):

- Postfix has opened the queue file at alice's RCPT, so the policy request for nobody@ carries
  its queue_id: the policy daemon's refusal starts with it, and names the client, HELO,
  sender, recipient and instance as Postfix's own reject line does;
- the milter's END-OF-MESSAGE line, lmtpd's delivery line (folder, vacation=sent) and the
  vacation reply's line all start with the same queue id, one line each;
- a second message with a banned attachment is refused at end of data: the milter's line
  carries its queue id, the 554 and the reason, as Postfix's milter-reject line does.
"""

from __future__ import annotations

import base64
import os
import pwd
import re

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message

DOMAIN = "trail.test"
SENDER = "news@outside.test"
OUTSIDE = {"ADDR": "192.0.2.44", "NAME": "mx.outside.test"}
HELO = "mx.outside.test"
SCRIPT = 'require ["fileinto", "vacation"];\nfileinto "Work";\nvacation :days 1 :subject "Away" "Back soon.";\n'


@pytest.fixture(scope="module")
def trail(postfix_factory, harness_dirs):
    work = harness_dirs("log-trail")
    nobody = pwd.getpwnam("nobody")
    for d in ("mail", "state", "sieve"):
        (work / d).mkdir()
        os.chown(work / d, nobody.pw_uid, nobody.pw_gid)
    (work / "sieve" / "alice.sieve").write_text(SCRIPT)
    (work / "mailboxes").write_text(f"alice@{DOMAIN} {DOMAIN}/alice/Maildir\n")
    pf = postfix_factory(name="log-trail-postfix")
    daemons = OwleryDaemons(work, extra_config=(
        f'files_mailboxes = "{work}/mailboxes"\nfiles_maildir_base = "{work}/mail"\n'
        f'maildir_owner = "nobody"\nstate_sqlite_path = "{work}/state/state.sqlite"\n'
        f'delivery_sieve_script_template = "{work}/sieve/{{localpart}}.sieve"\n'
        'policyd_checks = { RCPT = ["recipient"] }\n'
        'milter_inbound_stages = ["banned"]\n'
        f'submission_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n')).start()
    try:
        pf.configure(main_cf=daemons.main_cf([DOMAIN]))
        yield pf, daemons, work
    finally:
        pf.stop()           # first: the daemons would wait for its cached connections to close
        daemons.stop()


def grep(daemons, queue_id):
    return [line.split(" ", 3)[3] for name in daemons.which for line in daemons.log(name).splitlines()
            if f" {queue_id}: " in line]


def test_grep_queue_id_shows_every_decision_about_the_message(trail):
    pf, daemons, work = trail
    msg = build_message(sender=SENDER, to=f"alice@{DOMAIN}", subject="report", body="numbers\n")
    sent = pf.send(SENDER, [f"alice@{DOMAIN}", f"nobody@{DOMAIN}"], msg, helo=HELO, xclient=OUTSIDE)
    assert sent.refused[f"nobody@{DOMAIN}"][0] == 550 and sent.queue_id, sent
    qid = sent.queue_id
    daemons.wait_log("lmtpd", f"lmtpd: {qid}: delivered: ")
    [reply] = pf.wait_sent(1)           # the vacation reply, through the reinjection port
    assert reply.rcpts == [SENDER]
    daemons.wait_log("lmtpd", f"lmtpd: {qid}: sent vacation reply ")
    trail_lines = grep(daemons, qid)
    client = "mx.outside.test[192.0.2.44]"
    policy = [line for line in trail_lines if line.startswith(f"policyd: {qid}: reject: RCPT from {client}: 550 ")]
    assert len(policy) == 1, trail_lines
    assert re.search(rf"; from=<{SENDER}> to=<nobody@{DOMAIN}> helo=<{HELO}> check=recipient instance=\S+",
                     policy[0]), policy
    milter = [line for line in trail_lines if line.startswith(f"milter: {qid}: ")]
    assert len(milter) == 1 and milter[0].startswith(f"milter: {qid}: accept: END-OF-MESSAGE from {client}: "), \
        trail_lines
    delivered = [line for line in trail_lines if line.startswith(f"lmtpd: {qid}: delivered: ")]
    assert len(delivered) == 1 and f"to=<alice@{DOMAIN}> detail=stored=.Work vacation=sent " in delivered[0], \
        trail_lines
    assert f"lmtpd: {qid}: sent vacation reply from <> to <{SENDER}>" in trail_lines

    banned = ("From: <news@outside.test>\r\nTo: <alice@trail.test>\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n"
              'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee\r\n'
              "--b\r\nContent-Type: application/octet-stream; name=setup.exe\r\nContent-Transfer-Encoding: base64"
              "\r\n\r\n" + base64.b64encode(b"MZ" + b"\0" * 64).decode() + "\r\n--b--\r\n").encode()
    refused = pf.send(SENDER, [f"alice@{DOMAIN}"], banned, helo=HELO, xclient=OUTSIDE, check=False)
    assert refused.data[0] == 554, refused
    m = re.search(r"postfix/\S+: ([0-9A-F]+): milter-reject: END-OF-MESSAGE", pf.maillog())
    assert m, pf.maillog()[-2000:]
    [line] = grep(daemons, m.group(1))
    assert line.startswith(f"milter: {m.group(1)}: reject: END-OF-MESSAGE from {client}: 554 5.7.1 ")
    assert "reason=banned " in line
