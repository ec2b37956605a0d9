"""DMARC aggregate reports (RFC 7489 section 7.2): the day's results per policy domain as gzip'ed XML, mailed to its rua= addresses.

`owlery dmarc report` (milters/dmarc_cli.py, daily by systemd/owlery-dmarc-report.timer) reads
what the dmarc stage recorded (milters/dmarc_store.py) for one UTC day and, for each policy
domain whose record has rua= mailto: URIs:
- groups the messages into rows (same source IP, disposition, aligned results, identifiers
  and raw DKIM/SPF results) with their counts, and builds the XML of RFC 7489 Appendix C
  (tests/data/dmarc-rfc7489.xsd). The policy published is the domain's latest record seen;
  np= (RFC 9091) is not in that schema and is left out. Text from the message (domains,
  selectors) is escaped, cut to 255 characters and stripped of characters XML cannot carry;
  IPv6 sources are written in full, the only form the schema's pattern takes;
- verifies external destinations (RFC 7489 7.1): an address whose organizational domain
  differs from the policy domain's gets the report only when
  `<policy-domain>._report._dmarc.<address-domain>` publishes a v=DMARC1 TXT record (whose
  own rua=, if any, replaces the address, on the same host only);
- honours each URI's size limit (`mailto:a@example.com!10m`): a report larger than that is
  not sent to that address (logged), and at most dmarc_report_destination_limit addresses
  per domain get it;
- sends one message per address through the outbound path (submission_method: to
  submission_smtp_endpoint from 127.0.0.1, so the milter DKIM-signs it like any outbound
  mail): Subject "Report Domain: D Submitter: S Report-ID: <id>", the report attached as
  application/gzip named `receiver!policy-domain!begin!end.xml.gz` (RFC 7489 7.2.1.1).
Each (domain, day, address) is claimed in the store before it is sent and unclaimed when the
MTA refuses it, so a rerun, or a second MX host sharing PostgreSQL, never sends one twice.
Failure reports (ruf=) are never sent: Owlery does not implement them, so a domain's ruf=
gets nothing, by default and always.
Talks to: the results store, DNS (external destination checks), the MTA.
Tests: tests/milters/test_dmarc_report.py, tests/e2e/test_dmarc_report_e2e.py
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import ipaddress
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from owlery.settings import Str, int_range, setting

from milters.dmarc_store import DmarcResult

DMARC_REPORT_ORG_NAME = setting(
    "dmarc_report_org_name", Str, None,
    "Organization named in aggregate reports (report_metadata/org_name), e.g. \"Example Org\". "
    "`owlery dmarc report` refuses to run without it.")
DMARC_REPORT_EMAIL = setting(
    "dmarc_report_email", Str, None,
    "Address reports come from (From, envelope sender, report_metadata/email), e.g. "
    "\"dmarc-noreply@example.org\"; its domain is the receiver in report file names and the "
    "Submitter in subjects. `owlery dmarc report` refuses to run without it.")
DMARC_REPORT_EXTRA_CONTACT_INFO = setting(
    "dmarc_report_extra_contact_info", Str, None,
    "Optional report_metadata/extra_contact_info, e.g. a URL explaining the reports.")
DMARC_REPORT_DESTINATION_LIMIT = setting(
    "dmarc_report_destination_limit", int_range(1, 50), 5,
    "Most rua= addresses one domain's report is sent to (the first ones listed); a record cannot "
    "turn the report run into a mailing to many addresses.", unit="addresses")

VERSION = "1.0"
_TEXT_MAX = 255
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# Characters XML 1.0 cannot carry (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_DISPOSITIONS = ("none", "quarantine", "reject")
_DKIM_RESULTS = ("none", "pass", "fail", "policy", "neutral", "temperror", "permerror")
_SPF_RESULTS = ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")
_REASONS = ("forwarded", "sampled_out", "trusted_forwarder", "mailing_list", "local_policy", "other")

Send = Callable[[str, Sequence[str], bytes], Any]       # (envelope sender, recipients, message)


class ReportConfigError(ValueError):
    """The settings do not allow sending reports (org name or address missing)."""


@dataclasses.dataclass(frozen=True)
class Destination:
    """One mailto: rua URI: the address and its size limit in bytes (None: no limit)."""

    uri: str
    address: str
    size_limit: int | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower().rstrip(".")


def parse_uris(value: str) -> list[Destination]:
    """The mailto: URIs of a rua= value, in order; other schemes and malformed ones are skipped.

    A URI may end in `!SIZE[k|m|g|t]` (RFC 7489 6.2); commas and "!" inside a URI must be
    %-encoded, so the last "!" starts the limit."""
    out = []
    for part in value.split(","):
        part = part.strip()
        uri, bang, size = part.rpartition("!")
        if not bang:
            uri, size = part, ""
        limit = None
        if bang:
            m = re.fullmatch(r"(\d{1,15})([kmgt]?)", size.strip().lower())
            if m is None:
                continue
            limit = int(m[1]) * _SIZE_UNITS[m[2]]
        if uri[:7].lower() != "mailto:":
            continue
        address = urllib.parse.unquote(uri[7:].split("?", 1)[0]).strip()
        if len(address) > 254 or not _ADDRESS.fullmatch(address):
            continue
        out.append(Destination(uri, address, limit))
    return out


# --- grouping and XML ---------------------------------------------------------------------

def _row_key(r: DmarcResult) -> tuple:
    return (r.source_ip, r.disposition, r.dkim_aligned, r.spf_aligned, r.reasons, r.envelope_to,
            r.envelope_from, r.header_from, r.dkim, r.spf_domain, r.spf_scope, r.spf_result)


def group(results: Sequence[DmarcResult]) -> list[tuple[DmarcResult, int]]:
    """Rows of a report: one per distinct (source IP, evaluation, identifiers, auth results), with
    its message count; the largest count first, ties in a stable order."""
    counts: dict[tuple, list[Any]] = {}
    for r in results:
        entry = counts.setdefault(_row_key(r), [r, 0])
        entry[1] += 1
    return sorted(((r, n) for r, n in counts.values()), key=lambda rn: (-rn[1], _row_key(rn[0])))


def clean(text: str) -> str:
    """Text a hostile message put in a field, made fit for XML: no control characters, <= 255 long."""
    return _NOT_XML.sub("\ufffd", str(text))[:_TEXT_MAX]


def _ip(text: str) -> str:
    """The source IP as the schema's pattern wants it: dotted IPv4, or IPv6 with all 8 groups."""
    ip = ipaddress.ip_address(text)
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        return str(mapped) if mapped is not None else ip.exploded
    return str(ip)


def _one_of(value: str, allowed: tuple[str, ...], default: str) -> str:
    return value if value in allowed else default


@dataclasses.dataclass(frozen=True)
class Meta:
    """report_metadata: who reports, which report, which time range (UTC seconds, end inclusive)."""

    org_name: str
    email: str
    report_id: str
    begin: int
    end: int
    extra_contact_info: str | None = None


def build_xml(meta: Meta, policy: DmarcResult, rows: Sequence[tuple[DmarcResult, int]]) -> bytes:
    """The aggregate report XML (RFC 7489 Appendix C), UTF-8 with a declaration."""
    from xml.etree import ElementTree as ET

    def sub(parent: Any, tag: str, text: Any = None) -> Any:
        el = ET.SubElement(parent, tag)
        if text is not None:
            el.text = clean(str(text))
        return el

    root = ET.Element("feedback")
    sub(root, "version", VERSION)
    md = sub(root, "report_metadata")
    sub(md, "org_name", meta.org_name)
    sub(md, "email", meta.email)
    if meta.extra_contact_info:
        sub(md, "extra_contact_info", meta.extra_contact_info)
    sub(md, "report_id", meta.report_id)
    dr = sub(md, "date_range")
    sub(dr, "begin", int(meta.begin))
    sub(dr, "end", int(meta.end))
    pp = sub(root, "policy_published")
    sub(pp, "domain", policy.policy_domain)
    sub(pp, "adkim", "s" if policy.adkim == "s" else "r")
    sub(pp, "aspf", "s" if policy.aspf == "s" else "r")
    p = _one_of(policy.p, _DISPOSITIONS, "none")
    sub(pp, "p", p)
    sub(pp, "sp", _one_of(policy.sp, _DISPOSITIONS, p))      # sp= absent: p= applies to subdomains
    sub(pp, "pct", max(0, min(100, int(policy.pct))))
    sub(pp, "fo", policy.fo or "0")
    for r, count in rows:
        rec = sub(root, "record")
        row = sub(rec, "row")
        sub(row, "source_ip", _ip(r.source_ip))
        sub(row, "count", count)
        pe = sub(row, "policy_evaluated")
        sub(pe, "disposition", _one_of(r.disposition, _DISPOSITIONS, "none"))
        sub(pe, "dkim", "pass" if r.dkim_aligned == "pass" else "fail")
        sub(pe, "spf", "pass" if r.spf_aligned == "pass" else "fail")
        for reason in r.reasons:
            sub(sub(pe, "reason"), "type", _one_of(reason, _REASONS, "other"))
        ids = sub(rec, "identifiers")
        if r.envelope_to:
            sub(ids, "envelope_to", r.envelope_to)
        sub(ids, "envelope_from", r.envelope_from)
        sub(ids, "header_from", r.header_from)
        ar = sub(rec, "auth_results")
        for domain, selector, result in r.dkim:
            dk = sub(ar, "dkim")
            sub(dk, "domain", domain)
            if selector:
                sub(dk, "selector", selector)
            sub(dk, "result", _one_of(result, _DKIM_RESULTS, "permerror"))
        spf = sub(ar, "spf")
        sub(spf, "domain", r.spf_domain)
        sub(spf, "scope", "helo" if r.spf_scope == "helo" else "mfrom")
        sub(spf, "result", _one_of(r.spf_result, _SPF_RESULTS, "permerror"))
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8",
                                                                     xml_declaration=False) + b"\n"


def _a_label(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def report_id(receiver: str, policy_domain: str, begin: int, end: int) -> str:
    """A stable id for one domain's report of one period (a rerun resends the same id)."""
    digest = hashlib.sha256(f"{receiver}\0{policy_domain}\0{begin}\0{end}".encode()).hexdigest()[:20]
    return f"{time.strftime('%Y%m%d', time.gmtime(begin))}.{digest}@{receiver}"


def filename(receiver: str, policy_domain: str, begin: int, end: int) -> str:
    """RFC 7489 7.2.1.1: receiver "!" policy-domain "!" begin "!" end ".xml.gz"."""
    name = f"{_a_label(receiver)}!{_a_label(policy_domain)}!{int(begin)}!{int(end)}.xml.gz"
    return re.sub(r"[^A-Za-z0-9.!_-]", "_", name)


def build_message(meta: Meta, *, receiver: str, policy_domain: str, to: str, gz: bytes, rows: int,
                  messages: int, now: float) -> bytes:
    """The report mail: a short text part and the gzip'ed XML attached (CRLF line ends)."""
    import email.policy
    import email.utils
    from email.message import EmailMessage
    msg = EmailMessage()
    msg["From"] = email.utils.formataddr((clean(meta.org_name), meta.email))
    msg["To"] = to
    msg["Subject"] = (f"Report Domain: {_a_label(policy_domain)} Submitter: {receiver} "
                      f"Report-ID: <{meta.report_id}>")
    msg["Date"] = email.utils.formatdate(now)
    msg["Message-ID"] = email.utils.make_msgid("dmarc", domain=receiver)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(f"DMARC aggregate report (RFC 7489) for {_a_label(policy_domain)} from {clean(meta.org_name)}:\n"
                    f"{messages} message{'s' if messages != 1 else ''} in {rows} row{'s' if rows != 1 else ''}, "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(meta.begin))} to "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(meta.end))} UTC.\n")
    msg.add_attachment(gz, maintype="application", subtype="gzip",
                       filename=filename(receiver, policy_domain, meta.begin, meta.end))
    return msg.as_bytes(policy=email.policy.SMTP)


# --- external destinations ---------------------------------------------------------------

def authorised_destinations(resolver: Any, psl: Any, policy_domain: str, dest: Destination,
                            txt_size_limit: int = 8192) -> list[Destination]:
    """RFC 7489 7.1: the addresses `dest` stands for, [] when its domain has not agreed to get
    reports for `policy_domain`. Raises milters.dns.DnsTempError when DNS fails."""
    from milters import dns as mdns
    from milters.stages.dmarc import parse_record
    host = dest.domain
    if psl.organizational_domain(host) == psl.organizational_domain(policy_domain):
        return [dest]
    name = f"{_a_label(policy_domain)}._report._dmarc.{_a_label(host)}"
    records = [r for r in (parse_record(t) for t in mdns.txt_records(resolver, name, txt_size_limit)) if r]
    if not records:
        return []
    replacement = records[0].get("rua")
    if replacement:
        # The report receiver may name other addresses, on the same host only (no loops, no relaying).
        same_host = [d for d in parse_uris(replacement) if d.domain == host]
        if same_host:
            return same_host
    return [dest]


# --- the run -----------------------------------------------------------------------------

@dataclasses.dataclass
class DmarcReportOutcome:
    """What a run did, per (policy domain, address)."""

    sent: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)       # domain, to, bytes
    failed: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)     # domain, to, why
    skipped: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)    # domain, to, why
    written: list[str] = dataclasses.field(default_factory=list)                     # --output files
    reports: dict[str, bytes] = dataclasses.field(default_factory=dict)              # domain -> XML


def day_range(day: str | None, now: float) -> tuple[int, int]:
    """[begin, end] in UTC seconds (end inclusive) of `day` (YYYY-MM-DD), by default yesterday's."""
    import calendar
    if day is None:
        begin = (int(now) // 86400 - 1) * 86400
    else:
        try:
            begin = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
        except ValueError:
            raise ValueError(f"--day {day!r}: expected YYYY-MM-DD") from None
    return begin, begin + 86399


class Reporter:
    """One report run over `store`, checking destinations through `resolver`, mailing through `send`."""

    def __init__(self, settings: Any, store: Any, send: Send, *, resolver: Any, psl: Any,
                 log: Callable[..., Any]):
        if not settings.dmarc_report_org_name or not settings.dmarc_report_email:
            raise ReportConfigError("set dmarc_report_org_name and dmarc_report_email to send DMARC reports")
        if not _ADDRESS.fullmatch(settings.dmarc_report_email):
            raise ReportConfigError(f"dmarc_report_email {settings.dmarc_report_email!r} is not an address")
        self.s, self.store, self.send, self.resolver, self.psl = settings, store, send, resolver, psl
        self.log = log          # owlery.log.decision-like: log(action, **fields)
        self.receiver = settings.dmarc_report_email.rpartition("@")[2].lower()

    def run(self, begin: int, end: int, *, now: float, dry_run: bool = False,
            output_dir: str | None = None) -> DmarcReportOutcome:
        from milters.dns import DnsTempError
        out = DmarcReportOutcome()
        for domain in self.store.domains(begin, end + 1):
            results = self.store.results(domain, begin, end + 1)
            if not results:
                continue
            policy = results[-1]           # the record as last seen
            rows = group(results)
            meta = Meta(self.s.dmarc_report_org_name, self.s.dmarc_report_email,
                        report_id(self.receiver, domain, begin, end), begin, end,
                        self.s.dmarc_report_extra_contact_info)
            xml = build_xml(meta, policy, rows)
            out.reports[domain] = xml
            gz = gzip.compress(xml, mtime=begin)
            if output_dir is not None:
                path = os.path.join(output_dir, filename(self.receiver, domain, begin, end))
                with open(path, "wb") as f:
                    f.write(gz)
                out.written.append(path)
            destinations = parse_uris(policy.rua)[: self.s.dmarc_report_destination_limit]
            if not destinations:
                out.skipped.append((domain, "", "no mailto: rua= address"))
                continue
            for dest in destinations:
                try:
                    targets = authorised_destinations(self.resolver, self.psl, domain, dest,
                                                      self.s.milter_dns_txt_size_limit)
                except DnsTempError as e:
                    out.failed.append((domain, dest.address, f"external destination check: {e}"))
                    self.log("report-failed", domain=domain, to=dest.address, reason=f"DNS: {str(e)[:200]}")
                    continue
                if not targets:
                    why = (f"{dest.domain} has not agreed to get reports for {domain} "
                           f"(no v=DMARC1 at {domain}._report._dmarc.{dest.domain})")
                    out.skipped.append((domain, dest.address, why))
                    self.log("report-skipped", domain=domain, to=dest.address, reason="external destination not verified")
                    continue
                for target in targets:
                    self._send_one(out, meta, domain, target, gz, len(rows), len(results), now, dry_run)
        return out

    def _send_one(self, out: DmarcReportOutcome, meta: Meta, domain: str, dest: Destination, gz: bytes, rows: int,
                  messages: int, now: float, dry_run: bool) -> None:
        from owlery.quarantine.release import ReleaseError
        data = build_message(meta, receiver=self.receiver, policy_domain=domain, to=dest.address, gz=gz,
                             rows=rows, messages=messages, now=now)
        if dest.size_limit is not None and len(data) > dest.size_limit:
            why = f"report of {len(data)} bytes exceeds the address's limit of {dest.size_limit}"
            out.skipped.append((domain, dest.address, why))
            self.log("report-skipped", domain=domain, to=dest.address, reason="size limit",
                     size=len(data), limit=dest.size_limit)
            return
        if dry_run:
            out.sent.append((domain, dest.address, len(data)))
            return
        if not self.store.claim_report(domain, meta.begin, dest.address.lower(), now):
            out.skipped.append((domain, dest.address, "already sent"))
            return
        try:
            self.send(self.s.dmarc_report_email, [dest.address], data)
        except (ReleaseError, ValueError) as e:      # ValueError: smtplib refusing CR/LF in an address
            self.store.unclaim_report(domain, meta.begin, dest.address.lower())
            out.failed.append((domain, dest.address, str(e)))
            self.log("report-failed", domain=domain, to=dest.address, reason=str(e)[:300])
            return
        out.sent.append((domain, dest.address, len(data)))
        self.log("report-sent", domain=domain, to=dest.address, report_id=meta.report_id, rows=rows,
                 messages=messages, size=len(data))
