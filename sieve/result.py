"""The result a run builds: ordered actions with RFC 5228 duplicate and conflict rules,
the implicit keep, and the action/redirect limits.

Duplicates (RFC 5228 2.10.3): a second keep, or fileinto to a mailbox already stored into,
stores no second copy; the first action's message stands, and the last action's IMAP flags
win (RFC 5232 leaves it open; Pigeonhole's corpus expects the last list).

Used by sieve.interpreter and the extensions (they call `ResultBuilder.add`); turned
into the public `sieve.api.Result`. Tests: conformance execute/actions, errors; the
limits tests in tests/sieve/test_limits.py.
"""

from __future__ import annotations

import dataclasses

from sieve.actions import (Action, Discard, DuplicateMark, FileInto, Keep, Notify, Redirect, Reject,
                           Report, SendMessage, Vacation)
from sieve.errors import SieveResourceLimit, SieveRuntimeError


def _norm_mailbox(name: str) -> str:
    # INBOX is case-insensitive (RFC 3501); other names compare exactly.
    return "INBOX" + name[5:] if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] == ".") else name


def same_mailbox(a: str, b: str) -> bool:
    return _norm_mailbox(a) == _norm_mailbox(b)


class ResultBuilder:
    def __init__(self, settings, default_mailbox: str = "INBOX"):
        self.settings = settings
        self.default_mailbox = default_mailbox
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.keep_flags: tuple[str, ...] = ()
        self.redirects = 0
        self.notifies = 0
        self.vacation_line: int | None = None    # a vacation command ran (sent or not)

    def _count_check(self) -> None:
        if len(self.actions) >= self.settings.sieve_max_actions:
            raise SieveResourceLimit("total number of actions exceeds policy limit "
                                     f"(sieve_max_actions {self.settings.sieve_max_actions})")

    def note_vacation(self, line: int) -> None:
        """A vacation command runs, whether or not its reply turns out to be due: a second
        one, or one with a reject, is an error either way (the script's meaning must not
        depend on who the sender is)."""
        if self.vacation_line is not None:
            raise SieveRuntimeError("duplicate vacation action not allowed")
        if any(isinstance(a, Reject) for a in self.actions):
            raise SieveRuntimeError("vacation action conflicts with earlier reject action")
        self.vacation_line = line

    def _conflict_reject(self, new: Action) -> None:
        for a in self.actions:
            if isinstance(a, Reject) and isinstance(new, (Keep, FileInto, Redirect)) and \
                    not (isinstance(new, (FileInto, Redirect)) and new.copy and False):
                raise SieveRuntimeError(f"{new.name} action conflicts with earlier reject action")
            if isinstance(a, Reject) and isinstance(new, Vacation):
                raise SieveRuntimeError("vacation action conflicts with earlier reject action")
            if isinstance(new, Reject) and isinstance(a, (Keep, FileInto, Redirect, Vacation)):
                what = a.name if not isinstance(a, FileInto) else "fileinto"
                raise SieveRuntimeError(f"reject action conflicts with earlier {what} action")
        if isinstance(new, Reject) and self.vacation_line is not None:
            raise SieveRuntimeError("reject action conflicts with earlier vacation action")

    def add(self, action: Action, cancels_keep: bool = True) -> None:
        """Add an action, merging duplicates and refusing conflicts (SieveRuntimeError)."""
        if isinstance(action, FileInto) and _norm_mailbox(action.mailbox) == _norm_mailbox(self.default_mailbox) \
                and action.special_use is None:
            # fileinto INBOX is a keep (and merges with one; :create changes nothing for INBOX)
            for i, a in enumerate(self.actions):
                if isinstance(a, Keep):
                    self._conflict_reject(action)
                    self.actions[i] = dataclasses.replace(a, flags=action.flags)
                    self.implicit_keep = self.implicit_keep and not cancels_keep
                    return
        if isinstance(action, Keep):
            self._conflict_reject(action)
            for i, a in enumerate(self.actions):
                if isinstance(a, Keep):
                    self.actions[i] = dataclasses.replace(a, flags=action.flags)
                    self.implicit_keep = False
                    return
                if isinstance(a, FileInto) and _norm_mailbox(a.mailbox) == _norm_mailbox(self.default_mailbox):
                    # the keep replaces the store, with its own message (as Pigeonhole)
                    self.actions[i] = Keep(mailbox=a.mailbox, flags=action.flags, line=a.line, head=action.head)
                    self.implicit_keep = False
                    return
            self._count_check()
            self.actions.append(action)
            self.implicit_keep = False
            return
        if isinstance(action, FileInto):
            self._conflict_reject(action)
            for i, a in enumerate(self.actions):
                if isinstance(a, FileInto) and _norm_mailbox(a.mailbox) == _norm_mailbox(action.mailbox):
                    self.actions[i] = dataclasses.replace(
                        a, flags=action.flags, create=a.create or action.create,
                        copy=a.copy and action.copy)
                    if cancels_keep:
                        self.implicit_keep = False
                    return
            self._count_check()
            self.actions.append(action)
            if cancels_keep:
                self.implicit_keep = False
            return
        if isinstance(action, Redirect):
            self._conflict_reject(action)
            for a in self.actions:
                if isinstance(a, Redirect) and a.address.lower() == action.address.lower():
                    if cancels_keep:
                        self.implicit_keep = False
                    return
            if self.redirects >= self.settings.sieve_max_redirects:
                raise SieveResourceLimit("number of redirect actions exceeds policy limit "
                                         f"(sieve_max_redirects {self.settings.sieve_max_redirects})")
            self._count_check()
            self.redirects += 1
            self.actions.append(action)
            if cancels_keep:
                self.implicit_keep = False
            return
        if isinstance(action, Discard):
            for a in self.actions:
                if isinstance(a, Discard):
                    self.implicit_keep = False
                    return
            self._count_check()
            self.actions.append(action)
            self.implicit_keep = False
            return
        if isinstance(action, Reject):
            for a in self.actions:
                if isinstance(a, Reject):
                    raise SieveRuntimeError("duplicate reject/ereject action not allowed")
            self._conflict_reject(action)
            self._count_check()
            self.actions.append(action)
            self.implicit_keep = False
            return
        if isinstance(action, Vacation):
            self._conflict_reject(action)
            for a in self.actions:
                if isinstance(a, Vacation):
                    raise SieveRuntimeError("duplicate vacation action not allowed")
            self._count_check()
            self.actions.append(action)
            return
        if isinstance(action, Notify):
            for a in self.actions:
                if isinstance(a, Notify) and a.method == action.method:
                    return
            if self.notifies >= self.settings.sieve_max_notifications:
                raise SieveResourceLimit("number of notify actions exceeds policy limit")
            self._count_check()
            self.notifies += 1
            self.actions.append(action)
            return
        if isinstance(action, (DuplicateMark, SendMessage, Report)):
            self._count_check()
            self.actions.append(action)
            return
        self._count_check()
        self.actions.append(action)

