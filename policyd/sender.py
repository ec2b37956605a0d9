"""Envelope-sender normalisation for greylist and rate-limit keys (BATV, VERP digits, +extension).

Senders that change on every message (BATV `prvs=TAG=user@`, VERP bounce addresses with
message numbers, `user+tag@`) would defeat a greylist triplet and a per-sender bucket; this
folds them to one stable form, as postgrey does: lower case, BATV unwrapped (also its reversed
`prvs=local=TAG`), `+extension` dropped, every all-digit ASCII word of the local part replaced
by `#`.
Talks to: nothing. Tests: tests/policyd/test_greylist_core.py,
tests/policyd/test_postgrey_differential.py (the keys against postgrey's)
"""

from __future__ import annotations

import re

# BATV (draft-levine-smtp-batv): prvs=TAG=local, also msprvs1= (Microsoft) and btv1== forms.
_BATV_RE = re.compile(r"^(?:prvs|msprvs\d*|btv\d+)=+[^=@]*=+(.+)$")
# What postgrey takes for the tag side of prvs=A=B (10 characters: key, day, hash).
_BATV_TAG_RE = re.compile(r"[0-9a-z]{10}")
# ASCII only, as postgrey (Perl on bytes): a non-ASCII letter next to digits is a word
# boundary there, and other scripts' digits are no VERP numbers.
_DIGITS_RE = re.compile(r"\b\d+\b", re.ASCII)


def split_address(address: str) -> tuple[str, str]:
    """(local, domain) of an address; domain is "" when there is no @."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain


def strip_extension(local: str, delimiter: str = "+") -> str:
    """`user+tag` -> `user` (a local part that starts with the delimiter is left alone)."""
    head, sep, _ = local.partition(delimiter)
    return head if sep and head else local


def unwrap_batv(local: str) -> str:
    if local.startswith("prvs="):
        fields = local.split("=")
        if len(fields) == 3 and _BATV_TAG_RE.match(fields[2]) and not _BATV_TAG_RE.match(fields[1]):
            return fields[1]  # the reversed prvs=local=tag some senders use (postgrey unwraps it too)
    m = _BATV_RE.match(local)
    return m.group(1) if m else local


def normalise_sender(sender: str) -> str:
    """The stable form of an envelope sender; "" (the null sender) stays "".

    >>> normalise_sender("prvs=1234abcdef=Bounce+42@Example.COM")
    'bounce@example.com'
    >>> normalise_sender("list-bounces-12345-user=example.org@lists.example.net")
    'list-bounces-#-user=example.org@lists.example.net'
    """
    s = sender.strip().lower()
    if not s:
        return ""
    local, domain = split_address(s)
    local = unwrap_batv(local)
    local = strip_extension(local)
    local = _DIGITS_RE.sub("#", local)
    return f"{local}@{domain}" if domain else local


def address_domain(address: str) -> str:
    return split_address(address.strip().lower())[1]
