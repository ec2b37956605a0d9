"""Connections the ManageSieve server keeps open, counted across connections, sans-I/O.

`ConnectionLimits` counts open connections in all and those not logged in per client
(owlery.login_limits.client_key: the IPv4 address, the IPv6 /64), as Dovecot's login processes
bound their clients; the adapter (sieve/managesieve/service.py) asks `admit()` before a session
starts and answers BYE to a connection past a limit. Failed logins are counted across
connections by owlery.login_limits.LoginFailures, as the web UI counts them.
Talks to: nothing. Tests: tests/managesieve/test_hostile_s20.py
"""

from __future__ import annotations

import collections


class ConnectionLimits:
    """Open connections: at most `total`, and at most `per_client` not logged in per client key."""

    def __init__(self, total: int, per_client: int):
        self.total, self.per_client = total, per_client
        self.open = 0
        self._unauthenticated: collections.Counter[str] = collections.Counter()

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
