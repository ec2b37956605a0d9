"""Stage `dmarc`: DMARC (RFC 7489) from the dkim_verify and spf results; policy from DNS.

The From domain's `_dmarc` TXT record (else the organizational domain's, using `sp=`);
the organizational domain comes from the Public Suffix List shipped in milters/data.
DMARC passes when a DKIM pass (d=) or the MAIL FROM SPF pass is aligned with the From
domain: relaxed (same organizational domain) or strict (equal) per `adkim=`/`aspf=`.
On failure with p=reject the message is rejected when `dmarc_reject_enforce` is true
(550 5.7.1), p=quarantine adds DMARC_POLICY_QUARANTINE (scored for quarantine).
Results: `dmarc=pass|fail|none|temperror|permerror (p=.. dis=..) header.from=domain`.

The Author Domain (RFC 7489 section 3.1.1) is the domain of the one address in the one
From field; a message where that is not well defined is refused (550 5.7.1, RFC 7489
section 6.6.1), whatever the domain's policy: no From field or several (RFC 5322 section
3.6 allows exactly one), a From with no address or several, one that does not parse, and
an address whose domain is empty or not a domain name. A display name, comments, an
obsolete route or a group holding exactly one address are fine (see author_domain).
Talks to: DNS (through milters.dns). Tests: tests/milters/test_auth_stages.py,
tests/milters/test_auth_hostile.py
"""

from __future__ import annotations

import re
from email import errors as email_errors
from email import policy as email_policy
from typing import Any

from owlery.reply import Reply
from owlery.settings import Bool, Float, Str, int_range, setting

from milters import dns as mdns
from milters import psl
from milters.effects import Report
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
    "dmarc_public_suffix_list", Str, None,
    "Public Suffix List file for organizational domains. Unset: the copy shipped with Owlery.")

DMARC_FROM_LENGTH_MAX = setting(
    "dmarc_from_length_max", int_range(256, 1_000_000), 4096,
    "Longest From field (unfolded, in characters) the dmarc stage parses; a longer one is refused "
    "as unreadable (one author's address is far shorter).", unit="characters")

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

    def _record(self, domain: str) -> dict[str, str] | None:
        records = [r for r in (parse_record(t) for t in mdns.txt_records(
            self.services.resolver, "_dmarc." + domain, self.settings.milter_dns_txt_size_limit)) if r]
        return records[0] if len(records) == 1 else None

    def aligned(self, a: str, b: str, mode: str) -> bool:
        a, b = a.lower().rstrip("."), b.lower().rstrip(".")
        if mode == "s":
            return a == b
        return self.psl.organizational_domain(a) == self.psl.organizational_domain(b)

    def check(self, message: Any, report: Report) -> None:
        try:
            domain = author_domain(message, self.settings.dmarc_from_length_max)
        except BadFrom as e:
            report.auth_result("dmarc", "permerror", comment="no single From domain")
            report.symbol("DMARC_BAD_FROM", 0.0, str(e))
            report.reject(REPLY_BAD_FROM.with_text(str(e)), f"dmarc: {e}")
            return
        org = self.psl.organizational_domain(domain)
        try:
            record = self._record(domain)
            policy_key = "p"
            if record is None and org != domain:
                record = self._record(org)
                policy_key = "sp"
        except mdns.DnsTempError as e:
            report.auth_result("dmarc", "temperror", comment=str(e)[:80], header_from=domain)
            report.symbol("DMARC_TEMPERROR", 0.0, domain)
            return
        if record is None:
            report.auth_result("dmarc", "none", header_from=domain)
            report.symbol("DMARC_NA", 0.0, domain)
            return
        policy = record.get(policy_key) or record.get("p", "none")
        policy = policy.lower() if policy.lower() in ("none", "quarantine", "reject") else "none"
        adkim = record.get("adkim", "r").lower()
        aspf = record.get("aspf", "r").lower()
        dkim_ok = any(self.aligned(d, domain, adkim) for d in report.data.get("dkim", []))
        spf_result, spf_domain = report.data.get("spf", ("none", ""))
        spf_ok = spf_result == "pass" and bool(spf_domain) and self.aligned(spf_domain, domain, aspf)
        if dkim_ok or spf_ok:
            report.auth_result("dmarc", "pass", comment=f"p={policy.upper()} dis=NONE", header_from=domain)
            report.symbol("DMARC_POLICY_ALLOW", 0.0, domain)
            return
        disposition = "none"
        if policy == "reject":
            if self.settings.dmarc_reject_enforce:
                disposition = "reject"
                report.reject(REPLY_DMARC_REJECT.with_text(f"Rejected by DMARC policy of {domain}"),
                              f"dmarc p=reject {domain}")
            report.symbol("DMARC_POLICY_REJECT", self.settings.dmarc_reject_score, domain)
        elif policy == "quarantine":
            disposition = "quarantine"
            report.symbol("DMARC_POLICY_QUARANTINE", self.settings.dmarc_quarantine_score, domain)
        else:
            report.symbol("DMARC_POLICY_SOFTFAIL", 0.0, domain)
        report.auth_result("dmarc", "fail", comment=f"p={policy.upper()} dis={disposition.upper()}",
                           header_from=domain)
