"""Quarantine notices as MIME messages: the recipient digest, the admin notice and the admin summary.

Sans-I/O: items and `now` in, message bytes (CRLF) out. Everything taken from a quarantined
message (subject, From, envelope sender, scanner details) is hostile: header text is
decoded from RFC 2047 when it can be, then control characters (CR and LF included), Unicode
line separators and bidirectional overrides become spaces and the text is cut to a length;
it goes into the bodies only (HTML-escaped in the HTML part), never raw into a header of
the notice. The notice's own headers are built by the email package (policy SMTP), which
encodes non-ASCII text as RFC 2047 and refuses CR/LF in a value. Bodies are UTF-8,
quoted-printable, in a multipart/alternative of text/plain and text/html, with
Auto-Submitted: auto-generated (RFC 3834) so that vacation responders stay quiet.
Talks to: nothing. Tests: tests/milters/test_quarantine_notify.py,
tests/milters/test_quarantine_case_s20.py (test_display_is_linear_on_hostile_values),
tests/e2e/test_web_people_s21.py (the HTML part at 360 px)
"""

from __future__ import annotations

import dataclasses
import email.errors
import email.policy
import email.utils
import html
import re
import time
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage

from owlery.charsets import decode_header_text

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s{2,}")
# lone surrogates: octets that were not UTF-8 (an 8-bit envelope sender, kept by
# surrogateescape), shown as \xNN; the page or notice could not be encoded with them
_OCTETS = re.compile("[\ud800-\udfff]")


def _octet(c: re.Match) -> str:
    n = ord(c.group())
    return f"\\x{n - 0xdc00:02x}" if 0xdc80 <= n <= 0xdcff else f"\\u{n:04x}"


DECODED_MAX = 2048     # characters of a header value decoded for display (display, why there)


def display(raw: str, limit: int = 160) -> str:
    """Header text fit to show: RFC 2047 decoded (when it decodes), controls as spaces, octets that
    are not UTF-8 as \\xNN, cut to `limit`."""
    text = raw or ""
    if len(text) > DECODED_MAX:
        # email.header's decoder is quadratic in the number of encoded words and "=?" fragments
        # (200,000 characters of "=?x?q?x" take 15 s); what is shown is `limit` characters, and
        # the milter stores at most 500, so only a hostile caller ever reaches this cut
        text = text[:DECODED_MAX]
    try:
        text = decode_header_text(text)
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        pass          # not valid RFC 2047: show it as it is, made safe below
    text = _SPACES.sub(" ", _UNSAFE.sub(" ", _OCTETS.sub(_octet, text))).strip()
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


@dataclasses.dataclass(frozen=True)
class Item:
    """One held message as a notice lists it (fields are raw; the builders make them safe)."""

    mail_id: str
    created: float
    sender: str
    header_from: str
    subject: str
    reason: str
    detail: str
    score: float | None
    recipients: tuple[str, ...] = ()
    client: str = ""
    release_url: str | None = None
    show_url: str | None = None


def _date(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t))


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}"


def _fields(item: Item) -> list[tuple[str, str]]:
    sender = display(item.header_from) or "<" + display(item.sender, 254) + ">"
    if item.header_from and item.sender and item.sender.lower() not in item.header_from.lower():
        sender += f" (envelope <{display(item.sender, 254)}>)"
    reason = display(item.reason, 40) + (f": {display(item.detail, 120)}" if item.detail else "")
    out = [("Date", _date(item.created)), ("From", sender), ("Subject", display(item.subject) or "(none)"),
           ("Reason", reason), ("Score", _score(item.score)), ("Quarantine ID", item.mail_id)]
    if item.recipients:
        out.append(("To", ", ".join(display(r, 254) for r in item.recipients)))
    if item.client:
        out.append(("Client", display(item.client, 200)))
    return out


def _text_part(intro: Sequence[str], items: Sequence[Item], outro: Sequence[str]) -> str:
    lines = [*intro, ""]
    for n, item in enumerate(items, 1):
        lines.append(f"{n}.")
        lines += [f"   {name}: {value}" for name, value in _fields(item)]
        if item.release_url:
            lines.append(f"   Release: {item.release_url}")
        if item.show_url:
            lines.append(f"   Show:    {item.show_url}")
        lines.append("")
    return "\n".join([*lines, *outro]) + "\n"


# Inline styles (mail clients drop style sheets): a phone shows the digest at its own width (the
# viewport), and a subject or name of 160 characters without a space wraps inside its cell
# instead of making the table, and so the whole digest, wider than the screen.
_TABLE = 'width="100%" style="table-layout:fixed;width:100%;max-width:48em"'
_TH = 'align="left" valign="top" style="width:8em"'
_TD = 'style="overflow-wrap:anywhere;word-break:break-word"'


def _html_part(title: str, intro: Sequence[str], items: Sequence[Item], outro: Sequence[str]) -> str:
    e = html.escape
    rows = []
    for item in items:
        cells = "".join(f"<tr><th {_TH}>{e(name)}</th><td {_TD}>{e(value)}</td></tr>" for name, value in _fields(item))
        links = []
        if item.release_url:
            links.append(f"<a href=\"{e(item.release_url)}\">Release</a>")
        if item.show_url:
            links.append(f"<a href=\"{e(item.show_url)}\">Show</a>")
        if links:
            cells += f"<tr><td></td><td {_TD}>{' &middot; '.join(links)}</td></tr>"
        rows.append(f"<table cellpadding=\"2\" {_TABLE}>{cells}</table><hr>")
    paragraphs = "".join(f"<p>{e(p)}</p>" for p in intro)
    tail = "".join(f"<p>{e(p)}</p>" for p in outro)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{e(title)}</title></head>"
            f"<body>\n{paragraphs}\n{''.join(rows)}\n{tail}\n</body></html>\n")


def _address_field(address: str) -> str:
    """The To field of a notice to `address` (an envelope recipient, spelled as its sender
    wrote it): the addr-spec with its local part quoted as RFC 5322 3.4.1 asks (the envelope
    may carry it unquoted, or quoted); an address that cannot be written within a line (RFC
    5322 2.1.1) or holds control characters is named by an empty group, as for a Bcc."""
    local, at, domain = address.rpartition("@")
    if at and len(local) >= 2 and local[0] == local[-1] == '"':
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    try:
        value = str(Address(username=local, domain=domain)) if at and local and domain else ""
    except (ValueError, IndexError, email.errors.HeaderParseError):
        value = ""
    if not value or len(value) > 900 or not value.isprintable():
        return "undisclosed-recipients:;"
    return value


def _message(*, to: str, from_addr: str, subject: str, intro: Sequence[str], items: Sequence[Item],
             outro: Sequence[str], now: float, domain: str, kind: str) -> bytes:
    ascii_only = to.isascii() and from_addr.isascii()
    policy = email.policy.SMTP if ascii_only else email.policy.SMTPUTF8
    msg = EmailMessage(policy=policy)
    msg["From"] = from_addr
    msg["To"] = _address_field(to)
    msg["Subject"] = display(subject, 200)
    msg["Date"] = email.utils.formatdate(now, localtime=True)
    msg["Message-ID"] = email.utils.make_msgid("owlery-quarantine-" + kind, domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Owlery-Notice"] = kind
    msg.set_content(_text_part(intro, items, outro), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(_html_part(subject, intro, items, outro), subtype="html", charset="utf-8",
                        cte="quoted-printable")
    return msg.as_bytes(policy=policy.clone(linesep="\r\n"))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def build_digest(recipient: str, items: Sequence[Item], *, from_addr: str, now: float, domain: str,
                 more: int = 0) -> bytes:
    """The digest telling `recipient` of `items` held for them (and of `more` not listed)."""
    intro = [f"{_plural(len(items) + more, 'message')} addressed to you {'was' if len(items) + more == 1 else 'were'} "
             "held in quarantine and not delivered.",
             "If one of them is mail you want, release it with its link; the others are deleted "
             "automatically after a while. Do not release a message you do not trust."]
    outro = [f"{_plural(more, 'more message')} not listed here."] if more else []
    subject = f"Quarantine: {_plural(len(items) + more, 'message')} held for you"
    return _message(to=recipient, from_addr=from_addr, subject=subject, intro=intro, items=items,
                    outro=outro, now=now, domain=domain, kind="digest")


def build_admin_notice(admin: str, item: Item, *, from_addr: str, now: float, domain: str, host: str) -> bytes:
    """One virus or banned-file quarantine, for the administrators (like amavis' virus_admin)."""
    subject = f"Quarantined ({display(item.reason, 40)}): {display(item.detail, 100)}"
    intro = [f"{host} quarantined a message ({display(item.reason, 40)}). Inspect or release it with "
             f"`owlery quarantine show {item.mail_id}`."]
    return _message(to=admin, from_addr=from_addr, subject=subject, intro=intro, items=[item], outro=[],
                    now=now, domain=domain, kind="admin")


def build_admin_summary(admin: str, items: Sequence[Item], *, from_addr: str, now: float, domain: str,
                        host: str, rate: int) -> bytes:
    """The messages whose own notices the rate limit held back, in one summary."""
    subject = f"Quarantined: {_plural(len(items), 'more message')} (notices rate-limited)"
    intro = [f"{host} quarantined {_plural(len(items), 'more message')} for which no notice of its own "
             f"was sent (quarantine_admin_notice_rate = {rate} per hour). `owlery quarantine list` shows them."]
    return _message(to=admin, from_addr=from_addr, subject=subject, intro=intro, items=items, outro=[],
                    now=now, domain=domain, kind="admin-summary")
