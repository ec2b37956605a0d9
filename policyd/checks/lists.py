"""List posting protection (RCPT): only allowed senders may post to a protected list (550 5.7.1).

A protected address (files_lists, or an LDAP group matched by ldap_list_filter) lists who
may post: `authenticated` (any SASL-authenticated client), `members` (the envelope
sender or the SASL user is a member of the list), explicit sender addresses, sender
domains, client networks. Everyone else gets 550 5.7.1.
The policy also applies along the expansion: an address that is no list itself but reaches
protected lists through aliases, forwards or a domain alias (the directory's Recipient.lists:
the first protected list on each path) is refused unless EVERY one of those lists allows the
sender, so `alias -> list` is no way around a list's policy. A list inside a protected list
is governed by the outer list. The envelope sender can be
forged; `authenticated` and networks cannot, so prefer them for lists that matter.
Postfix must call the policy service for authenticated clients too: keep
check_policy_service in smtpd_recipient_restrictions and relay control in
smtpd_relay_restrictions (what `owlery postfix` prints).
Talks to: the directory (policyd.lookup). Tests: tests/policyd/test_checks_directory.py,
tests/policyd/test_alias_backscatter.py, tests/e2e/test_policyd_directory.py (real Postfix and slapd, a member authenticated with SASL).
"""

from __future__ import annotations

from owlery.directory import ListPolicy, parse_address
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, Verdict
from policyd.lookup import identities, list_policy, resolve
from policyd.netmatch import address_in
from policyd.protocol import PolicyRequest


class ListsCheck(Check):
    name = "lists"
    states = frozenset({"RCPT"})
    enabled_by_default = True

    async def evaluate(self, request: PolicyRequest, now: float) -> actions.PolicyAction | Verdict:
        if not request.recipient:
            return DUNNO
        policy = await list_policy(self.ctx, request, request.recipient)
        if policy is not None:
            why = await self._allowed(request, policy)
            if why:
                return Verdict(DUNNO, {"list": policy.address, "allowed": why})
            return Verdict(actions.reject(actions.LIST_RESTRICTED), {"list": policy.address})
        # Not a list itself: the protected lists its expansion reaches must each allow the sender.
        found = await resolve(self.ctx, request, request.recipient)
        allowed = []
        for address in found.lists:
            via = await list_policy(self.ctx, request, address)
            if via is None:
                continue             # no longer a list (the directory changed between lookups)
            why = await self._allowed(request, via)
            if not why:
                return Verdict(actions.reject(actions.LIST_RESTRICTED), {"list": via.address, "via": request.recipient})
            allowed.append(f"{via.address}:{why}")
        if allowed:
            return Verdict(DUNNO, {"via": request.recipient, "allowed": ",".join(allowed)})
        return DUNNO

    async def _allowed(self, request: PolicyRequest, policy: ListPolicy) -> str | None:
        settings = self.ctx.settings
        sasl = request.sasl_username
        if sasl and policy.allow_authenticated:
            return "authenticated"
        if address_in(request.client_address, policy.networks):
            return "network"
        sender = None
        if request.sender:
            try:
                sender = parse_address(request.sender, settings.directory_recipient_delimiter,
                                       settings.directory_local_part_case_sensitive)
            except ValueError:
                sender = None
        if sender is not None:
            if sender.base in policy.senders:
                return "sender"
            if sender.domain in policy.domains:
                return "domain"
        if not policy.allow_members:
            return None
        candidates = []
        if sender is not None:
            candidates.append(sender.base)
        if sasl:
            # A bare SASL login names a user of the list's own domain.
            login = sasl if "@" in sasl else f"{sasl}@{policy.address.rpartition('@')[2]}"
            candidates.append(login.lower() if not settings.directory_local_part_case_sensitive else login)
        for who in candidates:
            if who in policy.members:
                return "member"
        if policy.member_ids:
            for who in candidates:
                if await identities(self.ctx, request, who) & policy.member_ids:
                    return "member"
        return None
