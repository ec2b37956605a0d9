"""Sending mail the delivery generates (redirects, vacation replies, reject MDNs, notifications).

Two ways out, chosen by `submission_method`: SMTP to the local MTA (smtplib, explicit
timeout) or the sendmail(1) command (`-i -f SENDER -- RCPT...`). Both take LF or CRLF
messages and raise SubmissionError (temporary unless the MTA refused permanently); an
envelope address with control characters (CR, LF, NUL...) is refused before anything is
sent (permanent: RFC 5321 allows none, and CR/LF would forge SMTP commands). Over SMTP an
8-bit body goes with BODY=8BITMIME when the MTA offers it (RFC 6152).
Talks to: the MTA. Tests: tests/delivery/test_executor.py (fake), tests/e2e/test_delivery_*.py
(real Postfix), tests/sieve/test_generated_mail_safety.py (unsafe addresses),
tests/delivery/test_submission_8bit.py.
"""

from __future__ import annotations

from _collections_abc import Sequence   # = collections.abc, without loading collections (LDA start-up)
from os import EX_DATAERR, EX_NOHOST, EX_NOUSER, EX_USAGE

from owlery.lazyre import lazy
from owlery.settings import Duration, Str, StrList, choice, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object          # a plain base at run time; type checkers see the Protocol

SUBMISSION_METHOD = setting(
    "submission_method", choice("smtp", "sendmail"), "smtp",
    "How redirects, vacation replies and rejection notices leave: smtp (to submission_smtp_endpoint) "
    "or sendmail (run submission_sendmail_command).")
SUBMISSION_SMTP_ENDPOINT = setting(
    "submission_smtp_endpoint", Str, "tcp:127.0.0.1:25",
    "The MTA that takes generated mail when submission_method = \"smtp\" (tcp:HOST:PORT).")
SUBMISSION_SENDMAIL_COMMAND = setting(
    "submission_sendmail_command", StrList, ["/usr/sbin/sendmail"],
    "The sendmail command and leading arguments (e.g. [\"/usr/sbin/sendmail\", \"-C\", \"/etc/postfix\"]); "
    "-i -f SENDER -- RECIPIENTS are appended.")
SUBMISSION_TIMEOUT = setting(
    "submission_timeout", Duration, 30, unit="s",
    doc="Longest wait for the MTA to take one generated message; past it the delivery is retried later.")


class SubmissionError(Exception):
    def __init__(self, message: str, temporary: bool = True):
        super().__init__(message)
        self.temporary = temporary


class Submitter(Protocol):
    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> None: ...


# sendmail exit statuses that blame the addresses or the message (sysexits.h): retrying cannot help
_BAD_ADDRESS = (EX_USAGE, EX_DATAERR, EX_NOUSER, EX_NOHOST)
_CONTROL = lazy(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_envelope(envelope_from: str, recipients: Sequence[str]) -> None:
    """Raise a permanent SubmissionError for an envelope address with a control character
    (smtplib would raise ValueError for CR/LF, which is no SubmissionError)."""
    for address in (envelope_from, *recipients):
        if _CONTROL.search(address):
            raise SubmissionError(f"envelope address with a control character: {address!r}",
                                  temporary=False)


def to_crlf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class SMTPSubmitter:
    def __init__(self, host: str, port: int, timeout: float, local_hostname: str | None = None):
        self.host, self.port, self.timeout = host, port, timeout
        self.local_hostname = local_hostname

    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> None:
        import smtplib
        check_envelope(envelope_from, recipients)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout,
                              local_hostname=self.local_hostname or "localhost") as smtp:
                body = to_crlf(message)
                options = []
                if not body.isascii():
                    # an 8-bit body is declared (RFC 6152 3) to a server that takes it
                    smtp.ehlo_or_helo_if_needed()
                    if smtp.has_extn("8bitmime"):
                        options.append("BODY=8BITMIME")
                refused = smtp.sendmail(envelope_from, list(recipients), body, mail_options=options)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [c for c, _ in e.recipients.values()]
            raise SubmissionError(f"MTA refused recipients: {e.recipients}",
                                  temporary=any(c < 500 for c in codes)) from None
        except smtplib.SMTPResponseException as e:
            raise SubmissionError(f"MTA said {e.smtp_code} {e.smtp_error!r}",
                                  temporary=e.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as e:
            raise SubmissionError(f"cannot reach MTA {self.host}:{self.port}: {e}") from None
        if refused:
            raise SubmissionError(f"MTA refused {sorted(refused)}",
                                  temporary=any(c < 500 for c, _ in refused.values()))


class SendmailSubmitter:
    def __init__(self, command: Sequence[str], timeout: float):
        self.command = list(command)
        self.timeout = timeout

    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> None:
        import subprocess
        check_envelope(envelope_from, recipients)
        argv = self.command + ["-i", "-f", envelope_from or "<>", "--", *recipients]
        try:
            proc = subprocess.run(argv, input=message.replace(b"\r\n", b"\n"), capture_output=True,
                                  timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SubmissionError(f"{argv[0]}: {e}") from None
        if proc.returncode != 0:
            text = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            # sysexits: EX_TEMPFAIL is temporary; treat every other failure as temporary too,
            # except the "bad address" family, so mail is retried rather than lost.
            raise SubmissionError(f"{argv[0]} exited {proc.returncode}: {text[:1]}",
                                  temporary=proc.returncode not in _BAD_ADDRESS)


def from_settings(settings: Any) -> Submitter:
    if settings.submission_method == "sendmail":
        return SendmailSubmitter(settings.submission_sendmail_command, settings.submission_timeout)
    endpoint = settings.submission_smtp_endpoint
    kind, _, rest = endpoint.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp" or not port.isdigit():
        raise ValueError(f"submission_smtp_endpoint {endpoint!r}: expected tcp:HOST:PORT")
    return SMTPSubmitter(host.strip("[]"), int(port), settings.submission_timeout)
