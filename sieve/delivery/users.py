"""Who a recipient is for delivery: Maildir path, Sieve script, quota, from an address.

`UserResolver.lookup(address)` strips the +detail, then asks the directory (when
`owlery.directory` is available and `delivery_use_directory` is on) or falls back to the
path templates, which accept any address. Unknown users are None; a directory that does
not answer raises owlery.errors.DirectoryUnavailable (a 4xx / EX_TEMPFAIL).
Talks to: owlery.directory (blocking; called from a thread). Tests: none directly; exercised by
tests/delivery/test_lmtpd.py (files directory: unknown user, +detail, quota) and
tests/delivery/test_lda.py (path templates, unknown user, default quota) and
tests/delivery/test_quota_edge.py (the quota overrun allowance).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from owlery.maildir import Quota, path_for
from owlery.settings import Bool, Int, Size, Str, setting

DELIVERY_SIEVE_SCRIPT_TEMPLATE = setting(
    "delivery_sieve_script_template", Str, "/var/lib/owlery/mail/{domain}/{localpart}/sieve/active.sieve",
    "The user's active Sieve script ({localpart}, {domain}, {user} substituted); a missing file "
    "means no personal script. A directory entry naming a script wins.")
DELIVERY_RECIPIENT_DELIMITER = setting(
    "delivery_recipient_delimiter", Str, "+",
    "Characters that separate the user from a detail in a recipient's local part "
    "(alice+lists@ is delivered to alice@); empty: no details.")
DELIVERY_QUOTA_SIZE = setting(
    "delivery_quota_size", Size, 0, unit="bytes",
    doc="Default mailbox quota (Maildir++ maildirsize) when the directory gives none; 0: no limit.")
DELIVERY_QUOTA_MESSAGES = setting(
    "delivery_quota_messages", Int, 0,
    "Default limit on the number of messages in a mailbox; 0: no limit.")
DELIVERY_QUOTA_OVERRUN_ALLOWANCE = setting(
    "delivery_quota_overrun_allowance", Size, "64k", unit="bytes",
    doc="A mailbox still under its byte quota takes one last message that takes it over by at most "
        "this much (at most a tenth of the quota; Maildir++ soft quota, like Dovecot's "
        "quota_grace); the next one is refused. The policy daemon already counts the headers "
        "added after its check (quota_headers_allowance, at RCPT and END-OF-MESSAGE); this covers "
        "what it cannot see: longer headers, multi-recipient mail checked at RCPT only, two "
        "messages accepted at once. Refusing at delivery bounces to the sender (backscatter). "
        "0: the quota is hard.")
DELIVERY_USE_DIRECTORY = setting(
    "delivery_use_directory", Bool, True,
    "Resolve recipients through the configured directory (unknown users are refused with 550 "
    "5.1.1 / exit 67); on with no directory configured (files backend without files_mailboxes "
    "or files_aliases) is a configuration error: lmtpd does not start, the LDA defers (75), "
    "never 'user unknown'. Off: every address is accepted and mapped through the path templates.")

log = logging.getLogger("owlery.delivery")


@dataclasses.dataclass(frozen=True)
class MailUser:
    """What delivery needs to know about one mailbox owner."""

    address: str                    # canonical address (detail stripped, lowercased)
    maildir: str
    sieve_script: str | None
    quota: Quota | None = None
    detail: str | None = None
    uid: int | None = None          # owner of created files (directory), else maildir_owner
    gid: int | None = None


def split_detail(address: str, delimiters: str) -> tuple[str, str | None]:
    """alice+tag@example.org -> ("alice@example.org", "tag")."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if delimiters:
        cut = min((i for i in (local.find(d) for d in delimiters) if i > 0), default=-1)
        if cut > 0:
            base = local[:cut] + ("@" + domain if at else "")
            return base, local[cut + 1:]
    return address, None


class UserResolver:
    """Address -> MailUser, through the directory when there is one, else the templates."""

    def __init__(self, settings: Any, directory: Any = None):
        self.settings = settings
        self.directory = directory

    @classmethod
    def from_settings(cls, settings: Any) -> "UserResolver":
        """The resolver the settings describe; SettingsError when they name no directory to use."""
        directory = None
        if settings.delivery_use_directory:
            if settings.directory_backend == "files" and not (settings.files_mailboxes or settings.files_aliases):
                # Every recipient would be "unknown": Postfix would bounce all mail. A mistake in
                # the settings (or the wrong settings file) defers instead, and says why.
                from owlery.settings import SettingsError
                raise SettingsError(
                    "delivery_use_directory is on but no directory is configured: set files_mailboxes "
                    "(and files_aliases), or directory_backend = \"ldap\", or delivery_use_directory = "
                    "false to deliver to every address through maildir_path_template",
                    path=getattr(settings, "path", None))
            directory = _open_directory(settings)
        return cls(settings, directory)

    def _default_quota(self) -> Quota | None:
        q = Quota(self.settings.delivery_quota_size, self.settings.delivery_quota_messages,
                  self.settings.delivery_quota_overrun_allowance)
        return None if q.unlimited else q

    def lookup(self, address: str) -> MailUser | None:
        base, detail = split_detail(address, self.settings.delivery_recipient_delimiter)
        base = base.lower()
        if self.directory is None:
            return self._from_templates(base, detail)
        found = self.directory.resolve(address)     # may raise DirectoryUnavailable
        if found.kind not in ("mailbox", "alias") or not found.mailboxes:
            return None
        # Postfix expands aliases before LMTP; an alias reaching us is delivered to its
        # mailbox that matches the address, else its first one.
        mailbox = next((m for m in found.mailboxes if m.address.lower() == base), found.mailboxes[0])
        return self._from_entry(base, detail, mailbox)

    def _from_templates(self, base: str, detail: str | None, **over: Any) -> MailUser:
        s = self.settings
        maildir = over.get("maildir") or path_for(s.maildir_path_template, base)
        script = over.get("sieve_script") or path_for(s.delivery_sieve_script_template, base)
        quota = over.get("quota", self._default_quota())
        return MailUser(base, maildir, script, quota, detail, over.get("uid"), over.get("gid"))

    def _from_entry(self, base: str, detail: str | None, entry: Any) -> MailUser:
        # The directory entry's fields are optional; anything it leaves out comes from templates.
        canonical = getattr(entry, "address", None) or base
        over: dict[str, Any] = {}
        for attr, key in (("maildir", "maildir"), ("sieve_script", "sieve_script")):
            value = getattr(entry, attr, None)
            if value:
                over[key] = value
        qb = getattr(entry, "quota_bytes", None)
        qm = getattr(entry, "quota_messages", None)
        if qb is not None or qm is not None:
            q = Quota(qb or 0, qm or 0, self.settings.delivery_quota_overrun_allowance)
            over["quota"] = None if q.unlimited else q
        for attr in ("uid", "gid"):
            if getattr(entry, attr, None) is not None:
                over[attr] = getattr(entry, attr)
        return self._from_templates(canonical.lower(), detail, **over)


def _open_directory(settings: Any) -> Any:
    """The configured directory. A missing package (ldap3) is an error like any other that
    defers: falling back to "accept every address" would deliver mail for unknown users."""
    from owlery.directory import open_directory
    return open_directory(settings)


def script_dir(user: MailUser) -> str | None:
    return os.path.dirname(user.sieve_script) if user.sieve_script else None
