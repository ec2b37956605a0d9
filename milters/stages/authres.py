"""Stage `authres`: write one Authentication-Results header (RFC 8601) and drop forged ones.

It removes every incoming Authentication-Results whose authserv-id is ours (a forgery,
or our own policy daemon's header that the `spf` stage already read), keeps the others,
and inserts at the top one header with every result earlier stages recorded
(`report.auth_result`), or `none` when there is none. Put it after the verify stages.
Talks to: nothing. Tests: tests/milters/test_authres.py
"""

from __future__ import annotations

import re
import socket
from typing import Any

from owlery.settings import Str, setting

from milters.effects import AuthResult, Report
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


def _strip_comments(text: str) -> str:
    out, depth, escaped = [], 0, False
    for c in text:
        if escaped:
            escaped = False
            continue
        if c == "\\" and depth:
            escaped = True
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


def parse_authserv_id(value: str) -> str:
    """The authserv-id of an Authentication-Results value (comments and version dropped)."""
    head = _strip_comments(value).split(";", 1)[0].strip()
    return head.split()[0] if head else ""


def parse_resinfos(value: str) -> list[tuple[str, str, dict[str, str]]]:
    """(method, result, {ptype.property: value}) for each resinfo after the authserv-id."""
    out = []
    parts = _split_semicolons(_strip_comments(value))
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


def _pvalue(value: str) -> str:
    if _TOKEN_RE.match(value) or _DOMAINISH_RE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    return "(" + re.sub(r"[()\\]", "", text) + ")"


def render_resinfo(r: AuthResult) -> str:
    words = [f"{r.method}={r.result}"]
    if r.comment:
        words.append(_comment(r.comment))
    if r.reason:
        words.append(f"reason={_pvalue(r.reason)}")
    words += [f"{k}={_pvalue(v)}" for k, v in r.properties]
    return " ".join(words)


def render(authserv: str, results: list[AuthResult]) -> str:
    """The header value; resinfos folded one per line (LF + tab; the adapter sends it as is)."""
    if not results:
        return f"{authserv}; none"
    return f"{authserv};\n\t" + ";\n\t".join(render_resinfo(r) for r in results)


class AuthResults(Stage):
    name = "authres"

    def check(self, message: Any, report: Report) -> None:
        ours = authserv_id(self.settings, message).lower()
        existing = message.get_all("Authentication-Results")
        # Delete from the last to the first so occurrence numbers stay valid whatever
        # the MTA does with deleted fields.
        for index in range(len(existing), 0, -1):
            if parse_authserv_id(existing[index - 1].text).lower() == ours:
                report.remove_header("Authentication-Results", index)
        report.add_header("Authentication-Results",
                          render(authserv_id(self.settings, message), report.auth_results))
