"""Recipient verification (RCPT): an unknown user in a domain we host gets 550 5.1.1.

Domains we do not host are not our business (DUNNO); a directory that cannot answer
raises DirectoryUnavailable, which the pipeline turns into DEFER_IF_PERMIT 4.3.0, so a
server being down never yields a 5xx.
Talks to: the directory (policyd.lookup). Tests: tests/policyd/test_checks_directory.py,
tests/e2e/test_policyd_directory.py.
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

    async def evaluate(self, request: PolicyRequest, now: float) -> actions.Action | Verdict:
        if not request.recipient:
            return DUNNO
        found = await resolve(self.ctx, request, request.recipient)
        if found.kind == "unknown":
            return Verdict(actions.reject(actions.USER_UNKNOWN), {"reason": "unknown_user"})
        return DUNNO
