"""Stage `spf`: the MAIL FROM SPF result for DMARC and the Authentication-Results header.

`milter_spf_source` says where it comes from:
- "check": evaluate SPF here with pyspf over the injected resolver (the default);
- "header": read the header Owlery's policy daemon prepended (Received-SPF, or an
  Authentication-Results carrying our authserv-id). Only the leading run of such headers is
  read (Postfix puts PREPENDed headers first); use this only when the policy daemon's SPF
  check always runs, or a sender could forge the header;
- "none": no SPF (DMARC then rests on DKIM alone).
Only a MAIL FROM identity counts (never HELO: CVE-2019-20790), and only when the header's
envelope sender equals this message's. Result in `report.data["spf"]` = (result, domain).
Talks to: DNS (pyspf, through owlery.dns and the injected resolver). Tests: tests/milters/test_auth_stages.py
("check" and "header"), tests/policyd/test_spf_parity_s12.py (reading the policy daemon's field),
tests/e2e/test_milter_postfix.py.
"""

from __future__ import annotations

import re
from typing import Any

from owlery.dns import RESULTS, SpfTimeLimit, a_label, dnspython_lookup, evaluate, header_address
from owlery.settings import Float, choice, setting

from milters.effects import StageReport
from milters.stages import Stage
from milters.stages.authres import authserv_id, parse_authserv_id, parse_resinfos, skip_comment

MILTER_SPF_SOURCE = setting(
    "milter_spf_source", choice("check", "header", "none"), "check",
    "Where the SPF result comes from: check (pyspf here), header (the policy daemon's "
    "prepended Received-SPF / Authentication-Results), or none.")
MILTER_SPF_QUERY_TIME_LIMIT = setting(
    "milter_spf_query_time_limit", SpfTimeLimit, 20,
    "Whole time budget of the MAIL FROM check, 0.1 to 20 s (RFC 7208 4.6.4; the only identity checked "
    "here, never HELO); past it: temperror. Far below Postfix's milter_content_timeout (300 s).", unit="s")
MILTER_SPF_FAIL_SCORE = setting(
    "milter_spf_fail_score", Float, 2.0, "Score of symbol SPF_FAIL (softfail scores half).")


_PAIR_RE = re.compile(r'([A-Za-z0-9_.-]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;\s"]*)')


def received_spf_fields(text: str) -> tuple[str, dict[str, str]]:
    """(result, {key: value}) of a Received-SPF value (RFC 7208 9.1), keys and values lower-cased:
    the comment skipped (nested, quoted-pairs), a quoted-string value unquoted, so a ";" or "="
    inside a quoted value is part of it. A key written twice makes the field unreadable ("", {}):
    the policy daemon's own header never does that."""
    words = text.split(None, 1)
    if not words:
        return "", {}
    rest = words[1].lstrip() if len(words) > 1 else ""
    if rest.startswith("("):
        rest = rest[skip_comment(rest, 0):]
    fields: dict[str, str] = {}
    for m in _PAIR_RE.finditer(rest):
        key, value = m.group(1).lower(), m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if key in fields:
            return "", {}
        fields[key] = value.lower()
    return words[0].lower(), fields


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[1].lower().rstrip(".") if "@" in address else ""


class SpfStage(Stage):
    name = "spf"

    def check(self, message: Any, report: StageReport) -> None:
        source = self.settings.milter_spf_source
        sender = message.mail_from
        if source == "none":
            return
        if not sender or "@" not in sender:
            # Null sender: the only SPF identity is HELO, which DMARC must not use.
            report.auth_result("spf", "none", smtp_mailfrom="<>" if not sender else sender,
                               comment="no MAIL FROM identity")
            report.data["spf"] = ("none", "")
            return
        if source == "header":
            result = self._from_header(message, report)
        else:
            result = self._check(message)
        # the domain checked, as its A-label (owlery.dns checks a U-label as one, RFC 8616 4)
        domain = _domain(sender)
        report.data["spf"] = (result, a_label(domain) or domain)
        report.auth_result("spf", result, smtp_mailfrom=sender)
        if result == "fail":
            report.symbol("SPF_FAIL", self.settings.milter_spf_fail_score, domain)
        elif result == "softfail":
            report.symbol("SPF_SOFTFAIL", self.settings.milter_spf_fail_score / 2, domain)
        elif result == "pass":
            report.symbol("SPF_PASS", 0.0, domain)

    def _check(self, message: Any) -> str:
        ip = message.client_address
        if not ip:
            return "none"
        return evaluate(dnspython_lookup(self.services.resolver), ip=ip, sender=message.mail_from,
                        helo=message.helo or "", query_time_limit=self.settings.milter_spf_query_time_limit,
                        headers=False).result

    def _from_header(self, message: Any, report: StageReport) -> str:
        ours = authserv_id(self.settings, message).lower()
        sender = message.mail_from.lower()
        # the sender as the policy daemon writes it: A-label domain, RFC 6533 form of an 8-bit local part
        senders = {sender, header_address(message.mail_from).lower()}
        # its Authentication-Results names the domain checked (smtp.mailfrom=example.org, RFC 8601
        # 2.7.2), some writers the whole address: either, of this transaction's sender
        checked = senders | {_domain(s) for s in senders} - {""}
        for header in message.headers:
            name = header.name.lower()
            if name == "received-spf":
                result, fields = received_spf_fields(header.text)
                if fields.get("identity") == "mailfrom" and fields.get("envelope-from", "").strip("<>") in senders \
                        and result in RESULTS:
                    return result
            elif name == "authentication-results" and parse_authserv_id(header.text).lower() == ours:
                for method, result, props in parse_resinfos(header.text):
                    if method == "spf" and props.get("smtp.mailfrom", "").strip("<>").lower() in checked:
                        return result if result in RESULTS else "permerror"
            else:
                break       # past the headers Postfix prepended: nothing further is trusted
        return "none"
