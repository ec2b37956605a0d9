"""DNSBL end to end: real Postfix asks `owlery policyd`'s dnsbl check, which asks the DNS stub.

A listed client is refused at RCPT with 554 5.7.1 naming the list; an allowlisted one (a
DNSWL's negative weight) passes; a list answering 127.255.255.254 (Spamhaus's "your
resolver is refused") is not counted; a list that never answers does not refuse mail.
`owlery postfix --postscreen` output is loaded into a real Postfix: `postfix check` passes
and postscreen starts, parses the sites and hands a client to smtpd (a filter Postfix
refuses makes postscreen die: the negative control that shows the sites are parsed).
"""

from __future__ import annotations

import smtplib
import socket

import pytest

from owlery.app import postfix as postfix_lines
from tests.e2e.policyd_stack import policyd_postfix
from tests.harness.postfix import build_message
from tests.harness.procs import free_port, wait_until

SITES = ('dnsbl_sites = ["bl.dnsbl.test=127.0.0.[2..11]*2", "wl.dnsbl.test=127.0.[0..255].[1..3]*-3", '
         '"err.dnsbl.test*2", "dead.dnsbl.test*2"]\n')


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, dns_stub):
    dns_stub.add("7.2.0.192.bl.dnsbl.test", "A", "127.0.0.2")          # listed
    dns_stub.add("8.2.0.192.bl.dnsbl.test", "A", "127.0.0.2")          # listed, but allowlisted
    dns_stub.add("8.2.0.192.wl.dnsbl.test", "A", "127.0.10.2")
    dns_stub.add("9.2.0.192.err.dnsbl.test", "A", "127.255.255.254")   # the list refuses our resolver
    dns_stub.drop("10.2.0.192.dead.dnsbl.test")                        # the list is down
    with policyd_postfix(postfix_factory, harness_dirs("dnsbl-owlery"), "dnsbl-postfix", (
            'policyd_checks = { RCPT = ["dnsbl"] }\n' + SITES +
            'dnsbl_threshold = 2\ndnsbl_allowlist_threshold = -1\ndnsbl_timeout = "1s"\n'
            'dns_nameservers = ["127.0.0.1"]\n'
            f"dns_port = {dns_stub.port}\n")) as parts:
        yield parts


def send_from(pf, addr, subject):
    msg = build_message(sender="news@sender.example.test", to="bob@example.test", subject=subject)
    return pf.send("news@sender.example.test", ["bob@example.test"], msg, helo="mail.sender.example.test",
                   xclient={"ADDR": addr, "NAME": "mail.sender.example.test"}, check=False)


def test_listed_client_refused_at_rcpt(stack):
    pf, daemons = stack
    r = send_from(pf, "192.0.2.7", "listed")
    code, text = r.rcpt["bob@example.test"]
    assert code == 554 and "5.7.1" in text, r.rcpt
    assert "client [192.0.2.7] blocked using bl.dnsbl.test" in text
    daemons.wait_log("policyd", "dnsbl=listed")


@pytest.mark.parametrize("addr,subject", [
    ("192.0.2.8", "allowlisted"),         # bl (+2) and wl (-3): -1
    ("192.0.2.9", "error code"),          # 127.255.255.254 is no listing
    ("192.0.2.10", "dead list"),          # timeout: no listing, no 5xx, no 4xx
])
def test_not_refused(stack, addr, subject):
    pf, _ = stack
    r = send_from(pf, addr, subject)
    assert r.accepted == ["bob@example.test"], r.rcpt
    assert any(m["Subject"] == subject for m in pf.wait_sent(1))


def test_dead_list_and_error_code_logged(stack):
    _, daemons = stack
    daemons.wait_log("policyd", "lookup of 10.2.0.192.dead.dnsbl.test failed: timeout; not counted")
    daemons.wait_log("policyd", "9.2.0.192.err.dnsbl.test answered 127.255.255.254: a list error")


def _postscreen_instance(make, settings, name, **override):
    port = free_port()
    main = {**dict(postfix_lines.postscreen_main_cf(settings)), **override}
    master = postfix_lines.postscreen_master_cf(service=f"127.0.0.1:{port}", chroot="n")
    pf = make(main_cf=main, master_cf_extra=master, name=name)
    return pf, port


def test_printed_postscreen_lines_load_into_postfix(make_postfix, tmp_path):
    from owlery.settings import load
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(SITES + 'dnsbl_threshold = 3\ndnsbl_allowlist_threshold = -1\n'
                   'dnsbl_reply_names = { "KEY.dq.dnsbl.test" = "bl.dnsbl.test" }\n')
    settings = load(str(cfg), missing_ok=False)
    text = postfix_lines.render_postscreen(settings)
    assert "err.dnsbl.test=127.[0..254].[0..255].[0..255]*2" in text     # no error code counts
    pf, port = _postscreen_instance(make_postfix, settings, "postscreen")
    pf._run(["postfix", "-c", str(pf.config_dir), "check"])
    assert pf.postconf("-h", "postscreen_dnsbl_sites").strip() == dict(
        postfix_lines.postscreen_main_cf(settings))["postscreen_dnsbl_sites"]
    assert "postscreen" in pf.postconf("-M", f"127.0.0.1:{port}/inet")
    # postscreen parses the sites when it starts on the first connection; a permitted
    # client (mynetworks) is then handed to smtpd without any DNS lookup
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        code, _ = smtp.ehlo("client.example.test")
        assert code == 250
        smtp.sendmail("a@example.test", ["bob@example.test"],
                      build_message(sender="a@example.test", to="bob@example.test", subject="via postscreen"))
    assert any(m["Subject"] == "via postscreen" for m in pf.wait_sent(1))
    assert "fatal" not in pf.maillog()


def test_postscreen_refuses_a_filter_postfix_cannot_parse(make_postfix):
    """The negative control: the same start-up with a reversed range is fatal for postscreen,
    so the test above shows Postfix parsed and took our lines."""
    from owlery.settings import Settings
    settings = Settings()
    pf, port = _postscreen_instance(make_postfix, settings, "postscreen-bad",
                                    postscreen_dnsbl_sites="bl.dnsbl.test=127.0.0.[9..2]")
    # a connection makes master start postscreen, which dies at once (no greeting comes)
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        wait_until(lambda: "bad DNSBL filter syntax" in pf.maillog(), 15, "postscreen's fatal error")
