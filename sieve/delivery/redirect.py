"""Redirect support: loop detection header, message preparation and optional SRS sender rewriting.

A redirected copy gets `X-Sieve-Redirected-From: <user>` on top and loses Return-Path;
a message that already carries that header naming the same user is not redirected again
(a loop: the executor keeps it instead). SRS (Sender Rewriting Scheme, postsrsd's SRS0
shape) keeps SPF passing at the next hop when `redirect_srs_domain` is set.
Talks to: nothing. Tests: tests/delivery/test_redirect.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from owlery.settings import Duration, Str, StrList, setting

REDIRECT_LOOP_HEADER = "X-Sieve-Redirected-From"
REDIRECT_SRS_DOMAIN = setting(
    "redirect_srs_domain", Str, None,
    "Rewrite the envelope sender of redirected mail with SRS into this domain "
    "(SRS0=hash=tt=domain=local@srs_domain). Unset: keep the original sender.")
REDIRECT_SRS_SECRET = setting(
    "redirect_srs_secret", Str, None,
    "Secret key for the SRS hash (required with redirect_srs_domain).")
REDIRECT_SRS_EXCLUDE_DOMAINS = setting(
    "redirect_srs_exclude_domains", StrList, [],
    "Sender domains never rewritten (your own domains: their SPF already covers this host).")
REDIRECT_DUPLICATE_PERIOD = setting(
    "redirect_duplicate_period", Duration, "12h", unit="s",
    doc="A message redirected to a target is not redirected there again within this period "
        "(so a delivery retried after a temporary failure sends no second copy).")

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def header_values(message: bytes, name: str) -> list[str]:
    """Unfolded values of a header in the message's header block (bytes, LF or CRLF)."""
    end = message.find(b"\n\n")
    end2 = message.find(b"\r\n\r\n")
    cut = min(e for e in (end, end2, len(message)) if e >= 0)
    head = message[:cut].decode("utf-8", "replace").replace("\r\n", "\n")
    values: list[str] = []
    current: list[str] | None = None
    lname = name.lower() + ":"
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and current is not None:
            current.append(line.strip())
            continue
        if current is not None:
            values.append(" ".join(current).strip())
            current = None
        if line.lower().startswith(lname):
            current = [line[len(lname):].strip()]
    if current is not None:
        values.append(" ".join(current).strip())
    return values


def is_loop(message: bytes, user_address: str) -> bool:
    """Has this message already been redirected by this user?"""
    want = user_address.lower()
    for value in header_values(message, REDIRECT_LOOP_HEADER):
        if want in value.lower().strip("<> "):
            return True
    return False


def strip_header(message: bytes, name: str) -> bytes:
    """Remove every occurrence of a header (with its continuation lines)."""
    lines = message.split(b"\n")
    out: list[bytes] = []
    lname = name.lower().encode("ascii") + b":"
    in_head, skipping = True, False
    for i, line in enumerate(lines):
        if in_head:
            if line in (b"", b"\r"):
                in_head = False
                out.extend(lines[i:])
                break
            if skipping and line[:1] in (b" ", b"\t"):
                continue
            skipping = line.lower().startswith(lname)
            if skipping:
                continue
        out.append(line)
    return b"\n".join(out)


def prepare(message: bytes, user_address: str) -> bytes:
    """The copy to send: loop header on top, no Return-Path."""
    body = strip_header(message, "Return-Path")
    return f"{REDIRECT_LOOP_HEADER}: {user_address}\n".encode("utf-8") + body


def srs_forward(sender: str, srs_domain: str, secret: str, now: float | None = None) -> str:
    """SRS0 rewriting of `sender` into `srs_domain` (already-SRS0 senders become SRS1-like chains
    are not attempted: an SRS address is rewritten again as plain, which stays valid)."""
    local, _, domain = sender.rpartition("@")
    if not local or not domain:
        return sender
    day = int((time.time() if now is None else now) // 86400) % 1024
    tt = _B32[day >> 5] + _B32[day & 31]
    digest = hmac.new(secret.encode("utf-8"), f"{tt}{domain}{local}".lower().encode("utf-8"),
                      hashlib.sha1).digest()
    hh = base64.b64encode(digest).decode("ascii")[:4]
    return f"SRS0={hh}={tt}={domain}={local}@{srs_domain}"


def envelope_from(sender: str, settings) -> str:
    """The MAIL FROM for a redirected copy under the SRS settings."""
    if not sender or settings.redirect_srs_domain is None:
        return sender
    if settings.redirect_srs_secret is None:
        raise ValueError("redirect_srs_domain is set but redirect_srs_secret is not")
    domain = sender.rpartition("@")[2].lower()
    if domain in {d.lower() for d in settings.redirect_srs_exclude_domains} or \
            domain == settings.redirect_srs_domain.lower() or re.match(r"(?i)^srs[01][=+-]", sender):
        return sender
    return srs_forward(sender, settings.redirect_srs_domain, settings.redirect_srs_secret)
