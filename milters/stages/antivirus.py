"""Stage `antivirus`: stream the message to clamd; refuse (554 5.7.1 naming the virus) or quarantine infected mail.

A clean message gets `X-Virus-Scanned`. When clamd cannot be reached or times out, the
client is told to retry (451 4.7.1) by default, or, with `antivirus_unavailable_action =
"accept"`, the message passes with `X-Virus-Status: unchecked`.
A message that cannot be scanned whole for its size (over clamd_max_size, over clamd's
StreamMaxLength, or cut short at milter_message_size_limit, which must never pass as clean
from its first part) is never passed silently: a WARNING log line and symbol
CLAMAV_UNCHECKED (score 0 unless milter_symbol_scores gives one), then
`antivirus_oversize_action`: accept (the default, with `X-Virus-Status: unchecked (message
too large)`), tempfail, quarantine or reject. Why accept: amavis passes mail it could not
check (CC_UNCHECKED, final_unchecked_destiny D_PASS) with a mark, and the other answers are
not cheap here: retrying cannot shrink the message (a tempfail bounces it days later), and
Postfix's message_size_limit (10 MB by default) is below clamd_max_size (25 MB), so mail this
large was let in on purpose; a site that wants to fail closed sets reject (552 5.3.4, the
sender learns at once) or quarantine. A message cut short cannot be quarantined whole, so it
is held in Postfix's hold queue instead (complete there).
Recipients with virus_lover in their content policy get infected mail anyway, with
X-Virus-Status: infected (NAME) and X-Content-Alert; with other recipients too, those are
taken off the envelope and a quarantined copy is kept for them (milters.content_policy).
X-Virus-Status and X-Content-Alert that came with the message are removed first: only this
milter's verdict may stand in them.
Talks to: clamd (milters.clients.clamav), the quarantine store. Tests: tests/milters/test_content_stages.py,
tests/milters/test_low_hardening.py (over-size mail), tests/milters/test_content_policy.py (lovers)
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from owlery.reply import Reply
from owlery.settings import Str, choice, setting

from milters.clients import ScannerUnavailable
from milters import content_policy
from milters.clients.clamav import ClamdClient
from milters.stages import Stage

ANTIVIRUS_INFECTED_ACTION = setting(
    "antivirus_infected_action", choice("reject", "quarantine"), "reject",
    "What infected mail gets: reject (554 5.7.1 naming the virus) or quarantine (stored, then "
    "handled as quarantine_action says; amavis' default is to discard).")
ANTIVIRUS_UNAVAILABLE_ACTION = setting(
    "antivirus_unavailable_action", choice("tempfail", "accept"), "tempfail",
    "When clamd does not answer: tempfail (451 4.7.1, the client retries; nothing unscanned "
    "gets through) or accept (delivered with X-Virus-Status: unchecked).")
ANTIVIRUS_OVERSIZE_ACTION = setting(
    "antivirus_oversize_action", choice("accept", "tempfail", "quarantine", "reject"), "accept",
    "What mail too large to be scanned whole gets (over clamd_max_size or clamd's StreamMaxLength, "
    "or cut at milter_message_size_limit): accept (delivered with X-Virus-Status: unchecked (message "
    "too large), as amavis passes unchecked mail), tempfail (452 4.3.4; retrying will not make it "
    "smaller), quarantine (a message cut short is held in Postfix's hold queue instead) or reject "
    "(552 5.3.4). Always logged, with symbol CLAMAV_UNCHECKED (score it with milter_symbol_scores).")
ANTIVIRUS_SCANNED_HEADER = setting(
    "antivirus_scanned_header", Str, "X-Virus-Scanned",
    "Header added to scanned mail (value: \"ClamAV at HOST\"). Empty: none.")

REPLY_VIRUS = Reply(554, "5.7.1", "Message refused: virus found")
REPLY_AV_UNAVAILABLE = Reply(451, "4.7.1", "Virus scanner temporarily unavailable, please try again later")
REPLY_TOO_BIG_TO_SCAN = Reply(552, "5.3.4", "Message too large to be scanned for viruses")
REPLY_TOO_BIG_TO_SCAN_NOW = Reply(452, "4.3.4", "Message too large to be scanned for viruses, try again later")

log = logging.getLogger("owlery.milter")


class AntivirusStage(Stage):
    name = "antivirus"

    def __init__(self, settings: Any, services: Any, client: Any = None):
        super().__init__(settings, services)
        self.client = client if client is not None else ClamdClient.from_settings(settings)
        self.host = socket.gethostname()
        self._quarantine = None
        if "quarantine" in (settings.antivirus_infected_action, settings.antivirus_oversize_action):
            from milters.stages.quarantine import Quarantiner
            self._quarantine = Quarantiner(settings, services)     # its store: the services' own

    def check(self, message: Any, report: Any) -> None:
        content_policy.strip_forged(message, report, ("X-Virus-Status", content_policy.ALERT_HEADER))
        report.progress()
        if message.truncated:
            # Only the first milter_message_size_limit bytes were kept: scanning them would
            # call the message clean from a part of it.
            self._unchecked(message, report, f"over milter_message_size_limit "
                                             f"({self.settings.milter_message_size_limit} bytes kept)")
            return
        try:
            result = self.client.scan(message.as_bytes())
        except ScannerUnavailable as e:
            log.warning("milter: %s: antivirus: %s", message.queue_id or "NOQUEUE", e)
            report.symbol("CLAMAV_UNAVAILABLE", 0.0, Reply.safe_text(str(e), 200))
            if self.settings.antivirus_unavailable_action == "tempfail":
                report.tempfail(REPLY_AV_UNAVAILABLE, "clamd unavailable")
            else:
                report.add_header("X-Virus-Status", "unchecked (scanner unavailable)")
            return
        report.data["antivirus"] = result
        if not result.scanned:
            self._unchecked(message, report, result.detail or "over clamd_max_size or StreamMaxLength")
            return
        if result.infected:
            virus = Reply.safe_text(result.virus or "unknown", 120)
            report.symbol("CLAMAV_VIRUS", 0.0, virus)
            # virus_lover recipients take it (marked); with others a copy is kept for those
            if content_policy.apply_lovers(self, message, report, "virus_lover", "virus", virus,
                                           f"INFECTED, message contains virus: {virus}", self._quarantiner):
                report.add_header("X-Virus-Status", f"infected ({virus})")
                return
            if self._quarantine is not None and self.settings.antivirus_infected_action == "quarantine":
                self._quarantine.quarantine(message, report, "virus", virus)
            else:
                report.reject(REPLY_VIRUS.with_text(f"Message refused: virus found: {virus}"), f"virus {virus}")
            return
        if self.settings.antivirus_scanned_header:
            report.add_header(self.settings.antivirus_scanned_header, f"ClamAV at {self.host}")

    def _quarantiner(self) -> Any:
        if self._quarantine is None:        # (for virus lovers' fellow recipients only)
            from milters.stages.quarantine import Quarantiner
            self._quarantine = Quarantiner(self.settings, self.services)
        return self._quarantine

    def _unchecked(self, message: Any, report: Any, why: str) -> None:
        """Mail not scanned for its size: logged, scored, then antivirus_oversize_action."""
        action = self.settings.antivirus_oversize_action
        qid = message.queue_id or "NOQUEUE"
        log.warning("milter: %s: antivirus: not scanned: %s; action=%s", qid, why, action)
        report.symbol("CLAMAV_UNCHECKED", 0.0, Reply.safe_text(why, 200))
        if action == "reject":
            report.reject(REPLY_TOO_BIG_TO_SCAN, f"not scanned: {why}")
        elif action == "tempfail":
            report.tempfail(REPLY_TOO_BIG_TO_SCAN_NOW, f"not scanned: {why}")
        elif action == "quarantine" and message.truncated:
            report.hold(f"not scanned for viruses: {why}")
        elif action == "quarantine" and self._quarantine is not None:
            self._quarantine.quarantine(message, report, "unchecked", f"not scanned for viruses: {why}")
        else:
            report.add_header("X-Virus-Status", "unchecked (message too large)")
