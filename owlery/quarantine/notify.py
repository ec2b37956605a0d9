"""`owlery quarantine notify`: tell recipients (digests) and administrators (virus and banned-file notices) what was quarantined.

One run, started by systemd/owlery-quarantine-notify.timer or by hand:
- recipients: every pending recipient of a message not yet told of it (the store's notices
  table remembers who was told of what) gets, as their preference says (preferences.py),
  a digest once a day (the first run after quarantine_notify_digest_hour, local time),
  a notice at every run (immediate), or nothing (the messages are marked as told).
  Each listed message has release and show links, `{quarantine_web_url}/r/<token>` and
  `/s/<token>`, signed for that message and recipient (tokens.py) and valid for
  quarantine_notify_link_lifetime. Reasons in quarantine_notify_skip_reasons (virus by
  default) are never offered to recipients.
- administrators: each message with a reason in quarantine_admin_notice_reasons gets a notice
  to quarantine_admin_address, at most quarantine_admin_notice_rate per hour; the rest of a
  run goes into one summary. Sent from this run rather than from the milter: the milter
  answers Postfix without waiting on SMTP, a notice survives a milter restart (the store
  remembers what is still untold), and with PostgreSQL the rate is counted once for all MX
  hosts. The cost is latency: a notice leaves at the next run (15 minutes by the timer).
A notice is claimed in the store before it is sent (so two hosts never send the same one)
and unclaimed when the MTA refuses it, for the next run to retry. Notices leave like
vacation replies (submission_method, submission_smtp_endpoint): to the local Postfix from
127.0.0.1, which the milter treats as outbound (milter_internal_networks), so they are
DKIM-signed and never spam-scanned; the envelope sender is <> so nothing bounces back.
Recipients are told per mailbox as the directory compares addresses (the local part exact with
directory_local_part_case_sensitive: Alice@ never hears of alice@'s mail).
Talks to: the quarantine store, the directory (preferences), the MTA.
Tests: tests/milters/test_quarantine_notify.py, tests/e2e/test_quarantine_notify_e2e.py,
tests/milters/test_quarantine_case_s20.py
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from owlery.quarantine.base import recipient_key
from owlery.quarantine.digest import Item, build_admin_notice, build_admin_summary, build_digest
from owlery.settings import Duration, Str, StrList, int_range, setting

QUARANTINE_WEB_URL = setting(
    "quarantine_web_url", Str, None,
    "Base URL of `owlery web` for the release and show links of digests, e.g. "
    "https://mail.example.org/quarantine. Unset: digests list the messages without links.")
QUARANTINE_NOTIFY_FROM = setting(
    "quarantine_notify_from", Str, "postmaster@{domain}",
    "From address of digests; {domain} is the recipient's domain (so the notice is DKIM-signed "
    "with that domain's key).")
QUARANTINE_NOTIFY_DIGEST_HOUR = setting(
    "quarantine_notify_digest_hour", int_range(0, 23), 7,
    "Local hour from which the daily digest is due: the first notify run at or after it sends it.")
QUARANTINE_NOTIFY_LINK_LIFETIME = setting(
    "quarantine_notify_link_lifetime", Duration, "10d", unit="s",
    doc="How long the release and show links of a digest work.")
QUARANTINE_NOTIFY_LOOKBACK = setting(
    "quarantine_notify_lookback", Duration, "7d", unit="s",
    doc="Only mail quarantined this recently is announced (a first run does not announce a whole old store).")
QUARANTINE_NOTIFY_SKIP_REASONS = setting(
    "quarantine_notify_skip_reasons", StrList, ["virus"],
    "Quarantine reasons never announced to recipients (they cannot release what they never hear of).")
QUARANTINE_NOTIFY_MAX_ITEMS = setting(
    "quarantine_notify_max_items", int_range(1, 10000), 100,
    "Most messages listed in one digest; the rest are counted.")
QUARANTINE_ADMIN_ADDRESS = setting(
    "quarantine_admin_address", Str, None,
    "Where notices of virus and banned-file quarantines go (amavis' virus_admin). Unset: none are sent.")
QUARANTINE_ADMIN_NOTICE_REASONS = setting(
    "quarantine_admin_notice_reasons", StrList, ["virus", "banned"],
    "Quarantine reasons the administrators get a notice of.")
QUARANTINE_ADMIN_NOTICE_RATE = setting(
    "quarantine_admin_notice_rate", int_range(0, 100000), 10,
    "Most admin notices in any hour; past it, one summary per notify run lists the others.")

Send = Callable[[str, Sequence[str], bytes], Any]     # (envelope sender, recipients, message)


@dataclasses.dataclass
class NotifyOutcome:
    """What a run did: (kind, address, messages) per notice sent (or, dry, that would be sent)."""

    sent: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    waiting: list[str] = dataclasses.field(default_factory=list)     # digest not due yet
    silenced: list[str] = dataclasses.field(default_factory=list)    # preference "none"


def digest_due(last: float | None, now: float, hour: int) -> bool:
    """True unless the last notice came after the most recent `hour`:00 local time."""
    if last is None:
        return True
    lt = time.localtime(now)
    anchor = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, hour, 0, 0, 0, 0, -1))
    if anchor > now:
        anchor = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday - 1, hour, 0, 0, 0, 0, -1))
    return last < anchor


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _item(record: Any, *, key: bytes | None, base_url: str | None, recipient: str | None, expires: int) -> Item:
    release = show = None
    if key is not None and base_url and recipient:
        from owlery.quarantine.tokens import sign
        base = base_url.rstrip("/")
        try:
            release = f"{base}/r/{sign(key, 'release', record.mail_id, recipient, expires)}"
            show = f"{base}/s/{sign(key, 'show', record.mail_id, recipient, expires)}"
        except ValueError:
            # No token can name this recipient (over 1024 bytes, say user+<a long tag>@ that a
            # sender chose, or bytes that are not UTF-8): listed without links, the run goes on.
            release = show = None
    return Item(mail_id=record.mail_id, created=record.created, sender=record.sender,
                header_from=record.header_from, subject=record.subject, reason=record.reason,
                detail=record.detail, score=record.score,
                recipients=() if recipient else tuple(r.address for r in record.recipients),
                client="" if recipient else f"{record.client_name}[{record.client_addr}]",
                release_url=release, show_url=show)


class QuarantineNotifier:
    """One notify run over `store`, sending through `send` (owlery.quarantine.release.smtp_send and kin)."""

    def __init__(self, settings: Any, store: Any, send: Send, *, prefs: Any, key: bytes | None,
                 host: str, log: Callable[..., Any]):
        self.s, self.store, self.send, self.prefs, self.key, self.host = settings, store, send, prefs, key, host
        self.log = log          # owlery.log.decision-like: log(action, **fields)

    def run(self, now: float, *, dry_run: bool = False, only: str | None = None) -> NotifyOutcome:
        out = NotifyOutcome()
        self.recipients(now, out, dry_run=dry_run, only=only)
        if only is None and self.s.quarantine_admin_address:
            self.admins(now, out, dry_run=dry_run)
        return out

    # -- recipients -----------------------------------------------------------------------

    def recipients(self, now: float, out: NotifyOutcome, *, dry_run: bool, only: str | None) -> None:
        from owlery.quarantine import NOTICE_RECIPIENT
        from owlery.quarantine.preferences import PreferenceUnavailable
        pairs = self.store.unnotified(NOTICE_RECIPIENT, now - self.s.quarantine_notify_lookback,
                                      skip_reasons=self.s.quarantine_notify_skip_reasons, limit=100000)
        by_rcpt: dict[str, list[Any]] = {}
        spelled: dict[str, str] = {}
        case_sensitive = self.s.directory_local_part_case_sensitive
        for record, address in pairs:
            key = recipient_key(address, case_sensitive)
            if only is not None and key != recipient_key(only, case_sensitive):
                continue
            by_rcpt.setdefault(key, []).append(record)
            spelled.setdefault(key, address)
        for key, records in by_rcpt.items():
            address = spelled[key]
            try:
                mode = self.prefs.mode(address)
            except PreferenceUnavailable as e:
                out.failed.append(("digest", address, f"preference unknown: {e}"))
                self.log("notify-deferred", to=address, reason="directory unavailable")
                continue
            if mode == "none":
                out.silenced.append(address)
                if not dry_run:
                    self.store.claim_notices(NOTICE_RECIPIENT, [(r.mail_id, address) for r in records], now)
                    self.log("notify-none", to=address, messages=len(records))
                continue
            if mode == "digest" and not digest_due(self.store.last_notice(NOTICE_RECIPIENT, address), now,
                                                   self.s.quarantine_notify_digest_hour):
                out.waiting.append(address)
                continue
            self._digest(address, mode, records, now, out, dry_run)

    def _digest(self, address: str, mode: str, records: list[Any], now: float, out: NotifyOutcome,
                dry_run: bool) -> None:
        from owlery.quarantine import NOTICE_RECIPIENT
        if dry_run:
            out.sent.append(("digest", address, len(records)))
            return
        claimed = set(self.store.claim_notices(NOTICE_RECIPIENT, [(r.mail_id, address) for r in records], now))
        records = [r for r in records if (r.mail_id, address) in claimed]
        if not records:
            return          # another host's run told them first
        records.sort(key=lambda r: r.created, reverse=True)
        limit = self.s.quarantine_notify_max_items
        expires = int(now + self.s.quarantine_notify_link_lifetime)
        items = [_item(r, key=self.key, base_url=self.s.quarantine_web_url, recipient=address, expires=expires)
                 for r in records[:limit]]
        from_addr = self.s.quarantine_notify_from.replace("{domain}", _domain(address))
        try:
            data = build_digest(address, items, from_addr=from_addr, now=now, domain=_domain(from_addr),
                                more=max(0, len(records) - limit))
        except ValueError as e:
            # An address no message can be written to (the email package refuses it): this
            # recipient's notices wait (unclaimed, retried), the others' still go.
            self.store.unclaim_notices(NOTICE_RECIPIENT, [(r.mail_id, address) for r in records])
            out.failed.append(("digest", address, str(e)))
            self.log("notify-failed", to=address, kind="digest", error=str(e)[:300])
            return
        if self._send(address, data, out, "digest", [(r.mail_id, address) for r in records], NOTICE_RECIPIENT):
            out.sent.append(("digest", address, len(records)))
            self.log("notify", to=address, mode=mode, messages=len(records),
                     quarantine_ids=",".join(r.mail_id for r in records[:20]))

    # -- administrators -------------------------------------------------------------------

    def admins(self, now: float, out: NotifyOutcome, *, dry_run: bool) -> None:
        from owlery.quarantine import ADMIN, NOTICE_ADMIN
        admin = self.s.quarantine_admin_address
        pairs = self.store.unnotified(NOTICE_ADMIN, now - self.s.quarantine_notify_lookback,
                                      reasons=self.s.quarantine_admin_notice_reasons, limit=100000)
        if not pairs:
            return
        rate = self.s.quarantine_admin_notice_rate
        budget = max(0, rate - self.store.notices_since(NOTICE_ADMIN, now - 3600))
        records = [record for record, _ in pairs]
        single, rest = records[:budget], records[budget:]
        from_addr = self.s.quarantine_notify_from.replace("{domain}", _domain(admin))
        common = dict(from_addr=from_addr, now=now, domain=_domain(from_addr), host=self.host)
        for record in single:
            if dry_run:
                out.sent.append(("admin", admin, 1))
                continue
            if not self.store.claim_notices(NOTICE_ADMIN, [(record.mail_id, ADMIN)], now):
                continue
            item = _item(record, key=None, base_url=None, recipient=None, expires=0)
            if self._send(admin, build_admin_notice(admin, item, **common), out, "admin",
                          [(record.mail_id, ADMIN)], NOTICE_ADMIN):
                out.sent.append(("admin", admin, 1))
                self.log("admin-notice", to=admin, quarantine_id=record.mail_id, reason=record.reason)
        if not rest:
            return
        if dry_run:
            out.sent.append(("admin-summary", admin, len(rest)))
            return
        # The summary's rows count towards the hour too: it says the rate was reached.
        claimed = set(self.store.claim_notices(NOTICE_ADMIN, [(r.mail_id, ADMIN) for r in rest], now))
        rest = [r for r in rest if (r.mail_id, ADMIN) in claimed]
        if not rest:
            return
        items = [_item(r, key=None, base_url=None, recipient=None, expires=0) for r in rest[:500]]
        data = build_admin_summary(admin, items, rate=rate, **common)
        if self._send(admin, data, out, "admin-summary", [(r.mail_id, ADMIN) for r in rest], NOTICE_ADMIN):
            out.sent.append(("admin-summary", admin, len(rest)))
            self.log("admin-summary", to=admin, messages=len(rest), reason="rate limit")

    # -- sending --------------------------------------------------------------------------

    def _send(self, to: str, data: bytes, out: NotifyOutcome, kind: str, pairs: list[tuple[str, str]],
              notice_kind: str) -> bool:
        from owlery.quarantine.release import ReleaseError
        try:
            self.send("", [to], data)
        except (ReleaseError, ValueError) as e:     # ValueError: smtplib refusing CR/LF in an address
            self.store.unclaim_notices(notice_kind, pairs)
            out.failed.append((kind, to, str(e)))
            self.log("notify-failed", to=to, kind=kind, error=str(e)[:300])
            return False
        return True


def submission_sender(settings: Any) -> Send:
    """Send as vacation replies do: submission_method, submission_smtp_endpoint or the sendmail command."""
    from owlery.quarantine.release import sendmail_send, smtp_send
    if settings.submission_method == "sendmail":
        return lambda sender, rcpts, data: sendmail_send(list(settings.submission_sendmail_command),
                                                         settings.submission_timeout, sender, rcpts, data)
    return lambda sender, rcpts, data: smtp_send(settings.submission_smtp_endpoint, settings.submission_timeout,
                                                 sender, rcpts, data)
