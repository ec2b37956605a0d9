"""Rate-limit check: token buckets per SASL user, sender address or client IP, in the shared state store.

Messages are counted at END-OF-MESSAGE (one per message); recipients at RCPT (one per
recipient), or at END-OF-MESSAGE with `recipient_count` when ratelimit_recipients_at says so.
Each limit is `N/period` (burst N, refilled at N per period). Over a limit the request gets
`450 4.7.1` and the decision log line names the key (`ratelimit=sasl_username:alice`).
All buckets a request draws from are taken together, all or nothing (`StateStore.take_all`):
a deferred request costs no bucket anything. Buckets live in the state store (Redis for
several MX hosts: one atomic script per request), so a limit holds across hosts. Decisions
go to the store through the daemon's "state" worker thread, which takes every decision
queued meanwhile in one call (one Redis round trip, one SQLite commit), as greylist does.
Whitelisted clients, senders and users are not counted.
Talks to: the state store. Tests: tests/policyd/test_ratelimit.py, tests/e2e/test_greylist_shared_redis.py
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from owlery.reply import Reply
from owlery.settings import Networks, SettingType, Str, StrList, choice, parse_duration, registered, setting, table_of
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, CheckContext, Verdict
from policyd.netmatch import NetworkMatcher
from policyd.greylist_core import client_net
from policyd.sender import split_address, strip_extension

KEY_TYPES = ("sasl_username", "sender", "client_address")
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")


@dataclasses.dataclass(frozen=True)
class Rate:
    count: int
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        p = int(self.period) if float(self.period).is_integer() else self.period
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if isinstance(p, int) and p % size == 0:
                return f"{self.count}/{p // size}{unit}"
        return f"{self.count}/{p}s"


def parse_rate(text: str) -> Rate:
    """`"100/1h"` -> Rate(100, 3600.0)."""
    m = _RATE_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"expected a rate like \"100/1h\", got {text!r}")
    count, period = int(m.group(1)), parse_duration(m.group(2))
    if count < 1 or period <= 0:
        raise ValueError(f"a rate needs a positive count and period, got {text!r}")
    return Rate(count, period)


Limits = table_of(SettingType("rate", parse_rate, str), keys=registered(KEY_TYPES, "key"),
                  name="table of key = \"N/period\"")

RATELIMIT_MESSAGES = setting("ratelimit_messages", Limits, {},
                             "Message limits per key, e.g. { sasl_username = \"500/1d\", client_address = "
                             "\"100/1h\" }; keys: sasl_username, sender, client_address. Counted at "
                             "END-OF-MESSAGE.")
RATELIMIT_RECIPIENTS = setting("ratelimit_recipients", Limits, {},
                               "Recipient limits per key, same form as ratelimit_messages.")
RATELIMIT_RECIPIENTS_AT = setting("ratelimit_recipients_at", choice("rcpt", "end-of-message"), "rcpt",
                                  "Count recipients one by one at RCPT (refusing the extra ones), or all "
                                  "at once at END-OF-MESSAGE with recipient_count (deferring the message).")
RATELIMIT_WHITELIST_CLIENTS = setting("ratelimit_whitelist_clients", Networks, ["127.0.0.0/8", "::1/128"],
                                      "Clients never counted.")
RATELIMIT_WHITELIST_SENDERS = setting("ratelimit_whitelist_senders", StrList, [],
                                      "Senders never counted: addresses, or @domain for a whole domain.")
RATELIMIT_WHITELIST_USERS = setting("ratelimit_whitelist_users", StrList, [],
                                    "SASL user names never counted.")
RATELIMIT_REPLY_TEXT = setting("ratelimit_reply_text", Str, "Rate limit reached, please try again later",
                               "Text of the 450 4.7.1 reply when a limit is reached.")
RATELIMIT_IPV6_PREFIX = 64   # an IPv6 client is counted by its /64: one host owns a whole /64


def key_value(kind: str, request: Any) -> str | None:
    """The identity a bucket of this kind counts for this request, or None (not applicable)."""
    if kind == "sasl_username":
        return request.sasl_username.lower() or None
    if kind == "sender":
        if not request.sender:
            return None
        local, domain = split_address(request.sender.lower())
        return f"{strip_extension(local)}@{domain}" if domain else local
    if kind == "client_address":
        return client_net(request.client_address, 32, RATELIMIT_IPV6_PREFIX) if request.client_address else None
    raise ValueError(kind)


class RateLimitCheck(Check):
    name = "ratelimit"
    states = frozenset({"RCPT", "END-OF-MESSAGE"})
    enabled_by_default = False   # opt in: policyd_checks = { RCPT = [...], "END-OF-MESSAGE" = ["ratelimit"] }

    def __init__(self, ctx: CheckContext):
        super().__init__(ctx)
        s = ctx.settings
        self.store = ctx.state
        self.messages = s.ratelimit_messages
        self.recipients = s.ratelimit_recipients
        self.recipients_at = s.ratelimit_recipients_at
        self.skip_clients = NetworkMatcher(s.ratelimit_whitelist_clients)
        self.skip_senders = frozenset(x.lower() for x in s.ratelimit_whitelist_senders)
        self.skip_users = frozenset(x.lower() for x in s.ratelimit_whitelist_users)
        self.reply = Reply(450, "4.7.1", Reply.safe_text(s.ratelimit_reply_text))
        self.timeout = s.state_timeout

    def _whitelisted(self, request: Any) -> bool:
        if request.client_address in self.skip_clients:
            return True
        if request.sasl_username and request.sasl_username.lower() in self.skip_users:
            return True
        sender = request.sender.lower()
        if sender and (sender in self.skip_senders or "@" + split_address(sender)[1] in self.skip_senders):
            return True
        return False

    def _buckets(self, request: Any) -> list[tuple[str, str, Rate, int]]:
        """(store key, log name, rate, cost) for every bucket this request draws from."""
        state = request.protocol_state
        plan: list[tuple[str, dict[str, Rate], int]] = []
        if state == "END-OF-MESSAGE":
            plan.append(("m", self.messages, 1))
            if self.recipients_at == "end-of-message":
                plan.append(("r", self.recipients, max(1, request.recipient_count)))
        elif state == "RCPT" and self.recipients_at == "rcpt":
            plan.append(("r", self.recipients, 1))
        out = []
        for kind, limits, cost in plan:
            for key_type, rate in limits.items():
                value = key_value(key_type, request)
                if value is None:
                    continue
                out.append((f"rl:{kind}:{key_type}:{value}", f"{key_type}:{value}", rate, cost))
        return out

    def _batch(self, items: list[tuple[list, float]]) -> list[tuple[bool, Any]]:
        """In the state worker thread: every decision queued meanwhile in one store call (one
        Redis round trip, one SQLite commit), each one all or nothing."""
        results = self.store.take_all_many(items)
        return [(False, r) if isinstance(r, Exception) else (True, r) for r in results]

    async def evaluate(self, request, now):
        if self._whitelisted(request):
            return DUNNO
        buckets = self._buckets(request)
        if not buckets:
            return DUNNO
        takes = [(key, cost, rate.per_second, rate.count) for key, _, rate, cost in buckets]
        results = await self.ctx.run_batched("state", self._batch, (takes, now), timeout=self.timeout)
        refused = [(b, t) for b, t in zip(buckets, results) if not t.allowed]
        if not refused:
            return DUNNO
        # Name the bucket that holds the request back longest: the message can pass once it
        # has refilled (the others refill sooner). None (cost over the burst) is forever.
        (key, name, rate, _), taken = max(
            refused, key=lambda bt: float("inf") if bt[1].retry_after is None else bt[1].retry_after)
        kind = key.split(":", 2)[1]
        fields = {"ratelimit": name, "limit": f"{rate} {'messages' if kind == 'm' else 'recipients'}"}
        if taken.retry_after is not None:
            fields["retry_after"] = int(taken.retry_after) + 1
        else:
            fields["retry_after"] = "never (recipient_count exceeds the burst)"
        return Verdict(actions.defer(self.reply), fields)
