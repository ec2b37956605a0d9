"""DMARC aggregate reports (milters/dmarc_report.py, milters/dmarc_cli.py): rows, XML, mail, destinations.

Every report built here is validated with `xmllint --schema tests/data/dmarc-rfc7489.xsd`
(RFC 7489 Appendix C). External destinations are checked against the harness DNS stub;
mail goes to a recording `send`; the CLI runs with --dry-run and --output (the e2e test,
tests/e2e/test_dmarc_report_e2e.py, sends through real Postfix).
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import gzip
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from milters import dmarc_report as dr
from milters import psl
from milters.dmarc_store import DmarcResult, SqliteStore
from owlery.settings import Settings

XSD = Path(__file__).resolve().parents[1] / "data" / "dmarc-rfc7489.xsd"
DAY = 1704067200                      # 2024-01-01 00:00:00 UTC
BEGIN, END = DAY, DAY + 86399


def validate(xml: bytes, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "report.xml"
    path.write_bytes(xml)
    return subprocess.run(["xmllint", "--noout", "--schema", str(XSD), str(path)],
                          capture_output=True, text=True, timeout=30)


def assert_valid(xml: bytes, tmp_path: Path) -> None:
    done = validate(xml, tmp_path)
    assert done.returncode == 0, done.stderr + xml.decode(errors="replace")


def result(**kw) -> DmarcResult:
    base = dict(date=DAY + 3600, source_ip="192.0.2.10", header_from="example.net",
                envelope_from="example.net", envelope_to="example.test", policy_domain="example.net",
                result="pass", disposition="none", dkim_aligned="pass", spf_aligned="pass",
                dkim=(("example.net", "r1", "pass"),), spf_domain="example.net", spf_result="pass",
                p="reject", sp="", np="", pct=100, rua="mailto:dmarc@example.net", host="mx1")
    base.update(kw)
    return DmarcResult(**base)


def meta(**kw) -> dr.Meta:
    base = dict(org_name="Owlery Test", email="dmarc-noreply@owlery.test",
                report_id=dr.report_id("owlery.test", "example.net", BEGIN, END), begin=BEGIN, end=END)
    base.update(kw)
    return dr.Meta(**base)


def settings(**kw) -> Settings:
    base = dict(dmarc_report_org_name="Owlery Test", dmarc_report_email="dmarc-noreply@owlery.test")
    base.update(kw)
    return Settings().replace(**{k: v for k, v in base.items() if v is not None})


# --- grouping and XML ---------------------------------------------------------------------

def test_identical_evaluations_become_one_row_with_their_count():
    rows = dr.group([result(), result(date=DAY + 7200), result(source_ip="192.0.2.11"), result()])
    assert [(r.source_ip, n) for r, n in rows] == [("192.0.2.10", 3), ("192.0.2.11", 1)]


@pytest.mark.parametrize("change", [
    dict(disposition="quarantine", result="fail", dkim_aligned="fail", spf_aligned="fail"),
    dict(envelope_from="bounce.example.com"),
    dict(envelope_to="other.test"),
    dict(dkim=(("example.net", "r2", "pass"),)),
    dict(spf_result="softfail"),
    dict(reasons=("sampled_out",)),
])
def test_any_reported_difference_makes_its_own_row(change):
    rows = dr.group([result(), result(**change)])
    assert sorted(n for _, n in rows) == [1, 1]


def test_report_xml_validates_and_says_what_was_seen(tmp_path):
    rows = dr.group([result(), result(), result(
        source_ip="2001:db8::25", result="fail", disposition="quarantine", dkim_aligned="fail",
        spf_aligned="fail", reasons=("sampled_out",), dkim=(("evil.example", "s", "fail"),),
        spf_domain="evil.example", spf_result="fail", envelope_from="evil.example")])
    xml = dr.build_xml(meta(), result(sp="quarantine", pct=50), rows)
    assert_valid(xml, tmp_path)
    root = ET.fromstring(xml)
    assert root.findtext("version") == "1.0"
    assert root.findtext("report_metadata/date_range/begin") == str(BEGIN)
    assert root.findtext("report_metadata/date_range/end") == str(END)
    pp = root.find("policy_published")
    assert [pp.findtext(t) for t in ("domain", "p", "sp", "pct", "adkim", "aspf", "fo")] == \
        ["example.net", "reject", "quarantine", "50", "r", "r", "0"]
    first, second = root.findall("record")
    assert first.findtext("row/count") == "2" and first.findtext("row/policy_evaluated/dkim") == "pass"
    assert second.findtext("row/source_ip") == "2001:0db8:0000:0000:0000:0000:0000:0025"
    assert second.findtext("row/policy_evaluated/disposition") == "quarantine"
    assert second.findtext("row/policy_evaluated/reason/type") == "sampled_out"
    assert second.findtext("auth_results/dkim/selector") == "s"
    assert second.findtext("auth_results/spf/scope") == "mfrom"
    assert second.findtext("identifiers/envelope_to") == "example.test"


def test_absent_sp_is_reported_as_p_and_np_is_left_out(tmp_path):
    xml = dr.build_xml(meta(), result(p="quarantine", sp="", np="reject"), dr.group([result()]))
    assert_valid(xml, tmp_path)
    root = ET.fromstring(xml)
    assert root.findtext("policy_published/sp") == "quarantine"
    assert root.find("policy_published/np") is None     # not in RFC 7489's schema


@pytest.mark.parametrize("hostile", [
    "<script>&amp;\"'</script>",
    "a]]>b",
    "ctl\x00\x01\x1b\x7f",
    "\ud800lone surrogate",
    "x" * 5000,
    "bücher.example",
])
def test_hostile_domains_and_selectors_are_escaped_and_the_report_still_validates(hostile, tmp_path):
    bad = result(header_from=hostile, envelope_from=hostile, envelope_to=hostile,
                 dkim=((hostile, hostile, "pass"), ("example.net", "", "no-such-result")),
                 spf_domain=hostile, spf_result="bogus", disposition="bogus", reasons=("bogus",))
    xml = dr.build_xml(meta(org_name=hostile, extra_contact_info=hostile), result(policy_domain=hostile),
                       dr.group([bad]))
    assert_valid(xml, tmp_path)
    root = ET.fromstring(xml)
    text = root.findtext("record/identifiers/header_from")
    assert len(text) <= 255 and "\x00" not in text
    if hostile.startswith("<"):
        assert text == hostile and b"<script>" not in xml       # escaped, not markup
    assert root.findtext("record/auth_results/dkim[2]/result") == "permerror"
    assert root.find("record/auth_results/dkim[2]/selector") is None
    assert root.findtext("record/row/policy_evaluated/reason/type") == "other"


def test_ipv4_mapped_source_is_written_as_ipv4(tmp_path):
    xml = dr.build_xml(meta(), result(), dr.group([result(source_ip="::ffff:192.0.2.99")]))
    assert_valid(xml, tmp_path)
    assert ET.fromstring(xml).findtext("record/row/source_ip") == "192.0.2.99"


def test_the_schema_is_not_a_rubber_stamp(tmp_path):
    xml = dr.build_xml(meta(), result(), dr.group([result()]))
    broken = xml.replace(b"<fo>0</fo>", b"").replace(b"<scope>mfrom</scope>", b"<scope>rcpt</scope>")
    done = validate(broken, tmp_path)
    assert done.returncode != 0 and "fo" in done.stderr and "scope" in done.stderr


# --- names, ids, the mail -------------------------------------------------------------------

def test_filename_follows_rfc7489_and_cannot_be_a_path():
    assert dr.filename("owlery.test", "example.net", BEGIN, END) == f"owlery.test!example.net!{BEGIN}!{END}.xml.gz"
    assert dr.filename("owlery.test", "bücher.example", BEGIN, END).startswith("owlery.test!xn--bcher-kva.example!")
    assert "/" not in dr.filename("owlery.test", "../../etc/passwd", BEGIN, END)


def test_report_id_is_stable_per_domain_and_period():
    rid = dr.report_id("owlery.test", "example.net", BEGIN, END)
    assert rid == dr.report_id("owlery.test", "example.net", BEGIN, END)
    assert rid != dr.report_id("owlery.test", "example.org", BEGIN, END)
    assert rid.startswith("20240101.") and rid.endswith("@owlery.test")


def test_the_mail_carries_the_gzipped_report_under_rfc_names(tmp_path):
    xml = dr.build_xml(meta(), result(), dr.group([result()]))
    gz = gzip.compress(xml, mtime=BEGIN)
    raw = dr.build_message(meta(), receiver="owlery.test", policy_domain="example.net", to="dmarc@example.net",
                           gz=gz, rows=1, messages=1, now=DAY + 90000)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == (f"Report Domain: example.net Submitter: owlery.test "
                              f"Report-ID: <{meta().report_id}>")
    [part] = [p for p in msg.iter_attachments()]
    assert part.get_content_type() == "application/gzip"
    assert part.get_filename() == f"owlery.test!example.net!{BEGIN}!{END}.xml.gz"
    assert gzip.decompress(part.get_content()) == xml
    assert msg["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize("value,expected", [
    ("mailto:a@example.net", [("a@example.net", None)]),
    ("mailto:a@example.net!10m, mailto:b@example.org!500k", [("a@example.net", 10 << 20), ("b@example.org", 500 << 10)]),
    ("mailto:a@example.net!2", [("a@example.net", 2)]),
    ("https://example.net/dmarc, mailto:a@example.net", [("a@example.net", None)]),
    ("mailto:a@example.net!10x", []),
    ("mailto:a%40b@example.net", []),                  # two @ once decoded
    ("mailto:<a@example.net>\r\nBcc: x@y", []),
    ("MAILTO:A@Example.NET?subject=x", [("A@Example.NET", None)]),
    ("", []),
])
def test_rua_uris(value, expected):
    assert [(d.address, d.size_limit) for d in dr.parse_uris(value)] == expected


def test_day_range_is_a_utc_day_and_defaults_to_yesterday():
    assert dr.day_range("2024-01-01", 0) == (BEGIN, END)
    assert dr.day_range(None, DAY + 86400 + 5) == (BEGIN, END)
    with pytest.raises(ValueError):
        dr.day_range("01/01/2024", 0)


# --- external destinations (RFC 7489 7.1), through the DNS stub --------------------------------

@pytest.fixture
def checker(dns_zone):
    resolver = dns_zone.resolver()
    suffixes = psl.shared()
    return lambda domain, uri: [d.address for d in dr.authorised_destinations(
        resolver, suffixes, domain, dr.parse_uris(uri)[0])]


def test_same_organizational_domain_needs_no_check(checker):
    assert checker("mail.example.net", "mailto:dmarc@reports.example.net") == ["dmarc@reports.example.net"]


def test_external_destination_without_its_consent_gets_nothing(checker, dns_zone):
    assert checker("example.net", "mailto:dmarc@example.org") == []
    dns_zone.set("example.net._report._dmarc.example.org", "TXT", "v=spf1 -all")      # not DMARC1
    assert checker("example.net", "mailto:dmarc@example.org") == []


def test_external_destination_that_agreed_gets_it(checker, dns_zone):
    dns_zone.set("example.net._report._dmarc.example.org", "TXT", "v=DMARC1")
    assert checker("example.net", "mailto:dmarc@example.org") == ["dmarc@example.org"]


def test_external_destination_may_redirect_on_its_own_host_only(checker, dns_zone):
    dns_zone.set("example.net._report._dmarc.example.org", "TXT",
                 "v=DMARC1; rua=mailto:other@example.org,mailto:victim@example.com")
    assert checker("example.net", "mailto:dmarc@example.org") == ["other@example.org"]


def test_dns_failure_of_the_check_is_temporary(checker, dns_zone):
    from milters.dns import DnsTempError
    dns_zone.fail("example.net._report._dmarc.example.org")
    with pytest.raises(DnsTempError):
        checker("example.net", "mailto:dmarc@example.org")


# --- a whole run over a SQLite store ------------------------------------------------------------

@dataclasses.dataclass
class Recorded:
    sent: list = dataclasses.field(default_factory=list)
    refuse: bool = False

    def __call__(self, sender, rcpts, data):
        from owlery.quarantine.release import ReleaseError, ReleaseResult
        if self.refuse:
            raise ReleaseError("451 try later")
        self.sent.append((sender, list(rcpts), data))
        return ReleaseResult(tuple(rcpts), {})


@pytest.fixture
def run(tmp_path, dns_zone):
    store = SqliteStore(str(tmp_path / "dmarc" / "results.sqlite3"))

    def go(results, *, send=None, dry_run=False, output_dir=None, **kw):
        if results:
            store.add_many(results)
        send = send or Recorded()
        reporter = dr.Reporter(settings(**kw), store, send, resolver=dns_zone.resolver(), psl=psl.shared(),
                               log=lambda action, **f: logged.append((action, f)))
        out = reporter.run(BEGIN, END, now=DAY + 90000, dry_run=dry_run, output_dir=output_dir)
        return out, send
    logged: list = []
    go.store, go.logged = store, logged
    return go


def test_one_report_per_domain_to_each_address_and_never_twice(run, tmp_path):
    results = [result(), result(), result(policy_domain="example.com", header_from="example.com",
                                          rua="mailto:agg@example.com,mailto:agg2@example.com", p="none")]
    out, send = run(results)
    assert sorted((d, to) for d, to, _ in out.sent) == [
        ("example.com", "agg2@example.com"), ("example.com", "agg@example.com"), ("example.net", "dmarc@example.net")]
    for sender, _rcpts, data in send.sent:
        assert sender == "dmarc-noreply@owlery.test"
        msg = email.message_from_bytes(data, policy=email.policy.default)
        [part] = list(msg.iter_attachments())
        assert_valid(gzip.decompress(part.get_content()), tmp_path)
    net = ET.fromstring(out.reports["example.net"])
    assert net.findtext("record/row/count") == "2"
    again, send2 = run([])
    assert again.sent == [] and send2.sent == [] and {why for *_, why in again.skipped} == {"already sent"}


def test_results_outside_the_day_are_not_reported(run):
    out, _ = run([result(date=BEGIN - 1), result(date=END + 1)])
    assert out.sent == [] and out.reports == {}


def test_a_refused_report_is_unclaimed_for_the_next_run(run):
    out, _ = run([result()], send=Recorded(refuse=True))
    assert out.failed and not out.sent
    out2, send = run([])
    assert [to for _, to, _ in out2.sent] == ["dmarc@example.net"] and len(send.sent) == 1


def test_unverified_external_destination_gets_nothing(run, dns_zone):
    out, send = run([result(rua="mailto:reports@example.org")])
    assert send.sent == [] and "has not agreed" in out.skipped[0][2]
    dns_zone.set("example.net._report._dmarc.example.org", "TXT", "v=DMARC1;")
    out, send = run([])
    assert [rcpts for _, rcpts, _ in send.sent] == [["reports@example.org"]]


def test_size_limit_of_the_address_is_honoured(run):
    out, send = run([result(rua="mailto:small@example.net!1k,mailto:big@example.net!10m")])
    assert [rcpts for _, rcpts, _ in send.sent] == [["big@example.net"]]
    assert [(to, "exceeds" in why) for _, to, why in out.skipped] == [("small@example.net", True)]


def test_at_most_the_destination_limit_of_addresses_get_it(run):
    rua = ",".join(f"mailto:r{i}@example.net" for i in range(8))
    out, send = run([result(rua=rua)], dmarc_report_destination_limit=2)
    assert [rcpts for _, rcpts, _ in send.sent] == [["r0@example.net"], ["r1@example.net"]]


def test_no_rua_no_report(run):
    out, send = run([result(rua="")])
    assert send.sent == [] and out.skipped == [("example.net", "", "no mailto: rua= address")]


def test_dry_run_sends_and_claims_nothing_and_output_writes_the_files(run, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    out, send = run([result()], dry_run=True, output_dir=str(outdir))
    assert send.sent == [] and [to for _, to, _ in out.sent] == ["dmarc@example.net"]
    [path] = outdir.iterdir()
    assert path.name == f"owlery.test!example.net!{BEGIN}!{END}.xml.gz"
    assert_valid(gzip.decompress(path.read_bytes()), tmp_path)
    out2, send2 = run([])
    assert len(send2.sent) == 1           # the dry run claimed nothing


def test_settings_must_name_the_reporter(run):
    with pytest.raises(dr.ReportConfigError):
        run([result()], dmarc_report_org_name=None)
    with pytest.raises(dr.ReportConfigError):
        run([result()], dmarc_report_email="not an address")


def test_cli_dry_run_and_output(tmp_path):
    store = SqliteStore(str(tmp_path / "results.sqlite3"))
    store.add_many([result()])
    config = tmp_path / "owlery.toml"
    config.write_text(f'dmarc_report_store_path = "{tmp_path / "results.sqlite3"}"\n'
                      'dmarc_report_org_name = "Owlery Test"\ndmarc_report_email = "dmarc@owlery.test"\n'
                      'dns_nameservers = ["127.0.0.1"]\ndns_port = 9\ndns_timeout = 1\n')
    outdir = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "owlery.app.cli", "dmarc", "report", "--config", str(config),
                           "--day", "2024-01-01", "--dry-run", "--output", str(outdir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "would send report for example.net to <dmarc@example.net>" in done.stdout
    assert [p.name for p in outdir.iterdir()] == [f"owlery.test!example.net!{BEGIN}!{END}.xml.gz"]
    bad = subprocess.run([sys.executable, "-m", "owlery.app.cli", "dmarc", "report", "--config", str(config),
                          "--day", "yesterday"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr


def test_readme_section_settings_parse_and_commands_exist():
    import re
    import shlex

    from owlery.app.cli import build_parser
    from owlery.settings import parse_text
    from tests.core.test_readme import README, literal_blocks
    m = re.search(r"^DMARC reports\n~+\n(.*?)(?=^\S[^\n]*\n[=~-]{3,}\n)", README, re.S | re.M)
    assert m, "README has no subsection 'DMARC reports'"
    console, toml = literal_blocks(m.group(1))
    s = parse_text(toml, "README.rst")
    assert s.dmarc_report_record is True and s.dmarc_report_retention == 14 * 86400
    for line in console.splitlines():
        build_parser().parse_args(shlex.split(line.removeprefix("$ "))[1:])
