"""Policy daemon end to end: real Postfix asks `owlery policyd`, which asks a real slapd.

Unknown user refused at RCPT (550 5.1.1); over-quota user refused at RCPT (552 5.2.2);
a protected list refuses an outsider (550 5.7.1) and takes a member who authenticated
with SASL (Postfix's Dovecot SASL against a private Dovecot); with slapd stopped the
MX answers 4xx, and a sending Postfix retries and delivers once slapd is back.
The MX relays accepted mail to its smtp-sink (what is checked here is the RCPT decision).
"""

from __future__ import annotations

import smtplib

import pytest

from tests.harness.dovecot import PASSWORD, DovecotInstance
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.slapd import Slapd

OUTSIDE = {"ADDR": "203.0.113.5", "NAME": "mx.outside.test"}


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs):
    slapd = Slapd(harness_dirs("policyd-slapd")).start()
    workdir = harness_dirs("policyd-owlery")
    mail = workdir / "mail"
    # carol's maildirsize says she already uses 5 bytes of her 1-byte quota (seed directory).
    (mail / "example.test" / "carol" / "Maildir").mkdir(parents=True)
    (mail / "example.test" / "carol" / "Maildir" / "maildirsize").write_text("1S\n5 1\n")
    dovecot = DovecotInstance(harness_dirs("policyd-dovecot"),
                              {"alice@example.test": str(workdir / "home-alice"),
                               "erin@example.test": str(workdir / "home-erin")},
                              extra_conf="service auth {\n  unix_listener auth-client {\n    mode = 0666\n  }\n}\n")
    dovecot.start()
    daemons = OwleryDaemons(workdir, which=("policyd",), extra_config=(
        'policyd_checks = { RCPT = ["recipient", "lists", "quota"] }\n'
        'directory_backend = "ldap"\n'
        f'ldap_servers = ["{slapd.url}"]\n'
        f'ldap_base_dn = "{slapd.base_dn}"\n'
        'ldap_timeout = 2\nldap_connect_timeout = 1\n'
        'ldap_list_default_policy = ["members"]\n'
        # No caching: the outage test must reach slapd on every request.
        'directory_cache_positive_ttl = 0\ndirectory_cache_negative_ttl = 0\n'
        f'maildir_path_template = "{mail}/{{domain}}/{{localpart}}/Maildir"\n'))
    daemons.start()
    try:
        policy = daemons.main_cf(["example.test"])["smtpd_recipient_restrictions"]
        mx = postfix_factory(name="policyd-mx", main_cf={
            "smtpd_recipient_restrictions": policy,
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": str(dovecot.dir / "run" / "auth-client"),
        })
        yield mx, daemons, slapd
        mx.stop()
    finally:
        daemons.stop()
        dovecot.stop()
        slapd.stop()


def rcpt_reply(mx, rcpt, sender="news@outside.test", xclient=OUTSIDE):
    r = mx.send(sender, [rcpt], build_message(sender=sender, to=rcpt), xclient=xclient, check=False)
    return r.rcpt[rcpt]


def test_known_user_accepted_unknown_refused(stack):
    mx, daemons, _ = stack
    assert rcpt_reply(mx, "alice@example.test")[0] == 250
    assert rcpt_reply(mx, "Alice+News@Example.TEST")[0] == 250
    code, text = rcpt_reply(mx, "nobody@example.test")
    assert code == 550 and text.startswith("5.1.1 <nobody@example.test>: Recipient address rejected: User unknown")
    assert rcpt_reply(mx, "dave@example.test")[0] == 550        # disabled account
    # decision lines are written once per reactor turn: wait for it, the reply may come first
    daemons.wait_log("policyd", "reject: RCPT from mx.outside.test[203.0.113.5]: 550 5.1.1 <nobody@example.test>")


def test_over_quota_refused_at_rcpt(stack):
    mx, _, _ = stack
    code, text = rcpt_reply(mx, "carol@example.test")
    assert code == 552 and text.startswith("5.2.2 ") and "Mailbox full" in text


def test_protected_list_refuses_outsider(stack):
    mx, _, _ = stack
    code, text = rcpt_reply(mx, "csall@example.test", sender="stranger@outside.test")
    assert code == 550 and text.startswith("5.7.1 ")


def submit_authenticated(mx, user, rcpt):
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.ehlo("laptop.example.test")
        s.login(user, PASSWORD)
        s.mail(user)
        code, resp = s.rcpt(rcpt)
        if code == 250:
            s.data(build_message(sender=user, to=rcpt, subject="to the list"))
        else:
            s.rset()
        return code, resp.decode()


def test_protected_list_takes_authenticated_member(stack):
    mx, daemons, _ = stack
    mx.clear_sent()
    assert submit_authenticated(mx, "alice@example.test", "csall@example.test")[0] == 250
    mx.wait_sent(1)
    # erin authenticates too, but is not a member of csall (only of staff)
    code, text = submit_authenticated(mx, "erin@example.test", "csall@example.test")
    assert code == 550 and "5.7.1" in text
    daemons.wait_log("policyd", "sasl_username=erin@example.test")


def test_slapd_down_defers_and_mail_arrives_when_back(stack, postfix_factory):
    mx, daemons, slapd = stack
    sender_mta = postfix_factory(name="policyd-sender", transports={"example.test": f"smtp:[127.0.0.1]:{mx.port}"})
    mx.clear_sent()
    slapd.stop()
    try:
        code, text = rcpt_reply(mx, "alice@example.test")
        assert code == 450 and text.startswith("4.3.0 "), (code, text)
        # a real MTA gets the same 4xx, keeps the message queued and retries
        sender_mta.send("news@outside.test", ["alice@example.test"],
                        build_message(sender="news@outside.test", to="alice@example.test", subject="retry me"))
        sender_mta.wait_for_log(r"status=deferred.*4\.3\.0", timeout=30)
        assert mx.sent_messages() == []
    finally:
        slapd.start()
    sender_mta.flush()
    sent = mx.wait_sent(1, timeout=60)
    assert sent[-1]["Subject"] == "retry me"
    sender_mta.wait_queue_empty(timeout=30)
    sender_mta.stop()
