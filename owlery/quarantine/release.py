"""Quarantine release: re-inject a stored message over SMTP to a Postfix port that skips content filters, or via sendmail.

The released copy gets one header at the top saying who released it, where and when
(`X-Quarantine-Released`) above what was stored: the message as it would have been
delivered (the Received field of its first arrival and the headers the milter's stages
added, Authentication-Results, X-Spam-*...; see milters.stages.quarantine). Over SMTP each recipient's answer is reported separately,
so only the accepted ones are recorded as released. Through sendmail the whole list is
taken or nothing (exit status 0 once the message is in Postfix's maildrop queue); Postfix
then runs non_smtpd_milters on it as mail from a local client (127.0.0.1), which the
milter treats as outbound under the default milter_internal_networks: not scanned again.
Talks to: Postfix (SMTP on quarantine_release_smtp_endpoint, or the sendmail command).
Tests: tests/milters/test_quarantine_cli.py, tests/e2e/test_content_e2e.py,
tests/milters/test_received_for_scanners.py, tests/e2e/test_received_e2e.py,
tests/core/test_quarantine_8bit_sender.py (an 8-bit envelope sent as its octets),
tests/core/test_quarantine_8bit_audit.py (the release header names 8-bit octets as \\xNN)
"""

from __future__ import annotations

import dataclasses
import email.utils
import smtplib
import subprocess
from collections.abc import Sequence
from typing import Any

from owlery.endpoints import parse_endpoint
from owlery.quarantine.base import shown
from owlery.settings import Duration, Endpoint, Str, choice, setting

QUARANTINE_RELEASE_METHOD = setting(
    "quarantine_release_method", choice("smtp", "sendmail"), "smtp",
    "How released mail goes back to Postfix: smtp (to quarantine_release_smtp_endpoint, a smtpd "
    "with milters and content filters off, like amavis' 10025) or sendmail (the command, "
    "quarantine_release_sendmail_path). Postfix passes sendmail mail to non_smtpd_milters as "
    "coming from 127.0.0.1: keep 127.0.0.0/8 in milter_internal_networks (the default) so the "
    "milter runs only the outbound stages on it and does not quarantine it again.")
QUARANTINE_RELEASE_SMTP_ENDPOINT = setting(
    "quarantine_release_smtp_endpoint", Endpoint, "tcp:127.0.0.1:10025",
    "The Postfix smtpd that takes released mail without scanning it again (see the master.cf lines).")
QUARANTINE_RELEASE_SMTP_TIMEOUT = setting(
    "quarantine_release_smtp_timeout", Duration, "60s",
    "Longest wait for each step of the release SMTP dialogue (with sendmail: for the command).",
    unit="s")
QUARANTINE_RELEASE_SENDMAIL_PATH = setting(
    "quarantine_release_sendmail_path", Str, "/usr/sbin/sendmail",
    "The sendmail command used when quarantine_release_method = \"sendmail\".")
QUARANTINE_RELEASE_SENDMAIL_CONFIG_DIRECTORY = setting(
    "quarantine_release_sendmail_config_directory", Str, None,
    "Postfix configuration directory given to sendmail as -C, for a Postfix instance other than "
    "the default one (e.g. /etc/postfix-in; unless the CLI runs as root, that instance must be "
    "listed in alternate_config_directories of the default main.cf). Unset: sendmail's default.")
QUARANTINE_RELEASE_HEADER = setting(
    "quarantine_release_header", Str, "X-Quarantine-Released",
    "Header added at the top of a released message (who, where, when, which id).")


class ReleaseError(Exception):
    """Postfix did not take the message (nothing was released)."""


@dataclasses.dataclass(frozen=True)
class ReleaseResult:
    accepted: tuple[str, ...]
    refused: dict[str, str]       # recipient -> Postfix's reply


def released_copy(message: bytes, header: str, mail_id: str, by: str, host: str, now: float) -> bytes:
    """The message with the release header prepended (CRLF, like the stored copy); who released
    it (`by`: "link:" and the recipient a sender may have made long) is cut to keep the line
    within RFC 5322's 998 octets."""
    limit = 320 if by.isascii() else 80            # octets: at most 4 per character
    if len(by) > limit:
        by = by[:limit - 1] + "\u2026"
    value = f"by {by} on {host[:255]}; id={mail_id[:64]}; {email.utils.formatdate(now)}"
    value = shown(value)                             # an 8-bit octet as \xNN, as the audit line names it
    return f"{header}: {value}\r\n".encode("utf-8") + message


def reinject(settings: Any, sender: str, recipients: Sequence[str], data: bytes) -> ReleaseResult:
    """Hand `data` to Postfix for `recipients`; raise ReleaseError when nobody was accepted."""
    if not recipients:
        raise ReleaseError("no recipient to release to")
    if settings.quarantine_release_method == "sendmail":
        return _sendmail(settings, sender, recipients, data)
    return smtp_send(settings.quarantine_release_smtp_endpoint, settings.quarantine_release_smtp_timeout,
                     sender, recipients, data)


class _Octets:
    """smtplib sends commands as ASCII and fails on any other character: an 8-bit envelope
    sender or recipient (surrogateescape text, as the milter got it from Postfix) goes out as
    the very octets it came in with, as Postfix's smtpd takes them without SMTPUTF8."""

    def send(self, s: str | bytes) -> None:
        super().send(s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s)  # type: ignore[misc]


class _SMTP(_Octets, smtplib.SMTP):
    pass


class _LMTP(_Octets, smtplib.LMTP):
    pass


def smtp_send(endpoint: str, timeout: float, sender: str, recipients: Sequence[str], data: bytes) -> ReleaseResult:
    """Hand `data` to the SMTP (tcp:) or LMTP (unix:) server at `endpoint`; ReleaseError when nobody
    was accepted (also used for quarantine notices, owlery.quarantine.notify)."""
    ep = parse_endpoint(endpoint)
    try:
        if ep.kind == "unix":
            client = _LMTP(ep.path, timeout=timeout)
        else:
            client = _SMTP(ep.host, ep.port, timeout=timeout)
        with client:
            refused = client.sendmail(sender, list(recipients), data)
    except smtplib.SMTPRecipientsRefused as e:
        raise ReleaseError("every recipient refused: " + "; ".join(
            f"{r}: {code} {msg.decode(errors='replace')}" for r, (code, msg) in e.recipients.items())) from e
    except smtplib.SMTPResponseException as e:
        raise ReleaseError(f"{ep}: {e.smtp_code} {e.smtp_error.decode(errors='replace')}") from e
    except (smtplib.SMTPException, OSError) as e:
        raise ReleaseError(f"{ep}: {e}") from e
    refused_text = {r: f"{code} {msg.decode(errors='replace')}" for r, (code, msg) in refused.items()}
    return ReleaseResult(tuple(r for r in recipients if r not in refused), refused_text)


def sendmail_argv(settings: Any, sender: str, recipients: Sequence[str]) -> list[str]:
    """The sendmail command line: -i (a lone dot is data), the envelope sender (<> for the null
    sender) and, after --, the recipients (so none can pass for an option)."""
    argv = [settings.quarantine_release_sendmail_path]
    if settings.quarantine_release_sendmail_config_directory:
        argv += ["-C", settings.quarantine_release_sendmail_config_directory]
    return argv + ["-i", "-f", sender or "<>", "--", *recipients]


def _sendmail(settings: Any, sender: str, recipients: Sequence[str], data: bytes) -> ReleaseResult:
    return _run_sendmail(sendmail_argv(settings, sender, recipients), settings.quarantine_release_smtp_timeout,
                         recipients, data)


def sendmail_send(command: Sequence[str], timeout: float, sender: str, recipients: Sequence[str],
                  data: bytes) -> ReleaseResult:
    """Hand `data` to a sendmail `command` (its leading words; -i -f SENDER -- RCPTS are added)."""
    return _run_sendmail([*command, "-i", "-f", sender or "<>", "--", *recipients], timeout, recipients, data)


def _run_sendmail(argv: list[str], timeout: float, recipients: Sequence[str], data: bytes) -> ReleaseResult:
    try:
        proc = subprocess.run(argv, input=data.replace(b"\r\n", b"\n"), capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ReleaseError(f"{argv[0]}: {e}") from e
    if proc.returncode != 0:
        raise ReleaseError(f"{argv[0]} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()[:300]}")
    return ReleaseResult(tuple(recipients), {})
