"""Redirect support: loop detection, duplicate keys, message preparation and optional SRS
sender rewriting.

A redirected copy gets `X-Sieve-Redirected-From: <user>` on top and loses Return-Path.
`refusal()` decides, on the message as it arrived (before the user's scripts edited it; the
editheader extension cannot add or delete the loop and trace fields either), whether a
redirect may go out: not when that header already names the user (a loop), not when the
message was already redirected `redirect_max_hops` times, and a message that was already
redirected by someone goes on to at most `redirect_max_targets_redirected` targets, so a
chain of forwards grows linearly, not exponentially. A refused redirect is kept instead.
`duplicate_key()` names one redirect of one message to one target for the duplicate period:
by Message-ID, or without one by the envelope and a hash of the fields and body that do not
change when the delivery is retried.
SRS (Sender Rewriting Scheme, postsrsd's SRS0 shape) keeps SPF passing at the next hop when
`redirect_srs_domain` is set.
Talks to: nothing. Tests: tests/delivery/test_redirect.py, tests/delivery/test_redirect_hostile.py
"""

from __future__ import annotations

import time

from owlery.settings import Duration, Str, StrList, int_range, setting

REDIRECT_LOOP_HEADER = "X-Sieve-Redirected-From"
REDIRECT_SRS_DOMAIN = setting(
    "redirect_srs_domain", Str, None,
    "Rewrite the envelope sender of redirected mail with SRS into this domain "
    "(SRS0=hash=tt=domain=local@srs_domain). Unset: keep the original sender.")
REDIRECT_SRS_SECRET = setting(
    "redirect_srs_secret", Str, None,
    "Secret key for the SRS hash (required with redirect_srs_domain).")
REDIRECT_SRS_SECRET_FILE = setting(
    "redirect_srs_secret_file", Str, None,
    "A file whose first line is redirect_srs_secret; setting both is an error.")
REDIRECT_SRS_EXCLUDE_DOMAINS = setting(
    "redirect_srs_exclude_domains", StrList, [],
    "Sender domains never rewritten (your own domains: their SPF already covers this host).")
REDIRECT_DUPLICATE_PERIOD = setting(
    "redirect_duplicate_period", Duration, "12h", unit="s",
    doc="A message redirected to a target is not redirected there again within this period "
        "(so a delivery retried after a temporary failure sends no second copy).")

REDIRECT_MAX_HOPS = setting(
    "redirect_max_hops", int_range(1, 100), 5,
    "A message already redirected this many times (it carries this many X-Sieve-Redirected-From "
    "fields) is not redirected again; it is kept instead.")
REDIRECT_MAX_TARGETS_REDIRECTED = setting(
    "redirect_max_targets_redirected", int_range(0, None), 1,
    "Most targets a message that was already redirected (by anyone) is redirected to in one "
    "delivery; further redirects are kept instead. A first hop may fan out up to "
    "sieve_max_redirects copies, later hops only this many, so forwarding chains stay linear.")

# Fields the delivery path adds anew on each attempt: left out of the duplicate hash.
_PER_ATTEMPT_FIELDS = (b"received", b"return-path", b"delivered-to")

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


def _redirected_by(value: str) -> str:
    return value.strip().strip("<>").strip().lower()


def is_loop(message: bytes, user_address: str) -> bool:
    """Has this message already been redirected by this user?"""
    want = user_address.strip().lower()
    return any(_redirected_by(v) == want for v in header_values(message, REDIRECT_LOOP_HEADER))


def hops(message: bytes) -> int:
    """How many times this message has been redirected (its X-Sieve-Redirected-From fields)."""
    return len(header_values(message, REDIRECT_LOOP_HEADER))


def refusal(original: bytes, user_address: str, target: str, sent_before: int, settings) -> str | None:
    """Why `user_address` must not redirect `original` (the message as it arrived, before any
    script edited it) to `target`, or None. `sent_before`: redirects of this message this
    delivery already sent."""
    if target.strip().lower() == user_address.strip().lower():
        return f"redirect loop: {user_address} redirects to its own address"
    if is_loop(original, user_address):
        return f"redirect loop: {user_address} already redirected this message"
    n = hops(original)
    if n >= settings.redirect_max_hops:
        return f"redirect hop limit: already redirected {n} times (redirect_max_hops)"
    if n and sent_before >= settings.redirect_max_targets_redirected:
        return (f"redirect fan-out limit: an already redirected message goes to at most "
                f"{settings.redirect_max_targets_redirected} targets (redirect_max_targets_redirected)")
    return None


def _split(message: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of a message with LF or CRLF line ends."""
    candidates = [(i, n) for i, n in ((message.find(b"\n\n"), 2), (message.find(b"\r\n\r\n"), 4)) if i >= 0]
    if not candidates:
        return message, b""
    i, n = min(candidates)
    return message[:i], message[i + n:]


def content_hash(message: bytes) -> str:
    """SHA-256 of the header fields (except those added on every delivery attempt: Received,
    Return-Path, Delivered-To) and of the body; equal for every attempt at one message."""
    import hashlib          # here, not at the top: a plain delivery never hashes (OpenSSL loads in ~3 ms)
    head, body = _split(message)
    h = hashlib.sha256()
    skipping = False
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                h.update(line + b"\n")
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name in _PER_ATTEMPT_FIELDS
        if not skipping:
            h.update(line + b"\n")
    h.update(b"\0")
    h.update(body.replace(b"\r\n", b"\n"))
    return h.hexdigest()


def duplicate_key(original: bytes, sender: str, recipient: str, target: str) -> str:
    """The tracking key of one redirect of `original` (as it arrived) to `target`: by its
    Message-ID, or without one by the envelope (sender, recipient) and `content_hash`."""
    msgid = (header_values(original, "Message-ID") or [""])[0]
    if msgid:
        basis = msgid
    else:
        basis = f"\0envelope\0{sender.lower()}\0{recipient.lower()}\0{content_hash(original)}"
    import hashlib
    return "redirect:" + hashlib.sha256(
        f"{basis}\0{target.lower()}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


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


def _is_srs_address(sender: str) -> bool:
    """Already SRS-rewritten: the local part starts SRS0 or SRS1 then '=', '+' or '-' (any case)."""
    return sender[:3].lower() == "srs" and sender[3:4] in ("0", "1") and sender[4:5] in ("=", "+", "-")


def srs_forward(sender: str, srs_domain: str, secret: str, now: float | None = None) -> str:
    """SRS0 rewriting of `sender` into `srs_domain` (already-SRS0 senders become SRS1-like chains
    are not attempted: an SRS address is rewritten again as plain, which stays valid)."""
    local, _, domain = sender.rpartition("@")
    if not local or not domain:
        return sender
    day = int((time.time() if now is None else now) // 86400) % 1024
    tt = _B32[day >> 5] + _B32[day & 31]
    import base64
    import hashlib
    import hmac
    digest = hmac.new(secret.encode("utf-8"), f"{tt}{domain}{local}".lower().encode("utf-8"),
                      hashlib.sha1).digest()
    hh = base64.b64encode(digest).decode("ascii")[:4]
    return f"SRS0={hh}={tt}={domain}={local}@{srs_domain}"


def envelope_from(sender: str, settings) -> str:
    """The MAIL FROM for a redirected copy under the SRS settings."""
    if not sender or settings.redirect_srs_domain is None:
        return sender
    from owlery.secrets import read_secret
    secret = read_secret(settings, "redirect_srs_secret")     # SecretError is a ValueError
    if secret is None:
        raise ValueError("redirect_srs_domain is set but redirect_srs_secret is not")
    domain = sender.rpartition("@")[2].lower()
    if domain in {d.lower() for d in settings.redirect_srs_exclude_domains} or \
            domain == settings.redirect_srs_domain.lower() or _is_srs_address(sender):
        return sender
    return srs_forward(sender, settings.redirect_srs_domain, secret)
