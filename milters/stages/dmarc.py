"""Stage `dmarc`: DMARC (RFC 7489) from the dkim_verify and spf results; policy from DNS.

The From domain's `_dmarc` TXT record (else, only when it has no DMARC record at all, the
organizational domain's, using `sp=`; several records end the discovery: RFC 7489 6.6.3);
the organizational domain comes from the Public Suffix List (milters/psl.py: Debian's package).
DMARC passes when a DKIM pass (d=) or the MAIL FROM SPF pass is aligned with the From
domain: relaxed (same organizational domain) or strict (equal) per `adkim=`/`aspf=`.
On failure with p=reject the message is rejected when `dmarc_reject_enforce` is true
(550 5.7.1), p=quarantine adds DMARC_POLICY_QUARANTINE (scored for quarantine).
Results: `dmarc=pass|fail|none|temperror|permerror (p=.. dis=..) header.from=domain`.
`pct=` samples the policy (RFC 7489 6.6.4: outside the sample the next less strict policy
applies, reason sampled_out); a subdomain without a record of its own gets the
organizational record's `sp=`, or its `np=` when the subdomain does not exist (RFC 9091:
NXDOMAIN, or no A, AAAA nor MX). With `dmarc_report_record` each evaluated message's result
goes to the aggregate-report store, asynchronously (milters/dmarc_store.py).

The Author Domain (RFC 7489 section 3.1.1) is the domain of the one address in the one
From field; a message where that is not well defined is refused (550 5.7.1, RFC 7489
section 6.6.1), whatever the domain's policy: no From field or several (RFC 5322 section
3.6 allows exactly one), a From with no address or several, one that does not parse, and
an address whose domain is empty or not a domain name. A display name, comments, an
obsolete route or a group holding exactly one address are fine (see author_domain).
Talks to: DNS (through milters.dns). Tests: tests/milters/test_auth_stages.py,
tests/milters/test_auth_hostile.py, tests/milters/test_dmarc_report_policy.py (pct, sp, np, recording),
tests/milters/test_dmarc_temperror_text.py (temperror comment), tests/milters/test_dmarc_differential.py
and tests/milters/test_auth_differential_s21.py (verdicts against OpenDMARC's)
"""

from __future__ import annotations

import functools
import logging
import random
import re
import socket
from email import errors as email_errors
from email import policy as email_policy
from typing import Any

from owlery.dns import a_label
from owlery.reply import Reply
from owlery.settings import Bool, Float, Str, int_range, setting

from milters import dmarc_store
from milters import dns as mdns
from milters import psl
from milters.effects import StageReport
from milters.stages import Stage

DMARC_REJECT_ENFORCE = setting(
    "dmarc_reject_enforce", Bool, True,
    "Reject (550 5.7.1) mail failing DMARC whose domain publishes p=reject. False: only "
    "score it (DMARC_POLICY_REJECT).")
DMARC_REJECT_SCORE = setting(
    "dmarc_reject_score", Float, 10.0, "Score of DMARC_POLICY_REJECT when not enforced.")
DMARC_QUARANTINE_SCORE = setting(
    "dmarc_quarantine_score", Float, 6.0, "Score of DMARC_POLICY_QUARANTINE (p=quarantine failed).")
DMARC_PUBLIC_SUFFIX_LIST = setting(
    "dmarc_public_suffix_list", Str, psl.SYSTEM_LIST,
    "Public Suffix List file for organizational domains; the default is Debian's publicsuffix "
    "package, updated by apt. When the file does not exist, the copy bundled with Owlery (may be "
    "stale) is used and that is logged once.")

DMARC_FROM_LENGTH_MAX = setting(
    "dmarc_from_length_max", int_range(256, 1_000_000), 4096,
    "Longest From field (unfolded, in characters) the dmarc stage parses; a longer one is refused "
    "as unreadable (one author's address is far shorter).", unit="characters")

log = logging.getLogger("owlery.milter")

REPLY_DMARC_REJECT = Reply(550, "5.7.1", "Rejected by DMARC policy")
# RFC 7489 section 6.6.1: a message whose Author Domain is not well defined is refused.
REPLY_BAD_FROM = Reply(550, "5.7.1", "From header field must hold exactly one address with a domain "
                                     "(RFC 5322 section 3.6, RFC 7489 section 6.6.1)")

# Letters, digits, hyphen (and underscore, seen in real host names) per ASCII label; any
# non-ASCII character stands for a U-label (RFC 6531 addresses), checked no further here,
# except U+FFFD: Header.text's stand-in for bytes that were not UTF-8.
_LABEL = re.compile(r"(?:[A-Za-z0-9_-]|[^\x00-\x7f\ufffd])+")


class BadFrom(ValueError):
    """The From field gives no single Author Domain; str() is the reply text (fixed, printable)."""


def author_domain(message: Any, length_max: int = 4096) -> str:
    """The Author Domain: lower-cased domain of the From field's one address; BadFrom otherwise.

    Parsed by the standard library's RFC 5322 parser (email.headerregistry), which handles
    display names, quoted strings, comments, encoded words and groups; any parse defect
    other than obsolete-but-legal syntax (RFC 5322 section 4) makes the field unreadable.
    """
    froms = message.get_all("From")
    if not froms:
        raise BadFrom("Message has no From header field (RFC 5322 section 3.6)")
    if len(froms) > 1:
        raise BadFrom("Message has more than one From header field (RFC 5322 section 3.6)")
    text = froms[0].text
    if len(text) > length_max:
        raise BadFrom("From header field is too long")
    verdict, value = _from_domain(text)
    if verdict != "ok":
        raise BadFrom(value)
    return value


@functools.lru_cache(maxsize=1024)
def _from_domain(text: str) -> tuple[str, str]:
    """("ok", domain) or ("bad", reply text) for one From value. Remembered per process: the
    stdlib's parser costs about half a millisecond and a busy MX sees the same From fields
    (the big senders') again and again."""
    try:
        return "ok", _parse_from(text)
    except BadFrom as e:
        return "bad", str(e)


def _parse_from(text: str) -> str:
    try:
        field = email_policy.default.header_factory("From", text)
        addresses = list(field.addresses)
        defects = list(field.defects)
    except Exception:  # noqa: BLE001 - the stdlib parser may fail any way on hostile input
        raise BadFrom("From header field cannot be parsed (RFC 5322 section 3.6.2)") from None
    if any(isinstance(d, (email_errors.InvalidHeaderDefect, email_errors.HeaderMissingRequiredValue))
           for d in defects):
        raise BadFrom("From header field cannot be parsed (RFC 5322 section 3.6.2)")
    if not addresses:
        raise BadFrom("From header field holds no address (RFC 7489 section 6.6.1)")
    if len(addresses) > 1:
        raise BadFrom("From header field holds more than one address (RFC 7489 section 6.6.1)")
    domain = addresses[0].domain.strip().lower()
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        raise BadFrom("From address has no domain (RFC 7489 section 6.6.1)")
    # An internationalised domain (an SMTPUTF8 message) as its A-label: the name its policy is
    # published under and the form SPF and DKIM report theirs in, so alignment compares like
    # with like (RFC 8616 sections 4-6). IDNA2008 first; a name only IDNA 2003 takes (symbols,
    # registered before 2008) as dnspython would look it up; neither: no domain name.
    alabel = a_label(domain)
    if alabel is None:
        try:
            alabel = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadFrom("From address domain is not a domain name (RFC 7489 section 6.6.1)") from None
    domain = alabel
    labels = domain.split(".")
    if (domain.startswith("[") or len(domain) > 253
            or not all(_LABEL.fullmatch(label) and len(label) <= 63 for label in labels)):
        raise BadFrom("From address domain is not a domain name (RFC 7489 section 6.6.1)")
    return domain


def parse_record(txt: bytes) -> dict[str, str] | None:
    """Tags of a DMARC record, or None if it is not one (must start with v=DMARC1)."""
    try:
        text = txt.decode("ascii")
    except UnicodeDecodeError:
        return None
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        key, eq, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if i == 0:
            if key != "v" or value != "DMARC1":
                return None
        if eq and key and key not in tags:
            tags[key] = value
    return tags


class Dmarc(Stage):
    name = "dmarc"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        path = settings.dmarc_public_suffix_list
        self.psl = psl.shared(path) if path is not None else psl.shared()
        # Results for aggregate reports, written behind the message (milters/dmarc_store.py).
        self.recorder = dmarc_store.Recorder.from_settings(settings) if settings.dmarc_report_record else None
        self.random = random.random        # pct= sampling; tests replace it
        self.host = socket.gethostname()

    def _records(self, domain: str) -> list[dict[str, str]]:
        """The DMARC records at _dmarc.domain; TXT records not starting with v=DMARC1 are
        discarded (RFC 7489 6.6.3 steps 2 and 4)."""
        return [r for r in (parse_record(t) for t in mdns.txt_records(
            self.services.resolver, "_dmarc." + domain, self.settings.milter_dns_txt_size_limit)) if r]

    def _record(self, domain: str) -> dict[str, str] | None:
        records = self._records(domain)
        return records[0] if len(records) == 1 else None

    def aligned(self, a: str, b: str, mode: str) -> bool:
        a, b = a.lower().rstrip("."), b.lower().rstrip(".")
        if mode == "s":
            return a == b
        return self.psl.organizational_domain(a) == self.psl.organizational_domain(b)

    def check(self, message: Any, report: StageReport) -> None:
        try:
            domain = author_domain(message, self.settings.dmarc_from_length_max)
        except BadFrom as e:
            report.auth_result("dmarc", "permerror", comment="no single From domain")
            report.symbol("DMARC_BAD_FROM", 0.0, str(e))
            report.reject(REPLY_BAD_FROM.with_text(str(e)), f"dmarc: {e}")
            return
        org = self.psl.organizational_domain(domain)
        try:
            # RFC 7489 6.6.3: the organizational domain is asked only when the From domain has no
            # DMARC record (step 3); several records at either end policy discovery (step 5)
            records = self._records(domain)
            record = records[0] if len(records) == 1 else None
            policy_key = "p"
            if not records and org != domain:
                record = self._record(org)
                policy_key = "sp"
        except mdns.DnsTempError as e:
            # The comment reaches whoever reads the message: what failed for which name, never
            # our DNS servers (e.detail, dnspython's text, names them: the log keeps it).
            log.info("dmarc: %s: %s", message.queue_id or "NOQUEUE", e.detail[:300])
            report.auth_result("dmarc", "temperror", comment=str(e), header_from=domain)
            report.symbol("DMARC_TEMPERROR", 0.0, domain)
            return
        if record is None:
            report.auth_result("dmarc", "none", header_from=domain)
            report.symbol("DMARC_NA", 0.0, domain)
            return
        if not _policy_usable(record):
            # RFC 7489 6.6.3: no valid p= (or an invalid sp=) and no reporting URI: no DMARC
            # processing; a syntactically incorrect record is permerror (11.2).
            report.auth_result("dmarc", "permerror", comment="no valid p=", header_from=domain)
            report.symbol("DMARC_PERMERROR", 0.0, domain)
            return
        policy_domain = domain if policy_key == "p" else org
        policy = self._policy(record, policy_key, domain)
        pct = _pct(record.get("pct"))
        adkim = record.get("adkim", "r").lower()
        aspf = record.get("aspf", "r").lower()
        dkim_ok = any(self.aligned(d, domain, adkim) for d in report.data.get("dkim", []))
        spf_result, spf_domain = report.data.get("spf", ("none", ""))
        spf_ok = spf_result == "pass" and bool(spf_domain) and self.aligned(spf_domain, domain, aspf)
        reasons: list[str] = []
        if dkim_ok or spf_ok:
            report.auth_result("dmarc", "pass", comment=f"p={policy.upper()} dis=NONE", header_from=domain)
            report.symbol("DMARC_POLICY_ALLOW", 0.0, domain)
            self._remember(message, report, domain, policy_domain, record, "pass", "none", dkim_ok, spf_ok, reasons)
            return
        applied = policy
        if policy != "none" and pct < 100 and self.random() * 100 >= pct:
            # RFC 7489 6.6.4: outside the pct= sample the next less strict policy applies.
            applied = "quarantine" if policy == "reject" else "none"
            reasons.append("sampled_out")
        disposition = "none"
        if applied == "reject":
            if self.settings.dmarc_reject_enforce:
                disposition = "reject"
                report.reject(REPLY_DMARC_REJECT.with_text(f"Rejected by DMARC policy of {domain}"),
                              f"dmarc p=reject {domain}")
            else:
                reasons.append("local_policy")
            report.symbol("DMARC_POLICY_REJECT", self.settings.dmarc_reject_score, domain)
        elif applied == "quarantine":
            disposition = "quarantine"
            report.symbol("DMARC_POLICY_QUARANTINE", self.settings.dmarc_quarantine_score, domain)
        else:
            report.symbol("DMARC_POLICY_SOFTFAIL", 0.0, domain)
        report.auth_result("dmarc", "fail", comment=f"p={policy.upper()} dis={disposition.upper()}",
                           header_from=domain)
        self._remember(message, report, domain, policy_domain, record, "fail", disposition, dkim_ok, spf_ok, reasons)

    def _policy(self, record: dict[str, str], policy_key: str, domain: str) -> str:
        """p=, or for a subdomain sp= (else p=), or np= when the subdomain does not exist (RFC 9091)."""
        tag = policy_key
        if policy_key == "sp" and _disposition(record.get("np")) is not None:
            try:
                if not domain_exists(self.services.resolver, domain):
                    tag = "np"
            except mdns.DnsTempError as e:
                log.info("dmarc: existence of %s unknown (%s): sp= applies, not np=", domain, str(e)[:80])
        for key in (tag, "sp", "p") if tag == "np" else (tag, "p"):
            policy = _disposition(record.get(key))
            if policy is not None:
                return policy
        return "none"

    def _remember(self, message: Any, report: StageReport, domain: str, policy_domain: str, record: dict[str, str],
                result: str, disposition: str, dkim_ok: bool, spf_ok: bool, reasons: list[str]) -> None:
        """Hand the result to the aggregate-report recorder; nothing here may fail the message."""
        if self.recorder is None:
            return
        try:
            ip = message.client_ip()
            if ip is None:
                return          # a local submission: no source for a report row
            ip = getattr(ip, "ipv4_mapped", None) or ip
            spf_result, spf_domain = report.data.get("spf", ("none", ""))
            dkim = tuple((props.get("header.d", "").lower(), props.get("header.s", ""), ar.result)
                         for ar in report.auth_results if ar.method == "dkim"
                         for props in (dict(ar.properties),) if props.get("header.d"))
            rcpt = message.recipients[0] if message.recipients else ""
            self.recorder.record(dmarc_store.DmarcResult(
                date=self.services.now(), source_ip=str(ip), header_from=domain,
                envelope_from=_address_domain(message.mail_from), envelope_to=_address_domain(rcpt),
                policy_domain=policy_domain, result=result, disposition=disposition,
                dkim_aligned="pass" if dkim_ok else "fail", spf_aligned="pass" if spf_ok else "fail",
                reasons=tuple(reasons), dkim=dkim, spf_domain=spf_domain, spf_scope="mfrom",
                spf_result=spf_result,
                p=_disposition(record.get("p")) or "none", sp=_disposition(record.get("sp")) or "",
                np=_disposition(record.get("np")) or "", pct=_pct(record.get("pct")),
                adkim="s" if record.get("adkim", "r").lower() == "s" else "r",
                aspf="s" if record.get("aspf", "r").lower() == "s" else "r",
                fo=record.get("fo", "0"), rua=record.get("rua", ""), host=self.host))
        except Exception:  # noqa: BLE001 - a report row is never worth a tempfailed message
            log.exception("dmarc: %s: cannot record the result for reports", message.queue_id or "NOQUEUE")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()


def _disposition(value: str | None) -> str | None:
    """A p=/sp=/np= value, lower-cased, or None when absent or not a policy."""
    value = (value or "").strip().lower()
    return value if value in ("none", "quarantine", "reject") else None


def _policy_usable(record: dict[str, str]) -> bool:
    """RFC 7489 6.6.3: a record with an invalid or missing p=, or an invalid sp=, still acts as
    p=none when rua= holds at least one URI; otherwise it is not used."""
    if _disposition(record.get("p")) is not None and ("sp" not in record or _disposition(record["sp"])):
        return True
    return any(_URI.fullmatch(uri.strip()) for uri in record.get("rua", "").split(","))


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s!,]+(?:![0-9]+[kmgt]?)?")


def _pct(value: str | None) -> int:
    """pct= as 0..100; absent or malformed means 100 (RFC 7489 6.3)."""
    try:
        pct = int((value or "100").strip())
    except ValueError:
        return 100
    return pct if 0 <= pct <= 100 else 100


def _address_domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".") if "@" in address else ""


def domain_exists(resolver: Any, domain: str) -> bool:
    """False for a non-existent domain in RFC 9091's sense: NXDOMAIN, or no A, AAAA nor MX record.

    Raises DnsTempError when a server fails (the caller then keeps sp=)."""
    import dns.exception
    import dns.resolver
    for rtype in ("A", "AAAA", "MX"):
        try:
            answer = resolver.resolve(domain, rtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return False
        except dns.exception.DNSException as e:
            raise mdns.DnsTempError(f"DNS {rtype} {domain}: {e}") from None
        if answer.rrset:
            return True
    return False
