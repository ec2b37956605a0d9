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
- a connection's client must make progress (`ClientDeadline`: each whole command line within
  lmtpd_idle_timeout, DATA at lmtpd_data_min_rate), and lmtpd_max_connections are open at
  most (`ConnectionSlots`).
The connection's own ends (idle timeout, internal error) are sieve/delivery/lmtp.py's.
Talks to: nothing. Tests: tests/delivery/test_lmtpd_core.py, tests/delivery/test_lmtpd_hostile_s20.py
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


class ClientDeadline:
    """When a connection's client has taken too long, from the progress it made (sans-I/O: the
    adapter reports progress with the reactor's `now` and arms its timer for `remaining(now)`).

    A whole command line sets it `idle` seconds ahead: the bytes of an unfinished line earn
    nothing, so a command dripped a byte at a time is cut off (Twisted's TimeoutMixin restarted
    on every read). DATA octets push it `octets / min_rate` seconds further, so the whole
    message must arrive within `idle` + size / min_rate of its DATA command: a real MTA at any
    rate above `min_rate` is never cut off, a drip is, whatever the message's size."""

    def __init__(self, idle: float, min_rate: float, now: float):
        self.idle = idle
        self.min_rate = min_rate
        self.expires = now + idle

    def progress(self, now: float, *, commands: int = 0, data_octets: int = 0) -> bool:
        """Whole command lines and DATA octets consumed since the last call; True when the
        deadline moved."""
        if commands:
            self.expires = now + self.idle
        if data_octets:
            self.expires += data_octets / self.min_rate
        return bool(commands or data_octets)

    def restart(self, now: float) -> None:
        """A fresh start (an answer the client waited for went out)."""
        self.expires = now + self.idle

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires - now)


class ConnectionSlots:
    """Connections open at once against `limit` (lmtpd_max_connections). Reactor thread only."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0

    def admit(self) -> bool:
        """One more connection, unless `limit` are open (then it is answered 421 4.3.2)."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open = max(0, self.open - 1)
