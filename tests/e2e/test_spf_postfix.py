"""SPF end to end: real Postfix asks `owlery policyd`, which asks the DNS stub.

An SPF fail is rejected with 550 5.7.23; a pass is delivered carrying Received-SPF.
"""

from __future__ import annotations

import pytest

from tests.e2e.policyd_stack import policyd_postfix
from tests.harness.postfix import build_message


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, dns_stub):
    dns_stub.add("spf-pass.example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_stub.add("spf-fail.example.com", "TXT", "v=spf1 ip4:203.0.113.0/24 -all")
    dns_stub.add("mail.spf-pass.example.com", "TXT", "v=spf1 a -all")
    dns_stub.add("mail.spf-pass.example.com", "A", "192.0.2.7")
    with policyd_postfix(postfix_factory, harness_dirs("spf-owlery"), "spf-postfix", (
            'policyd_checks = { RCPT = ["spf"] }\n'
            'dns_nameservers = ["127.0.0.1"]\n'
            f"dns_port = {dns_stub.port}\n"
            'spf_query_time_limit = "5s"\n')) as parts:
        yield parts


def test_spf_fail_rejected(stack):
    pf, _ = stack
    msg = build_message(sender="ceo@spf-fail.example.com", to="bob@example.test")
    r = pf.send("ceo@spf-fail.example.com", ["bob@example.test"], msg, helo="mail.spf-pass.example.com",
                xclient={"ADDR": "192.0.2.7", "NAME": "mail.spf-pass.example.com"}, check=False)
    code, text = r.rcpt["bob@example.test"]
    assert code == 550 and "5.7.23" in text and "SPF mailfrom check fail" in text, r.rcpt


def test_spf_pass_delivered_with_received_spf(stack):
    pf, _ = stack
    msg = build_message(sender="news@spf-pass.example.com", to="carol@example.test", subject="spf pass")
    r = pf.send("news@spf-pass.example.com", ["carol@example.test"], msg, helo="mail.spf-pass.example.com",
                xclient={"ADDR": "192.0.2.7", "NAME": "mail.spf-pass.example.com"})
    assert r.accepted == ["carol@example.test"], r.rcpt
    sent = [m for m in pf.wait_sent(1) if m["Subject"] == "spf pass"]
    assert sent, "message not relayed"
    header = sent[-1]["Received-SPF"]
    assert header is not None and header.startswith("Pass "), sent[-1]
    assert "client-ip=192.0.2.7;" in header and "receiver=<UNKNOWN>;" in header
    assert "identity=mailfrom" in header
