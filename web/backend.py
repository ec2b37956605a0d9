"""What the web core asks of the world: passwords, admin membership, the quarantine store, releases, the audit.

BLOCKING (the directory, the store, Postfix): the adapter calls the core, and so this, from
its thread pool. The core decides who may do what; this carries it out: a release re-injects
the stored copy (owlery.quarantine.release, the same path as `owlery quarantine release`),
records the accepted recipients as released and writes an audit entry into the store
(read back by the admin's audit page); a delete removes the message and audits it too.
Every action logs one decision line. Works with either store backend (files+SQLite or
PostgreSQL shared by several MX hosts: the audit then is shared as well).
Talks to: the directory (owlery.directory.auth, a group's members), the quarantine store,
Postfix. Tests: tests/web/test_app.py (through a store on disk and a fake Postfix),
tests/e2e/test_web_browser.py (the real thing)
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

from owlery import log as owlery_log
from owlery.quarantine import AuditEntry, QuarantineRecord, QuarantineStore, open_store
from owlery.quarantine.base import shown
from owlery.quarantine.release import ReleaseError, ReleaseResult, reinject, released_copy

log = logging.getLogger("owlery.web")


class WebBackend:
    def __init__(self, settings: Any, *, store: QuarantineStore | None = None, authenticator: Any = None,
                 directory: Any = None, sender: Any = None, token_key: bytes | None = None,
                 token_key_error: str | None = None):
        """`sender(settings, envelope_sender, recipients, data) -> ReleaseResult` defaults to the
        configured re-injection; `token_key` None with `token_key_error` says why links cannot work."""
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        if authenticator is None:
            from owlery.directory.auth import Authenticator
            authenticator = Authenticator(settings)
        self.authenticator = authenticator
        self._directory = directory
        self.sender = sender or reinject
        self.token_key, self.token_key_error = token_key, token_key_error
        self.host = socket.gethostname()

    @classmethod
    def from_settings(cls, settings: Any) -> "WebBackend":
        from owlery.quarantine.tokenkey import TokenKeyError, load_key
        try:
            key, why = load_key(settings), None
        except TokenKeyError as e:
            key, why = None, str(e)
            log.warning("web: release and show links disabled: %s", e)
        return cls(settings, token_key=key, token_key_error=why)

    # -- identity ------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> str | None:
        """The canonical address, or None; DirectoryUnavailable when the directory cannot say."""
        return self.authenticator.authenticate(username, password)

    def in_admin_group(self, address: str) -> bool:
        group = self.settings.web_admin_group
        if not group:
            return False
        if self._directory is None:
            from owlery.directory import open_directory
            self._directory = open_directory(self.settings)
        return bool(self._directory.list_member(group, address))

    # -- actions -------------------------------------------------------------------------

    def release(self, record: QuarantineRecord, targets: Sequence[str], by: str, now: float) -> ReleaseResult:
        """Re-inject to `targets`, mark the accepted ones released, audit; ReleaseError when none was."""
        data = released_copy(self.store.message(record.mail_id), self.settings.quarantine_release_header,
                             record.mail_id, by, self.host, now)
        try:
            result = self.sender(self.settings, record.sender, list(targets), data)
        except ReleaseError as e:
            self._audit(now, by, "release-failed", record, f"to={','.join(targets)} error={e}")
            raise
        self.store.mark_released(record.mail_id, result.accepted, by, now)
        detail = f"to={','.join(result.accepted)} reason={record.reason}"
        if result.refused:
            detail += " refused=" + ",".join(result.refused)
        self._audit(now, by, "release", record, detail)
        return result

    def delete(self, record: QuarantineRecord, by: str, now: float) -> None:
        self.store.delete(record.mail_id)
        self._audit(now, by, "delete", record, f"reason={record.reason} from=<{record.sender}>")

    def _audit(self, now: float, by: str, action: str, record: QuarantineRecord, detail: str) -> None:
        # The log line names an 8-bit sender's octets (\xNN), never "?"; the audit keeps the text.
        # It starts with the queue id the message was quarantined under, as the CLI's lines do.
        owlery_log.decision("web", owlery_log.queue_id_or_none(record.queue_id), action, quarantine_id=record.mail_id, by=by,
                            detail=shown(detail))
        self.store.add_audit(AuditEntry(now, by, action, record.mail_id, detail, self.host))

    def close(self) -> None:
        self.store.close()
        if hasattr(self.authenticator, "close"):
            self.authenticator.close()
        if self._directory is not None:
            self._directory.close()
