"""lmtpd's decisions, sans-I/O: the reply for each recipient lookup, the per-user concurrency
limit, and the reply a delivery's result becomes.

sieve/delivery/lmtpd.py (the Twisted adapter) runs the lookups and deliveries in its thread
pool and only translates: it hands what came back (an entry, an exception, a DeliveryOutcome) to the
functions here and writes what they answer. Rules:
- a lookup the directory cannot answer (DirectoryUnavailable) gets the directory's own 4xx,
  any other lookup failure (a bug, a bad path) a 451 4.3.0: never a 5xx for our trouble;
- an unknown address is 550 5.1.1; an alias or group reaching us unexpanded is refused with
  550 5.1.1 under delivery_alias_expansion = "refuse", else accepted for group delivery;
- a user already receiving `lmtpd_user_concurrency_limit` messages (0: no limit) gets 451 4.3.0
  for one more (the MTA retries); `UserSlots` counts them on the reactor thread, with the
  reactor's clock, so `oldest()` tells how long the longest delivery has run;
- a delivery that ended in an exception instead of a DeliveryOutcome is a 451 4.3.0 (retried).
The connection's own ends (idle timeout, internal error) are sieve/delivery/lmtp.py's.
Talks to: nothing. Tests: tests/delivery/test_lmtpd_core.py
"""

from __future__ import annotations

import dataclasses
from typing import Any

from owlery.errors import DirectoryUnavailable
from owlery.reply import Reply
from sieve.delivery import replies


def lookup_failed(address: str, error: BaseException) -> Reply:
    """The reply when looking `address` up raised `error`."""
    if isinstance(error, DirectoryUnavailable):
        return error.reply.with_text(Reply.safe_text(f"<{address}> {error.reply.text}"))
    return replies.lookup_failed(address)


def recipient_reply(address: str, found: Any, *, is_group: bool, refuse_groups: bool) -> tuple[Reply, Any]:
    """(reply, what to deliver to) for the entry a lookup of `address` found (None: unknown)."""
    if found is None:
        return replies.user_unknown(address), None
    if is_group and refuse_groups:
        return replies.alias_refused(address), None
    return replies.rcpt_ok(address), found


def delivery_reply(address: str, result: Any) -> Reply:
    """The reply for one recipient from what its delivery returned: a DeliveryOutcome (its reply), a
    Reply, or anything else (a failure: retried)."""
    reply = getattr(result, "reply", None)
    if isinstance(reply, Reply):
        return reply
    if isinstance(result, Reply):
        return result
    return replies.internal_error(address)


def concurrency_refused(address: str) -> Reply:
    return replies.temporary(address, text=replies.T_CONCURRENCY)


@dataclasses.dataclass(frozen=True)
class Ticket:
    """One admitted delivery: whose, and since when (the reactor's clock)."""

    key: str
    started: float


class UserSlots:
    """Deliveries running per user against a limit (0: none). Not thread-safe: the reactor
    thread admits and releases."""

    def __init__(self, limit: int):
        self.limit = limit
        self._running: dict[str, list[Ticket]] = {}

    def admit(self, key: str, now: float) -> Ticket | None:
        """A ticket for one more delivery to `key`, or None when the user is at the limit."""
        if self.limit and self.running(key) >= self.limit:
            return None
        ticket = Ticket(key, now)
        self._running.setdefault(key, []).append(ticket)
        return ticket

    def release(self, ticket: Ticket, now: float) -> float:
        """The delivery ended; returns how long it ran."""
        running = self._running.get(ticket.key, [])
        if ticket in running:
            running.remove(ticket)
        if not running:
            self._running.pop(ticket.key, None)
        return max(0.0, now - ticket.started)

    def running(self, key: str) -> int:
        return len(self._running.get(key, ()))

    def __len__(self) -> int:
        return sum(len(r) for r in self._running.values())

    def oldest(self, now: float) -> float:
        """Seconds the longest-running delivery has taken so far (0 when none runs)."""
        return max((now - t.started for r in self._running.values() for t in r), default=0.0)
