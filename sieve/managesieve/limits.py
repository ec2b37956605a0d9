"""Connections the ManageSieve server keeps open, counted across connections, sans-I/O.

`ConnectionLimits` counts open connections in all, those not logged in per client
(owlery.login_limits.client_key: the IPv4 address, the IPv6 /64), as Dovecot's login processes
bound their clients, and those logged in per user and client, as Dovecot's
mail_max_userip_connections does (one account, stolen or scripted, cannot take every slot); the
adapter (sieve/managesieve/service.py) asks `admit()` before a session starts and answers BYE
to a connection past a limit, and the session asks its `UserConnectionSlot` before it says "Logged in". Failed logins are counted across
connections by owlery.login_limits.LoginFailures, as the web UI counts them.
Talks to: nothing. Tests: tests/managesieve/test_hostile_s20.py
"""

from __future__ import annotations

import collections


class ConnectionLimits:
    """Open connections: at most `total`, at most `per_client` not logged in per client key, and
    at most `per_user` logged in as one user from one client key."""

    def __init__(self, total: int, per_client: int, per_user: int = 10):
        self.total, self.per_client, self.per_user = total, per_client, per_user
        self.open = 0
        self._unauthenticated: collections.Counter[str] = collections.Counter()
        self._users: collections.Counter[tuple[str, str]] = collections.Counter()

    def user_slots(self, key: str) -> UserConnectionSlot:
        """What one connection from client `key` asks before its login succeeds."""
        return UserConnectionSlot(self, key)

    def admit(self, key: str) -> str | None:
        """Count a new connection (not logged in) and return None, or say which limit refuses it."""
        if self.open >= self.total:
            return "total"
        if self._unauthenticated[key] >= self.per_client:
            return "client"
        self.open += 1
        self._unauthenticated[key] += 1
        return None

    def logged_in(self, key: str) -> None:
        self._drop(key)

    def logged_out(self, key: str) -> None:
        self._unauthenticated[key] += 1

    def closed(self, key: str, authenticated: bool) -> None:
        self.open -= 1
        if not authenticated:
            self._drop(key)

    def _drop(self, key: str) -> None:
        self._unauthenticated[key] -= 1
        if self._unauthenticated[key] <= 0:
            del self._unauthenticated[key]


class UserConnectionSlot:
    """One connection's view of the per-user limit: `take(user)` before the login succeeds
    (False: the user has `per_user` connections from this client already), `release()` when it
    logs out or closes. Releasing twice, or without a take, does nothing."""

    def __init__(self, limits: ConnectionLimits, key: str):
        self.limits, self.key = limits, key
        self.user: str | None = None

    def take(self, user: str) -> bool:
        self.release()
        pair = (user.lower(), self.key)
        if self.limits._users[pair] >= self.limits.per_user:
            return False
        self.limits._users[pair] += 1
        self.user = pair[0]
        return True

    def release(self) -> None:
        if self.user is None:
            return
        pair, self.user = (self.user, self.key), None
        self.limits._users[pair] -= 1
        if self.limits._users[pair] <= 0:
            del self.limits._users[pair]
