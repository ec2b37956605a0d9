"""Who a recipient is for delivery: one mailbox (Maildir, Sieve script, quota) or a group of them.

`UserResolver.expand(address)` strips the +detail, then asks the directory (when
`owlery.directory` is available and `delivery_use_directory` is on) or falls back to the
path templates, which accept any address. It answers a `MailUser` (one mailbox), a `Group`
(an alias or group that reaches several targets) or None (unknown). A directory that does
not answer raises owlery.errors.DirectoryUnavailable (a 4xx / EX_TEMPFAIL). `lookup()` is the
one-mailbox view for tools (None for a group).

Aliases and groups reaching delivery. Postfix normally expands aliases itself
(virtual_alias_maps) before LMTP or the pipe, so delivery sees final mailboxes. One that
arrives unexpanded (a group only LDAP knows, a site without the alias map, the LDA run with
-d GROUP) is never delivered to one member only:
- `delivery_alias_expansion = "deliver"` (default): every local mailbox the directory expands
  it to gets the message once (a member reached twice, through nested aliases, once), through
  that member's own Sieve script, quota and Maildir (sieve.delivery.executor.DeliveryExecutor.deliver_group);
  remote targets (forwards outside our domains) are sent on through the redirect machinery
  (sieve.delivery.redirect: loop and hop limits, SRS, duplicate tracking) to the MTA, as Postfix
  local(8) forwards an alias's remote targets. "refuse": 550 5.1.1 at RCPT (LDA: exit 67), saying
  the alias must be expanded by the MTA; nothing is partly delivered.
- An address that names a mailbox of its own is that mailbox alone, even when the directory
  also lists other targets for it (`alice -> alice, bob` in an alias map, an LDAP user with
  forwarding addresses): Postfix's expansion stops at such a self-reference and hands us
  exactly `alice` after sending the other targets their own copies, so expanding again here
  would send every one of them a second copy. An alias that reaches exactly one mailbox and
  nothing else is that mailbox (alternate addresses, catch-alls).
- One LMTP reply per RCPT (RFC 2033) stands for the whole group: 250 when every target took it;
  4xx when any target failed temporarily (the MTA retries the group); otherwise, when some
  target refused it for good (over quota, Sieve ereject, a refused forward), the first such
  5xx with text naming who did and did not get it, so the sender hears about the member that
  missed it (as a bounce for that member from Postfix's own expansion would say) and the
  postmaster sees it in the MTA's log. A 250 would hide the failed member; a 4xx would retry a
  permanent refusal for days.
- No duplicates on retry: each target that took the message (a member's Maildir, a forward
  the MTA accepted) is recorded at once in the state store (the one vacation, Sieve duplicate
  and redirect tracking use; key: target, envelope sender, group and a hash of the message
  without the fields added per attempt), for `delivery_alias_duplicate_period`; a retry of
  the same message skips recorded targets. A crash between a member's delivery and the reply
  is covered the same way. Without a readable state store the group is deferred before anything is
  delivered; a record that cannot be written after a delivery is logged, and the group
  still gets its 4xx when another member failed temporarily (a possible duplicate for that
  member, never a lost message).
Talks to: owlery.directory (blocking; called from a thread). Tests:
tests/delivery/test_group_delivery.py (aliases and groups: files directory and slapd, lmtpd and
the LDA), tests/delivery/test_lmtpd.py (files directory: unknown user, +detail, quota) and
tests/delivery/test_lda.py (path templates, unknown user, default quota) and
tests/delivery/test_quota_edge.py (the quota overrun allowance).
"""

from __future__ import annotations

import os
from _collections_abc import Iterator   # = collections.abc, without loading collections (LDA start-up)

from owlery.lazylog import get_logger
from owlery.maildir import Quota, path_for
from owlery.record import Record
from owlery.reply import Reply
from owlery.settings import Bool, Duration, Int, Size, Str, choice, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

DELIVERY_SIEVE_SCRIPT_TEMPLATE = setting(
    "delivery_sieve_script_template", Str, "/var/lib/owlery/mail/{domain}/{localpart}/sieve/active.sieve",
    "The user's active Sieve script ({localpart}, {domain}, {user} substituted); a missing file "
    "means no personal script. A directory entry naming a script wins.")
DELIVERY_RECIPIENT_DELIMITER = setting(
    "delivery_recipient_delimiter", Str, "+",
    "Characters that separate the user from a detail in a recipient's local part "
    "(alice+lists@ is delivered to alice@); empty: no details. Keep it equal to "
    "directory_recipient_delimiter (policyd's RCPT check, socketmap) and sieve_recipient_delimiter: "
    "`owlery config check` says when they differ.")
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

DELIVERY_ALIAS_EXPANSION = setting(
    "delivery_alias_expansion", choice("deliver", "refuse"), "deliver",
    "An alias or group that reaches delivery unexpanded (the MTA did not expand it with "
    "virtual_alias_maps): deliver = to every local mailbox it expands to, each once through its "
    "own Sieve script and quota, remote targets sent on through the MTA; refuse = 550 5.1.1 at "
    "RCPT (LDA: exit 67) asking for the MTA to expand it. Never to one member only.")
DELIVERY_ALIAS_DUPLICATE_PERIOD = setting(
    "delivery_alias_duplicate_period", Duration, "5d", unit="s",
    doc="How long delivery remembers which members of an alias or group already have a message, "
        "so a retry after a temporary failure of one member sends the others no second copy. "
        "At least the MTA's queue lifetime (Postfix maximal_queue_lifetime, 5d).")

log = get_logger("owlery.delivery")


class MailUser(Record, frozen=True):
    """What delivery needs to know about one mailbox owner."""

    address: str                    # canonical address (detail stripped, lowercased)
    maildir: str
    sieve_script: str | None
    quota: Quota | None = None
    detail: str | None = None
    uid: int | None = None          # owner of created files (directory), else maildir_owner
    gid: int | None = None


class Group(Record, frozen=True):
    """An alias or group reaching delivery unexpanded: its local mailboxes and remote targets."""

    address: str                    # the alias address (detail stripped, lowercased)
    members: tuple[MailUser, ...]   # each local mailbox once
    remote: tuple[str, ...] = ()    # targets outside our domains
    detail: str | None = None


def alias_refusal(address: str) -> Reply:
    """The reply for an alias or group when delivery_alias_expansion = "refuse"."""
    from sieve.delivery.replies import alias_refused
    return alias_refused(address)


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

    def default_quota(self) -> Quota | None:
        """The quota of a mailbox the directory gives none for (delivery_quota_*), None for no limit."""
        q = Quota(self.settings.delivery_quota_size, self.settings.delivery_quota_messages,
                  self.settings.delivery_quota_overrun_allowance)
        return None if q.unlimited else q

    def expand(self, address: str) -> MailUser | Group | None:
        """What delivery to `address` reaches: one mailbox, a group, or None (unknown)."""
        base, detail = split_detail(address, self.settings.delivery_recipient_delimiter)
        base = base.lower()
        if self.directory is None:
            return self._from_templates(base, detail)
        found = self.directory.resolve(address)     # may raise DirectoryUnavailable
        if found.kind not in ("mailbox", "alias"):
            return None
        boxes, remote = tuple(found.mailboxes), tuple(found.remote)
        # A mailbox of its own: that mailbox alone (see the module docstring: the MTA
        # already sent the other targets theirs).
        own = next((m for m in boxes if m.address.lower() == base), None)
        if own is None and found.kind == "mailbox" and boxes:
            own = boxes[0]          # an entry's own mailbox comes first, then its forwards
        if own is not None:
            return self._from_entry(base, detail, own)
        if len(boxes) == 1 and not remote:
            return self._from_entry(base, detail, boxes[0])
        if not boxes and not remote:
            return None
        members: dict[str, MailUser] = {}
        for box in boxes:
            user = self._from_entry(box.address.lower(), None, box)
            members.setdefault(user.address, user)
        return Group(base, tuple(members.values()), remote, detail)

    def lookup(self, address: str) -> MailUser | None:
        """The one mailbox `address` delivers to; None when unknown or a group (tools: delivery
        uses expand())."""
        found = self.expand(address)
        return found if isinstance(found, MailUser) else None

    def every_mailbox(self) -> Iterator[MailUser]:
        """Every mailbox the directory lists, for the upkeep commands (`--all-users`); LookupError
        without a directory (the templates accept any address: there is no list to walk)."""
        if self.directory is None:
            raise LookupError("--all-users needs the directory (delivery_use_directory = true)")
        for box in self.directory.mailboxes():      # may raise DirectoryUnavailable
            yield self._from_entry(box.address.lower(), None, box)

    def _from_templates(self, base: str, detail: str | None, **over: Any) -> MailUser:
        s = self.settings
        maildir = over.get("maildir") or path_for(s.maildir_path_template, base)
        script = over.get("sieve_script") or path_for(s.delivery_sieve_script_template, base)
        quota = over.get("quota", self.default_quota())
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
