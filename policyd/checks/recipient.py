"""Recipient verification (RCPT): an unknown user in a domain we host gets 550 5.1.1.

An alias or domain alias whose expansion reaches no mailbox and nothing remote (unknown
targets, a loop, nesting past directory_alias_depth_max) gets the same 550 5.1.1: accepted, it
could only bounce later to a sender who is often forged (backscatter). The log line says
`reason=alias_reaches_nothing`.
Domains we do not host are not our business (DUNNO); a directory that cannot answer
raises DirectoryUnavailable, which the pipeline turns into DEFER_IF_PERMIT 4.3.0, so a
server being down never yields a 5xx.
Talks to: the directory (policyd.lookup). Tests: tests/policyd/test_checks_directory.py,
tests/policyd/test_alias_backscatter.py, tests/e2e/test_policyd_directory.py.
"""

from __future__ import annotations

from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, Verdict
from policyd.lookup import resolve
from policyd.protocol import PolicyRequest


class RecipientCheck(Check):
    name = "recipient"
    states = frozenset({"RCPT"})
    enabled_by_default = True

    async def evaluate(self, request: PolicyRequest, now: float) -> actions.PolicyAction | Verdict:
        if not request.recipient:
            return DUNNO
        found = await resolve(self.ctx, request, request.recipient)
        if found.kind == "unknown":
            return Verdict(actions.reject(actions.USER_UNKNOWN), {"reason": "unknown_user"})
        if found.reaches_nothing:
            return Verdict(actions.reject(actions.USER_UNKNOWN), {"reason": "alias_reaches_nothing"})
        return DUNNO
