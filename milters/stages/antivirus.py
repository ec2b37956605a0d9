"""Stage `antivirus`: stream the message to clamd; refuse (554 5.7.1 naming the virus) or quarantine infected mail.

A clean message gets `X-Virus-Scanned`. When clamd cannot be reached or times out, the
client is told to retry (451 4.7.1) by default, or, with `antivirus_unavailable_action =
"accept"`, the message passes with `X-Virus-Status: unchecked`. Messages larger than
clamd_max_size are not scanned and marked the same way.
Talks to: clamd (milters.clients.clamav), the quarantine store. Tests: tests/milters/test_content_stages.py
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from owlery.reply import Reply
from owlery.settings import Str, choice, setting

from milters.clients import ScannerUnavailable
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
ANTIVIRUS_SCANNED_HEADER = setting(
    "antivirus_scanned_header", Str, "X-Virus-Scanned",
    "Header added to scanned mail (value: \"ClamAV at HOST\"). Empty: none.")

REPLY_VIRUS = Reply(554, "5.7.1", "Message refused: virus found")
REPLY_AV_UNAVAILABLE = Reply(451, "4.7.1", "Virus scanner temporarily unavailable, please try again later")

log = logging.getLogger("owlery.milter")


class AntivirusStage(Stage):
    name = "antivirus"

    def __init__(self, settings: Any, services: Any, client: Any = None):
        super().__init__(settings, services)
        self.client = client if client is not None else ClamdClient.from_settings(settings)
        self.host = socket.gethostname()
        self._quarantine = None
        if settings.antivirus_infected_action == "quarantine":
            from milters.stages.quarantine import Quarantiner
            self._quarantine = Quarantiner(settings, services)

    def check(self, message: Any, report: Any) -> None:
        report.progress()
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
            report.symbol("CLAMAV_UNCHECKED", 0.0, "over clamd_max_size or StreamMaxLength")
            report.add_header("X-Virus-Status", "unchecked (message too large)")
            return
        if result.infected:
            virus = Reply.safe_text(result.virus or "unknown", 120)
            report.symbol("CLAMAV_VIRUS", 0.0, virus)
            if self._quarantine is not None:
                self._quarantine.quarantine(message, report, "virus", virus)
            else:
                report.reject(REPLY_VIRUS.with_text(f"Message refused: virus found: {virus}"), f"virus {virus}")
            return
        if self.settings.antivirus_scanned_header:
            report.add_header(self.settings.antivirus_scanned_header, f"ClamAV at {self.host}")
