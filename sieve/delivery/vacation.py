"""Vacation sending rules (RFC 5230 / RFC 3834) the delivery enforces before a reply leaves.

The engine decides a vacation reply is due and builds it; this module is the delivery's
own last check (never answer lists, bulk, auto-submitted mail, MAILER-DAEMON or owner-/
-request senders, the user's own address, or a sender address with control characters,
which no header or SMTP command may carry) and picks the envelope sender: the null sender
by default, or (vacation_envelope_from = recipient) the user's envelope address the answered
message was sent to (reply_envelope_from, as Pigeonhole's sieve_vacation_send_from_recipient).
Talks to: nothing. Tests: tests/delivery/test_redirect.py (refusal rules),
tests/sieve/test_pigeonhole_gaps_s12b.py (envelope sender), tests/sieve/test_generated_mail_safety.py,
tests/delivery/test_executor.py
"""

from __future__ import annotations

from owlery.lazyre import lazy
from owlery.settings import choice, setting
from sieve.delivery.redirect import header_values

VACATION_ENVELOPE_FROM = setting(
    "vacation_envelope_from", choice("recipient", "null"), "null",
    "MAIL FROM of vacation replies: the null sender <> (null; RFC 5230 5.1 says it SHOULD be, as "
    "Pigeonhole sends them: a bounce of a reply then goes nowhere and cannot start a loop), or the "
    "user's own address (recipient; for a receiver that refuses <>): the envelope recipient, original "
    "recipient or sieve_user_email the answered message names in To/Cc/Bcc, else the original (with "
    "sieve_vacation_use_original_recipient) or final recipient, never a script's :addresses. Pigeonhole's "
    "sieve_vacation_send_from_recipient = yes is recipient.")

_LIST_HEADERS = ("List-Id", "List-Owner", "List-Subscribe", "List-Post", "List-Unsubscribe",
                 "List-Help", "List-Archive")
# Patterns, not compiled here: re compiles (and caches) them when a vacation is due, not in every
# LDA run that imports this module.
_CONTROL = lazy(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SYSTEM_SENDER = lazy(r"(?i)^(mailer-daemon|listserv|majordomo|owner-.*|.*-request|.*-owner|postmaster|noreply|no-reply)$")


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


_RECIPIENT_FIELDS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")


def reply_envelope_from(settings, user_address: str, *, recipient: str | None, orig_recipient: str | None,
                        message: bytes) -> str:
    """MAIL FROM of a vacation reply with vacation_envelope_from = recipient, as Pigeonhole's
    sieve_vacation_send_from_recipient picks it: the user's envelope address the answered
    message names in To/Cc/Bcc (or Resent-*), the one its sender wrote to: the final recipient,
    the original recipient (with sieve_vacation_use_original_recipient) or sieve_user_email;
    otherwise (the message names an :addresses alias, or none) the original recipient when
    known and used, else the final recipient; never an address the script gave (:addresses,
    :from), so a script cannot choose the envelope sender. "" (the null sender) when
    vacation_envelope_from = null (RFC 5230 5.1). `user_address` (the mailbox owner) stands in
    when the recipient is unknown."""
    if settings.vacation_envelope_from != "recipient":
        return ""
    from sieve.address import AddressError, parse_address_items, parse_path
    recipient = recipient or user_address
    orig = orig_recipient if orig_recipient and settings.sieve_vacation_use_original_recipient else None
    candidates = [recipient] + ([orig] if orig else [])
    if settings.sieve_user_email:
        try:
            found = parse_address_items(settings.sieve_user_email)[0]
        except AddressError:
            found = []
        if len(found) == 1 and found[0].domain:
            candidates.append(found[0].all)
    named: set[str] = set()
    for field in _RECIPIENT_FIELDS:
        for value in header_values(message, field):
            try:
                named.update(a.all.lower() for a in parse_address_items(value)[0] if a.domain)
            except AddressError:
                continue
    for c in candidates:
        try:
            if parse_path(c) is None:
                continue
        except AddressError:
            continue
        if c.lower() in named and not _CONTROL.search(c):
            return c
    return orig or recipient
