"""Stage `dmarc`: DMARC (RFC 7489) from the dkim_verify and spf results; policy from DNS.

The From domain's `_dmarc` TXT record (else the organizational domain's, using `sp=`);
the organizational domain comes from the Public Suffix List shipped in milters/data.
DMARC passes when a DKIM pass (d=) or the MAIL FROM SPF pass is aligned with the From
domain: relaxed (same organizational domain) or strict (equal) per `adkim=`/`aspf=`.
On failure with p=reject the message is rejected when `dmarc_reject_enforce` is true
(550 5.7.1), p=quarantine adds DMARC_POLICY_QUARANTINE (scored for quarantine).
Results: `dmarc=pass|fail|none|temperror|permerror (p=.. dis=..) header.from=domain`.
Talks to: DNS (through milters.dns). Tests: tests/milters/test_dmarc.py
"""

from __future__ import annotations

from typing import Any

from owlery.reply import Reply
from owlery.settings import Bool, Float, Str, setting

from milters import dns as mdns
from milters import psl
from milters.effects import Report
from milters.stages import Stage
from milters.stages.dkim_sign import from_domain

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

REPLY_DMARC_REJECT = Reply(550, "5.7.1", "Rejected by DMARC policy")


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
        domain = from_domain(message)
        if domain is None:
            report.auth_result("dmarc", "permerror", comment="no single From domain")
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
