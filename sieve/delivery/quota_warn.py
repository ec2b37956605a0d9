"""Quota warning mails, like Dovecot's quota_warning: a delivery that takes a mailbox's storage
usage from below a threshold (a percentage of its byte limit) to at or above it tells the user
once, with a message stored straight into their INBOX.

Sans-I/O: `crossed()` decides which threshold (the highest one crossed upward, so 70% -> 99%
with [80, 95] warns once, for 95%), `build_message()` writes the warning (RFC 5322, LF line
ends as stored in a Maildir). The header values go through sieve.outgoing, the helpers of
vacation replies and notifications: CR, LF and other control characters cleaned, non-ASCII
text as RFC 2047 encoded words. The executor (sieve/delivery/executor.py) reads the usage after
a committed delivery, stores the warning through owlery.maildir (counted in maildirsize, never
refused for quota: a full mailbox must still get it) and logs one `quota-warning` line; a
failure is a WARNING and never fails the delivery, already committed. Two deliveries crossing
a threshold at the same moment may both warn (no lock is held between them).

Talks to: nothing (sieve.outgoing is imported only when a warning is built, to keep the LDA's
start light). Tests: tests/delivery/test_quota_warn.py
"""

from __future__ import annotations

import email.utils
import os
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from owlery.settings import SettingType, Str, int_range, list_of, setting

PLACEHOLDERS = ("percent", "usage", "limit", "address")
_FORMATTER = string.Formatter()


def check_template(text: str, allowed: Sequence[str] = PLACEHOLDERS) -> str:
    """`text` when its {placeholders} are all in `allowed` (no attributes, indexes, format
    specs or conversions: a template can only name a value); ValueError otherwise."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in _FORMATTER.parse(text) if f is not None]
    except ValueError as e:
        raise ValueError(f"bad template {text!r}: {e} (write {{{{ and }}}} for braces)") from None
    for name, spec, conv in fields:
        if name not in allowed:
            raise ValueError(f"unknown placeholder {{{name}}} in {text!r} (known: "
                             + ", ".join("{" + a + "}" for a in allowed) + ")")
        if spec or conv:
            raise ValueError(f"placeholder {{{name}}} in {text!r} takes no conversion or format")
    return text


def _parse_thresholds(v: Any) -> tuple[int, ...]:
    got = _PERCENTS.parse(v)
    if list(got) != sorted(set(got)):
        raise ValueError(f"thresholds must be in ascending order without repeats, got {list(got)}")
    return got


def _parse_template(v: Any) -> str:
    return check_template(Str.parse(v))


def _parse_from(v: Any) -> str:
    text = check_template(Str.parse(v), ("domain",))
    if re.search(r"[\x00-\x1f\x7f]", text) or "@" not in text:
        raise ValueError(f"expected one address like postmaster@{{domain}}, got {text!r}")
    return text

_PERCENTS = list_of(int_range(1, 100), name="list of percentages")
Thresholds = SettingType("list of percentages (1..100, ascending)", _parse_thresholds, list)
Template = SettingType("text with {percent} {usage} {limit} {address}", _parse_template)
FromTemplate = SettingType("address with {domain}", _parse_from)

QUOTA_WARNING_THRESHOLDS = setting(
    "quota_warning_thresholds", Thresholds, [], unit="%",
    doc="Percentages of a mailbox's byte quota at which the user is warned (like Dovecot's "
        "quota_warning): a delivery taking the usage from below one to at or above it stores one "
        "warning message in the user's INBOX (the highest threshold crossed only). Counted in "
        "maildirsize, never refused for quota. Empty: no warnings.")
QUOTA_WARNING_FROM = setting(
    "quota_warning_from", FromTemplate, "postmaster@{domain}",
    "From of quota warnings; {domain} is the user's domain. One address, optionally with a "
    "display name (\"Mail System <postmaster@{domain}>\").")
QUOTA_WARNING_SUBJECT = setting(
    "quota_warning_subject", Template, "Your mailbox is {percent}% full",
    "Subject of quota warnings; placeholders {percent} (the threshold), {usage} and {limit} "
    "(sizes like 81.9 MiB), {address}. Non-ASCII text is RFC 2047 encoded.")
QUOTA_WARNING_BODY = setting(
    "quota_warning_body", Template,
    "Your mailbox {address} has reached {percent}% of its size limit: {usage} of {limit} used. "
    "When it is full, new mail to you is refused: please delete the messages you no longer need "
    "and empty your Trash and Junk folders.",
    "Body (plain text, UTF-8) of quota warnings, with the placeholders of quota_warning_subject; "
    "for a longer text with paragraphs use quota_warning_body_file.")
QUOTA_WARNING_BODY_FILE = setting(
    "quota_warning_body_file", Str, None,
    "A file (UTF-8) holding the body template instead of quota_warning_body, same placeholders; "
    "read each time a warning is written (a missing or bad file: no warning, a WARNING line).")


def crossed(limit: int, before: int, after: int, thresholds: Sequence[int]) -> int | None:
    """The highest threshold (percent of `limit` bytes) that usage went from below to at or
    above between `before` and `after`; None when none did, or when there is no limit."""
    if limit <= 0 or after <= before:
        return None
    hits = [t for t in thresholds if before * 100 < t * limit <= after * 100]
    return max(hits) if hits else None


def human_size(n: int) -> str:
    """`812 bytes`, `81.9 MiB`, `1.5 GiB`."""
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def values(threshold: int, address: str, usage: int, limit: int) -> dict[str, str]:
    return {"percent": str(threshold), "usage": human_size(usage), "limit": human_size(limit),
            "address": address}


def render(template: str, fields: Mapping[str, str]) -> str:
    """`template` (checked again: a body file is read at run time) with its placeholders filled."""
    return check_template(template).format_map(fields)


def build_message(*, threshold: int, address: str, usage: int, limit: int, from_template: str,
                  subject_template: str, body_template: str, now: float, hostname: str,
                  unique: str | None = None) -> bytes:
    """The warning as stored in the Maildir (LF line ends). Raises ValueError (HeaderError is
    one) for an address that cannot be written into a header, or a bad template."""
    from sieve import outgoing as out      # the helpers vacation replies and notifications use

    fields = values(threshold, address, usage, limit)
    local, _, domain = address.rpartition("@")
    to = out.addr_spec(local, domain)
    sender = out.single_mailbox(check_template(from_template, ("domain",)).format(domain=domain.lower()))
    host = re.sub(r"[^A-Za-z0-9.-]", "", hostname)[:200] or "localhost"
    msgid = f"<{int(now)}.{unique or os.urandom(8).hex()}.quota-warning@{host}>"
    text = render(body_template, fields)
    cte, body = out._body(text if text.endswith("\n") else text + "\n")
    lines = [
        f"Date: {email.utils.formatdate(now, localtime=True)}",
        out.address_field("From", [sender]),
        out.address_field("To", [("", to)]),
        out.unstructured("Subject", render(subject_template, fields)),
        f"Message-ID: {msgid}",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {cte}",
    ]
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"
    return (head + body).replace(b"\r\n", b"\n")


def from_settings(settings: Any, *, threshold: int, address: str, usage: int, limit: int,
                  now: float, hostname: str, read_file: Any = None) -> bytes:
    """build_message() with the quota_warning_* settings; the body file (when set) read through
    `read_file(path) -> str` (the executor's, so the I/O stays there)."""
    body = settings.quota_warning_body
    if settings.quota_warning_body_file:
        if read_file is None:
            raise ValueError("quota_warning_body_file is set but no reader was given")
        body = read_file(settings.quota_warning_body_file)
    return build_message(threshold=threshold, address=address, usage=usage, limit=limit,
                         from_template=settings.quota_warning_from,
                         subject_template=settings.quota_warning_subject, body_template=body,
                         now=now, hostname=hostname)
