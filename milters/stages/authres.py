"""Stage `authres`: write one Authentication-Results header (RFC 8601) and drop forged ones.

It removes every incoming Authentication-Results whose authserv-id is ours (a forgery,
or our own policy daemon's header that the `spf` stage already read), keeps the others,
and inserts at the top one header with every result earlier stages recorded
(`report.auth_result`), or `none` when there is none. Put it after the verify stages.
"Ours" is judged as RFC 8601 section 5 asks, on the authserv-id however it is written:
a token or a quoted-string (RFC 2045 `value`), after comments, in any case, with or
without a trailing dot, followed or not by a version; a header too broken to parse still
goes when its first value is our id (see is_ours).
Talks to: nothing. Tests: tests/milters/test_auth_stages.py, tests/milters/test_units.py,
tests/milters/test_auth_hostile.py
"""

from __future__ import annotations

import re
import socket
from typing import Any

from owlery.settings import Str, setting

from milters.effects import AuthResult, StageReport
from milters.mime_params import uncommented
from milters.stages import Stage

MILTER_AUTHSERV_ID = setting(
    "milter_authserv_id", Str, None,
    "The authserv-id of our Authentication-Results headers (RFC 8601), usually the MX host "
    "name. Unset: Postfix's myhostname (the j macro), else this host's name.")

_TOKEN_RE = re.compile(r"^[^\x00-\x20()<>@,;:\\\"/\[\]?=\x7f]+$")
_PROP_RE = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S+)')
_DOMAINISH_RE = re.compile(r"^[A-Za-z0-9._+-]*@?[A-Za-z0-9.-]+$")


def authserv_id(settings: Any, message: Any) -> str:
    if settings.milter_authserv_id is not None:
        return settings.milter_authserv_id
    return message.macros.get("j") or socket.getfqdn()


def skip_comment(text: str, i: int) -> int:
    """Index after the comment opening at text[i] (nested, quoted-pairs); len(text) if unclosed."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def parse_authserv_id(value: str) -> str:
    """The authserv-id of an Authentication-Results value as written, "" if there is none.

    The first `value` after CFWS (RFC 8601 section 2.2): a quoted-string (returned
    unquoted) or a token (up to white space, ";", a comment or a quote). Comments, the
    version and what follows are dropped. Never raises, whatever the text.
    """
    i, n = 0, len(value)
    while i < n:
        if value[i].isspace():
            i += 1
        elif value[i] == "(":
            i = skip_comment(value, i)
        else:
            break
    if i >= n:
        return ""
    if value[i] == '"':
        out = []
        i += 1
        while i < n and value[i] != '"':
            if value[i] == "\\" and i + 1 < n:
                i += 1
            out.append(value[i])
            i += 1
        found = "".join(out).strip()
    else:
        j = i
        while j < n and not value[j].isspace() and value[j] not in ';("':
            j += 1
        found = value[i:j]
    return found


def normalise_authserv_id(authserv: str) -> str:
    """The comparison form of an authserv-id: no surrounding space, no trailing dot (an absolute
    domain name is the same name), lower case (domain names compare case-insensitively)."""
    return authserv.strip().rstrip(".").lower()


def is_ours(value: str, ours: str) -> bool:
    """True if the Authentication-Results value carries the authserv-id `ours` (RFC 8601 section 5).

    Read by parse_authserv_id, which takes any text: a forged header must go even when it
    is too broken to parse. (The authres package's parser is no help here: it refuses a
    quoted id and a trailing dot, and any id it does return is the one read here.)
    """
    want = normalise_authserv_id(ours)
    return bool(want) and normalise_authserv_id(parse_authserv_id(value)) == want


def parse_resinfos(value: str) -> list[tuple[str, str, dict[str, str]]]:
    """(method, result, {ptype.property: value}) for each resinfo after the authserv-id."""
    out = []
    parts = _split_semicolons(uncommented(value))
    for part in parts[1:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        props: dict[str, str] = {}
        rest = part.strip()[len(words[0]):]
        for key, val in _PROP_RE.findall(rest):
            props[key.lower()] = val[1:-1].replace('\\"', '"') if val.startswith('"') else val
        out.append((method.split("/")[0].lower(), result.lower(), props))
    return out


def _split_semicolons(text: str) -> list[str]:
    parts, cur, quoted = [], [], False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == ";" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    """What a client wrote (MAIL FROM, a signature's tags) as header-safe text: bytes that are not
    UTF-8 (pymilter's surrogate escapes) become U+FFFD, control characters "?"; a CR, LF or NUL
    would end or break the header, an unencodable value fail the message at end-of-message."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL_RE.sub("?", text)


def _pvalue(value: str) -> str:
    value = _printable(value)
    if _TOKEN_RE.match(value) or _DOMAINISH_RE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Longest property value written (RFC 5321 4.5.3.1.3: a path is at most 256 octets; a domain
# name 253): a longer one is no real identity, and one token cannot be folded to keep the
# line within RFC 5322's 998 octets. Comments are cut to the same length.
_VALUE_MAX = 256


def _comment(text: str) -> str:
    return "(" + re.sub(r"[()\\]", "", _printable(text))[:_VALUE_MAX] + ")"


def render_resinfo(r: AuthResult) -> str:
    words = [f"{r.method}={r.result}"]
    if r.comment:
        words.append(_comment(r.comment))
    if r.reason:
        words.append(f"reason={_pvalue(r.reason[:_VALUE_MAX])}")
    words += [f"{k}={_pvalue(v)}" for k, v in r.properties if len(v) <= _VALUE_MAX]
    return " ".join(words)


def render(authserv: str, results: list[AuthResult]) -> str:
    """The header value; resinfos folded one per line (LF + tab; the adapter sends it as is)."""
    if not results:
        return f"{authserv}; none"
    return f"{authserv};\n\t" + ";\n\t".join(render_resinfo(r) for r in results)


class AuthResults(Stage):
    name = "authres"

    def check(self, message: Any, report: StageReport) -> None:
        ours = authserv_id(self.settings, message)
        existing = message.get_all("Authentication-Results")
        # Delete from the last to the first so occurrence numbers stay valid whatever
        # the MTA does with deleted fields.
        for index in range(len(existing), 0, -1):
            if is_ours(existing[index - 1].text, ours):
                report.remove_header("Authentication-Results", index)
        report.add_header("Authentication-Results",
                          render(authserv_id(self.settings, message), report.auth_results))
