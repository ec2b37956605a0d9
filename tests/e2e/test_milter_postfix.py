"""End to end: real Postfix -> `owlery milter` (inet, as configured in production) -> smtp-sink.

- an authenticated client's mail (XCLIENT LOGIN, so {auth_authen} is set) leaves signed
  with RSA and Ed25519, and the delivered bytes verify with dkimpy;
- inbound mail gets one Authentication-Results with dkim/spf/dmarc pass or fail per the
  DNS stub; a forged A-R claiming our authserv-id is removed; DMARC p=reject is enforced;
- a milter that is down makes Postfix tempfail (milter_default_action = tempfail).
"""

import dkim
import pytest

from milters import dkimkeys
from tests.harness.owlery_milter import MilterProcess

AUTHSERV = "mx.owlery.test"
MSG = ("From: Alice <alice@{domain}>\r\nTo: bob@example.test\r\nSubject: e2e {tag}\r\n"
       "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{tag}@{domain}>\r\n\r\n"
       "Hello Bob,\r\n\r\nthis crossed a real Postfix.\r\n")

POSTFIX_MILTER_LINES = {
    "milter_default_action": "tempfail",
    "milter_protocol": "6",
    "milter_connect_macros": "j {daemon_name} {client_addr} {client_name}",
    "milter_mail_macros": "i {auth_authen} {auth_type} {mail_addr}",
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e-keys")
    txt = {}
    for domain, sel, alg in (("example.net", "r1", "rsa"), ("example.net", "e1", "ed25519"),
                             ("example.org", "r1", "rsa")):
        path, _ = dkimkeys.generate(domain, sel, str(d), algorithm=alg)
        txt[f"{sel}._domainkey.{domain}"] = dkimkeys.public_txt(dkimkeys.load_key(path, domain, sel).key)
    return d, txt


@pytest.fixture(scope="module")
def mta(postfix_factory, harness_dirs, dns_stub, keys):
    # The stub is shared by the whole session: put its records back afterwards.
    saved = dns_stub.snapshot()
    for name, value in keys[1].items():
        dns_stub.set(name, "TXT", value)
    dns_stub.set("example.net", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns_stub.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    dns_stub.set("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    config = f"""milter_authserv_id = "{AUTHSERV}"
dns_nameservers = ["127.0.0.1"]
dns_port = {dns_stub.port}
dns_timeout = 3
milter_internal_networks = []
dkim_key_directory = "{keys[0]}"
dkim_sign_keys = {{ "example.net" = ["r1", "e1"] }}
"""
    milter = MilterProcess(harness_dirs("owlery-milter"), config, listen="tcp").start()
    main_cf = dict(POSTFIX_MILTER_LINES, smtpd_milters=milter.spec)
    postfix = postfix_factory(main_cf=main_cf, name="postfix-milter")
    yield postfix, milter
    postfix.stop()
    milter.stop()
    dns_stub.restore(saved)


def deliver(postfix, raw, xclient, sender="alice@example.net"):
    postfix.clear_sent()
    result = postfix.send(sender, ["bob@example.test"], raw, xclient=xclient, check=False)
    if result.data is None or result.data[0] != 250:
        return result, None
    return result, postfix.wait_sent(1)[-1]


def stub_dnsfunc(resolver):
    from milters.dns import dkim_dnsfunc
    return dkim_dnsfunc(resolver)


def test_authenticated_mail_leaves_dual_signed(mta, dns_stub):
    postfix, milter = mta
    raw = MSG.format(domain="example.net", tag="out1").encode()
    result, sent = deliver(postfix, raw, {"ADDR": "192.0.2.44", "NAME": "laptop.example.net", "LOGIN": "alice"})
    assert result.data[0] == 250, result
    sigs = sent.message.get_all("DKIM-Signature")
    assert len(sigs) == 2, sent.raw[:1500]
    dnsfunc = stub_dnsfunc(dns_stub.resolver())
    d = dkim.DKIM(sent.raw)
    assert d.verify(idx=0, dnsfunc=dnsfunc) and d.verify(idx=1, dnsfunc=dnsfunc), sent.raw[:2000]
    assert {b"rsa-sha256", b"ed25519-sha256"} == {
        dkim.DKIM(sent.raw).verify_headerprep(i)[0][b"a"] for i in (0, 1)}
    milter.wait_log(f"{result.queue_id}: accept")


def test_inbound_signed_mail_gets_pass_results(mta):
    postfix, _ = mta
    # Our own outbound output, re-submitted from the outside world, must verify.
    raw = MSG.format(domain="example.net", tag="in1").encode()
    _, signed = deliver(postfix, raw, {"ADDR": "192.0.2.44", "NAME": "laptop.example.net", "LOGIN": "alice"})
    inbound = f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=forged.example\r\n".encode() + signed.raw
    result, sent = deliver(postfix, inbound, {"ADDR": "192.0.2.10", "NAME": "mail.example.net"})
    assert result.data[0] == 250, result
    ars = sent.message.get_all("Authentication-Results")
    ours = [a for a in ars if str(a).startswith(AUTHSERV)]
    assert len(ours) == 1, ars            # the forged one is gone
    ar = " ".join(str(ours[0]).split())
    assert ar.count("dkim=pass") == 2 and "spf=pass" in ar and "dmarc=pass" in ar, ar
    assert "forged.example" not in sent.raw.decode(errors="replace")


def test_inbound_tampered_mail_fails_dkim_and_dmarc(mta):
    postfix, _ = mta
    raw = MSG.format(domain="example.net", tag="in2").encode()
    _, signed = deliver(postfix, raw, {"ADDR": "192.0.2.44", "NAME": "laptop.example.net", "LOGIN": "alice"})
    tampered = signed.raw.replace(b"real Postfix", b"fake Postfix")
    result, sent = deliver(postfix, tampered, {"ADDR": "192.0.2.99", "NAME": "relay.example.com"})
    assert result.data[0] == 250, result
    ar = " ".join(str(sent.message.get_all("Authentication-Results")[0]).split())
    assert "dkim=fail" in ar and "spf=fail" in ar and "dmarc=fail" in ar, ar


def test_dmarc_reject_policy_rejects_at_data(mta):
    postfix, milter = mta
    raw = MSG.format(domain="example.org", tag="in3").encode()
    result, _ = deliver(postfix, raw, {"ADDR": "192.0.2.99", "NAME": "relay.example.com"},
                        sender="someone@example.com")
    assert result.data[0] == 550 and "5.7.1" in result.data[1], result


def test_milter_down_means_tempfail(postfix_factory, harness_dirs):
    from tests.harness.procs import free_port
    dead = f"inet:127.0.0.1:{free_port()}"
    postfix = postfix_factory(main_cf=dict(POSTFIX_MILTER_LINES, smtpd_milters=dead), name="postfix-nomilter")
    try:
        result = postfix.send("a@example.net", ["bob@example.test"], MSG.format(domain="example.net", tag="x"),
                              check=False)
        codes = [result.mail[0]] + [c for c, _ in result.rcpt.values()] + ([result.data[0]] if result.data else [])
        code = next(c for c in codes if c != 250)
        assert 400 <= code < 500, result
    finally:
        postfix.stop()
