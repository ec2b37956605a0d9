"""Sans-I/O milter session: one SMTP connection's envelope, macros, headers and body, then stages.

The adapter (milters/adapter.py, the only pymilter user) feeds events in the order
libmilter delivers them; at end-of-message the session picks the stages for this
message (milters.stages.StagePipeline), runs them over a `MilterMessage` and returns an
`Outcome` (milters.effects). Headers keep their raw bytes (for DKIM); the body is
spooled to a temporary file past `milter_body_memory_size`. The whole message
(`MilterMessage.as_bytes()`) is built once, in one allocation of its final size, and the same
read-only bytes object is shared by every stage that asks for it. `MilterMessage.received` is the
Received field Postfix will add (milters.received), which scanners get as a separate first
chunk (so spamd sees the client) without a copy of the message.
Talks to: the file system (temporary spool only). Tests: tests/milters/test_session.py,
tests/milters/test_low_hardening.py (one shared copy: peak memory of a 20 MB message),
tests/milters/test_received_for_scanners.py
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from owlery import log as owlery_log
from owlery.errors import PermanentFailure, TemporaryFailure
from owlery.settings import Int, Size, Str, setting

from milters import effects as fx
from milters import macros as macro_lists
from milters.received import received_header

MILTER_BODY_MEMORY_SIZE = setting(
    "milter_body_memory_size", Size, "1M",
    "Message bodies up to this size stay in memory; larger ones are spooled to a temporary file.")
MILTER_MESSAGE_SIZE_LIMIT = setting(
    "milter_message_size_limit", Size, "64M",
    "Largest message the stages see; past it the rest of the body is not kept, the message is "
    "marked truncated (DKIM is then neither verified nor signed) and content stages decide.")
MILTER_HEADER_COUNT_LIMIT = setting(
    "milter_header_count_limit", Int, 1000,
    "Most header fields accepted per message; a message with more is rejected with 552 5.3.4.")
MILTER_SPOOL_DIRECTORY = setting(
    "milter_spool_directory", Str, None,
    "Directory for spooled message bodies. Unset: the system temporary directory.")

log = logging.getLogger("owlery.milter")

# Macros we ask Postfix for and keep (milters.macros: the one list, per step).
MACROS = macro_lists.ALL


@dataclasses.dataclass(frozen=True)
class Header:
    """One header field as received: `name`, and `value` = the raw bytes after the colon
    (leading space kept, folded lines joined by CRLF, no trailing CRLF)."""

    name: str
    value: bytes

    @property
    def raw(self) -> bytes:
        """The field as it appeared in the message, with its final CRLF."""
        # (utf-8: a name that is not ASCII, which Postfix never sends, must not raise here)
        return self.name.encode("utf-8", "surrogateescape") + b":" + self.value + b"\r\n"

    @property
    def text(self) -> str:
        """The unfolded value as text (UTF-8, undecodable bytes replaced), stripped."""
        unfolded = self.value.replace(b"\r\n", b"")
        return unfolded.decode("utf-8", "replace").strip()


def _normalise_header_value(value: bytes) -> bytes:
    # Postfix passes folded lines joined by a bare LF; DKIM needs the wire form (CRLF).
    return value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class MilterMessage:
    """What a stage reads: envelope, macros, headers (raw), body (spooled). Read-only for stages."""

    def __init__(self, settings: Any):
        self.client_name: str = ""
        self.client_address: str | None = None       # IP literal, None for a local/unix client
        self.helo: str = ""
        self.mail_from: str = ""                    # without <>; "" is the null sender
        self.mail_params: tuple[str, ...] = ()
        self.recipients: list[str] = []
        self.macros: dict[str, str] = {}
        self.headers: list[Header] = []
        self.truncated = False                       # body longer than milter_message_size_limit
        self.body_size = 0
        # When the session reached end-of-message (its clock): `received` is made from it.
        self.received_at: float | None = None
        self._received: bytes | None = None
        self._limit = settings.milter_message_size_limit
        self._whole: bytes | None = None             # as_bytes(), once built
        # Views of the message that stages derive and share (the first stage that needs one
        # builds it, e.g. dkimpy's parse for dkim_verify and arc_verify); emptied on any change.
        self.views: dict[str, Any] = {}
        self._body: IO[bytes] = tempfile.SpooledTemporaryFile(
            max_size=settings.milter_body_memory_size, dir=settings.milter_spool_directory)

    # --- reading -------------------------------------------------------------------
    @property
    def received(self) -> bytes:
        """The Received field Postfix will add (milters.received), CRLF-terminated; b"" before
        end-of-message. Not part of as_bytes(): scanners get it as a first chunk. Made on
        first use: the auth stages never read it (a third of a millisecond per message)."""
        if self._received is None:
            if self.received_at is None:
                return b""
            self._received = received_header(self.macros, client_name=self.client_name,
                                              client_address=self.client_address, helo=self.helo,
                                              recipients=self.recipients, now=self.received_at)
        return self._received

    @received.setter
    def received(self, value: bytes) -> None:
        self._received = value

    @property
    def queue_id(self) -> str | None:
        return self.macros.get("i") or None

    @property
    def auth_user(self) -> str | None:
        """The SASL login name ({auth_authen}), None for an unauthenticated client."""
        return self.macros.get("{auth_authen}") or None

    @property
    def daemon_name(self) -> str | None:
        return self.macros.get("{daemon_name}") or None

    def client_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not self.client_address:
            return None
        try:
            return ipaddress.ip_address(self.client_address)
        except ValueError:
            return None

    def get_all(self, name: str) -> list[Header]:
        lname = name.lower()
        return [h for h in self.headers if h.name.lower() == lname]

    def get(self, name: str) -> str | None:
        """The first header of that name as text, or None."""
        found = self.get_all(name)
        return found[0].text if found else None

    def header_bytes(self) -> bytes:
        """The header block as received, each field ending in CRLF (no blank line)."""
        return b"".join(h.raw for h in self.headers)

    def open_body(self) -> IO[bytes]:
        """The body file positioned at the start (shared: read it, don't close it)."""
        self._body.seek(0)
        return self._body

    def body_bytes(self) -> bytes:
        return self.open_body().read()

    def as_bytes(self) -> bytes:
        """The whole message (headers, blank line, body) in wire form with CRLF line ends.

        Built on first use and shared (the same object) by every later caller: don't keep it
        past the message. Built in place in a buffer of the final size, without a second
        whole copy (the header block, then the spooled body in 1 MiB pieces)."""
        if self._whole is None:
            self._whole = self.with_header_block(self.header_bytes())
        return self._whole

    def with_header_block(self, header_block: bytes) -> bytes:
        """A new message: `header_block` (fields ending in CRLF), the blank line, then this body.

        One allocation of the final size, filled in place (the quarantine stores the message
        with the headers the milter adds; `as_bytes()` is this with the received header block)."""
        head = header_block + b"\r\n"
        size = len(head) + self.body_size
        out = io.BytesIO()
        out.seek(size - 1)
        out.write(b"\0")                 # one allocation of the final size...
        out.seek(0)
        out.write(head)                  # ... then filled in place
        shutil.copyfileobj(self.open_body(), out, 1 << 20)
        out.truncate()
        return out.getvalue()            # CPython hands over the buffer itself here

    def iter_body(self, chunk: int = 65536) -> Iterator[bytes]:
        f = self.open_body()
        while True:
            block = f.read(chunk)
            if not block:
                return
            yield block

    # --- writing (the session only) --------------------------------------------------
    def _add_body(self, chunk: bytes) -> None:
        room = self._limit - self.body_size
        if room <= 0:
            self.truncated = True
            return
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self._body.seek(0, 2)
        self._body.write(chunk)
        self.body_size += len(chunk)
        self._changed()

    def _changed(self) -> None:
        self._whole = None
        if self.views:
            self.views.clear()

    def close(self) -> None:
        self._changed()
        self._body.close()


class MilterSession:
    """One milter connection. Call the event methods in protocol order; `end_of_message`
    returns the `Outcome`. A connection can carry several messages: `abort()` or the end of
    a message resets the message state and keeps the connection facts."""

    def __init__(self, settings: Any, pipeline: Any, *, now: Callable[[], float] = time.time,
                 progress: Callable[[], None] | None = None):
        self.settings = settings
        self.pipeline = pipeline
        self.now = now
        self.progress = progress
        self._conn_macros: dict[str, str] = {}
        self._client_name = ""
        self._client_address: str | None = None
        self._helo = ""
        self.message: MilterMessage | None = None
        self._header_overflow = False
        self._header_limit = settings.milter_header_count_limit     # read per header otherwise
        # What the last end_of_message measured, for the adapter's metrics: the message's
        # size in bytes and (stage, seconds) per stage run, timed with `timer`.
        self.timer: Callable[[], float] = time.perf_counter
        self.last_size = 0
        self.last_timings: list[tuple[str, float]] = []
        self.last_errors: list[str] = []

    # connection level
    def connect(self, hostname: str, address: str | None, macros: dict[str, str]) -> None:
        self._client_name = hostname
        self._client_address = address
        self._conn_macros.update(macros)

    def helo(self, name: str, macros: dict[str, str]) -> None:
        self._helo = name
        self._conn_macros.update(macros)

    # message level
    def mail_from(self, address: str, params: tuple[str, ...], macros: dict[str, str]) -> None:
        self._reset_message()
        m = self._new_message()
        m.mail_from = address.strip().removeprefix("<").removesuffix(">")
        m.mail_params = tuple(params)
        m.macros.update(macros)

    def rcpt(self, address: str, params: tuple[str, ...], macros: dict[str, str]) -> None:
        m = self._current()
        m.recipients.append(address.strip().removeprefix("<").removesuffix(">"))
        m.macros.update(macros)

    def data(self, macros: dict[str, str]) -> None:
        self._current().macros.update(macros)

    def header(self, name: str, value: bytes) -> None:
        m = self._current()
        if len(m.headers) >= self._header_limit:
            self._header_overflow = True
            return
        m.headers.append(Header(name, _normalise_header_value(value)))
        m._changed()

    def end_of_headers(self, macros: dict[str, str]) -> None:
        self._current().macros.update(macros)

    def body(self, chunk: bytes) -> None:
        self._current()._add_body(chunk)

    def end_of_message(self, macros: dict[str, str]) -> fx.Outcome:
        """Run the selected stages and return the outcome; logs one decision line."""
        m = self._current()
        m.macros.update(macros)
        report = fx.StageReport(self.settings, self.progress)
        stages = []
        self.last_size = len(m.header_bytes()) + 2 + m.body_size
        self.last_timings = timings = []
        self.last_errors = []
        try:
            m.received_at = self.now()
            if self._header_overflow:
                report.reject(fx.REPLY_TOO_BIG.with_text("Too many header fields"), "header limit")
            else:
                stages = self.pipeline.select(m)
                for stage in stages:
                    report.stage = stage.name
                    started = self.timer()
                    self._run_stage(stage, m, report)
                    timings.append((stage.name, self.timer() - started))
                    if report.action in (fx.TEMPFAIL, fx.REJECT):
                        break
                report.stage = ""
            outcome = report.finish()
        except Exception:
            # A bug in a stage or in the verdict: never accept blindly, never 5xx.
            log.exception("milter: %s: internal error in stage %s", m.queue_id or "NOQUEUE",
                          report.stage or "-")
            outcome = fx.Outcome(fx.TEMPFAIL, fx.REPLY_TEMPFAIL, (), report.score,
                                 tuple(report.symbols), f"internal error in {report.stage or 'session'}")
        self._log(m, outcome, [s.name for s in stages], report.data.get("dkim_sign"))
        self._reset_message()
        return outcome

    def _run_stage(self, stage: Any, m: MilterMessage, report: fx.StageReport) -> None:
        try:
            stage.check(m, report)
        except PermanentFailure as e:
            report.reject(e.reply, f"{stage.name}: {e}")
        except TemporaryFailure as e:
            self.last_errors.append(stage.name)
            policy = self.pipeline.on_error(stage.name)
            log.warning("milter: %s: stage %s failed: %s (on_error=%s)",
                        m.queue_id or "NOQUEUE", stage.name, e, policy)
            if policy == "tempfail":
                report.tempfail(e.reply if e.reply.is_temporary else fx.REPLY_TEMPFAIL,
                                f"{stage.name}: {e}")
            else:
                report.symbol(stage.name.upper() + "_ERROR", 0.0, str(e))

    def abort(self) -> None:
        self._reset_message()

    def close(self) -> None:
        self._reset_message()

    # internals
    def _new_message(self) -> MilterMessage:
        m = MilterMessage(self.settings)
        m.client_name = self._client_name
        m.client_address = self._client_address
        m.helo = self._helo
        m.macros.update(self._conn_macros)
        self.message = m
        self._header_overflow = False
        return m

    def _current(self) -> MilterMessage:
        # Some MTAs (and test clients) skip MAIL when negotiated away; never crash for it.
        return self.message if self.message is not None else self._new_message()

    def _reset_message(self) -> None:
        if self.message is not None:
            self.message.close()
            self.message = None

    def _log(self, m: MilterMessage, outcome: fx.Outcome, stages: list[str], dkim_sign: str | None = None) -> None:
        """The message's decision line; `dkim_sign`: what the signing stage did (signed with which
        keys, or why not), which no symbol says."""
        level = logging.WARNING if outcome.action == fx.TEMPFAIL else logging.INFO
        if not log.isEnabledFor(level):
            return          # the line would be dropped: don't build it (log_level = "warning")
        syms = ",".join(f"{s.name}({s.score:g})" for s in outcome.symbols) or None
        # Recipients a stage took off the envelope (quarantined for them) are named apart.
        removed = ",".join(e.address for e in outcome.effects if isinstance(e, fx.DelRcpt)) or None
        owlery_log.decision(
            "milter", m.queue_id, outcome.action,
            head=f"END-OF-MESSAGE from {m.client_name}[{m.client_address or 'local'}]",
            reply=outcome.reply,
            from_=m.mail_from, to=",".join(m.recipients) if m.recipients else None,
            nrcpt=len(m.recipients) if len(m.recipients) > 1 else None, removed=removed,   # to= may be cut
            stages=",".join(stages) or "-", score=f"{outcome.score:g}", symbols=syms,
            reason=outcome.reason or None, dkim_sign=dkim_sign if outcome.action == fx.ACCEPT else None,
            level=level)
