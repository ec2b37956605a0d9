"""Over-quota check: refuse mail for a full mailbox at RCPT and at END-OF-MESSAGE (552 5.2.2).

At RCPT the size is the client's SIZE= hint (0 when not given: then a mailbox is full
when it has no byte left, as Dovecot's quota-status counts max(1, size)); at
END-OF-MESSAGE the real size, but Postfix names the recipient there only for
single-recipient mail, so multi-recipient mail is checked at RCPT only. A mailbox is
full when the directory says so (over-quota list or attribute), or when usage plus the
size passes its byte limit, or one more message passes its message limit. The limit is
the directory's (quota map / attribute), else the definition line of its maildirsize;
usage is the directory's usage attribute, else the Maildir++ `maildirsize` file (what
Dovecot and our LDA keep); a file saying full that Maildir++ says not to trust (more than
one delta line, older than maildir_quota_recalc_age, junk) is checked by counting the
messages, read only, as Dovecot's quota-status would recount it (else a mailbox emptied
behind the file's back would be refused until some delivery recounted, and none would come). No limit or no readable maildirsize: not full (the LDA
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
Relays: a mailbox whose `mail_host` (the directory's back end for it) is another host is
not read here: with `quota_backend_endpoint` set (e.g. tcp:{host}:10040), the back end is
asked (policyd/checks/quota_backend.py: its policyd running this check, or Dovecot's
quota-status), so no over-quota file has to be copied to the relays. The back end's answer
is the answer for that mailbox; for an alias the rule above holds across hosts (local boxes
are looked at first, back ends are asked only while every box so far is full, at most
`quota_backend_queries_max` of them). A back end that cannot be asked (refused, timed out,
DEFER_IF_PERMIT from it) makes the check answer DEFER_IF_PERMIT 4.3.0, or accept when
`quota_backend_unreachable = "accept"`. A request carrying policy_context=owlery-quota-query
(a relay asking this host) is always answered from the local Maildirs.
Talks to: the directory, Maildirs (read only), back ends' policy services (TCP). Tests:
tests/policyd/test_checks_directory.py, tests/policyd/test_quota_edge.py,
tests/policyd/test_quota_backend.py, tests/policyd/test_quota_relay_backend.py,
tests/delivery/test_quota_edge.py, tests/e2e/test_policyd_directory.py, tests/e2e/test_quota_edge_e2e.py.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from owlery import maildirsize
from owlery.directory import Mailbox
from owlery.directory.base import parse_mail_host
from owlery.errors import TemporaryFailure
from owlery.reply import Reply
from owlery.settings import Bool, Duration, Size, Str, StrList, choice, int_range, setting
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, Verdict
from policyd.checks.quota_backend import QUERY_CONTEXT, BackendAnswer, BackendError, classify, endpoint_for, query_bytes
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

QUOTA_BACKEND_ENDPOINT = setting(
    "quota_backend_endpoint", Str, "",
    "Relays: where to ask about a mailbox held on another host (the directory's mail_host for it, "
    "ldap_mail_host_attribute / files_mail_hosts): tcp:{host}:PORT, {host} replaced by the mail host, "
    "e.g. tcp:{host}:10040 (the back end's policyd, with the quota check) or tcp:{host}:12340 "
    "(Dovecot's quota-status). Empty: never ask; every mailbox is checked from its Maildir here.")
QUOTA_BACKEND_LOCAL_HOSTS = setting(
    "quota_backend_local_hosts", StrList, [],
    "mail_host values that name this host: their mailboxes are checked here, not asked about "
    "(for a back end sharing the relays' settings file, or a relay that is also a back end).")
QUOTA_BACKEND_TIMEOUT = setting(
    "quota_backend_timeout", Duration, 3, unit="s",
    doc="Longest wait for a back end's quota answer (connecting included); 0: until "
        "policyd_decision_timeout.")
QUOTA_BACKEND_UNREACHABLE = setting(
    "quota_backend_unreachable", choice("defer", "accept"), "defer",
    "When a back end cannot be asked or cannot tell: defer = DEFER_IF_PERMIT 4.3.0 (the sender "
    "retries; fails closed, as a temporary failure), accept = let the mail through (the back end's "
    "delivery still enforces the quota, and may bounce).")
QUOTA_BACKEND_QUERIES_MAX = setting(
    "quota_backend_queries_max", int_range(1, 1000), 10,
    "Most back-end questions for one recipient (an alias whose mailboxes are on back ends); "
    "past it the recipient is accepted (not every mailbox is known to be full).")
QUOTA_BACKEND_IDLE_MAX = setting(
    "quota_backend_idle_max", int_range(0, 1000), 4,
    "Idle connections kept open to each back end for the next question.")

QUOTA_BACKEND_UNAVAILABLE = Reply(451, "4.3.0", "Quota lookup temporarily unavailable, try again later")

log = logging.getLogger("owlery.policyd")

_USAGE_CACHE_MAX = 10000
_USAGE_RECHECK_S = 1.0
_UNREADABLE_WARN_S = 600          # seconds between two warnings about one unreadable maildirsize


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


def _host_or_none(name: str) -> str | None:
    try:
        return parse_mail_host(name)
    except ValueError:
        log.warning("policyd: quota_backend_local_hosts: %r is not a host name; ignored", name)
        return None


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
        self._recounts: dict[str, tuple[float, Any]] = {}     # path -> (when, Usage counted)
        self._unreadable: dict[str, float] = {}               # path -> when its warning was logged
        self._local_hosts: tuple[Any, frozenset[str]] | None = None
        if ctx.settings.quota_backend_endpoint:
            endpoint_for(ctx.settings.quota_backend_endpoint, "backend.example")   # a bad template fails now

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

    async def _usage(self, box: Mailbox, now: float, size: int) -> maildirsize.MaildirSize | None:
        if box.over_quota or (box.usage_bytes is not None and box.quota_bytes is not None):
            return None      # the directory already says all we need
        path = self._maildir(box)
        if path is None:
            return None
        settings = self.ctx.settings
        try:
            if settings.quota_read_in_thread:
                usage = await self.ctx.run_blocking(maildirsize.read, path, timeout=settings.quota_read_timeout)
            else:
                usage = self.usage_cache.read(path, now)
            if usage is not None and is_full(box, usage, size) and \
                    usage.recount_when_full(now, settings.maildir_quota_recalc_age):
                usage = await self._recount(path, usage, now)
            return usage
        except OSError as e:
            # Unreadable (permissions): we cannot know, so we do not refuse; delivery still enforces.
            # Said once per mailbox every _UNREADABLE_WARN_S: a home of mode 0700 (local accounts,
            # directory_backend = "passwd") is unreadable at every RCPT, and a line each time
            # would bury the log.
            last = self._unreadable.get(path)
            if last is None or not 0 <= now - last < _UNREADABLE_WARN_S:
                if len(self._unreadable) >= _USAGE_CACHE_MAX:
                    self._unreadable.clear()
                self._unreadable[path] = now
                log.warning("policyd: quota: cannot read %s: %s (said once per %d s; not refused: "
                            "delivery enforces the quota)", os.path.join(path, "maildirsize"), e,
                            _UNREADABLE_WARN_S)
            return None

    async def _recount(self, path: str, usage: maildirsize.MaildirSize, now: float) -> maildirsize.MaildirSize:
        """The file says full but Maildir++ says not to trust it (several delta lines, old, junk):
        count the messages as Dovecot and delivery would before refusing (read only: the next
        delivery rewrites the file), at most once a second per mailbox, in the thread pool. A
        maildirsize with no Maildir beside it (no cur/) cannot be recounted and is trusted."""
        if not os.path.isdir(os.path.join(path, "cur")):
            return usage     # only the file is here (no Maildir to count beside it): trusted as it is
        cached = self._recounts.get(path)
        if cached is not None and 0 <= now - cached[0] < _USAGE_RECHECK_S:
            used = cached[1]
        else:
            from owlery.maildir import Maildir, MaildirError   # the delivery agent's counting rules
            try:
                used = await self.ctx.run_blocking(lambda: Maildir(path).count(),
                                                   timeout=self.ctx.settings.quota_read_timeout)
            except MaildirError as e:
                # A Maildir we may not count (unsafe, unreadable): the file's word stands, as it
                # did before recounts; delivery still enforces the quota.
                log.warning("policyd: quota: cannot recount %s: %s", path, e)
                return usage
            if len(self._recounts) >= _USAGE_CACHE_MAX:
                self._recounts.clear()
            self._recounts[path] = (now, used)
        return dataclasses.replace(usage, used_bytes=used.bytes, used_messages=used.messages, bad_lines=0,
                                   negative_total=False, delta_lines=1, mtime=now)

    async def evaluate(self, request: PolicyRequest, now: float) -> Any:
        rcpt = request.recipient
        if not rcpt:
            return DUNNO       # END-OF-MESSAGE of multi-recipient mail: checked at RCPT
        found = await resolve(self.ctx, request, rcpt)
        if not found.mailboxes:
            return DUNNO
        size = request.size
        allowance = self.ctx.settings.quota_headers_allowance
        elsewhere = [box for box in found.mailboxes if self._backend_of(box, request)]
        here = [box for box in found.mailboxes if box not in elsewhere]
        full = []
        for box in here:
            if is_full(box, await self._usage(box, now, size + allowance), size + allowance):
                full.append(box.address)
        if len(full) < len(here) or found.remote:
            # Something takes the mail (a mailbox here with room, a remote target): accepted.
            if full:
                self._partial(rcpt, found.mailboxes, full)
            return DUNNO
        answers: list[tuple[Any, BackendAnswer]] = []
        if elsewhere:
            verdict = await self._ask_backends(request, rcpt, found.mailboxes, elsewhere, full, answers)
            if verdict is not None:
                return verdict
        if not full:
            return DUNNO
        fields = {"size": size, "allowance": allowance, "full": ",".join(full)}
        if len(found.mailboxes) == 1 and answers:
            # One mailbox, on a back end: its answer is the answer (its reply text, its code).
            box, answer = answers[0]
            return Verdict(answer.action, {**fields, "backend": box.mail_host})
        reply = (actions.MAILBOX_FULL if self.ctx.settings.quota_full_reply == "permanent"
                 else actions.MAILBOX_FULL_TEMPORARY)
        return Verdict(actions.reject(reply), fields)

    @staticmethod
    def _partial(rcpt: str, boxes: Any, full: list[str]) -> None:
        log.info("policyd: quota_partial: %s reaches %d mailboxes, full: %s; accepted",
                 rcpt, len(boxes), ", ".join(full))

    def _backend_of(self, box: Mailbox, request: PolicyRequest) -> str | None:
        """The back end to ask about `box`, or None when it is checked here."""
        settings = self.ctx.settings
        if not settings.quota_backend_endpoint or not box.mail_host:
            return None
        if request.attr("policy_context") == QUERY_CONTEXT:
            return None              # a relay asking us: answer from here, never ask on
        if self._local_hosts is None or self._local_hosts[0] is not settings.quota_backend_local_hosts:
            names = settings.quota_backend_local_hosts
            self._local_hosts = (names, frozenset(filter(None, (_host_or_none(n) for n in names))))
        return None if box.mail_host in self._local_hosts[1] else box.mail_host

    async def _ask_backends(self, request: PolicyRequest, rcpt: str, boxes: Any, elsewhere: list[Mailbox],
                            full: list[str], answers: list) -> Any:
        """Ask back ends while every mailbox so far is full. None: go on (all asked are full);
        else the Verdict to answer."""
        settings = self.ctx.settings
        unknown: list[str] = []
        allowance = settings.quota_headers_allowance
        for box in elsewhere:
            if is_full(box, None, request.size + allowance):
                full.append(box.address)     # the directory itself says so (over-quota mark, usage attribute)
                continue
            if len(answers) + len(unknown) >= settings.quota_backend_queries_max:
                log.info("policyd: quota: %s: %d mailboxes on back ends, asked %d; accepted",
                         rcpt, len(elsewhere), settings.quota_backend_queries_max)
                return Verdict(DUNNO, {"backends_asked": len(answers) + len(unknown)})
            answer = await self._ask(request, box)
            if answer.kind == "ok":
                if full:
                    self._partial(rcpt, boxes, full)
                return Verdict(DUNNO, {"backend": box.mail_host}) if len(boxes) == 1 else DUNNO
            if answer.kind == "refuse":
                full.append(box.address)
                answers.append((box, answer))
            else:
                log.warning("policyd: quota: %s: back end %s cannot tell about %s: %s",
                            rcpt, box.mail_host, box.address, answer.detail)
                unknown.append(box.address)
        if unknown:
            if settings.quota_backend_unreachable == "accept":
                return Verdict(DUNNO, {"backend_unknown": ",".join(unknown)})
            raise TemporaryFailure(f"quota back end for {', '.join(unknown)} cannot tell", QUOTA_BACKEND_UNAVAILABLE)
        return None

    async def _ask(self, request: PolicyRequest, box: Mailbox) -> BackendAnswer:
        """One back end's answer about one mailbox; "unknown" when it cannot be had."""
        from twisted.internet import defer
        from twisted.internet.error import ConnectingCancelledError

        from policyd.checks.quota_backend import BackendClient
        settings = self.ctx.settings
        try:
            host, port = endpoint_for(settings.quota_backend_endpoint, box.mail_host or "")
            payload = query_bytes(request, box.address)
        except ValueError as e:
            return BackendAnswer("unknown", detail=str(e))
        client = self.ctx.resource("quota_backend_client",
                                   lambda: BackendClient(self.ctx.clock, settings.quota_backend_idle_max))
        d = defer.Deferred.fromCoroutine(client.ask(host, port, payload, settings.quota_backend_timeout))
        if settings.quota_backend_timeout > 0:
            d.addTimeout(settings.quota_backend_timeout, self.ctx.clock)
        try:
            text = await d
        except (defer.TimeoutError, defer.CancelledError, ConnectingCancelledError):
            # the timeout cancelled the question (while connecting, the endpoint says so its own way)
            return BackendAnswer("unknown", detail=f"{host}:{port}: no answer in {settings.quota_backend_timeout:g} s")
        except BackendError as e:
            return BackendAnswer("unknown", detail=str(e))
        return classify(text)
