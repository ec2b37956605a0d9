"""Quota edge end to end: a nearly full mailbox is refused in the SMTP dialogue or delivered, never bounced.

Real Postfix asks `owlery policyd` (quota at RCPT and END-OF-MESSAGE), runs `owlery milter`
(which adds its headers) and delivers to `owlery lmtpd`, all on one files directory. A
message that fits as the client sent it but not once the milter's and delivery's headers
are added is refused after DATA (552 5.2.2, the client keeps the message: no bounce from
us); a small one is delivered; the mailbox is then full and the next message is refused
at RCPT. Postfix's log never shows a bounce. With the policy check's headroom off
(quota_headers_allowance = 0), such a message is accepted and lmtpd's overrun allowance
(delivery_quota_overrun_allowance) delivers it rather than refusing it (which made
Postfix bounce). Stack wiring as in test_skeleton.py.
"""

import smtplib

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until

DOMAIN = "quota.test"
RCPT = f"edge@{DOMAIN}"
LIMIT = 1_048_576
FREE = 5000          # more than quota_headers_allowance (4096): room for one small message


def start_stack(postfix_factory, harness_dirs, extra=""):
    workdir = harness_dirs("quota-edge-owlery")
    mail = workdir / "mail"
    box = mail / DOMAIN / "edge"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    # Messages on disk that sum to the file (empty files named with their S= sizes): a file that
    # says full is checked against the Maildir, as Dovecot does.
    (box / ".Filler/cur").mkdir(parents=True)
    (box / f".Filler/cur/1.M1P1.fill,S={LIMIT - FREE - 20000}:2,S").write_bytes(b"")
    (box / ".Filler/cur/2.M1P1.fill,S=20000:2,S").write_bytes(b"")
    (box / "maildirsize").write_text(f"{LIMIT}S\n{LIMIT - FREE - 20000} 1\n20000 1\n")
    (workdir / "mailboxes").write_text(f"{RCPT} {DOMAIN}/edge\n")
    (workdir / "quotas").write_text(f"{RCPT} {LIMIT}S\n")
    daemons = OwleryDaemons(workdir, extra_config=(
        f'files_mailboxes = "{workdir}/mailboxes"\n'
        f'files_quotas = "{workdir}/quotas"\n'
        f'files_maildir_base = "{mail}"\n'
        f'maildir_path_template = "{mail}/{{domain}}/{{localpart}}"\n'
        f'delivery_sieve_script_template = "{workdir}/sieve/{{localpart}}.sieve"\n'
        'policyd_checks = { RCPT = ["recipient", "quota"], "END-OF-MESSAGE" = ["quota"] }\n' + extra))
    daemons.start()
    try:
        pf = postfix_factory(main_cf=daemons.main_cf([DOMAIN]), name="quota-edge-postfix")
    except BaseException:
        daemons.stop()
        raise
    return pf, daemons, box


@pytest.fixture
def stack(postfix_factory, harness_dirs):
    pf, daemons, box = start_stack(postfix_factory, harness_dirs)
    try:
        yield pf, daemons, box
        pf.stop()
    finally:
        daemons.stop()


@pytest.fixture
def stack_no_headroom(postfix_factory, harness_dirs):
    """The policy check without headroom (as before quota_headers_allowance): delivery's turn."""
    pf, daemons, box = start_stack(postfix_factory, harness_dirs, "quota_headers_allowance = 0\n")
    try:
        yield pf, daemons, box
        pf.stop()
    finally:
        daemons.stop()


def message(body_bytes):
    msg = build_message(sender="someone@example.net", to=RCPT, subject="edge", body="")
    return msg + b"x" * (body_bytes - 2) + b"\r\n"


def rcpt_probe(pf):
    """MAIL and RCPT only (no message is sent): the RCPT reply."""
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
        s.ehlo("client.example.test")
        s.mail("someone@example.net")
        reply = s.rcpt(RCPT)
        s.rset()
        return reply


def stored(box):
    return sorted((box / "new").iterdir())


def test_near_full_mailbox_is_refused_in_the_dialogue_or_delivered_never_bounced(stack):
    pf, daemons, box = stack
    # 1. fits as sent (FREE - 300 bytes), not with the headers added after the check:
    #    refused after DATA by the END-OF-MESSAGE check, so the sending MTA keeps it
    big = message(FREE - 300)
    assert len(big) < FREE
    r = pf.send("someone@example.net", [RCPT], big, check=False)
    assert r.accepted == [RCPT], r.rcpt
    assert r.data[0] == 552 and r.data[1].startswith("5.2.2"), r.data
    daemons.wait_log("policyd", f"reject: END-OF-MESSAGE from localhost[127.0.0.1]: 552 5.2.2 <{RCPT}>")
    assert stored(box) == []

    # 2. a small message fits with its headers: delivered over LMTP
    r = pf.send("someone@example.net", [RCPT], message(500), check=False)
    assert r.data[0] == 250, r.data
    files = wait_until(lambda: stored(box), 30, "delivery into the Maildir")
    assert len(files) == 1
    pf.wait_for_log(r"to=<%s>.*relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent"
                    % (RCPT.replace(".", r"\."), daemons.ports["lmtpd"]), timeout=15)
    pf.wait_queue_empty(timeout=15)

    # 3. now less than the allowance is left: the next message is refused at RCPT (policyd
    #    re-reads a maildirsize at most once a second: ask until it has seen the delivery)
    used = sum(int(line.split()[0]) for line in (box / "maildirsize").read_text().splitlines()[1:])
    assert LIMIT - 4096 < used <= LIMIT
    code, text = wait_until(lambda: (lambda r: r if r[0] != 250 else None)(rcpt_probe(pf)), 10,
                            "the quota check to see the delivery")
    assert code == 552 and text.startswith(b"5.2.2"), (code, text)

    # never a bounce: Postfix generated no delivery status notification
    log = pf.maillog()
    assert "status=sent" in log and "status=bounced" not in log
    assert "sender non-delivery notification" not in log


def test_accepted_message_that_overruns_with_its_headers_is_delivered_not_bounced(stack_no_headroom):
    pf, daemons, box = stack_no_headroom
    # the policy check lets it through (it fits as sent); the milter's headers, Postfix's
    # Received and delivery's trace push it over the limit: lmtpd's overrun allowance takes it
    big = message(FREE - 300)
    r = pf.send("someone@example.net", [RCPT], big, check=False)
    assert r.data[0] == 250, r.data
    wait_until(lambda: stored(box) or "status=bounced" in pf.maillog(), 30, "delivery or bounce")
    assert "status=bounced" not in pf.maillog(), pf.maillog()[-2000:]
    files = stored(box)
    assert len(files) == 1 and files[0].stat().st_size > FREE       # it did overrun the limit
    pf.wait_for_log(r"to=<%s>.*relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent"
                    % (RCPT.replace(".", r"\."), daemons.ports["lmtpd"]), timeout=15)
    pf.wait_queue_empty(timeout=15)
    assert "status=bounced" not in pf.maillog()
    # over the limit now: refused at RCPT
    code, text = wait_until(lambda: (lambda r: r if r[0] != 250 else None)(rcpt_probe(pf)), 10,
                            "the quota check to see the delivery")
    assert code == 552 and text.startswith(b"5.2.2"), (code, text)
