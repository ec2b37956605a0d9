"""vnd.dovecot.report (Pigeonhole's spec-bosch-sieve-report): the `report` command, which
sends an RFC 5965 abuse feedback report about the message to an address.

`report [:headers_only] <feedback-type> <message> <address>`: the feedback type must be one
MIME token (RFC 2045; white space and comments around it are dropped), the address one valid mailbox
(both checked at compile time when literal, else at run time: a runtime error). The report
(sieve.outgoing.abuse_report) carries the script's text, the message/feedback-report fields
and the message as received (or its header with :headers_only); it goes from the null sender
<> (no bounce comes back to anyone), its From field chosen by sieve_report_from
(sieve/limits.py). A second report to the same address in one run is dropped (Pigeonhole's
duplicate rule); reports count against sieve_max_actions and do not cancel the implicit keep;
the copy of the message each one holds is charged to sieve_max_memory (as enclose's).
As in Pigeonhole, a report is sent whatever the message's Auto-Submitted field: it goes to a
fixed address, never back to the sender (RFC 3834 concerns responses to the sender), and
carries Auto-Submitted: auto-generated itself.
The delivery sends it like any other ready message (sieve.delivery.planner: SendStep).
Tests: tests/sieve/test_report_extension.py (sieve-test parity, settings, limits);
conformance extensions/vnd.dovecot/report/.
"""

from __future__ import annotations

import re

from sieve.actions import Report
from sieve.address import AddressError, parse_address_list, parse_path
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, CommandDef, Extension, TagDef
from sieve.extensions.core import valid_redirect_address
from sieve.outgoing import HeaderError, abuse_report, addr_spec, loggable, single_mailbox

# RFC 2045 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>
_TOKEN = re.compile(r"[!#$%&'*+.0-9A-Z^_`a-z{|}~-]+")


def _skip_cfws(value: str, i: int) -> int | None:
    """The index after white space and (nested) comments from `i` (RFC 5322 3.2.2 CFWS); None
    for a comment left open."""
    depth = 0
    while i < len(value):
        c = value[i]
        if depth:
            if c == "\\":
                i += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
        elif c == "(":
            depth = 1
        elif c not in " \t\r\n":
            break
        i += 1
    return None if depth else i


def feedback_type(value: str) -> str | None:
    """The feedback type: one MIME token with white space and comments around it (RFC 5965's
    ABNF: "Feedback-Type:" [CFWS] token [CFWS]; Pigeonhole parses it the same way, comments
    and all, and keeps the token's case), None if invalid. An empty token is invalid (a
    token is 1*char; Pigeonhole accepts "" and "(x)" and sends an empty Feedback-Type)."""
    start = _skip_cfws(value, 0)
    m = _TOKEN.match(value, start) if start is not None else None
    if m is None or _skip_cfws(value, m.end()) != len(value):
        return None
    return m.group(0)


def _validate(v, node):
    ft, _text, addr = node.pos[0], node.pos[1], node.pos[2]
    if v.is_literal(ft):
        value = ft.items[0].value
        if feedback_type(value) is None:
            v.error(ft, f"specified feedback type '{loggable(value)}' is invalid")
    if v.is_literal(addr):
        value = addr.items[0].value
        if valid_redirect_address(value) is None:
            v.error(addr, f"specified report address '{loggable(value)}' is invalid")


def _same_address(a: str, b: str) -> bool:
    # the domain without case, the local part with it (RFC 5321 2.4), as redirects compare
    la, _, da = a.rpartition("@")
    lb, _, db = b.rpartition("@")
    return la == lb and da.lower() == db.lower()


def _spec(value: str | None) -> str | None:
    """The addr-spec of a configured address or envelope path; None when there is none."""
    if not value or value == "<>":
        return None
    try:
        if value.startswith("<"):
            a = parse_path(value)
            return None if a is None else addr_spec(a.local, a.domain)
        found = parse_address_list(value)
        if len(found) != 1:
            return None
        return addr_spec(found[0].local, found[0].domain)
    except (AddressError, HeaderError):
        return None


def report_from(rt) -> tuple[str, str]:
    """(display, addr-spec) of the report's From field (setting sieve_report_from); a source
    that names no usable address falls back to the postmaster, as Pigeonhole."""
    s = rt.settings
    env = rt.envelope
    source = s.sieve_report_from
    value = {
        "sender": env.mail_from,
        "recipient": env.rcpt_to,
        "orig_recipient": env.orig_rcpt or env.rcpt_to,
        "user_email": s.sieve_user_email or env.rcpt_to,
    }.get(source, source if source.startswith("<") else None)
    spec = _spec(value)
    if spec is not None:
        return "", spec
    try:
        display, spec = single_mailbox(s.sieve_postmaster_address)
    except HeaderError:
        return "Postmaster", "postmaster@localhost"
    return display or "Postmaster", spec


def reporting_user(rt) -> str | None:
    """Dovecot-Reporting-User: sieve_user_email, else the original recipient, else the recipient."""
    env = rt.envelope
    return _spec(rt.settings.sieve_user_email) or env.orig_rcpt or env.rcpt_to or None


def _run(rt, node):
    raw_type = rt.s(node.pos[0])
    text = rt.s(node.pos[1])
    raw_addr = rt.s(node.pos[2])
    ftype = feedback_type(raw_type)
    if ftype is None:
        raise SieveRuntimeError(f"specified report feedback type '{loggable(raw_type, 256)}' is invalid")
    to = valid_redirect_address(raw_addr)
    if to is None:
        raise SieveRuntimeError(f"specified report address '{loggable(raw_addr)}' is invalid")
    if any(isinstance(a, Report) and _same_address(a.address, to) for a in rt.result.actions):
        return  # one report per address and run (Pigeonhole: the later one is a duplicate)
    headers_only = "headers_only" in node.tags
    raw = rt.msg.raw
    # the report holds a copy of the message (or its header): charged like enclose's copy
    rt.charge_memory((len(raw) - rt.msg.original_body_len if headers_only else len(raw)) + len(text) + 1024)
    try:
        message = abuse_report(
            rt,
            feedback_type=ftype,
            text=text,
            to=to,
            from_mailbox=report_from(rt),
            headers_only=headers_only,
            original=raw,
            user=reporting_user(rt),
        )
    except HeaderError as e:
        raise SieveRuntimeError(f"report: cannot compose the report: {e}") from None
    rt.add(Report(address=to, envelope_from="", message=message, line=node.line), cancels_keep=False)


EXTENSION = Extension(
    name="vnd.dovecot.report",
    commands=(
        CommandDef(
            "report",
            arg_names=("feedback-type", "message", "address"),
            positional=(STRING, STRING, STRING),
            tags=(TagDef("headers_only"),),
            validate=_validate,
            run=_run,
        ),
    ),
)
