"""The result a run builds: ordered actions with RFC 5228 duplicate and conflict rules,
the implicit keep, and the action/redirect limits.

Duplicates (RFC 5228 2.10.3): a second keep, or fileinto to a mailbox already stored into,
stores no second copy; the first action's message stands, and the last action's IMAP flags
win (RFC 5232 leaves it open; Pigeonhole's corpus expects the last list), except that a keep
never overrides the flags of a fileinto into the default mailbox, in either order: Dovecot's
LMTP/LDA defers the keep, and a deferred keep finds INBOX stored already and adds nothing
(`sieve-test`, which does not defer it, differs: there the last action wins).

Used by sieve.interpreter and the extensions (they call `ResultBuilder.add`); turned
into the public `Result` (re-exported by sieve.api), which a delivery reads. Tests: conformance execute/actions, errors; the
limits tests in tests/sieve/test_limits.py.
"""

from __future__ import annotations

from owlery.record import Record, field
from sieve.actions import (Action, Discard, DuplicateMark, FileInto, FinalFlags, Keep, Notify, Redirect, Reject,
                           Report, SendMessage, Vacation)
from sieve.errors import SieveResourceLimit, SieveRuntimeError
from sieve.message import FullMessage


def same_address(a: str, b: str) -> bool:
    """Whether two redirects go to one address (RFC 5228 2.10.3: a duplicate is ignored): the
    domain compared without case, the local part with it (RFC 5321 2.4: a local part MUST be
    treated as case-sensitive), as Pigeonhole compares them."""
    la, _, da = a.rpartition("@")
    lb, _, db = b.rpartition("@")
    return la == lb and da.lower() == db.lower()


def redirect_limit_text(limit: int) -> str:
    """The runtime error of a redirect past sieve_max_redirects (RFC 5228 2.10.6), one text
    for a script and for a chain of scripts (sieve/delivery/planner.py), as Pigeonhole words it."""
    return f"number of redirect actions exceeds policy limit ({limit + 1} > {limit})"


def _error_at(line: int, message: str) -> SieveRuntimeError:
    """A runtime error reported at `line` (not the command running: Pigeonhole reports a
    reject's conflict with a later store at the reject)."""
    e = SieveRuntimeError(message)
    if line:
        e.line, e.args = line, (f"line {line}: {message}",)
    return e


# What the other action of a reject conflict does, in Pigeonhole's words.
_DELIVERS = "tries to deliver the message"
_RESPONDS = "also sends a response to the sender"


def _norm_mailbox(name: str) -> str:
    # INBOX is case-insensitive (RFC 3501); other names compare exactly.
    return "INBOX" + name[5:] if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] == ".") else name


def same_mailbox(a: str, b: str) -> bool:
    return _norm_mailbox(a) == _norm_mailbox(b)


def _merged_flags(first, dup) -> tuple[str, ...]:
    """The flags of a store after a duplicate of it: the duplicate's, unless they wait for the
    end of the run (FinalFlags: a script without imap4flags asked for it)."""
    return first.flags if isinstance(dup.flags, FinalFlags) else dup.flags


class ResultBuilder:
    def __init__(self, settings, default_mailbox: str = "INBOX"):
        self.settings = settings
        self.default_mailbox = default_mailbox
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.keep_flags: tuple[str, ...] = ()
        # a fileinto into the default mailbox has set the flags of the merged keep/store
        self._inbox_flags_from_fileinto = False
        self.redirects = 0
        self.notifies = 0
        self.vacation_line: int | None = None    # a vacation command ran (sent or not)
        self.vacation_script = ""
        self.script_name = ""     # the script (of an include tree) asking now: the runtime sets it
        self.origins: list[str] = []             # the script that asked for each of `actions`

    def _count_check(self) -> None:
        limit = self.settings.sieve_max_actions
        if len(self.actions) >= limit:
            raise SieveResourceLimit(f"total number of actions exceeds policy limit ({limit + 1} > {limit})")

    def _where(self, script: str, line: int) -> str:
        return f"{script}: line {line}" if script else f"line {line}"

    def _origin(self, action: Action) -> str:
        for a, script in zip(self.actions, self.origins):
            if a is action:
                return self._where(script, action.line)
        return self._where(self.script_name, action.line)

    def note_vacation(self, line: int) -> None:
        """A vacation command runs, whether or not its reply turns out to be due: a second
        one, or one with a reject, is an error either way (the script's meaning must not
        depend on who the sender is). Worded as Pigeonhole words them."""
        if self.vacation_line is not None:
            raise SieveRuntimeError("duplicate vacation action not allowed (previously triggered one was here: "
                                    f"{self._where(self.vacation_script, self.vacation_line)})")
        for a in self.actions:
            if isinstance(a, Reject):
                raise SieveRuntimeError("vacation action conflicts with other action: the reject action "
                                        f"({self._origin(a)}) also sends a response back to the sender")
        self.vacation_line, self.vacation_script = line, self.script_name

    def _conflict_reject(self, new: Action) -> None:
        """A reject beside an action that delivers the message or answers the sender (RFC 5429
        2.2), reported as Pigeonhole reports it: at the reject, naming the other action."""
        here = self._where(self.script_name, new.line)
        for a in self.actions:
            if isinstance(a, Reject) and isinstance(new, (Keep, FileInto, Redirect)):
                kind = "redirect" if isinstance(new, Redirect) else "store"
                raise _error_at(a.line, f"reject/ereject action conflicts with other action: the {kind} action "
                                        f"({here}) {_DELIVERS}")
            if isinstance(a, Reject) and isinstance(new, Vacation):
                raise SieveRuntimeError("vacation action conflicts with other action: the reject action "
                                        f"({self._origin(a)}) also sends a response back to the sender")
            if isinstance(new, Reject) and isinstance(a, (Keep, FileInto, Redirect, Vacation)):
                kind = "store" if isinstance(a, (Keep, FileInto)) else a.name
                raise SieveRuntimeError(f"reject/ereject action conflicts with other action: the {kind} action "
                                        f"({self._origin(a)}) {_RESPONDS if isinstance(a, Vacation) else _DELIVERS}")
        if isinstance(new, Reject) and self.vacation_line is not None:
            raise SieveRuntimeError("reject/ereject action conflicts with other action: the vacation action "
                                    f"({self._where(self.vacation_script, self.vacation_line)}) {_RESPONDS}")

    def add(self, action: Action, cancels_keep: bool = True) -> None:
        """Add an action, merging duplicates and refusing conflicts (SieveRuntimeError)."""
        if isinstance(action, FileInto) and _norm_mailbox(action.mailbox) == _norm_mailbox(self.default_mailbox) \
                and action.special_use is None:
            # fileinto INBOX is a keep (and merges with one; :create changes nothing for INBOX)
            for i, a in enumerate(self.actions):
                if isinstance(a, Keep):
                    self._conflict_reject(action)
                    self.actions[i] = a.replace(flags=_merged_flags(a, action))
                    self._inbox_flags_from_fileinto = True
                    self.implicit_keep = self.implicit_keep and not cancels_keep
                    if not isinstance(action.flags, FinalFlags):
                        # a :specialuse fileinto naming INBOX before it: should it fall back to
                        # INBOX, the one copy takes this fileinto's flags (Dovecot LMTP: the last
                        # fileinto into a mailbox wins, RFC 5228 2.10.3 one copy)
                        for j, b in enumerate(self.actions):
                            if isinstance(b, FileInto) and b.special_use is not None \
                                    and _norm_mailbox(b.mailbox) == _norm_mailbox(self.default_mailbox):
                                self.actions[j] = b.replace(fallback_flags=tuple(action.flags))
                    return
        if isinstance(action, Keep):
            self._conflict_reject(action)
            for i, a in enumerate(self.actions):
                if isinstance(a, Keep):
                    if not self._inbox_flags_from_fileinto:
                        self.actions[i] = a.replace(flags=_merged_flags(a, action))
                    self.implicit_keep = False
                    return
                if isinstance(a, FileInto) and _norm_mailbox(a.mailbox) == _norm_mailbox(self.default_mailbox) \
                        and a.special_use is None:
                    # (a :specialuse fileinto stays: its folder is known only at delivery, where
                    # the planner merges it with the keep when it falls back to INBOX)
                    # the keep replaces the store, with its own message (as Pigeonhole), but the
                    # store's flags stand (Dovecot LMTP: the deferred keep adds nothing to INBOX)
                    self.actions[i] = Keep(mailbox=a.mailbox, flags=a.flags, line=a.line, head=action.head)
                    self._inbox_flags_from_fileinto = True
                    self.implicit_keep = False
                    return
            self._append(action, cancels_keep=True)
            return
        if isinstance(action, FileInto):
            self._conflict_reject(action)
            for i, a in enumerate(self.actions):
                if isinstance(a, FileInto) and _norm_mailbox(a.mailbox) == _norm_mailbox(action.mailbox):
                    self.actions[i] = a.replace(
                        flags=_merged_flags(a, action), create=a.create or action.create,
                        copy=a.copy and action.copy,
                        fallback_flags=a.fallback_flags if isinstance(action.flags, FinalFlags) else None)
                    if cancels_keep:
                        self.implicit_keep = False
                    return
            self._append(action, cancels_keep)
            return
        if isinstance(action, Redirect):
            self._conflict_reject(action)
            for a in self.actions:
                if isinstance(a, Redirect) and same_address(a.address, action.address):
                    if cancels_keep:
                        self.implicit_keep = False
                    return
            if self.redirects >= self.settings.sieve_max_redirects:
                raise SieveResourceLimit(redirect_limit_text(self.settings.sieve_max_redirects))
            self._append(action, cancels_keep)
            self.redirects += 1
            return
        if isinstance(action, Discard):
            for a in self.actions:
                if isinstance(a, Discard):
                    self.implicit_keep = False
                    return
            self._append(action, cancels_keep=True)
            return
        if isinstance(action, Reject):
            for a in self.actions:
                if isinstance(a, Reject):
                    raise SieveRuntimeError("duplicate reject/ereject action not allowed (previously triggered "
                                            f"one was here: {self._origin(a)})")
            self._conflict_reject(action)
            self._append(action, cancels_keep=True)
            return
        if isinstance(action, Vacation):
            self._conflict_reject(action)
            for a in self.actions:
                if isinstance(a, Vacation):
                    raise SieveRuntimeError("duplicate vacation action not allowed (previously triggered "
                                            f"one was here: {self._origin(a)})")
            self._append(action)
            return
        if isinstance(action, Notify):
            for a in self.actions:
                if isinstance(a, Notify) and a.method == action.method:
                    return
            if self.notifies >= self.settings.sieve_max_notifications:
                raise SieveResourceLimit("number of notify actions exceeds policy limit")
            self._append(action)
            self.notifies += 1
            return
        if isinstance(action, (DuplicateMark, SendMessage, Report)):
            self._append(action)
            return
        self._append(action)


    def _append(self, action: Action, cancels_keep: bool = False) -> None:
        """Keep `action` (counted against sieve_max_actions); `cancels_keep`: no implicit keep."""
        self._count_check()
        self.actions.append(action)
        self.origins.append(self.script_name)
        if cancels_keep:
            self.implicit_keep = False

class Result(Record):
    """What one run decided. See sieve.api's docstring for how a delivery uses it.

    status: "ok" | "error" (runtime error) | "resource_limit" | "tempfail".
    actions: explicit actions in the order the script added them (duplicates merged).
    implicit_keep: True when nothing cancelled the implicit keep (RFC 5228 2.10.2).
    keep_flags: IMAP flags for the implicit keep (imap4flags internal variable).
    message: the message after every editheader edit: what the implicit keep stores (after a
        runtime error: the message as received, RFC 5293 7).
    original: the message as received.
    errors: runtime error texts (with line when known).
    context: the message context the next script of the same delivery starts from
        (sieve.api.run's `context`; e.g. imap4flags' internal flags).

    A keep, fileinto or redirect stores or sends the message as the script had edited it when
    it asked for the action (RFC 5293 7): use `message_for(action)`.
    """

    status: str = "ok"
    actions: list[Action] = field(default_factory=list)
    implicit_keep: bool = True
    keep_flags: tuple[str, ...] = ()
    message: bytes = b""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    default_mailbox: str = "INBOX"
    original: bytes | None = None
    body_offset: int = 0
    context: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def message_for(self, action: Action) -> bytes:
        """The message `action` stores or sends: for a keep, fileinto or redirect the header
        as edited when the script asked for it (editheader, RFC 5293 7); for the implicit
        keep and everything else `message`."""
        if self.original is None or getattr(action, "implicit", False) or not hasattr(action, "head"):
            return self.message
        if action.head is None:
            return self.original
        if isinstance(action.head, FullMessage):       # replace/enclose changed the body too
            return bytes(action.head)
        return action.head + self.original[self.body_offset:]

    def effective_actions(self) -> list[Action]:
        """The actions to execute: explicit ones plus the implicit keep; after a runtime
        error or resource limit only a keep into the default mailbox; after tempfail none.
        The implicit keep is left out when an explicit keep or fileinto already stores into
        the default mailbox (RFC 5228 2.10.3: one copy per mailbox; the explicit one's flags
        and message stand)."""
        if self.status == "tempfail":
            return []
        if self.status != "ok":
            return [Keep(mailbox=self.default_mailbox, implicit=True)]
        out = list(self.actions)
        if self.implicit_keep:
            if not any((isinstance(a, Keep) or (isinstance(a, FileInto) and a.special_use is None))
                       and same_mailbox(a.mailbox, self.default_mailbox) for a in out):
                out.append(Keep(mailbox=self.default_mailbox, flags=self.keep_flags, implicit=True))
        return out

    def describe(self) -> list[str]:
        """Human-readable lines for `owlery sieve test` and logs."""
        lines = []
        for a in self.effective_actions():
            lines.append(describe_action(a))
        if not lines:
            lines.append("(no actions: the message is not stored)")
        return lines


def describe_action(a: Action) -> str:
    """One line for one action (dry-run output)."""
    if isinstance(a, Keep):
        s = f"keep into {a.mailbox!r}" + (" (implicit)" if a.implicit else "")
    elif isinstance(a, FileInto):
        s = f"fileinto {a.mailbox!r}"
        if a.create:
            s += " :create"
        if a.special_use:
            s += f" :specialuse {a.special_use!r}"
        if a.copy:
            s += " :copy"
    elif isinstance(a, Redirect):
        s = f"redirect to <{a.address}>" + (" :copy" if a.copy else "")
    elif isinstance(a, Discard):
        s = "discard"
    elif isinstance(a, Reject):
        s = ("ereject" if a.ereject else "reject") + f": {a.reason!r}"
    elif isinstance(a, Vacation):
        s = f"vacation reply to <{a.to}> subject {a.subject!r} (period {a.period:g}s)"
    elif isinstance(a, Notify):
        s = f"notify {a.method}"
    elif isinstance(a, DuplicateMark):
        s = f"duplicate mark (period {a.period:g}s)"
    elif isinstance(a, SendMessage):
        s = f"send message to {', '.join(a.recipients)}"
    elif isinstance(a, Report):
        s = f"report to <{a.address}>"
    else:
        s = a.name
    flags = getattr(a, "flags", ())
    if flags:
        s += " flags " + " ".join(flags)
    return s
