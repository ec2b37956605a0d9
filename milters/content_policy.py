"""Per-recipient content policy in the milter: who among a message's recipients loves banned files, viruses or spam.

`policies(settings, services, message, report)` looks each recipient up once per message
(Directory.content_policy, then owlery.content_policy.resolve with content_policy_banks;
kept in report.data["content_policy"] for the next stage) when a source is configured
(files_content_policy with the files backend, ldap_content_policy_attribute with LDAP);
otherwise every recipient has no policy and the stages behave as before.

After DATA a milter answers once for the whole message: it cannot accept it for one
recipient and refuse it for another. So, as amavis does for mixed recipients in front of
the queue, `apply_lovers` settles a verdict (banned file, virus) per recipient:
- every recipient loves it: the message is delivered, marked with X-Content-Alert
  (amavis' X-Amavis-Alert) and the stage's symbols, nothing refused or quarantined;
- none does: the stage's own action (reject or quarantine) for all: the strictest wins;
- some do: the lovers get the message (marked); the others are taken off the envelope and a
  quarantined copy is kept for them, never refused, since the lovers must still receive
  it. A message cut short at milter_message_size_limit is held whole instead.
Talks to: the directory (through the milter's shared Services). Tests: tests/milters/test_content_policy.py,
tests/e2e/test_content_policy_e2e.py
"""

from __future__ import annotations

from typing import Any

from owlery import log as owlery_log
from owlery.content_policy import NO_POLICY, ContentPolicy, resolve

ALERT_HEADER = "X-Content-Alert"
_DATA_KEY = "content_policy"


def configured(settings: Any) -> bool:
    """Whether the directory can hold content policies at all (else nobody is asked)."""
    if settings.directory_backend == "ldap":
        return bool(settings.ldap_content_policy_attribute)
    return bool(settings.files_content_policy)


def recipients(message: Any, report: Any) -> list[str]:
    """The distinct recipients still on the envelope."""
    return [r for r in dict.fromkeys(message.recipients) if r not in report.removed]


def policies(settings: Any, services: Any, message: Any, report: Any) -> dict[str, ContentPolicy]:
    """Each recipient's policy (NO_POLICY when none), looked up once per message; may raise
    DirectoryUnavailable (the stage's milter_stage_on_error applies)."""
    known = report.data.get(_DATA_KEY)
    if known is None:
        known = report.data[_DATA_KEY] = {}
    wanted = [r for r in dict.fromkeys(message.recipients) if r not in known]
    if wanted and not configured(settings):
        known.update((r, NO_POLICY) for r in wanted)
    elif wanted:
        directory = services.directory(settings)
        for r in wanted:
            known[r] = resolve(directory.content_policy(r), settings.content_policy_banks, r)
    return known


def lovers(settings: Any, services: Any, message: Any, report: Any, what: str) -> tuple[list[str], list[str]]:
    """(recipients who love `what`, the others), of those still on the envelope."""
    table = policies(settings, services, message, report)
    rcpts = recipients(message, report)
    yes = [r for r in rcpts if table.get(r, NO_POLICY).loves(what)]
    return yes, [r for r in rcpts if r not in yes]


def apply_lovers(stage: Any, message: Any, report: Any, what: str, reason: str, detail: str,
                 alert: str | None, quarantiner: Any) -> bool:
    """Settle a verdict for `what` (e.g. "banned_files_lover") per recipient, as the module
    docstring says. True when it was settled here (lovers among the recipients); False when
    nobody loves it and the stage applies its own action to all."""
    yes, others = lovers(stage.settings, stage.services, message, report, what)
    if not yes:
        return False
    queue_id = message.queue_id
    if others and message.truncated:
        report.hold(f"{reason} for some recipients ({', '.join(others)}); message over "
                    "milter_message_size_limit, held whole")
        return True
    if alert:
        report.add_header(ALERT_HEADER, alert_value(alert))
    if others:
        mail_id = quarantiner().keep(message, report, reason, detail, others)
        for rcpt in others:
            report.delrcpt(rcpt, f"{reason}: quarantine id {mail_id}; other recipients are {what}s")
    owlery_log.decision("milter", queue_id, "lovers",
                        head=f"END-OF-MESSAGE from {message.client_name}[{message.client_address or 'local'}]",
                        from_=message.mail_from, to=",".join(yes), policy=what, reason=reason,
                        detail=_printable(detail, 200), quarantined_for=",".join(others) or None)
    return True


def strip_forged(message: Any, report: Any, names: tuple[str, ...]) -> None:
    """Remove the sender's own copies of verdict headers that only we may add (X-Content-Alert,
    X-Virus-Status): kept, they would read as our verdict to users and their filters. Once per
    message, whichever stage asks first; highest occurrence first, so the indexes stay valid."""
    done = report.data.setdefault("forged_headers_removed", set())
    for name in names:
        if name.lower() in done:
            continue
        done.add(name.lower())
        for occurrence in range(len(message.get_all(name)), 0, -1):
            report.remove_header(name, occurrence)


def _printable(text: str, limit: int) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:limit]


def alert_value(alert: str) -> str:
    """The X-Content-Alert value: printable, bounded; text beyond ASCII (a file name the sender
    chose) as RFC 2047 encoded-words, folded with LF (an 8-bit header field is only for an
    SMTPUTF8 message, RFC 6532; and an encoded-word's text cannot end the field)."""
    text = _printable(alert, 300)
    if text.isascii():
        return text
    from email.header import Header
    return Header(text, "utf-8", header_name=ALERT_HEADER).encode(linesep="\n")
