"""Signed quarantine tokens: the release and show links of digests, bound to one message and one recipient.

Sans-I/O: the key, the token and `now` come in, claims or BadToken go out. A token is
base64url (no padding) of

    version (1 byte, 1) | action (1 byte: r = release, s = show) | expires (8 bytes, big-endian
    seconds since the epoch) | len(quarantine_id) (1 byte) | quarantine_id (ASCII) |
    len(recipient) (2 bytes) | recipient (UTF-8) | MAC (16 bytes)

where MAC is HMAC-SHA256(key, "owlery-quarantine-token\\0" + everything before it),
truncated to 128 bits (RFC 2104 section 5 allows truncation to half the hash). The fixed
and length-prefixed fields make the encoding injective: no two claim sets share the signed
bytes, so a MAC made for one message or recipient can never pass for another. The MAC
is compared in constant time before any field is trusted, and only the canonical base64
spelling is accepted (otherwise the unused low bits of the last character would give
several spellings of one token). A token carries no secret: the recipient and id in it
are readable by whoever holds the link, which is the recipient it was mailed to.
Talks to: nothing. Tests: tests/core/test_quarantine_tokens.py
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
import struct

VERSION = 1
ACTIONS = {"release": b"r", "show": b"s"}
_ACTION_NAMES = {code: name for name, code in ACTIONS.items()}
MAC_LENGTH = 16
MIN_KEY_LENGTH = 16
_CONTEXT = b"owlery-quarantine-token\0"
_HEAD = struct.Struct(">Bc Q")          # version, action, expires
_MAX_ID = 255
_MAX_RECIPIENT = 1024                    # far above RFC 5321's 256-octet path
_B64 = re.compile(r"[A-Za-z0-9_-]+\Z")


class BadToken(ValueError):
    """A token that does not authorise anything: `reason` is malformed, forged, expired or wrong action."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Claims:
    """What a valid token says: this action on this quarantined message, for this recipient, until `expires`."""

    action: str
    quarantine_id: str
    recipient: str
    expires: int


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + body, hashlib.sha256).digest()[:MAC_LENGTH]


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"a token key must be at least {MIN_KEY_LENGTH} bytes")


def sign(key: bytes, action: str, quarantine_id: str, recipient: str, expires: int) -> str:
    """A URL-safe token allowing `action` ("release" or "show") on `quarantine_id` for `recipient` until `expires`."""
    _check_key(key)
    if action not in ACTIONS:
        raise ValueError(f"token action must be one of {sorted(ACTIONS)}, not {action!r}")
    qid = quarantine_id.encode("ascii")
    rcpt = recipient.encode("utf-8")
    if not 0 < len(qid) <= _MAX_ID:
        raise ValueError("quarantine id must be 1 to 255 ASCII characters")
    if not 0 < len(rcpt) <= _MAX_RECIPIENT:
        raise ValueError(f"recipient must be 1 to {_MAX_RECIPIENT} bytes of UTF-8")
    if not 0 <= int(expires) < 2 ** 64:
        raise ValueError("expires out of range")
    body = (_HEAD.pack(VERSION, ACTIONS[action], int(expires)) + bytes([len(qid)]) + qid
            + struct.pack(">H", len(rcpt)) + rcpt)
    return base64.urlsafe_b64encode(body + _mac(key, body)).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes:
    if not isinstance(token, str) or not _B64.match(token) or len(token) > 2048:
        raise BadToken("malformed", "not base64url")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("malformed", "not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise BadToken("malformed", "not the canonical spelling")
    return raw


def verify(key: bytes, token: str, now: float, action: str) -> Claims:
    """The claims of `token` if `key` signed it, it has not expired at `now` and it is for `action`; else BadToken."""
    _check_key(key)
    raw = _decode(token)
    if len(raw) < _HEAD.size + 1 + 2 + MAC_LENGTH:
        raise BadToken("malformed", "too short")
    body, mac = raw[:-MAC_LENGTH], raw[-MAC_LENGTH:]
    if not hmac.compare_digest(mac, _mac(key, body)):
        raise BadToken("forged")
    # Signed by our key from here on; the checks below guard against our own older versions.
    version, code, expires = _HEAD.unpack_from(body)
    if version != VERSION or code not in _ACTION_NAMES:
        raise BadToken("malformed", f"version {version}")
    at = _HEAD.size
    qlen = body[at]
    qid = body[at + 1:at + 1 + qlen]
    at += 1 + qlen
    if len(body) < at + 2:
        raise BadToken("malformed", "truncated")
    (rlen,) = struct.unpack_from(">H", body, at)
    rcpt = body[at + 2:]
    if len(qid) != qlen or len(rcpt) != rlen:
        raise BadToken("malformed", "field lengths")
    try:
        claims = Claims(_ACTION_NAMES[code], qid.decode("ascii"), rcpt.decode("utf-8"), expires)
    except UnicodeDecodeError:
        raise BadToken("malformed", "encoding") from None
    if now >= expires:
        raise BadToken("expired")
    if claims.action != action:
        raise BadToken("wrong action", f"{claims.action} token used for {action}")
    return claims
