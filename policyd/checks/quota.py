"""Over-quota check: refuse mail for a full mailbox at RCPT and at END-OF-MESSAGE (552 5.2.2).

At RCPT the size is the client's SIZE= hint (0 when not given: then a mailbox is full
when it has no byte left, as Dovecot's quota-status counts max(1, size)); at
END-OF-MESSAGE the real size, but Postfix names the recipient there only for
single-recipient mail, so multi-recipient mail is checked at RCPT only. A mailbox is
full when the directory says so (over-quota list or attribute), or when usage plus the
size passes its byte limit, or one more message passes its message limit. The limit is
the directory's (quota map / attribute), else the definition line of its maildirsize;
usage is the directory's usage attribute, else the Maildir++ `maildirsize` file (what
Dovecot and our LDA keep). No limit or no readable maildirsize: not full (the LDA
still enforces the quota at delivery).
Aliases: an address that reaches several local mailboxes is refused only when ALL of
them are full and it reaches nothing remote; when only some are full it is accepted
and logged (`quota_partial`): one member's full mailbox must not block mail to the
others, and the delivery agent answers for that member.
The reply is `552 5.2.2` (quota_full_reply = "permanent") or `452 4.2.2` ("temporary").
Headroom: the size Postfix reports is the message as the client sent it; the milter then
adds headers and delivery prepends Return-Path/Delivered-To, so `quota_headers_allowance`
is added to the size at RCPT and END-OF-MESSAGE: a message that passes here still fits at
delivery, which would otherwise refuse it with 552 5.2.2 after the SMTP dialogue and make
Postfix bounce to the (possibly forged) sender. Delivery's side of the same edge is
`delivery_quota_overrun_allowance` (sieve.delivery.users): a mailbox under its limit takes
one last message that overruns it by at most that much; the next one is refused here.
Talks to: the directory, Maildirs (read only). Tests: tests/policyd/test_checks_directory.py,
tests/policyd/test_quota_edge.py, tests/delivery/test_quota_edge.py,
tests/e2e/test_policyd_directory.py, tests/e2e/test_quota_edge_e2e.py.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from owlery import maildirsize
from owlery.directory import Mailbox
from owlery.settings import Bool, Duration, Size, choice, setting
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, Verdict
from policyd.lookup import resolve
from policyd.protocol import PolicyRequest

QUOTA_FULL_REPLY = setting(
    "quota_full_reply", choice("permanent", "temporary"), "permanent",
    "Reply for a full mailbox: permanent = 552 5.2.2 (the sender is told at once), temporary = "
    "452 4.2.2 (the sender retries until the user makes room or the queue lifetime ends).")
QUOTA_READ_TIMEOUT = setting(
    "quota_read_timeout", Duration, 5, unit="s",
    doc="Longest wait for reading a maildirsize file (NFS); past it the check answers "
        "DEFER_IF_PERMIT 4.3.0.")
QUOTA_READ_IN_THREAD = setting(
    "quota_read_in_thread", Bool, False,
    "Read maildirsize files in the blocking thread pool (for Maildirs on NFS or other slow "
    "storage). Off: read on the event loop, a few microseconds on local disks.")
QUOTA_HEADERS_ALLOWANCE = setting(
    "quota_headers_allowance", Size, "4k", unit="bytes",
    doc="Added to the message size (SIZE= hint at RCPT, real size at END-OF-MESSAGE) before it is "
        "compared with the free space: room for what is added after the policy check, so an "
        "accepted message is never refused at delivery (which would bounce). 4k covers the "
        "milter's Authentication-Results (~300), X-Spam-* (~400), a DKIM-Signature (RSA-2048 "
        "~700, plus ~350 for Ed25519 dual signing), an ARC set (~1.6k), Postfix's Received "
        "(~300) and delivery's Return-Path/Delivered-To (~100). Pair it with "
        "delivery_quota_overrun_allowance, the overrun delivery tolerates for the last message.")

log = logging.getLogger("owlery.policyd")

_USAGE_CACHE_MAX = 10000
_USAGE_RECHECK_S = 1.0


class UsageCache:
    """Parsed maildirsize files, reused while the file's (mtime, size, inode) stay the same.

    At most one stat() a second per file instead of open/read/parse each time: the LDA
    appends a line (size changes) or rewrites the file by rename (inode changes) at each
    delivery. A delivery in the last second not seen yet only matters for a mailbox within
    one message of its limit, and delivery enforces the quota itself.
    """

    def __init__(self, entries_max: int = _USAGE_CACHE_MAX, recheck_s: float = _USAGE_RECHECK_S):
        self.entries_max = entries_max
        self.recheck_s = recheck_s
        # path -> (file signature, parsed usage, when it was last stat'ed)
        self._entries: dict[str, tuple[tuple[int, int, int], maildirsize.MaildirSize | None, float | None]] = {}

    def read(self, maildir: str, now: float | None = None) -> maildirsize.MaildirSize | None:
        path = os.path.join(maildir, "maildirsize")
        entry = self._entries.get(path)
        if entry is not None and now is not None and entry[2] is not None and 0 <= now - entry[2] < self.recheck_s:
            return entry[1]
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._entries.pop(path, None)
            return None
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        usage = entry[1] if entry is not None and entry[0] == sig else maildirsize.read(maildir)
        if entry is None and len(self._entries) >= self.entries_max:
            self._entries.clear()      # simple bound; refilled by the next lookups
        self._entries[path] = (sig, usage, now)
        return usage


def is_full(box: Mailbox, usage: maildirsize.MaildirSize | None, size: int) -> bool:
    """Does a message of `size` bytes not fit in this mailbox? (pure; size 0 counts as 1)."""
    if box.over_quota:
        return True
    limit_b = box.quota_bytes if box.quota_bytes is not None else (usage.limit_bytes if usage else None)
    limit_m = box.quota_messages if box.quota_messages is not None else (usage.limit_messages if usage else None)
    used_b = box.usage_bytes if box.usage_bytes is not None else (usage.used_bytes if usage else None)
    used_m = usage.used_messages if usage else None
    if limit_b and used_b is not None and used_b + max(size, 1) > limit_b:
        return True
    if limit_m and used_m is not None and used_m + 1 > limit_m:
        return True
    return False


class QuotaCheck(Check):
    name = "quota"
    states = frozenset({"RCPT", "END-OF-MESSAGE"})
    enabled_by_default = True

    def __init__(self, ctx: Any):
        super().__init__(ctx)
        self.usage_cache = UsageCache()

    def _maildir(self, box: Mailbox) -> str | None:
        if box.maildir:
            return box.maildir
        if box.address.startswith("@"):
            return None
        from owlery.maildir import MaildirError, path_for   # the delivery agent's layout
        try:
            return path_for(self.ctx.settings.maildir_path_template, box.address)
        except MaildirError:
            return None

    async def _usage(self, box: Mailbox, now: float) -> maildirsize.MaildirSize | None:
        if box.over_quota or (box.usage_bytes is not None and box.quota_bytes is not None):
            return None      # the directory already says all we need
        path = self._maildir(box)
        if path is None:
            return None
        settings = self.ctx.settings
        try:
            if settings.quota_read_in_thread:
                return await self.ctx.run_blocking(maildirsize.read, path, timeout=settings.quota_read_timeout)
            return self.usage_cache.read(path, now)
        except OSError as e:
            # Unreadable (permissions): we cannot know, so we do not refuse; delivery still enforces.
            log.warning("policyd: quota: cannot read %s: %s", os.path.join(path, "maildirsize"), e)
            return None

    async def evaluate(self, request: PolicyRequest, now: float) -> Any:
        rcpt = request.recipient
        if not rcpt:
            return DUNNO       # END-OF-MESSAGE of multi-recipient mail: checked at RCPT
        found = await resolve(self.ctx, request, rcpt)
        if not found.mailboxes:
            return DUNNO
        size = request.size
        allowance = self.ctx.settings.quota_headers_allowance
        full = []
        for box in found.mailboxes:
            if is_full(box, await self._usage(box, now), size + allowance):
                full.append(box.address)
        if not full:
            return DUNNO
        if len(full) == len(found.mailboxes) and not found.remote:
            reply = (actions.MAILBOX_FULL if self.ctx.settings.quota_full_reply == "permanent"
                     else actions.MAILBOX_FULL_TEMPORARY)
            return Verdict(actions.reject(reply), {"size": size, "allowance": allowance, "full": ",".join(full)})
        log.info("policyd: quota_partial: %s reaches %d mailboxes, full: %s; accepted",
                 rcpt, len(found.mailboxes), ", ".join(full))
        return DUNNO
