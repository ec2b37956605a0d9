"""Stage `spam`: spamd's score plus Owlery's own evidence, turned into amavis-like levels and X-Spam-* headers.

Evidence, each a named symbol whose score comes from `spam_evidence_scores` (and
`milter_symbol_scores` on top): spamd's total (`SPAMD`, rules listed in its detail),
SPF/DKIM/DMARC results (recorded by the auth stages in this milter, else read from our
own Authentication-Results header), DNSBL listings of the client through the injected
resolver (`RBL_<ZONE>`; sites, reply filters, weights and error answers as policyd's dnsbl
check, through owlery.dnsbl), and malformed headers (`HDR_*`). The total is compared with
levels, as amavis does: tag (spam-info headers), tag2 (X-Spam-Flag YES, subject tag),
quarantine (amavis' kill level), reject. The levels default to the milter's own thresholds
(milter_score_*) so there is one set of numbers; the stage applies them itself and settles
the score (the generic milter_score_* verdict then stands aside).

Per-recipient levels (spam_directory_levels) come from the directory, each unset one being
the global level. A milter cannot split a message, so, like amavis before the queue:
recipients whose own quarantine or reject level the score reaches are taken off the
envelope (delrcpt) and the message is quarantined for them (one record, their addresses);
the others still get it. Only when every recipient is over their level is the whole
message refused (all over their reject level) or quarantined, as with global levels.
The headers are shared by the recipients who still get the message: spam-info headers from
the lowest tag level among them, X-Spam-Flag and the subject tag from the lowest tag2 level
(marking is only a header; a stricter recipient's Sieve can still act on X-Spam-Score).
A directory that cannot answer raises DirectoryUnavailable: the stage's on-error policy
(milter_stage_on_error, tempfail by default), never a silent pass.
A recipient's content policy (owlery.content_policy) adds its bank's levels under its own,
and a spam_lover has no quarantine or reject level: tagged, never kept from them.
Existing X-Spam-* headers are removed first, so a sender cannot pre-label its mail.
spamd gets the Received field Postfix will add (MilterMessage.received) before the message, so its
relay and DNSBL rules see the client; a quarantined copy is stored with the X-Spam-* headers.
Talks to: spamd (milters.clients.spamd), DNS, the directory, the quarantine store.
Tests: tests/milters/test_content_stages.py, tests/milters/test_received_for_scanners.py,
tests/policyd/test_dnsbl_milter.py
"""

from __future__ import annotations

import dataclasses
import email.utils
import ipaddress
import logging
from typing import Any

from owlery import dnsbl as dnsbl_core
from owlery.content_policy import NO_POLICY
from owlery.directory.base import SpamLevels
from owlery.dnsbl import SiteList
from owlery.reply import Reply
from owlery.settings import Bool, Float, Str, choice, setting

from milters import content_policy
from milters.clients import ScannerUnavailable
from milters.clients.spamd import SpamdClient
from milters.effects import REPLY_REJECT_SCORE, SymbolScores, fold
from milters.stages import Stage

SPAM_TAG_LEVEL = setting("spam_tag_level", Float, None,
                         "X-Spam-Status/Score/Level are added at or above this total (amavis tag_level). "
                         "Unset: added to every scanned message.")
SPAM_TAG2_LEVEL = setting("spam_tag2_level", Float, None,
                          "Total from which mail is spam: X-Spam-Status Yes, X-Spam-Flag YES (and "
                          "milter_tag_header), subject tag (amavis tag2_level). Unset: milter_score_tag. "
                          "The spam_*_level settings only override the milter_score_* numbers for the "
                          "spam stage; leave them unset to keep one set of numbers.")
SPAM_QUARANTINE_LEVEL = setting("spam_quarantine_level", Float, None,
                                "Total from which spam is quarantined (amavis kill_level). "
                                "Unset: milter_score_quarantine. Setting it means \"quarantine rather than "
                                "refuse\": spam is then only rejected from an explicit spam_reject_level.")
SPAM_REJECT_LEVEL = setting("spam_reject_level", Float, None,
                            "Total from which spam is rejected with 550 5.7.1 instead of quarantined. "
                            "Unset: never when spam_quarantine_level is set, else milter_score_reject. "
                            "With several recipients only when every one of them is over their reject "
                            "level; otherwise those over it are quarantined like the quarantine level.")
SPAM_SUBJECT_TAG = setting("spam_subject_tag", Str, None,
                           "Text put in front of the Subject of spam (at tag2), e.g. \"***Spam*** \". "
                           "Unset: the subject is left alone.")
SPAM_SPAMD_UNAVAILABLE_ACTION = setting(
    "spam_spamd_unavailable_action", choice("accept", "tempfail"), "tempfail",
    "When spamd does not answer: tempfail (451 4.7.1, the client retries: no spam is let in "
    "unscored while spamd is down) or accept (scored on Owlery's own evidence only, symbol "
    "SPAMD_UNAVAILABLE; a choice for sites that prefer delivery to filtering).")
SPAM_USE_SPAMD = setting("spam_use_spamd", Bool, True,
                         "Ask spamd (spamd_* settings). Off: only Owlery's own evidence counts.")
SPAM_DNSBL_ZONES = setting("spam_dnsbl_zones", SiteList, [],
                           "DNS lists the client address is looked up in, as postscreen_dnsbl_sites "
                           "(e.g. \"zen.spamhaus.org=127.0.0.[2..11]\", \"list.dnswl.org=127.0.[0..255].[1..3]*-1\"); "
                           "a listing adds symbol RBL_<ZONE> (dots as underscores, upper case) scored "
                           "as spam_evidence_scores says, times the weights of the entries that matched. "
                           "List error answers (127.255.255.x, outside 127/8) never count.")
SPAM_EVIDENCE_SCORES = setting(
    "spam_evidence_scores", SymbolScores,
    {"SPF_FAIL": 2.0, "SPF_SOFTFAIL": 0.7, "SPF_PASS": -0.2, "DKIM_INVALID": 1.0, "DKIM_VALID": -0.2,
     "DMARC_FAIL": 3.0, "DMARC_PASS": -0.5, "RBL": 3.0, "HDR_MISSING_FROM": 1.0, "HDR_MULTIPLE_FROM": 2.0,
     "HDR_BAD_FROM": 1.0, "HDR_MISSING_DATE": 0.5, "HDR_BAD_DATE": 0.5, "HDR_MISSING_MESSAGE_ID": 0.3,
     "HDR_LINE_TOO_LONG": 1.0, "SPAMD_UNAVAILABLE": 0.0},
    "Scores of Owlery's own spam evidence by symbol. RBL is the default for every RBL_<ZONE> not "
    "listed by name. milter_symbol_scores still overrides any symbol.")
SPAM_DIRECTORY_LEVELS = setting(
    "spam_directory_levels", Bool, False,
    "Ask the directory (directory_backend: files_spam_levels, or LDAP ldap_spam_*_attribute) for "
    "each recipient's own levels; a level a recipient has none for is the global one. Recipients "
    "over their own quarantine or reject level are taken off the envelope and the message is "
    "quarantined for them; the others still get it. A directory that cannot answer: "
    "milter_stage_on_error for spam (tempfail by default).")

SPAM_HEADERS = ("X-Spam-Flag", "X-Spam-Status", "X-Spam-Score", "X-Spam-Level")
REPLY_SPAM = REPLY_REJECT_SCORE     # one reply for spam, whichever verdict rejects (milters/effects.py)
REPLY_SPAMD_UNAVAILABLE = Reply(451, "4.7.1", "Spam scanner temporarily unavailable, please try again later")

log = logging.getLogger("owlery.milter")

_AUTH_SYMBOLS = {("spf", "fail"): "SPF_FAIL", ("spf", "softfail"): "SPF_SOFTFAIL", ("spf", "pass"): "SPF_PASS",
                 ("dkim", "fail"): "DKIM_INVALID", ("dkim", "pass"): "DKIM_VALID",
                 ("dmarc", "fail"): "DMARC_FAIL", ("dmarc", "pass"): "DMARC_PASS"}


def header_problems(message: Any) -> list[tuple[str, str]]:
    """(symbol, detail) for each structural problem of the header block."""
    out = []
    froms = message.get_all("From")
    if not froms:
        out.append(("HDR_MISSING_FROM", "no From header"))
    elif len(froms) > 1:
        out.append(("HDR_MULTIPLE_FROM", f"{len(froms)} From headers"))
    else:
        addrs = email.utils.getaddresses([froms[0].text])
        if not addrs or not any("@" in a for _, a in addrs):
            out.append(("HDR_BAD_FROM", "From has no address"))
    dates = message.get_all("Date")
    if not dates:
        out.append(("HDR_MISSING_DATE", "no Date header"))
    else:
        try:
            if email.utils.parsedate_to_datetime(dates[0].text) is None:
                raise ValueError
        except (TypeError, ValueError, IndexError, OverflowError):
            out.append(("HDR_BAD_DATE", "unreadable Date"))
    if not message.get_all("Message-ID"):
        out.append(("HDR_MISSING_MESSAGE_ID", "no Message-ID header"))
    if any(len(line) > 998 for h in message.headers for line in h.raw.split(b"\r\n")):
        out.append(("HDR_LINE_TOO_LONG", "header line over 998 octets"))
    return out


def dnsbl_query_name(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, zone: str) -> str:
    """The DNSBL name to look up: reversed octets (IPv4) or nibbles (IPv6) under the zone."""
    name = dnsbl_core.ip_query_name(ip, zone)
    assert name is not None     # an address object always has one
    return name


def rbl_symbol(zone: str) -> str:
    return "RBL_" + "".join(c if c.isalnum() else "_" for c in zone.strip(".")).upper()


def spam_level_stars(score: float) -> str:
    return "*" * max(0, min(int(score), 50))


def _reached(total: float, level: float | None) -> bool:
    return level is not None and total >= level


def shared_levels(levels: list[SpamLevels]) -> SpamLevels:
    """The levels the shared headers follow, for the recipients who still get the message:
    the lowest tag (None, "always", if anyone's is) and the lowest tag2 anyone has."""
    tags = [lv.tag for lv in levels]
    tag2s = [lv.tag2 for lv in levels if lv.tag2 is not None]
    return SpamLevels(tag=None if any(t is None for t in tags) else min(tags),   # type: ignore[type-var]
                      tag2=min(tag2s) if tag2s else None)


class SpamStage(Stage):
    name = "spam"

    def __init__(self, settings: Any, services: Any, client: Any = None, directory: Any = None):
        super().__init__(settings, services)
        self.client = client if client is not None else (
            SpamdClient.from_settings(settings) if settings.spam_use_spamd else None)
        if directory is None and settings.spam_directory_levels:
            directory = services.directory(settings)       # shared; closed with the services
        self.directory = directory
        self._quarantiner: Any = None

    # -- evidence ---------------------------------------------------------------------------

    def _score(self, name: str) -> float:
        table = self.settings.spam_evidence_scores
        if name in table:
            return float(table[name])
        if name.startswith("RBL_"):
            return float(table.get("RBL", 0.0))
        return 0.0

    def _auth_evidence(self, message: Any, report: Any) -> None:
        results = [(r.method.lower(), r.result.lower()) for r in report.auth_results]
        if not results:
            results = self._auth_from_header(message)
        seen = set()
        for key in results:
            name = _AUTH_SYMBOLS.get(key)
            if name is None or name in seen or report.has_symbol(name):
                continue
            # a DKIM pass next to a failing signature: the pass wins (forwarders break signatures)
            if name == "DKIM_INVALID" and ("dkim", "pass") in results:
                continue
            seen.add(name)
            report.symbol(name, self._score(name), f"{key[0]}={key[1]}")

    def _auth_from_header(self, message: Any) -> list[tuple[str, str]]:
        from milters.stages.authres import authserv_id, parse_authserv_id, parse_resinfos
        ours = authserv_id(self.settings, message).lower()
        out = []
        for h in message.get_all("Authentication-Results"):
            if parse_authserv_id(h.text).lower() == ours:
                out += [(method, result) for method, result, _ in parse_resinfos(h.text)]
        return out

    def _dnsbl_evidence(self, message: Any, report: Any) -> None:
        zones = self.settings.spam_dnsbl_zones
        ip = message.client_ip()
        if not zones or ip is None:
            return
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if not ip.is_global:
            return
        import dns.exception
        import dns.resolver
        queue_id = message.queue_id or "NOQUEUE"
        for query in dnsbl_core.plan([("client", str(ip), zones)]):
            try:
                answer = self.services.resolver.resolve(query.name, "A", raise_on_no_answer=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as e:
                log.warning("milter: %s: spam: DNSBL %s lookup failed: %s; not counted", queue_id, query.domain, e)
                continue
            # The shared filter (owlery.dnsbl): error answers never count, filters and weights apply.
            result = dnsbl_core.score([query], {query.name: dnsbl_core.Answer(
                tuple(getattr(rr, "address", "") for rr in (answer.rrset or ())))})
            for domain, why in result.errors:
                log.warning("milter: %s: spam: DNSBL %s: %s; not counted", queue_id, domain, why)
            if result.hits:
                symbol = rbl_symbol(query.domain)
                codes = sorted({a for h in result.hits for a in h.answers})
                report.symbol(symbol, self._score(symbol) * result.total,
                              f"{ip} listed in {query.domain} ({','.join(codes)})")

    def _spamd(self, message: Any, report: Any) -> tuple[list[str], bool]:
        """Ask spamd; returns (rule names, unavailable?)."""
        if self.client is None:
            return [], False
        data = message.as_bytes()
        received = getattr(message, "received", b"")
        report.progress()
        try:
            # the Received field Postfix will add goes first, so spamd sees the client
            # (else NO_RELAYS/NO_RECEIVED and no relay or DNSBL rule); a separate chunk, no copy
            result = self.client.scan(data, prefix=received) if received else self.client.scan(data)
        except ScannerUnavailable as e:
            log.warning("milter: %s: spam: %s", message.queue_id or "NOQUEUE", e)
            report.symbol("SPAMD_UNAVAILABLE", self._score("SPAMD_UNAVAILABLE"), Reply.safe_text(str(e), 200))
            return [], True
        if result is None:
            report.symbol("SPAMD_SKIPPED", 0.0,
                          f"message over spamd_max_size ({len(received) + len(data)} bytes)")
            return [], False
        rules = [f"{r.name}={r.score:g}" for r in result.rules]
        report.symbol("SPAMD", result.score, ",".join(r.name for r in result.rules))
        report.data["spamd"] = result
        return rules, False

    # -- levels -------------------------------------------------------------------------------

    def global_levels(self) -> SpamLevels:
        s = self.settings
        return SpamLevels(
            tag=s.spam_tag_level,
            tag2=s.spam_tag2_level if s.spam_tag2_level is not None else s.milter_score_tag,
            quarantine=s.spam_quarantine_level if s.spam_quarantine_level is not None
            else s.milter_score_quarantine,
            # Setting a spam quarantine level means "quarantine spam instead of refusing it"
            # (amavis' kill level): then only an explicit spam_reject_level refuses.
            reject=s.spam_reject_level if s.spam_reject_level is not None
            else (None if s.spam_quarantine_level is not None else s.milter_score_reject))

    def recipient_levels(self, message: Any, report: Any = None) -> dict[str, SpamLevels]:
        """Each (distinct) recipient's levels: its own from the directory over its policy bank's
        (owlery.content_policy) over the global ones; a spam_lover has no quarantine or reject level."""
        base = self.global_levels()
        recipients = list(dict.fromkeys(message.recipients))
        lookup = getattr(self.directory, "spam_levels", None)
        if not recipients:
            return {"": base}                      # no envelope seen: the global levels decide
        # may raise DirectoryUnavailable: the session applies milter_stage_on_error
        policy = content_policy.policies(self.settings, self.services, message, report) \
            if report is not None else {}
        out = {}
        for r in recipients:
            own = (lookup(r) or SpamLevels()) if lookup is not None else SpamLevels()
            p = policy.get(r, NO_POLICY)
            levels = own.over(p.spam_levels).over(base)
            if p.loves("spam_lover"):
                levels = dataclasses.replace(levels, quarantine=None, reject=None)
            out[r] = levels
        return out

    # -- the stage ----------------------------------------------------------------------------

    def check(self, message: Any, report: Any) -> None:
        for name in SPAM_HEADERS:
            for occurrence in range(len(message.get_all(name)), 0, -1):
                report.remove_header(name, occurrence)      # highest first: indexes stay valid
        for name, detail in header_problems(message):
            report.symbol(name, self._score(name), detail)
        self._auth_evidence(message, report)
        self._dnsbl_evidence(message, report)
        rules, unavailable = self._spamd(message, report)
        if unavailable and self.settings.spam_spamd_unavailable_action == "tempfail":
            report.tempfail(REPLY_SPAMD_UNAVAILABLE, "spamd unavailable")
            return
        total = report.score
        per_rcpt = self.recipient_levels(message, report)
        refused = [r for r, lv in per_rcpt.items() if _reached(total, lv.reject)]
        held = [r for r, lv in per_rcpt.items() if r not in refused and _reached(total, lv.quarantine)]
        keeping = [r for r in per_rcpt if r not in refused and r not in held]
        data = report.data["spam"] = {"score": total, "recipients": per_rcpt}
        # Settled only once every lookup and store succeeded: if one fails and the stage's
        # on-error policy is "continue", the milter_score_* thresholds still apply.
        if not keeping:
            data.update(is_spam=True, levels=shared_levels(list(per_rcpt.values())))
            if not held:
                report.settle_score()
                report.reject(REPLY_SPAM.with_text(f"Message rejected as spam (score {total:g})"),
                              f"spam score {total:g}")
                return
            self._get_quarantiner().quarantine(
                message, report, "spam", f"score {total:g}",
                headers=self._spam_headers(report, total, data["levels"], True, rules))
            report.settle_score()
            return
        if (refused or held) and message.truncated:
            # The per-recipient copy could only be stored in part: hold the whole message instead
            # of taking anybody off the envelope (nothing lost; released with postsuper -H).
            report.hold(f"spam score {total:g} over some recipients' levels; message over "
                        "milter_message_size_limit, held whole")
            report.settle_score()
            return
        if refused or held:
            removed = [r for r in per_rcpt if r not in keeping]
            # the kept copy carries the X-Spam-* headers its own recipients' levels give
            kept_levels = shared_levels([per_rcpt[r] for r in removed])
            mail_id = self._get_quarantiner().keep(
                message, report, "spam", f"score {total:g}", removed,
                headers=self._spam_headers(report, total, kept_levels,
                                           _reached(total, kept_levels.tag2), rules))
            for rcpt in removed:
                report.delrcpt(rcpt, f"spam score {total:g} over the recipient's level; quarantine id {mail_id}")
            data["removed"] = removed
        report.settle_score()
        levels = shared_levels([per_rcpt[r] for r in keeping])
        is_spam = _reached(total, levels.tag2)
        data.update(is_spam=is_spam, levels=levels)
        self._tag(message, report, total, levels, is_spam, rules)

    def _get_quarantiner(self) -> Any:
        # The store opens on the first spam kept: a site that never quarantines needs none.
        if self._quarantiner is None:
            from milters.stages.quarantine import Quarantiner
            self._quarantiner = Quarantiner(self.settings, self.services)
        return self._quarantiner

    def _spam_headers(self, report: Any, total: float, levels: SpamLevels, is_spam: bool,
                      rules: list[str]) -> list[tuple[str, str]]:
        """The X-Spam-* headers (and milter_tag_header) these levels give, in the order added."""
        s = self.settings
        out = []
        if levels.tag is None or total >= levels.tag:
            own = [f"{sym.name}={sym.score:g}" for sym in report.symbols
                   if sym.stage == self.name and sym.name != "SPAMD"]
            tests = ", ".join(sorted(rules + own))
            parts = [("Yes" if is_spam else "No") + f", score={total:g}"]
            if levels.tag is not None:
                parts.append(f"tagged_above={levels.tag:g}")
            if levels.tag2 is not None:
                parts.append(f"required={levels.tag2:g}")
            parts.append(f"tests=[{tests}]")
            out += [("X-Spam-Status", fold("X-Spam-Status", " ".join(parts))), ("X-Spam-Score", f"{total:g}"),
                    ("X-Spam-Level", spam_level_stars(total))]
        if is_spam:
            # The score is settled here, so the milter's generic tag header comes from us too.
            out.append(("X-Spam-Flag", "YES"))
            if s.milter_tag_header and s.milter_tag_header.lower() != "x-spam-flag":
                out.append((s.milter_tag_header, "YES"))
        return out

    def _tag(self, message: Any, report: Any, total: float, levels: SpamLevels, is_spam: bool,
             rules: list[str]) -> None:
        s = self.settings
        for name, value in self._spam_headers(report, total, levels, is_spam, rules):
            report.add_header(name, value)
        if not is_spam:
            return
        if s.spam_subject_tag:
            subjects = message.get_all("Subject")
            if subjects:
                # The field as it came, folds kept (LF + blank, as the adapter sends a value):
                # unfolded, a long Subject would become one line over RFC 5322's 998 octets.
                raw = subjects[0].value.replace(b"\r\n", b"\n").decode("utf-8", "replace")
                report.change_header("Subject", 1, s.spam_subject_tag + raw.strip())
            else:
                report.append_header("Subject", s.spam_subject_tag.strip())
