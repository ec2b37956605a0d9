"""End to end: mail through real Postfix -> `owlery milter` records DMARC results -> `owlery dmarc report` mails the aggregate reports.

The DNS stub publishes DMARC for example.net (p=quarantine, rua= at its own domain, ruf= too)
and example.org (p=none, rua= at example.com, which agrees through
example.org._report._dmarc.example.com, and at example.test, which does not). Four messages
arrive from outside clients (XCLIENT): two DKIM-signed SPF-passing ones from example.net's
server, one forged example.net message from elsewhere, one example.org message. Then
`owlery dmarc report --day <today>` sends through Postfix's main port from 127.0.0.1
(submission_smtp_endpoint, the outbound path): exactly two reports land in smtp-sink (the
example.net one at its rua, the example.org one at the verified external address; none at a
ruf= or an unverified address), each a gzip attachment named as RFC 7489 7.2.1.1 says
whose XML validates against tests/data/dmarc-rfc7489.xsd and counts the messages.
"""

from __future__ import annotations

import gzip
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from milters import dkimkeys
from milters.dmarc_store import SqliteStore
from tests.e2e.quarantine_stack import owlery
from tests.e2e.test_milter_postfix import MSG, POSTFIX_MILTER_LINES
from tests.harness.owlery_milter import MilterProcess
from tests.harness.procs import wait_until

XSD = Path(__file__).resolve().parents[1] / "data" / "dmarc-rfc7489.xsd"
SAMPLE = Path("/tmp/owlery-dmarc-sample-report.xml")     # kept for the closing note of issue 23


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, dns_stub):
    work = harness_dirs("dmarc-report")
    keys = work / "keys"
    keys.mkdir(exist_ok=True)
    path, _ = dkimkeys.generate("example.net", "r1", str(keys), algorithm="rsa")
    saved = dns_stub.snapshot()
    dns_stub.set("r1._domainkey.example.net", "TXT", dkimkeys.public_txt(dkimkeys.load_key(path, "example.net", "r1").key))
    dns_stub.set("example.net", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns_stub.set("_dmarc.example.net", "TXT",
                 "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.net!10m; ruf=mailto:forensic@example.net")
    dns_stub.set("_dmarc.example.org", "TXT",
                 "v=DMARC1; p=none; rua=mailto:agg@example.com,mailto:agg@example.test")
    dns_stub.set("example.org._report._dmarc.example.com", "TXT", "v=DMARC1")
    store_path = work / "dmarc" / "results.sqlite3"
    common = (f'dns_nameservers = ["127.0.0.1"]\ndns_port = {dns_stub.port}\ndns_timeout = 3\n'
              f'dmarc_report_store_path = "{store_path}"\n')
    # Outbound (loopback, the default milter_internal_networks) is signed for example.net.
    milter = MilterProcess(work / "milter", common + 'milter_authserv_id = "mx.owlery.test"\n'
                           'dmarc_report_record = true\n'
                           f'dkim_key_directory = "{keys}"\ndkim_sign_keys = {{ "example.net" = ["r1"] }}\n',
                           listen="tcp").start()
    postfix = postfix_factory(main_cf=dict(POSTFIX_MILTER_LINES, smtpd_milters=milter.spec), name="postfix-dmarc")
    cli = work / "cli.toml"
    cli.write_text(common + 'dmarc_report_org_name = "Owlery Test"\n'
                   'dmarc_report_email = "dmarc-noreply@owlery.test"\n'
                   f'submission_smtp_endpoint = "tcp:127.0.0.1:{postfix.port}"\n')
    yield postfix, milter, cli, store_path
    postfix.stop()
    milter.stop()
    dns_stub.restore(saved)


def send(postfix, raw, addr, sender):
    result = postfix.send(sender, ["bob@example.test"], raw, xclient={"ADDR": addr, "NAME": "mail.sender.test"},
                          check=False)
    assert result.data and result.data[0] == 250, result
    return result


def validate(xml: bytes, tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_bytes(xml)
    done = subprocess.run(["xmllint", "--noout", "--schema", str(XSD), str(path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr + xml.decode(errors="replace")


def test_recorded_results_become_aggregate_reports_in_the_sink(stack, tmp_path):
    postfix, milter, cli, store_path = stack
    postfix.clear_sent()
    # Signed by our own outbound path first (a loopback client), then arriving from example.net's server.
    postfix.send("alice@example.net", ["bob@example.test"], MSG.format(domain="example.net", tag="sign"))
    signed = postfix.wait_sent(1)[-1].raw
    assert b"DKIM-Signature" in signed
    postfix.clear_sent()
    send(postfix, signed, "192.0.2.10", "alice@example.net")
    send(postfix, signed, "192.0.2.10", "bounce@example.net")
    send(postfix, MSG.format(domain="example.net", tag="forged").encode(), "192.0.2.99", "x@spammer.example.com")
    send(postfix, MSG.format(domain="example.org", tag="org").encode(), "192.0.2.77", "y@example.org")
    postfix.wait_sent(4)
    postfix.clear_sent()
    # The milter records behind the messages: wait until its writer thread has stored all four.
    store = SqliteStore(str(store_path))
    wait_until(lambda: len(store.results("example.net", 0, 2**40)) == 3
               and len(store.results("example.org", 0, 2**40)) == 1, 20, "four DMARC results recorded")

    # The UTC day the milter recorded them on (not the clock now: the test may cross midnight).
    day = time.strftime("%Y-%m-%d", time.gmtime(store.results("example.net", 0, 2**40)[0].date))
    done = owlery(cli, "dmarc", "report", "--day", day)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sent report for example.net to <dmarc-reports@example.net>" in done.stdout
    assert "sent report for example.org to <agg@example.com>" in done.stdout
    assert "skipped report for example.org to <agg@example.test>" in done.stdout
    sent = postfix.wait_sent(2)
    assert sorted(r for m in sent for r in m.rcpts) == ["agg@example.com", "dmarc-reports@example.net"]
    assert len(sent) == 2            # nothing for ruf= or the unverified external address

    reports = {}
    for m in sent:
        assert m.mail_from == "dmarc-noreply@owlery.test"
        [part] = list(m.message.iter_attachments())
        assert part.get_content_type() == "application/gzip"
        name = part.get_filename()
        receiver, domain, begin, end = name.removesuffix(".xml.gz").split("!")
        assert (receiver, int(end) - int(begin)) == ("owlery.test", 86399) and name.endswith(".xml.gz")
        assert m["Subject"].startswith(f"Report Domain: {domain} Submitter: owlery.test Report-ID: <")
        xml = gzip.decompress(part.get_content())
        validate(xml, tmp_path)
        reports[domain] = ET.fromstring(xml)
        if domain == "example.net":
            SAMPLE.write_bytes(xml)
    net = reports["example.net"]
    rows = {r.findtext("row/source_ip"): r for r in net.findall("record")}
    assert rows["192.0.2.10"].findtext("row/count") == "2"
    assert rows["192.0.2.10"].findtext("row/policy_evaluated/dkim") == "pass"
    assert rows["192.0.2.10"].findtext("auth_results/dkim/selector") == "r1"
    assert rows["192.0.2.99"].findtext("row/policy_evaluated/disposition") == "quarantine"
    assert rows["192.0.2.99"].findtext("auth_results/spf/result") == "none"
    assert net.findtext("policy_published/p") == "quarantine"
    assert reports["example.org"].findtext("record/row/count") == "1"

    again = owlery(cli, "dmarc", "report", "--day", day)
    assert again.returncode == 0 and "sent report" not in again.stdout, again.stdout
