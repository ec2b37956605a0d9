"""Delivery of one message to one user: run the Sieve scripts, then carry out the result.

The decisions are sieve/delivery/planner.py's (pure, table-tested): this module runs the script
chain into a Plan, looks up the facts the planner needs (which special-use folders exist),
and carries out the steps it yields (Maildir writes, submissions, state marks), sending each
result back. Replies come from sieve/delivery/replies.py.

Sequence (Pigeonhole's multiscript rules): the global before scripts, the user's script,
the global after scripts; the next script runs only while keep (implicit or explicit) is
still in effect, and the keep left at the end is carried out once. Execution order makes
the outcome safe: (1) a temporary failure in any script (host/backend trouble) delivers
nothing and reports a temporary failure; (2) quota is checked before anything is sent;
(3) redirects go out (a failed or looping redirect turns into a keep); (4) stores are
written (keep/fileinto, each mailbox once, with flags); if the first store fails
temporarily nothing was committed and the delivery is retried; (5) replies (vacation,
reject notices, notifications) and duplicate marks come last and never fail the delivery;
(6) once the verdict is logged, a quota warning when the delivery crossed a
quota_warning_thresholds percentage (sieve/delivery/quota_warn.py; best effort too).
A script runtime error falls back to keep into INBOX with a log line; so does a script whose
redirects take the chain past sieve_max_redirects (the scripts share the limit, as Pigeonhole's
multiscript shares one result; the earlier scripts' actions stand).
`deliver_group()` delivers one recipient the directory expands to several targets (an alias or
group reaching delivery unexpanded: sieve.delivery.users.Group) to each member once through
`deliver()`, forwards its remote targets, and answers once for all; the rules and why are in
sieve/delivery/users.py's docstring.

Talks to: sieve.api (the engine), sieve.delivery.planner (the decisions), owlery.maildir,
owlery.state (vacation/duplicate/redirect tracking), sieve.delivery.submission (the MTA). Blocking: LMTP runs it in a thread pool.
Tests: tests/delivery/test_executor.py, tests/delivery/test_group_delivery.py,
tests/delivery/test_planner.py (the decisions alone), tests/core/test_review_followups_s21.py (the
redirect limit over the chain, against sieve-test)
"""

from __future__ import annotations

import os
import sys
import time
from os import EX_NOPERM, EX_NOUSER, EX_OK, EX_TEMPFAIL
from _thread import allocate_lock   # not threading: the LDA's start-up pays for every import
from _collections_abc import Callable, Sequence   # = collections.abc, without loading collections (LDA start-up)

from owlery import datetimes as _dt   # not datetime: its pure-Python copy runs first (LDA start-up)
from owlery import log as owlery_log
from owlery.errors import DirectoryUnavailable, StateUnavailable
from owlery.lazylog import get_logger
from owlery.maildir import (Maildir, MaildirError, Owner, QuotaExceeded, canonical_mailbox, owner_from_settings,
                            parse_size_from_name, path_for)
from owlery.record import Record
from owlery.reply import Reply
from owlery.settings import Bool, StrList, list_of, satisfying, setting, table_of
from sieve.delivery import planner, replies
from sieve.delivery.default_script import user_or_default
from sieve.delivery.planner import Plan
from sieve.delivery.userfiles import UnsafeUserFile, read_user_file
from sieve.delivery.users import Group, MailUser

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

DELIVERY_SIEVE_BEFORE = setting(
    "delivery_sieve_before", StrList, [],
    "Global Sieve scripts run before the user's script (files, or directories whose *.sieve files "
    "run in byte order).")
DELIVERY_SIEVE_AFTER = setting(
    "delivery_sieve_after", StrList, [],
    "Global Sieve scripts run after the user's script, while keep is still in effect.")
DELIVERY_SIEVE_GLOBAL_DIR = setting(
    "delivery_sieve_global_dir", StrList, [],
    "Directory holding scripts that `include :global \"name\"` finds (name.sieve); first match wins.")
DELIVERY_QUOTA_FULL_TEMPFAIL = setting(
    "delivery_quota_full_tempfail", Bool, False,
    "A full mailbox gets 452 4.2.2 / exit 75 (the MTA retries) instead of 552 5.2.2 (bounce).")
DELIVERY_MAILBOX_AUTOCREATE = setting(
    "delivery_mailbox_autocreate", Bool, True,
    "fileinto creates (and subscribes) a missing folder even without :create; off: a missing "
    "folder makes the message land in INBOX.")
DELIVERY_ADD_RETURN_PATH = setting(
    "delivery_add_return_path", Bool, True,
    "Prepend Return-Path: <sender> and Delivered-To: <recipient> to each stored message.")


def _is_folder_name(name: str) -> bool:
    return bool(name) and "\n" not in name          # what r".+" matches whole


def _is_special_use_word(flag: str) -> bool:
    word = flag[1:] if flag.startswith("\\") else flag  # r"\\?[A-Za-z]+"
    return word.isascii() and word.isalpha()


DELIVERY_SPECIAL_USE_FOLDERS = setting(
    "delivery_special_use_folders",
    table_of(list_of(satisfying(_is_folder_name, "a folder name")),
             keys=satisfying(_is_special_use_word, "a special-use flag like Junk"),
             name="table of flag = [folders]"),
    {"Junk": ["Junk"], "Trash": ["Trash"], "Sent": ["Sent", "Sent Messages"],
     "Drafts": ["Drafts"], "Archive": ["Archive"]},
    "Folders carrying an IMAP special use (RFC 6154), for Sieve's fileinto :specialuse and "
    "specialuse_exists (RFC 8579): flag (without the backslash) = folder or list of folders, the "
    "first existing one taken. Mirror the special_use lines of Dovecot's mailbox { } sections.")

log = get_logger("owlery.delivery")


def special_use_folders(settings: Any, flag: str) -> list[str]:
    """The folder names configured for special-use `flag` ("\\Junk" or "Junk", any case)."""
    return planner.special_use_folders(settings.delivery_special_use_folders, flag)


def special_use_folder(settings: Any, maildir: Maildir, flag: str) -> str | None:
    """The first existing folder with special-use `flag`, or None."""
    return next((name for name in special_use_folders(settings, flag) if _folder_exists(maildir, name)), None)


def _folder_exists(maildir: Maildir, name: str) -> bool:
    try:
        return maildir.folder_exists(name)
    except MaildirError:
        return False      # unsafe or unreadable: not a folder to deliver into

def _one_name_per_folder(plan: Plan) -> None:
    """Spell each fileinto's folder the one way it is stored (owlery.maildir.canonical_mailbox:
    '/' as '.', INBOX uppercase as a parent), so the planner stores once into a folder a script
    names two ways ("Work.Projects" and "Work/Projects": RFC 5228 4.1, one copy per mailbox)."""
    if not plan.actions:
        return
    from sieve import actions as act
    for i, a in enumerate(plan.actions):
        if isinstance(a, act.FileInto) and canonical_mailbox(a.mailbox) != a.mailbox:
            plan.actions[i] = a.replace(mailbox=canonical_mailbox(a.mailbox))




class DeliveryOutcome(Record, frozen=True):
    """The verdict for one recipient: what the MTA hears (LMTP reply, LDA exit code). A frozen
    record (owlery.record: a dataclass's behaviour without its start-up cost)."""

    action: str            # delivered | tempfail | bounce | unknown
    reply: Reply
    exit_code: int
    detail: str = ""
    stored: tuple[str, ...] = ()      # file paths written
    # What the delivery did, for owlery_delivery_results_total: stored (INBOX), folder,
    # redirected, vacation, rejected (with a notice), discarded.
    results: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.action == "delivered"


_RESULTS_OF = {"tempfail": ("tempfail",), "bounce": ("rejected",), "unknown": ("rejected",)}


def count_outcome(outcome: DeliveryOutcome, seconds: float | None = None) -> None:
    """Count one recipient's delivery in the metrics (owlery.metrics; no-ops while off). Not
    loaded means never enabled (the in-process LDA: its start-up pays for every import)."""
    metrics = sys.modules.get("owlery.metrics")
    if metrics is None:
        return
    metrics.DELIVERIES.labels(outcome.action).inc()
    for result in outcome.results or _RESULTS_OF.get(outcome.action, ()):
        metrics.DELIVERY_RESULTS.labels(result).inc()
    if seconds is not None:
        metrics.DELIVERY_DURATION.observe(seconds)


def delivered(recipient: str, stored: Sequence[str] = (), detail: str = "",
              results: Sequence[str] = ()) -> DeliveryOutcome:
    return DeliveryOutcome("delivered", replies.saved(recipient), EX_OK, detail, tuple(stored), tuple(results))


def tempfail(recipient: str, detail: str, dsn: str = "4.3.0", text: str = replies.T_TEMPFAIL) -> DeliveryOutcome:
    return DeliveryOutcome("tempfail", replies.temporary(recipient, dsn, text), EX_TEMPFAIL, detail)


def unknown_user(recipient: str) -> DeliveryOutcome:
    return DeliveryOutcome("unknown", replies.user_unknown(recipient), EX_NOUSER, "no such user")


def prepend_trace(message: bytes, sender: str, recipient: str) -> bytes:
    return (f"Return-Path: <{sender}>\nDelivered-To: {recipient}\n").encode("utf-8", "surrogateescape") \
        + message


def script_paths(entries: Sequence[str]) -> list[str]:
    """Files as given; directories expanded to their *.sieve files in byte order."""
    out: list[str] = []
    for entry in entries:
        if os.path.isdir(entry):
            names = sorted((n for n in os.listdir(entry) if n.endswith(".sieve")),
                           key=lambda n: n.encode("utf-8", "surrogateescape"))
            out += [os.path.join(entry, n) for n in names]
        else:
            out.append(entry)
    return out


class DeliveryHost:
    """The Sieve engine's questions answered from this user's Maildir and the state store."""

    def __init__(self, maildir: Maildir, user: MailUser, state: Any, global_dirs: Sequence[str],
                 now: float, settings: Any = None, lists: Any = None):
        """`state`: the store, None (no store), or a callable returning one when a script first
        asks (duplicate, vacation): opening it costs the LDA ~6 ms a message that most scripts
        never need."""
        self.settings = settings
        self.lists = lists              # sieve.delivery.extlists.DirectoryLists, or None: no lists
        self.maildir = maildir
        self.user = user
        self._state = state
        self.global_dirs = list(global_dirs)
        self.now = now

    @property
    def state(self) -> Any:
        if callable(self._state) and not hasattr(self._state, "get"):
            self._state = self._state()
        return self._state

    def _key(self, key: str) -> str:
        return f"sieve:{self.user.address}:{key}"

    def mailbox_exists(self, mailbox: str) -> bool:
        if mailbox.upper() == "INBOX":
            # always there for delivery, even before the first message makes the Maildir
            # (Dovecot LMTP: mailboxexists "INBOX" is true for a user with no mail yet)
            return True
        try:
            return self.maildir.folder_exists(mailbox)
        except MaildirError:
            return False

    def special_use_exists(self, mailbox: str | None, flag: str) -> bool:
        if self.settings is None:
            return False
        if mailbox is None:
            return special_use_folder(self.settings, self.maildir, flag) is not None
        return mailbox in special_use_folders(self.settings, flag) and self.mailbox_exists(mailbox)

    def seen(self, key: str) -> bool:
        from sieve.api import SieveTempFailure
        if self.state is None:
            return False
        try:
            return self.state.get(self._key(key), self.now) is not None
        except StateUnavailable as e:
            raise SieveTempFailure(str(e)) from e

    def mark(self, key: str, period: float) -> None:
        if self.state is None:
            return
        self.state.set(self._key(key), "1", period, self.now)

    def load_script(self, name: str, location: str) -> bytes | None:
        # RFC 6609 2: :personal is the user's own scripts (where ManageSieve stores them:
        # managesieve_script_dir_template, else beside the active script), :global the site's
        # (delivery_sieve_global_dir). `name` is already a plain script name (no "/"; "." and
        # ".." read "..sieve" and "...sieve").
        if location == "personal":
            template = getattr(self.settings, "managesieve_script_dir_template", None)
            if template:
                dirs = [path_for(template, self.user.address)]
            else:
                dirs = [os.path.dirname(self.user.sieve_script)] if self.user.sieve_script else []
        else:
            dirs = self.global_dirs
        # A personal include is the user's file: read as root, only theirs (sieve/delivery/userfiles.py).
        owner = self.maildir.owner if location == "personal" and os.geteuid() == 0 else None
        for d in dirs:
            try:
                return read_user_file(os.path.join(d, name + ".sieve"), owner.uid if owner else None,
                                      self.settings.sieve_max_script_size)
            except FileNotFoundError:
                continue
            except UnsafeUserFile as e:
                log.warning("sieve include ignored: %s", e)
                return None
        return None

    def metadata(self, mailbox: str | None, annotation: str) -> str | None:
        return None

    def list_contains(self, list_name: str, value: str) -> bool | None:
        return self.lists.list_contains(list_name, value) if self.lists is not None else None

    def run_program(self, req: Any) -> Any:
        """vnd.dovecot.filter/execute programs (sieve/extprograms.py): as the mailbox owner."""
        from sieve import extprograms
        return extprograms.run_program(as_mailbox_owner(req, self.maildir, self.user))


def as_mailbox_owner(req: Any, maildir: Maildir, user: MailUser) -> Any:
    """An external program's request (sieve.extprograms.ProgramRun) to run as the mailbox's owner
    (when we are root; sieve.extprograms refuses root itself), with USER (the user's address)
    and HOME (the directory holding the Maildir), as Pigeonhole sets them."""
    from sieve import extprograms
    owner = maildir.owner if os.geteuid() == 0 else None
    if os.geteuid() == 0 and user.uid is not None:
        owner = Owner(user.uid, user.gid if user.gid is not None else user.uid)
    return extprograms.with_identity(req, user=user.address, home=os.path.dirname(maildir.root),
                                     uid=owner.uid if owner else None, gid=owner.gid if owner else None)


class DeliveryExecutor:
    """Delivers messages for one process (LMTP server or LDA); thread-safe for concurrent users."""

    # runs vnd.dovecot.pipe programs: None is sieve.extprograms.run_program (tests set a fake)
    program_runner: Callable[[Any], Any] | None = None

    def __init__(self, settings: Any, *, submitter: Any = None, state: Any = None,
                 cache: Any = None, program: str = "delivery",
                 clock: Callable[[], float] = time.time, directory: Any = None):
        self.settings = settings
        self._directory = directory           # for Sieve extlists; opened lazily when not given
        self._owns_directory = directory is None
        self._directory_lock = allocate_lock()
        self._submitter = submitter
        self._state = state
        self._owns_state = state is None      # opened here (lazily): ours to close
        self._cache = cache
        self.program = program
        self.clock = clock
        self._owner: Owner | None = owner_from_settings(settings)
        self.hostname = os.uname().nodename

    def close(self) -> None:
        """Release what this executor opened (the state store); an injected one is the caller's."""
        state, self._state = self._state, None
        if state is not None and self._owns_state:
            state.close()
        directory, self._directory = self._directory, None
        if directory is not None and self._owns_directory:
            directory.close()

    # -- lazily built collaborators (the LDA pays only for what a message needs) --

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from sieve.api import ScriptCache
            self._cache = ScriptCache(self.settings)
        return self._cache

    @property
    def submitter(self) -> Any:
        if self._submitter is None:
            from sieve.delivery import submission
            self._submitter = submission.from_settings(self.settings)
        return self._submitter

    def directory(self) -> Any:
        """The directory Sieve extlists asks (sieve/delivery/extlists.py), opened on first use;
        None when delivery_use_directory is off."""
        with self._directory_lock:          # deliveries run in threads: open it once
            if self._directory is None and self.settings.delivery_use_directory:
                from owlery.directory import open_directory
                self._directory = open_directory(self.settings)
            return self._directory

    @property
    def state(self) -> Any:
        if self._state is None:
            from owlery.state import open_store
            settings = self.settings
            if self.program == "lda" and settings.directory_backend == "passwd":
                # run by local(8) as the account itself: its own state file in its home
                from owlery.directory.passwd import account_state_settings
                settings = account_state_settings(settings)
            self._state = open_store(settings)
        return self._state

    def maildir_for(self, user: MailUser) -> Maildir:
        owner = self._owner
        if user.uid is not None and os.geteuid() == 0:
            owner = Owner(user.uid, user.gid if user.gid is not None else user.uid)
        return Maildir.from_settings(user.maildir, self.settings, owner=owner)

    # -- the script chain ----------------------------------------------------

    def _load(self, path: str, owner_uid: int | None = None) -> Any:
        """The compiled script at `path`, None when missing or broken (logged). With `owner_uid`
        (a user's own script, read as root) only that owner's regular file is read."""
        from sieve.api import SieveCompileError
        try:
            if owner_uid is None:
                return self.cache.load(path)
            source = read_user_file(path, owner_uid, self.settings.sieve_max_script_size)
            return self.cache.compile(source, os.path.splitext(os.path.basename(path))[0])
        except FileNotFoundError:
            return None
        except UnsafeUserFile as e:
            log.warning("%s: sieve script ignored: %s", self.program, e)
            return None
        except SieveCompileError as e:
            log.warning("%s: sieve script %s does not compile, ignored: %s", self.program, path,
                        "; ".join(str(d) for d in getattr(e, "diagnostics", ())) or e)
            return None
        except OSError as e:
            raise MaildirError(f"cannot read sieve script {path}: {e}") from e

    def user_file_owner(self, user: MailUser) -> int | None:
        """The uid a user's own files must belong to when we read them as root, else None."""
        if os.geteuid() != 0:
            return None
        if user.uid is not None:
            return user.uid
        return self._owner.uid if self._owner is not None else None

    def plan(self, message: bytes, sender: str, recipient: str, user: MailUser, maildir: Maildir,
             default_mailbox: str, now: float, original_recipient: str | None = None) -> Plan:
        """Run before/user/after scripts; merge their results (no side effects)."""
        paths = script_paths(self.settings.delivery_sieve_before)
        own = user_or_default(user.sieve_script, self.settings)
        if own:
            paths.append(own)
        paths += script_paths(self.settings.delivery_sieve_after)
        plan = Plan(message=message)
        owner_uid = self.user_file_owner(user)
        scripts = [(p, s) for p in paths
                   if (s := self._load(p, owner_uid if p == user.sieve_script else None)) is not None]
        if not scripts:
            return plan
        from sieve import api
        from sieve.delivery.extlists import DirectoryLists
        host = DeliveryHost(maildir, user, self._state_or_none, self.settings.delivery_sieve_global_dir, now,
                            self.settings, DirectoryLists(self.settings, user.address, self.directory))
        envelope = api.Envelope(mail_from=sender, rcpt_to=recipient, orig_rcpt=original_recipient)
        when = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
        # as Dovecot LMTP runs Sieve: a delivery agent, during the delivery, for the user's name
        # (the address the directory knows: vnd.dovecot.username and the "domain" item)
        env = {"location": "MDA", "phase": "during", "host": self.hostname, "username": user.address}
        context: dict = {}
        kept_explicitly = False     # the keep pending is an earlier script's explicit keep
        for path, script in scripts:
            result = api.run(script, plan.message, envelope, host=host, settings=self.settings,
                             environment=env, now=when, context=context)
            context = result.context
            if result.status == "tempfail":
                plan.tempfail = f"{path}: " + "; ".join(result.errors)
                return plan
            status, errors = result.status, result.errors
            if status == "ok":
                # the chain's redirects count as one script's (Pigeonhole's multiscript: one
                # result): the script going past the limit fails, the earlier ones stand
                over = planner.redirect_limit_error(plan.actions, result.actions, self.settings.sieve_max_redirects)
                if over is not None:
                    status, errors = "resource_limit", [over]
            if status != "ok":
                plan.errors.append(f"{path}: {status}: " + "; ".join(errors))
                plan.keep = True     # error keep: stop the chain, keep into INBOX
                plan.keep_flags = ()
                return plan
            explicit_keep = [a for a in result.actions if isinstance(a, api.Keep)]
            others = [a for a in result.actions if not isinstance(a, api.Keep)]
            plan.actions += others
            plan.action_messages += [result.message_for(a) if result.message else plan.message for a in others]
            plan.keep = bool(explicit_keep) or result.implicit_keep
            if explicit_keep:
                plan.keep_flags = explicit_keep[-1].flags
                plan.keep_message = result.message_for(explicit_keep[-1]) if result.message else None
                kept_explicitly = True
            elif result.implicit_keep:
                # a fileinto into INBOX (:copy) already stores there: the implicit keep adds
                # no flags of its own (Result.effective_actions leaves it out; Pigeonhole too)
                implicit = any(getattr(a, "implicit", False) for a in result.effective_actions())
                if not (implicit and kept_explicitly):
                    plan.keep_flags = result.keep_flags if implicit else ()
                    plan.keep_message = None
                    kept_explicitly = False
                # else an earlier script's explicit keep stands as it was: a later script's
                # implicit keep adds no flags of its own (Pigeonhole's multiscript;
                # tests/sieve/test_pigeonhole_probes_s18e.py)
            if result.message:
                plan.message = result.message
            if not plan.keep:
                break
        return plan

    def _state_or_none(self) -> Any:
        try:
            return self.state
        except (StateUnavailable, OSError, ValueError) as e:
            log.warning("%s: state store unavailable: %s", self.program, e)
            return _BrokenState(str(e))

    # -- delivery --------------------------------------------------------------

    def deliver(self, message: bytes, sender: str, recipient: str, user: MailUser | None, *,
                mailbox: str | None = None, original_recipient: str | None = None,
                queue_id: str | None = None) -> DeliveryOutcome:
        """Deliver `message` (LF line ends) for one recipient; never raises."""
        start = self.clock()
        if user is None:
            outcome = unknown_user(recipient)
        else:
            try:
                outcome = self._deliver(message, sender, recipient, user, mailbox, original_recipient, start,
                                        queue_id)
            except (DirectoryUnavailable, StateUnavailable) as e:
                outcome = tempfail(recipient, str(e))
            except Exception as e:  # the delivery boundary: never lose mail on a bug, retry instead
                log.exception("%s: internal error delivering to %s", self.program, recipient)
                outcome = tempfail(recipient, f"internal error: {e.__class__.__name__}: {e}")
        orig_to = f"<{original_recipient}>" if original_recipient and \
            original_recipient.lower() != recipient.lower() else None
        took = self.clock() - start
        owlery_log.decision(self.program, queue_id, outcome.action, reply=outcome.reply,
                            from_=sender, to=recipient, orig_to=orig_to, detail=outcome.detail or None,
                            # to whom: the "sent vacation reply" line with the same queue id
                            vacation="sent" if "vacation" in outcome.results else None,
                            delay=f"{took:.3f}",
                            level=owlery_log.INFO if outcome.action != "tempfail" else owlery_log.WARNING)
        count_outcome(outcome, took)
        if user is not None and outcome.stored and user.quota is not None and user.quota.bytes:
            self._quota_warning(user, outcome.stored, queue_id)
        return outcome

    def _quota_warning(self, user: MailUser, stored: Sequence[str], queue_id: str | None) -> None:
        """Tell the user once when this delivery took the mailbox past a quota_warning_thresholds
        percentage (sieve/delivery/quota_warn.py decides and writes the message): stored into
        INBOX like any delivery (same writer, same owner), counted in maildirsize, never refused
        for quota. The delivery is committed already: a failure is a WARNING line, nothing more."""
        quota = user.quota
        assert quota is not None
        try:
            thresholds = self.settings.quota_warning_thresholds
            if not thresholds:
                return
            from sieve.delivery import quota_warn
            maildir = self.maildir_for(user)
            after = maildir.usage(quota).bytes
            added = sum(parse_size_from_name(os.path.basename(p)) or 0 for p in stored)
            threshold = quota_warn.crossed(quota.bytes, after - added, after, thresholds)
            if threshold is None:
                return
            message = quota_warn.from_settings(self.settings, threshold=threshold, address=user.address,
                                               usage=after, limit=quota.bytes, now=self.clock(),
                                               hostname=self.hostname, read_file=_read_template)
            path = maildir.deliver(message, "INBOX", quota=quota, enforce_quota=False).path
        except Exception as e:  # noqa: BLE001  best effort: never fails nor retries the committed delivery
            owlery_log.decision(self.program, queue_id, "quota-warning-failed", to=user.address,
                                detail=f"{e.__class__.__name__}: {e}", level=owlery_log.WARNING)
            return
        owlery_log.decision(self.program, queue_id, "quota-warning", to=user.address, threshold=f"{threshold}%",
                            usage=after, limit=quota.bytes, file=os.path.basename(path))

    # -- aliases and groups reaching delivery (see sieve/delivery/users.py) --------

    def deliver_group(self, message: bytes, sender: str, recipient: str, group: Group, *,
                      mailbox_for: Callable[[MailUser], str | None] | None = None,
                      queue_id: str | None = None) -> DeliveryOutcome:
        """Deliver `message` for one envelope recipient that expands to `group`: each member once
        (skipping members a previous attempt already delivered to), each remote target sent on;
        one DeliveryOutcome for them all. `mailbox_for(member)`: the LDA's -m folder. Never raises."""
        start = self.clock()
        try:
            outcome = self._deliver_group(message, sender, recipient, group, mailbox_for, queue_id, start)
        except Exception as e:  # the delivery boundary, as in deliver()
            log.exception("%s: internal error delivering to %s", self.program, recipient)
            outcome = tempfail(recipient, f"internal error: {e.__class__.__name__}: {e}")
        owlery_log.decision(self.program, queue_id, outcome.action, reply=outcome.reply,
                            from_=sender, to=recipient, detail=outcome.detail or None,
                            delay=f"{self.clock() - start:.3f}",
                            level=owlery_log.INFO if outcome.action == "delivered" else owlery_log.WARNING)
        return outcome

    def _deliver_group(self, message: bytes, sender: str, recipient: str, group: Group,
                       mailbox_for: Callable[[MailUser], str | None] | None, queue_id: str | None,
                       now: float) -> DeliveryOutcome:
        done: list[str] = []                 # targets that have the message (now or before)
        temporary: list[tuple[str, Reply]] = []
        permanent: list[tuple[str, Reply]] = []
        unrecorded: list[str] = []           # delivered, but the record of it could not be written
        fingerprint = group_fingerprint(message, sender, group.address)
        targets: list[MailUser | str] = [*group.members, *group.remote]
        keys = [f"delivered:{t.address if isinstance(t, MailUser) else t.lower()}:{fingerprint}" for t in targets]
        period = self.settings.delivery_alias_duplicate_period
        # Who already has it from an earlier attempt. Without the answer nothing is delivered:
        # a retry would otherwise send every target a second copy.
        try:
            already = self.state.get_many(keys, now) if len(targets) > 1 else [None] * len(targets)
        except (StateUnavailable, OSError, ValueError) as e:
            return tempfail(recipient, f"group delivery: state store unavailable: {e}")
        forwarded = sum(1 for t, b in zip(targets, already) if b is not None and not isinstance(t, MailUser))
        for target, key, before in zip(targets, keys, already):
            name = target.address if isinstance(target, MailUser) else target
            if before is not None:
                done.append(name)
                continue
            if isinstance(target, MailUser):
                mailbox = mailbox_for(target) if mailbox_for is not None else None
                outcome = self.deliver(message, sender, target.address, target, mailbox=mailbox,
                                       original_recipient=recipient, queue_id=queue_id)
                ok, failure = outcome.ok, outcome.reply
                temporary_failure = outcome.action == "tempfail"
            else:
                status = self.forward(message, sender, group.address, target, sent_before=forwarded, now=now,
                                      queue_id=queue_id)
                ok, temporary_failure = status in ("sent", "duplicate"), status == "tempfail"
                failure = {"tempfail": replies.R_FORWARD_LATER, "loop": replies.R_FORWARD_LOOP}.get(
                    status, replies.R_FORWARD_REFUSED)
                forwarded += ok
                if ok:
                    log.info("%s: %s: forwarded to <%s>%s", _head(self.program, queue_id), recipient, target,
                             " (sent before)" if status == "duplicate" else "")
            if ok:
                done.append(name)
                if len(targets) > 1:
                    try:
                        self.state.set(key, "1", period, self.clock())
                    except (StateUnavailable, OSError, ValueError) as e:
                        log.warning("%s: %s: cannot record the delivery to %s (a retry may deliver "
                                    "it again): %s", _head(self.program, queue_id), recipient, name, e)
                        unrecorded.append(name)
            elif temporary_failure:
                temporary.append((name, failure))
            else:
                permanent.append((name, failure))
        total = len(group.members) + len(group.remote)
        detail = (f"group members={len(group.members)} remote={len(group.remote)} done={len(done)} "
                  f"deferred={len(temporary)} failed={len(permanent)}")
        if unrecorded and temporary:
            log.warning("%s: %s: deferring the group after delivering to %s without a record: the "
                        "retry may deliver there twice", _head(self.program, queue_id), recipient,
                        ",".join(unrecorded))
        if temporary:
            # The MTA retries the whole recipient; members that have it are skipped then.
            text = _group_text(recipient, len(done), total, "will retry", temporary)
            dsn = "4.2.2" if all(r.dsn == "4.2.2" for _, r in temporary) else "4.3.0"
            return DeliveryOutcome("tempfail", replies.group_deferred(dsn, text), EX_TEMPFAIL, detail)
        if permanent:
            first = permanent[0][1]
            text = _group_text(recipient, len(done), total, "refused by", permanent)
            return DeliveryOutcome("bounce", first.with_text(text), EX_NOPERM, detail)
        return DeliveryOutcome("delivered", replies.saved(recipient, f"Saved for {total} targets"), EX_OK, detail)

    def forward(self, message: bytes, sender: str, via: str, target: str, *, sent_before: int = 0,
                now: float | None = None, queue_id: str | None = None) -> str:
        """Send `message` on to `target` for the alias `via` (a remote target of an alias or group),
        through the redirect machinery: loop and hop limits, SRS, duplicate tracking. Returns
        'sent', 'duplicate', 'loop' (refused), 'tempfail' or 'failed'."""
        from sieve.delivery import redirect as redirect_mod     # here: only forwards and redirects use it
        now = self.clock() if now is None else now
        why = redirect_mod.refusal(message, via, target, sent_before, self.settings)
        if why is not None:
            log.warning("%s: %s; keeping it (not redirected to <%s>)", _head(self.program, queue_id), why, target)
            return "loop"
        return self._redirect(target, sender, message, message, sender, via, now, queue_id)

    def _deliver(self, message: bytes, sender: str, recipient: str, user: MailUser,
                 mailbox: str | None, original_recipient: str | None, now: float,
                 queue_id: str | None = None) -> DeliveryOutcome:
        """Run the scripts, gather the facts, then carry out what sieve.delivery.planner decides."""
        rules = planner.Rules.from_settings(self.settings, mailbox)
        if self.settings.delivery_add_return_path:
            message = prepend_trace(message, sender, recipient)
        maildir = self.maildir_for(user)
        try:
            plan = self.plan(message, sender, recipient, user, maildir, rules.default_mailbox, now,
                             original_recipient)
        except MaildirError as e:
            return tempfail(recipient, str(e))
        _one_name_per_folder(plan)
        facts = planner.Facts({name: _folder_exists(maildir, name) for name in planner.folders_to_probe(plan, rules)})
        delivery = planner.Delivery(plan, message, sender, recipient, user.address,
                                    user.quota is not None and not user.quota.unlimited, maildir.root)
        verdict = planner.drive(planner.steps(delivery, rules, facts),
                                lambda step: self._carry_out(step, delivery, maildir, user, now,
                                                             original_recipient, queue_id))
        if isinstance(verdict, planner.Delivered):
            return delivered(recipient, verdict.stored, verdict.detail, verdict.results)
        if isinstance(verdict, planner.OverQuota):
            return DeliveryOutcome("tempfail" if verdict.temporary else "bounce",
                           replies.mailbox_full(recipient, temporary=verdict.temporary),
                           EX_TEMPFAIL if verdict.temporary else EX_NOPERM, verdict.detail)
        if isinstance(verdict, planner.Refused):
            return DeliveryOutcome("bounce", replies.rejected(recipient, verdict.reason), EX_NOPERM, "sieve ereject")
        return tempfail(recipient, verdict.detail)

    # -- carrying out one step (the only place delivery touches the Maildir, MTA and state) --

    def _carry_out(self, step: planner.Step, d: planner.Delivery, maildir: Maildir, user: MailUser,
                   now: float, original_recipient: str | None = None, queue_id: str | None = None) -> Any:
        if isinstance(step, planner.StoreStep):
            try:
                return maildir.deliver(d.message(step.message), step.folder, flags=step.flags, create=step.create,
                                       quota=user.quota, now=now).path
            except QuotaExceeded as e:
                return planner.Failed("quota", str(e))
            except MaildirError as e:
                return planner.Failed("temporary" if e.temporary else "permanent", str(e))
        if isinstance(step, planner.CheckQuota):
            try:
                maildir.check_quota(user.quota, step.size)
            except QuotaExceeded as e:
                return planner.Failed("quota", str(e))
            except MaildirError as e:
                return planner.Failed("temporary", str(e))
            return None
        if isinstance(step, planner.Note):
            log.log(_LEVELS[step.level], "%s: %s", _head(self.program, queue_id), step.text)
            return None
        if isinstance(step, planner.RedirectStep):
            env_from = step.envelope_from if step.envelope_from is not None else d.sender
            return self._redirect(step.address, env_from, d.message(step.message), d.arrived, d.sender,
                                  user.address, now, queue_id)
        if isinstance(step, planner.PipeStep):
            return self._pipe(step, d, maildir, user)
        if isinstance(step, planner.VacationStep):
            if step.envelope_from:
                # vacation_envelope_from = recipient: the user's address the sender wrote to
                from sieve.delivery.vacation import reply_envelope_from
                step = step.replace(envelope_from=reply_envelope_from(
                    self.settings, step.envelope_from, recipient=d.recipient,
                    orig_recipient=original_recipient, message=d.arrived))
            return self._vacation(step, user, queue_id)
        if isinstance(step, planner.SendStep):
            return self._send(step.what, step.envelope_from, list(step.recipients), step.message, queue_id)
        if isinstance(step, planner.Mark):
            self._mark(user, step.key, step.period, now)
            return None
        raise TypeError(f"unknown delivery step {step!r}")

    def _redirect(self, target: str, env_from: str, message: bytes, original: bytes, sender: str,
                  user_address: str, now: float, queue_id: str | None = None) -> str:
        """Send one copy of `message` (as the scripts left it) to `target`: 'sent', 'duplicate'
        (sent by an earlier attempt), 'tempfail' or 'failed'. `original`: the message as it
        arrived, which names the copy for the duplicate check."""
        from sieve.delivery import redirect as redirect_mod
        from sieve.delivery.submission import SubmissionError
        dup_key = redirect_mod.duplicate_key(original, sender, user_address, target)
        state = self._state_or_none()
        try:
            if state.get(f"sieve:{user_address}:{dup_key}", now) is not None:
                return "duplicate"
        except StateUnavailable:
            pass
        # SRS rewrites only the original sender: an address sieve_redirect_envelope_from chose
        # instead (the user's, the postmaster's) is this host's own and passes SPF as it is
        if env_from == sender:
            try:
                env_from = redirect_mod.envelope_from(env_from, self.settings)
            except ValueError as e:
                log.error("%s: %s", _head(self.program, queue_id), e)
                env_from = sender
        try:
            self.submitter.send(env_from, [target], redirect_mod.prepare(message, user_address))
        except SubmissionError as e:
            log.warning("%s: redirect of %s's mail to <%s> failed: %s", _head(self.program, queue_id),
                        user_address, target, e)
            return "tempfail" if e.temporary else "failed"
        self._mark_key(user_address, dup_key, self.settings.redirect_duplicate_period, now)
        return "sent"

    def _pipe(self, step: planner.PipeStep, d: planner.Delivery, maildir: Maildir, user: MailUser) -> Any:
        """Give the message to a vnd.dovecot.pipe program as the mailbox owner: None when piped,
        else Failed (the planner keeps the message then)."""
        from sieve import extprograms
        from sieve.extensions.extprograms import pipe_message
        run = self.program_runner or extprograms.run_program
        piped, errors = pipe_message(self.settings, step.action, d.message(step.message),
                                     lambda req: run(as_mailbox_owner(req, maildir, user)))
        if piped:
            log.info("%s: %s: piped to program `%s'", self.program, d.recipient,
                     extprograms.sanitize(step.action.program, 128))
            return None
        return planner.Failed("temporary", "; ".join(errors))

    def _vacation(self, step: planner.VacationStep, user: MailUser, queue_id: str | None = None) -> bool:
        """Send a vacation reply once per tracking period; True when it went out."""
        # Claim the reply atomically first: two deliveries to the same user running at
        # once both see "not answered yet" in the engine; only one may send.
        key = f"sieve:{user.address}:{step.tracking_key}" if step.tracking_key else None
        state = self._state_or_none()
        if key is not None:
            try:
                if not state.add(key, "1", step.period, self.clock()):
                    log.info("%s: vacation reply to <%s> already sent", _head(self.program, queue_id), step.to)
                    return False
            except StateUnavailable as e:
                log.warning("%s: vacation reply to <%s> not sent: %s", _head(self.program, queue_id), step.to, e)
                return False
        sent = self._send("vacation reply", step.envelope_from, [step.to], step.reply, queue_id)
        if not sent and key is not None:
            try:
                state.delete(key)      # let a later message try again
            except StateUnavailable:
                pass
        return sent

    def _send(self, what: str, env_from: str, rcpts: list[str], message: bytes,
              queue_id: str | None = None) -> bool:
        from sieve.delivery.submission import SubmissionError     # here: most deliveries send nothing
        try:
            self.submitter.send(env_from, rcpts, message)
            log.info("%s: sent %s from <%s> to %s", _head(self.program, queue_id), what, env_from,
                     ",".join(f"<{r}>" for r in rcpts))
            return True
        except SubmissionError as e:
            log.warning("%s: %s to %s not sent: %s", _head(self.program, queue_id), what,
                        ",".join(f"<{r}>" for r in rcpts), e)
            return False

    def _mark(self, user: MailUser, key: str, period: float, now: float) -> None:
        self._mark_key(user.address, key, period, now)

    def _mark_key(self, address: str, key: str, period: float, now: float) -> None:
        try:
            self._state_or_none().set(f"sieve:{address}:{key}", "1", period, now)
        except (StateUnavailable, OSError) as e:
            log.warning("%s: cannot record %s for %s: %s", self.program, key, address, e)


def _head(program: str, queue_id: str | None) -> str:
    """`lmtpd: QUEUEID`, the start of a delivery's lines, so that grepping the queue id finds
    its vacation replies, redirects and notes beside its decision line."""
    return f"{program}: {queue_id}" if queue_id else program


_LEVELS = {"info": owlery_log.INFO, "warning": owlery_log.WARNING, "error": owlery_log.ERROR}


def _read_template(path: str, limit: int = 64 << 10) -> str:
    """A site template file (quota_warning_body_file): UTF-8, at most `limit` bytes."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: longer than {limit} bytes")
    return data.decode("utf-8")


def group_fingerprint(message: bytes, sender: str, group: str) -> str:
    """Names one message to one group for the member records: the same for every delivery attempt
    (the fields added per attempt, Received, Return-Path and Delivered-To, are left out)."""
    from sieve.delivery import redirect as redirect_mod
    basis = f"{sender.lower()}\0{group.lower()}\0{redirect_mod.content_hash(message)}"
    import hashlib          # here: only group deliveries hash (OpenSSL loads in ~3 ms per LDA run)
    return hashlib.sha256(basis.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _group_text(recipient: str, done: int, total: int, verb: str, failures: list[tuple[str, Reply]]) -> str:
    """`<team@x> delivered to 2 of 3 targets; will retry <bob@x> (452 4.2.2 Mailbox full)...`"""
    parts = []
    for target, reply in failures[:3]:
        why = reply.text.split("> ", 1)[1] if reply.text.startswith("<") and "> " in reply.text else reply.text
        parts.append(f"<{target}> ({reply.code} {reply.dsn} {why[:60]})")
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    return Reply.safe_text(f"<{recipient}> delivered to {done} of {total} targets; {verb} "
                           + ", ".join(parts) + more, 400)


class _BrokenState:
    """Stands in for a state store that cannot be opened: reads raise (tempfail), writes log."""

    def __init__(self, why: str):
        self.why = why

    def get(self, key: str, now: float) -> str | None:
        raise StateUnavailable(self.why)

    def set(self, key: str, value: str, ttl: float, now: float) -> None:
        raise StateUnavailable(self.why)

    def add(self, key: str, value: str, ttl: float, now: float) -> bool:
        raise StateUnavailable(self.why)

    def delete(self, key: str) -> bool:
        raise StateUnavailable(self.why)
