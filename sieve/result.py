"""The result a run builds: ordered actions with RFC 5228 duplicate and conflict rules,
the implicit keep, and the action/redirect limits.

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


class ResultBuilder:
    def __init__(self, settings, default_mailbox: str = "INBOX"):
        self.settings = settings
        self.default_mailbox = default_mailbox
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.keep_flags: tuple[str, ...] = ()
        self.redirects = 0
        self.notifies = 0

    def _count_check(self) -> None:
        if len(self.actions) >= self.settings.sieve_max_actions:
            raise SieveResourceLimit("total number of actions exceeds policy limit "
                                     f"(sieve_max_actions {self.settings.sieve_max_actions})")

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

    def add(self, action: Action, cancels_keep: bool = True) -> None:
        """Add an action, merging duplicates and refusing conflicts (SieveRuntimeError)."""
        if isinstance(action, FileInto) and _norm_mailbox(action.mailbox) == _norm_mailbox(self.default_mailbox) \
                and not action.create and action.special_use is None:
            # fileinto INBOX is a keep (and merges with one)
            for i, a in enumerate(self.actions):
                if isinstance(a, Keep):
                    self.actions[i] = dataclasses.replace(a, flags=_merge(a.flags, action.flags))
                    self.implicit_keep = self.implicit_keep and not cancels_keep
                    return
        if isinstance(action, Keep):
            self._conflict_reject(action)
            for i, a in enumerate(self.actions):
                if isinstance(a, Keep):
                    self.actions[i] = dataclasses.replace(a, flags=_merge(a.flags, action.flags))
                    self.implicit_keep = False
                    return
                if isinstance(a, FileInto) and _norm_mailbox(a.mailbox) == _norm_mailbox(self.default_mailbox):
                    self.actions[i] = Keep(mailbox=a.mailbox, flags=_merge(a.flags, action.flags), line=a.line)
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
                        a, flags=_merge(a.flags, action.flags), create=a.create or action.create,
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


def _merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    out = list(a)
    low = {x.lower() for x in a}
    for f in b:
        if f.lower() not in low:
            out.append(f)
            low.add(f.lower())
    return tuple(out)
