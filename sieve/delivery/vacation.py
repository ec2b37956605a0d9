"""Vacation sending rules (RFC 5230 / RFC 3834) the delivery enforces before a reply leaves.

The engine decides a vacation reply is due and builds it; this module is the delivery's
own last check (never answer lists, bulk, auto-submitted mail, MAILER-DAEMON or owner-/
-request senders, the user's own address, or a sender address with control characters,
which no header or SMTP command may carry) and picks the envelope sender: the
user's address by default (many receivers refuse `<>`), or the null sender.
Talks to: nothing. Tests: tests/delivery/test_redirect.py (refusal rules),
tests/sieve/test_generated_mail_safety.py, tests/delivery/test_executor.py
"""

from __future__ import annotations

import re

from owlery.settings import choice, setting
from sieve.delivery.redirect import header_values

VACATION_ENVELOPE_FROM = setting(
    "vacation_envelope_from", choice("recipient", "null"), "null",
    "MAIL FROM of vacation replies: the null sender <> (null; RFC 5230 5.1 says it SHOULD be, as "
    "Pigeonhole sends them: a bounce of a reply then goes nowhere and cannot start a loop), or the "
    "user's own address (recipient; for a receiver that refuses <>).")

_LIST_HEADERS = ("List-Id", "List-Owner", "List-Subscribe", "List-Post", "List-Unsubscribe",
                 "List-Help", "List-Archive")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SYSTEM_SENDER = re.compile(
    r"^(mailer-daemon|listserv|majordomo|owner-.*|.*-request|.*-owner|postmaster|noreply|no-reply)$",
    re.I)


def refusal(message: bytes, sender: str, user_address: str) -> str | None:
    """Why no auto-reply may go to this message's sender, or None when one may."""
    if not sender:
        return "null sender"
    if _CONTROL.search(sender):
        return "control character in sender address"
    local = sender.rpartition("@")[0]
    if _SYSTEM_SENDER.match(local):
        return "system sender"
    if sender.lower() == user_address.lower():
        return "sender is the user"
    for name in _LIST_HEADERS:
        if header_values(message, name):
            return f"{name} header"
    for value in header_values(message, "Auto-Submitted"):
        if value.split(";")[0].strip().lower() != "no":
            return "Auto-Submitted"
    for value in header_values(message, "Precedence"):
        if value.strip().lower() in ("bulk", "list", "junk"):
            return f"Precedence: {value.strip()}"
    return None


def envelope_from(settings, user_address: str) -> str:
    return user_address if settings.vacation_envelope_from == "recipient" else ""
