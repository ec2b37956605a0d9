"""Stage `quarantine` and the Quarantiner the content stages share: store durably, then discard or reject.

`Quarantiner.quarantine(message, report, reason, detail)` writes the message with its
envelope, client, reasons and scores to the configured store (owlery.quarantine) and
returns only once it is durable; then it tells the report (`quarantined(id)`) and acts as
`quarantine_action` says. `keep(message, report, reason, detail, recipients)` only stores
(for some recipients, whom the calling stage then takes off the envelope; the others still
get the message). A store that is down (or full) raises QuarantineUnavailable (a
TemporaryFailure), and `quarantine`/`keep` tempfail the message themselves, whatever the calling
stage's milter_stage_on_error says: the client gets 4xx and nothing is lost or let through. The antivirus, spam and
banned stages call it directly, all through the one store their Services opens, so a
quarantine never depends on stage order; the
`quarantine` stage (put it last) quarantines what the score verdict (milter_score_quarantine)
or a `report.data["quarantine_request"] = (reason, detail)` from any other stage asks for;
when the score verdict would quarantine or refuse, spam_lover recipients (owlery.content_policy)
get the message tagged and the others' copy is quarantined (milters.content_policy).
With quarantine_archive, the stage also keeps an archive copy (reason "archive", recipients
"archived") of a message that got a verdict but goes on (spam-tagged, over milter_score_tag,
discarded); rejected messages stop the pipeline before it.
The stored (and so released) copy is the message as it would have been delivered: the
Received field Postfix adds (milters.received), then the header edits the stages made
(Authentication-Results, X-Spam-*, X-Virus-*...), then the original header block and body.
Talks to: the quarantine store. Tests: tests/milters/test_content_stages.py,
tests/delivery/test_exhaustion_units_s22.py (a full file system),
tests/milters/test_received_for_scanners.py, tests/milters/test_quarantine_notify_archive.py
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from owlery import log as owlery_log
from owlery.reply import Reply
from owlery.settings import Str, choice, setting

from milters import content_policy
from milters import effects as fx
from owlery.quarantine import (ARCHIVE_REASON, ARCHIVED, QuarantineRecord, QuarantineUnavailable, RecipientState,
                               new_id)
from milters.stages import Stage

QUARANTINE_ACTION = setting("quarantine_action", choice("discard", "reject"), "discard",
                            "What the client is told once a message is quarantined: discard (accepted, "
                            "not delivered; amavis' D_DISCARD) or reject (554 5.7.1 with the quarantine id).")
QUARANTINE_HOST_NAME = setting("quarantine_host_name", Str, None,
                               "Host name recorded with each quarantined message (which MX kept it). "
                               "Unset: this host's name.")

REPLY_QUARANTINED = Reply(554, "5.7.1", "Message refused and quarantined")
_TEXT_LIMIT = 500


class Quarantiner:
    """Stores messages for the content stages; shared by threads, keeps no per-message state."""

    def __init__(self, settings: Any, services: Any):
        self.settings = settings
        self.services = services
        self.store = services.quarantine_store(settings)     # shared; closed with the services
        self.host = settings.quarantine_host_name if settings.quarantine_host_name is not None \
            else socket.gethostname()

    def quarantine(self, message: Any, report: Any, reason: str, detail: str, *,
                   headers: Sequence[tuple[str, str]] = ()) -> str:
        """Store the message (durably), then discard or reject it; return its quarantine id."""
        if report.quarantine_ref is not None:
            return report.quarantine_ref        # already kept (e.g. a virus in a banned file)
        if message.truncated:
            # Only the first milter_message_size_limit bytes are here: storing them and
            # discarding the message would lose the rest. Postfix's hold queue keeps it whole.
            report.hold(_text(f"{reason}: {detail}; over milter_message_size_limit, held whole", 200))
            return "hold"
        # Recipients a stage already took off the envelope have their own quarantined copy.
        recipients = [r for r in message.recipients if r not in report.removed] or list(message.recipients)
        mail_id = self.keep(message, report, reason, detail, recipients, headers=headers)
        report.quarantined(mail_id)
        if self.settings.quarantine_action == "reject":
            report.reject(REPLY_QUARANTINED.with_text(
                Reply.safe_text(f"Message refused ({reason}); quarantine id {mail_id}", 200)),
                f"quarantined {reason} {mail_id}")
        else:
            report.discard(f"quarantined {reason} {mail_id}")
        return mail_id

    def keep(self, message: Any, report: Any, reason: str, detail: str, recipients: list[str], *,
             headers: Sequence[tuple[str, str]] = ()) -> str:
        """Store the message durably for these recipients and log it; no action. Returns the id.

        The stored copy is the message as it would have been delivered: the Received field
        Postfix adds, the header edits the stages made so far, then `headers` (the calling
        stage's own, e.g. X-Spam-*), each added at the top as the adapter would."""
        report.progress()
        data = stored_copy(message, list(report.effects) + [fx.AddHeader(n, v) for n, v in headers])
        record = self._record(message, report, data, reason, detail,
                              tuple(RecipientState(r) for r in dict.fromkeys(recipients)))
        try:
            self.store.put(record, data)
        except QuarantineUnavailable as e:
            # A verdict holds this message back and its copy is not stored: tempfail here, not
            # through the stage's milter_stage_on_error, whose "continue" is for a scanner that
            # is down (mail goes on unscanned), not for a verdict whose quarantine copy was lost
            # (going on would deliver the virus or spam the verdict held back).
            report.tempfail(e.reply if e.reply.is_temporary else fx.REPLY_TEMPFAIL, f"quarantine store: {e}")
            raise
        report.data["quarantine"] = {"id": record.mail_id, "reason": reason, "detail": detail,
                                     "recipients": list(recipients)}
        owlery_log.decision("milter", message.queue_id, "quarantine",
                            head=f"END-OF-MESSAGE from {message.client_name}[{message.client_address or 'local'}]",
                            from_=message.mail_from, to=",".join(recipients) or None,
                            quarantine_id=record.mail_id, reason=reason, detail=_text(detail, 200),
                            store=type(self.store).__name__)
        return record.mail_id


    def archive(self, message: Any, report: Any, why: str) -> str:
        """Keep an archive copy (quarantine_archive) of a message that goes on: reason "archive",
        its recipients ARCHIVED (delivered; nothing to release or announce). Returns the id."""
        data = stored_copy(message, list(report.effects))
        record = self._record(message, report, data, ARCHIVE_REASON, why,
                              tuple(RecipientState(r, ARCHIVED) for r in dict.fromkeys(message.recipients)))
        self.store.put(record, data)             # raises QuarantineUnavailable: 4xx, nothing lost
        report.data["archive"] = record.mail_id
        owlery_log.decision("milter", message.queue_id, "archive",
                            head=f"END-OF-MESSAGE from {message.client_name}[{message.client_address or 'local'}]",
                            from_=message.mail_from, quarantine_id=record.mail_id, reason=_text(why, 200))
        return record.mail_id

    def _record(self, message: Any, report: Any, data: bytes, reason: str, detail: str,
                recipients: tuple[RecipientState, ...]) -> QuarantineRecord:
        """The record of a stored copy `data` of `message`: a new id, the envelope, the
        connection, a few header fields and the report's score and symbols."""
        return QuarantineRecord(
            mail_id=new_id(), secret_id=new_id(), created=self.services.now(), reason=reason,
            detail=_text(detail), sender=message.mail_from, recipients=recipients,
            size=len(data), queue_id=message.queue_id or "", client_addr=message.client_address or "",
            client_name=message.client_name or "", helo=message.helo or "", host=self.host,
            subject=_text(message.get("Subject") or ""), header_from=_text(message.get("From") or ""),
            message_id=_text(message.get("Message-ID") or ""), score=report.score,
            symbols=tuple((s.name, s.score, _text(s.detail)) for s in report.symbols))


def edited_header_block(fields: list[tuple[str, bytes]], effects: Sequence[Any]) -> list[tuple[str, bytes]]:
    """The header fields (name, raw value after the colon) after the header effects, applied in
    order as the adapter hands them to Postfix: AddHeader at `index` (0 the top, None the end),
    ChangeHeader on the `occurrence`-th field of that name (value None deletes it)."""
    out = list(fields)
    for e in effects:
        if isinstance(e, fx.AddHeader):
            field = (e.name, _field_value(e.value))
            if e.index is None:
                out.append(field)
            else:
                out.insert(min(max(e.index, 0), len(out)), field)
        elif isinstance(e, fx.ChangeHeader):
            positions = [i for i, (name, _) in enumerate(out) if name.lower() == e.name.lower()]
            if not 1 <= e.occurrence <= len(positions):
                continue
            at = positions[e.occurrence - 1]
            if e.value is None:
                del out[at]
            else:
                out[at] = (out[at][0], _field_value(e.value))
    return out


def stored_copy(message: Any, effects: Sequence[Any]) -> bytes:
    """The message to store: its synthesized Received field, then its header block edited by
    `effects`, then the body (one allocation of the final size, no other whole copy)."""
    fields = edited_header_block([(h.name, h.value) for h in message.headers], effects)
    block = getattr(message, "received", b"") + b"".join(
        name.encode("ascii", "surrogateescape") + b":" + value + b"\r\n" for name, value in fields)
    return message.with_header_block(block)


def _field_value(value: str) -> bytes:
    # folded values keep their folds in wire form; a lone LF becomes CRLF
    text = value.replace("\r\n", "\n").replace("\n", "\r\n")
    return b" " + text.encode("utf-8", "surrogateescape")


def _archive_reason(report: Any) -> str:
    """Why a message that was not quarantined deserves an archive copy ("" if it does not)."""
    spam = report.data.get("spam") or {}
    if report.action != "accept":
        return f"{report.action}: {report.reason or '-'}"
    if spam.get("is_spam"):
        return f"spam-tagged, score {report.score:g}"
    if report.verdict() != "accept":
        return f"verdict {report.verdict()}, score {report.score:g}"
    if any(s.name == "CLAMAV_VIRUS" for s in report.symbols):
        return "virus"
    return ""


def _text(value: str, limit: int = _TEXT_LIMIT) -> str:
    return "".join(c if c.isprintable() else " " for c in value)[:limit]


class QuarantineStage(Stage):
    """Quarantine what the score verdict or another stage asked for (run it last)."""

    name = "quarantine"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        self.quarantiner = Quarantiner(settings, services)

    def check(self, message: Any, report: Any) -> None:
        if report.quarantine_ref is not None or report.action not in ("accept", "discard"):
            return
        request = report.data.get("quarantine_request")
        if request is not None:
            reason, detail = request
            self.quarantiner.quarantine(message, report, reason, detail)
        elif report.action == "accept" and report.verdict() in ("quarantine", "reject"):
            detail = f"score {report.score:g}"
            # spam_lover recipients take it, tagged; the others' copy is kept (content_policy)
            if content_policy.apply_lovers(self, message, report, "spam_lover", "spam", detail, None,
                                           lambda: self.quarantiner):
                report.add_header(self.settings.milter_tag_header, "YES")
                report.settle_score()
            elif report.verdict() == "quarantine":
                self.quarantiner.quarantine(message, report, "spam", detail)
        if self.settings.quarantine_archive and report.quarantine_ref is None and not message.truncated:
            why = _archive_reason(report)
            if why:
                self.quarantiner.archive(message, report, why)
