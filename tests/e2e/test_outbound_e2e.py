"""Outbound and flagged mail end to end: real Postfix -> `owlery milter` -> real clamd, spamd; Rspamd checks.

An authenticated submission is what the milter calls outbound (StagePipeline.is_outbound: a SASL
login in {auth_authen}, or a client in milter_internal_networks, emptied here so that loopback
is not trusted): Postfix gets it through XCLIENT LOGIN=..., which sets {auth_authen} as SASL
would. The outbound stage list scans before it signs, so
- EICAR is refused (554 5.7.1 naming the virus), nothing leaves;
- GTUBE is refused as spam (550 5.7.1: spam_reject_level; an authenticated sender hears it
  at once instead of a quarantine they cannot see), nothing leaves;
- a zip holding setup.exe is refused (554 5.7.1 naming the file), nothing leaves;
- a clean message leaves DKIM-signed, and the delivered bytes verify with dkimpy and with
  Rspamd (R_DKIM_ALLOW), and fail in both after a body change.
Inbound (no login, a client from outside), the same zip is refused by the banned stage, and
the message is not signed.
"""

import base64
import io
import re
import zipfile

import dkim
import pytest

from milters import dkimkeys
from tests.harness.clamd import EICAR, EICAR_NAME
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.rspamd import DKIM_FAIL, DKIM_PASS, Rspamd
from tests.harness.spamd import GTUBE

AUTHSERV = "mx.owlery.test"
SENDER = "alice@example.net"
RCPT = "bob@example.test"
SUBMISSION = {"ADDR": "192.0.2.44", "NAME": "laptop.example.net", "LOGIN": "alice"}
INTERNET = {"ADDR": "192.0.2.99", "NAME": "relay.example.com"}
CONTENT_STAGES = '"antivirus", "banned", "spam", "quarantine"'


def milter_main_cf(port):
    return {"smtpd_milters": f"inet:127.0.0.1:{port}", "milter_default_action": "tempfail",
            "milter_protocol": "6",
            "milter_connect_macros": "j {daemon_name} {client_addr} {client_name}",
            "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} {mail_addr}"}


def attachment_message(subject, filename, content_type, payload, sender=SENDER):
    return (f"From: Alice <{sender}>\r\nTo: <{RCPT}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@example.net>\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            f"--b\r\nContent-Type: {content_type}; name={filename}\r\n"
            f"Content-Disposition: attachment; filename={filename}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(payload).decode().replace("\n", "\r\n") + "--b--\r\n").encode()


def zip_with_exe():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("setup.exe", b"not really a program: the name is enough\n")
        z.writestr("readme.txt", b"open the invoice\n")
    return buf.getvalue()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("outbound-keys")
    path, _ = dkimkeys.generate("example.net", "r1", str(d))
    return d, {"r1._domainkey.example.net": dkimkeys.public_txt(dkimkeys.load_key(path, "example.net", "r1").key)}


@pytest.fixture(scope="module")
def dns(dns_stub, keys):
    saved = dns_stub.snapshot()
    for name, value in keys[1].items():
        dns_stub.set(name, "TXT", value)
    yield dns_stub
    dns_stub.restore(saved)


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, clamd, spamd, dns, keys):
    workdir = harness_dirs("outbound-owlery")
    config = f"""milter_authserv_id = "{AUTHSERV}"
milter_internal_networks = []
milter_inbound_stages = [{CONTENT_STAGES}, "authres"]
milter_outbound_stages = [{CONTENT_STAGES}, "dkim_sign", "authres"]
dns_nameservers = ["127.0.0.1"]
dns_port = {dns.port}
dns_timeout = 3
dkim_key_directory = "{keys[0]}"
dkim_sign_keys = {{ "example.net" = ["r1"] }}
clamd_endpoint = "unix:{clamd.socket_path}"
clamd_timeout = "10s"
spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"
spamd_timeout = "20s"
spam_quarantine_level = 6.9
spam_reject_level = 20
banned_action = "reject"
quarantine_directory = "{workdir / 'quarantine'}"
"""
    daemons = OwleryDaemons(workdir, which=("milter",), extra_config=config).start()
    try:
        postfix = postfix_factory(main_cf=milter_main_cf(daemons.ports["milter"]), name="outbound-postfix")
        yield postfix, daemons
        postfix.stop()
    finally:
        daemons.stop()


@pytest.fixture(scope="module")
def rspamd(harness_dirs, dns):
    server = Rspamd(harness_dirs("outbound-rspamd"), dns.port).start()
    yield server
    server.stop()


def submit(pf, raw, xclient=SUBMISSION, sender=SENDER):
    return pf.send(sender, [RCPT], raw, xclient=xclient, check=False)


OUT_STAGES = "stages=antivirus,banned,spam,quarantine,dkim_sign,authres"
IN_STAGES = "stages=antivirus,banned,spam,quarantine,authres"


def milter_refusal(daemons, client, reason):
    """The milter's decision line refusing a message from client (host[addr]) for reason; it
    names the stage list that ran (which says outbound or inbound). Refused mail has no queue
    id in the SMTP reply, so the line is found by client and reason, waited for (it is
    written after the reply)."""
    pattern = re.compile(rf"^.*: reject: END-OF-MESSAGE from {re.escape(client)}: .*{reason}.*$", re.M)
    return daemons.wait_log("milter", pattern).group(0)


def test_outbound_virus_is_refused_and_nothing_leaves(stack, pf):
    raw = attachment_message("virus out", "readme.txt", "application/octet-stream", EICAR)
    result = submit(pf, raw)
    code, text = result.data
    assert code == 554 and text.startswith("5.7.1") and EICAR_NAME in text, result.data
    assert OUT_STAGES in milter_refusal(stack[1], "laptop.example.net[192.0.2.44]", "reason=virus")
    assert pf.sent_messages() == []


def test_outbound_gtube_is_refused_as_spam(stack, pf):
    raw = build_message(sender=SENDER, to=RCPT, subject="cheap watches", body=GTUBE.decode() + "\n")
    result = submit(pf, raw)
    assert result.data[0] == 550 and result.data[1].startswith("5.7.1") and "spam" in result.data[1], result.data
    assert OUT_STAGES in milter_refusal(stack[1], "laptop.example.net[192.0.2.44]", "reason=spam")
    assert pf.sent_messages() == []


def test_outbound_exe_in_zip_is_refused_naming_it(stack, pf):
    raw = attachment_message("zip out", "invoice.zip", "application/zip", zip_with_exe())
    result = submit(pf, raw)
    code, text = result.data
    assert code == 554 and text.startswith("5.7.1") and "invoice.zip/setup.exe" in text, result.data
    assert OUT_STAGES in milter_refusal(stack[1], "laptop.example.net[192.0.2.44]", "reason=banned")
    assert pf.sent_messages() == []


def test_outbound_clean_mail_leaves_signed_and_verifies_in_dkimpy_and_rspamd(stack, pf, dns, rspamd):
    raw = build_message(sender=SENDER, to=RCPT, subject="minutes", body="The minutes of Tuesday's meeting.\n")
    result = submit(pf, raw)
    assert result.data[0] == 250, result
    [sent] = pf.wait_sent(1)
    assert len(sent.message.get_all("DKIM-Signature") or []) == 1, sent.raw[:2000]
    assert sent["X-Virus-Scanned"] is not None          # scanned on the way out, then signed
    from milters.dns import dkim_dnsfunc
    assert dkim.verify(sent.raw, dnsfunc=dkim_dnsfunc(dns.resolver())), sent.raw[:2000]
    symbols = rspamd.symbols(sent.raw, ip="192.0.2.77", sender=SENDER, rcpts=[RCPT])
    assert DKIM_PASS in symbols and DKIM_FAIL not in symbols, symbols
    tampered = sent.raw.replace(b"Tuesday", b"Friday")
    assert not dkim.verify(tampered, dnsfunc=dkim_dnsfunc(dns.resolver()))
    symbols = rspamd.symbols(tampered, ip="192.0.2.77", sender=SENDER, rcpts=[RCPT])
    assert DKIM_FAIL in symbols and DKIM_PASS not in symbols, symbols


def test_inbound_exe_in_zip_is_refused_and_clean_inbound_is_not_signed(stack, pf):
    raw = attachment_message("zip in", "invoice.zip", "application/zip", zip_with_exe(),
                             sender="mallory@example.com")
    result = submit(pf, raw, xclient=INTERNET, sender="mallory@example.com")
    code, text = result.data
    assert code == 554 and text.startswith("5.7.1") and "invoice.zip/setup.exe" in text, result.data
    assert IN_STAGES in milter_refusal(stack[1], "relay.example.com[192.0.2.99]", "reason=banned")
    assert pf.sent_messages() == []
    clean = build_message(sender="carol@example.com", to=RCPT, subject="hello", body="Lunch on Thursday?\n")
    result = submit(pf, clean, xclient=INTERNET, sender="carol@example.com")
    assert result.data[0] == 250, result
    [sent] = pf.wait_sent(1)
    assert sent.message.get_all("DKIM-Signature") is None        # the inbound list does not sign
    assert sent["X-Virus-Scanned"] is not None
