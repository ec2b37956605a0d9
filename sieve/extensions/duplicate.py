"""duplicate (RFC 7352): the duplicate test, asking Host.seen; a DuplicateMark action
records the id once delivery succeeded.

The unique ID (RFC 7352 3.1), as Pigeonhole's delivery (Dovecot LMTP) tracks it: by default the
first msg-id of the first Message-ID field (RFC 5322 3.6.4), without the CFWS, quoting and
quoted-pairs around and in it (RFC 5322 3.2.2-3.2.4, 4.5.4), none when that field holds no
"<...@...>" (the test is false); with :header the field's value decoded (RFC 2047) and unfolded,
white space after the colon dropped and the rest as written; an omitted :handle is a tracking
list of its own, apart from any :handle, "" too (RFC 7352 3.2).

Tests: conformance extensions/duplicate/; tests/sieve/test_pigeonhole_probes_s19.py.
"""

from __future__ import annotations

import re

from owlery.digests import sha256
from sieve.actions import DuplicateMark
from sieve.extensions.base import NUMBER, STRING, CommandDef, Extension, TagDef
from sieve.message import decode_2047, unfold

_WSP = re.compile(r"[ \t\r\n]+")
# RFC 5322 3.2.3 atext, and the 8-bit text of RFC 6532 3.2
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+")


def _cfws(s: str, i: int) -> int:
    """Past the white space and (nested) comments at s[i:]; len(s) when a comment never ends."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and depth:
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth and c not in " \t\r\n":
            return i
        i += 1
    return len(s)


def _quoted(s: str, i: int) -> tuple[str | None, int]:
    """The content of the quoted-string at s[i] ('"'), its quoted-pairs undone."""
    out, i = [], i + 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return None, i


def _dotted(s: str, i: int, quoted: bool) -> tuple[str | None, int]:
    """word *("." word) at s[i:], CFWS around each piece (RFC 5322 4.4's obsolete forms)."""
    words = []
    while True:
        i = _cfws(s, i)
        if quoted and s[i:i + 1] == '"':
            word, i = _quoted(s, i)
        else:
            m = _ATOM.match(s, i)
            word, i = (m.group(), m.end()) if m else (None, i)
        if word is None:
            return None, i
        words.append(word)
        i = _cfws(s, i)
        if s[i:i + 1] != ".":
            return ".".join(words), i
        i += 1


def _parsed_id(s: str, i: int) -> str | None:
    """The msg-id whose "<" is just before s[i], read token by token (it holds a comment or a
    quoted string); None when it is no local-part "@" domain ">"."""
    left, i = _dotted(s, i, quoted=True)
    if left is None or s[i:i + 1] != "@":
        return None
    i = _cfws(s, i + 1)
    if s[i:i + 1] == "[":
        end = s.find("]", i)
        if end < 0:
            return None
        right, i = _WSP.sub("", s[i:end + 1]), _cfws(s, end + 1)
    else:
        right, i = _dotted(s, i, quoted=False)
    if right is None or s[i:i + 1] != ">":
        return None
    return f"<{left}@{right}>"


# A "<" whose msg-id holds a comment or a quoted string is read token by token, which may run to
# the value's end (a comment never closed): a sender's field of n such "<" would cost n times its
# length. Past this many of them the field is taken to have no msg-id (the test is false).
TOKENISED_TRIES_MAX = 4


def message_id(value: str) -> str | None:
    """The first msg-id in a Message-ID field's (unfolded) value as "<left@right>", or None.
    Text before a "<" is skipped, and so is a "<...>" that is no msg-id. Linear in the value's
    length (TOKENISED_TRIES_MAX; tests/sieve/test_pigeonhole_probes_s19.py)."""
    pos = 0
    tries = 0
    while (start := value.find("<", pos)) >= 0:
        end = value.find(">", start)
        if end < 0:
            return None
        inner = value[start + 1:end]
        if '"' not in inner and "(" not in inner:
            if "@" in inner:
                return "<" + _WSP.sub("", inner) + ">"
            pos = end + 1
            continue
        tries += 1
        if tries > TOKENISED_TRIES_MAX:
            return None
        found = _parsed_id(value, start + 1)
        if found is not None:
            return found
        pos = start + 1
    return None


def _first_field(rt, name: str) -> str | None:
    """The raw value of the first field named `name`, unfolded, or None."""
    n = name.lower()
    for key, value in rt.msg.headers:
        if key.lower() == n:
            return unfold(value)
    return None


def _validate(v, node):
    if "header" in node.tags and "uniqueid" in node.tags:
        v.error(node, "conflicting :header and :uniqueid arguments specified for the duplicate test")
    secs = node.tags.get("seconds")
    if secs is not None and secs.value > v.settings.sieve_duplicate_max_period:
        # lowered to the site's maximum at run time (RFC 7352 3.3), as sievec warns
        v.warning(secs, f"specified :seconds value '{int(v.settings.sieve_duplicate_max_period)}' is over the maximum")
    header = node.tags.get("header")
    if header is not None and v.is_literal(header) and not re.fullmatch(r"[!-9;-~]*", header.items[0].value):
        # (a name that is none matches no field: a warning, as sievec gives)
        from sieve.errors import sanitized
        v.warning(header, f"specified header field name '{sanitized(header.items[0].value)}' is invalid")


def _run(rt, node):
    # RFC 7352 3.2: :handle "" is a handle too, apart from the omitted one (the same key as before)
    handle = (rt.s(node.tags["handle"]) or "\0") if "handle" in node.tags else ""
    if "uniqueid" in node.tags:
        value = rt.s(node.tags["uniqueid"])
    elif "header" in node.tags:
        raw = _first_field(rt, rt.s(node.tags["header"]))
        if raw is None:
            return False
        value = decode_2047(raw.lstrip(" \t"))
    else:
        raw = _first_field(rt, "message-id")
        value = None if raw is None else message_id(raw)
        if value is None:
            return False
    period = float(node.tags["seconds"].value) if "seconds" in node.tags else \
        rt.settings.sieve_duplicate_default_period
    period = min(period, rt.settings.sieve_duplicate_max_period)
    key = "duplicate:" + sha256(f"{handle}\0{value}".encode("utf-8", "surrogateescape")).hexdigest()
    checked = rt.ext.setdefault("duplicate_checked", {})     # key -> the host's answer, per run
    first_check = key not in checked
    seen = checked.get(key)
    if seen is None:
        seen = bool(rt.host.seen(key))
        checked[key] = seen
    if first_check or node.tags.get("last"):
        rt.add(DuplicateMark(tracking_key=key, period=period, line=node.line), cancels_keep=False)
    return seen


EXTENSION = Extension(
    name="duplicate",
    commands=(CommandDef("duplicate", kind="test", tags=(
        TagDef("handle", STRING), TagDef("header", STRING), TagDef("uniqueid", STRING),
        TagDef("seconds", NUMBER), TagDef("last")), validate=_validate, run=_run),),
)
