"""Server-side sessions (in memory, bounded) with their CSRF tokens, and the login failure limiter.

A session id is 256 random bits (secrets.token_urlsafe), the only thing the cookie holds; the
session itself (who is logged in, admin or not, the CSRF synchronizer token, one-shot
notes) stays in this process. Sessions end after `lifetime` (absolute) or `idle` seconds
unused; logging in replaces the session id (no fixation). Two bounded maps, least recently
used out first: logged-in sessions, and anonymous ones (the login form's and the release
links'), so a flood of anonymous visitors cannot push out a login. Memory: about 1 KiB a
session, ~20 MiB for 10000 of each. One process only: a restart logs everybody out.
Thread-safe (the adapter runs requests in a thread pool); `now` is always an argument.
Talks to: nothing. Tests: tests/web/test_sessions.py
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import secrets
import threading


@dataclasses.dataclass
class Session:
    sid: str
    csrf: str
    created: float
    last_seen: float
    user: str | None = None          # the canonical address once logged in
    admin: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)   # shown once on the next page

    def csrf_ok(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), token.encode("utf-8", "replace"))


class SessionStore:
    def __init__(self, *, lifetime: float, idle: float, max_sessions: int):
        self.lifetime, self.idle, self.max = lifetime, idle, max_sessions
        self._users: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._anon: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users) + len(self._anon)

    def get(self, sid: str | None, now: float) -> Session | None:
        """The live session with that id (touched), or None."""
        if not sid:
            return None
        with self._lock:
            for table in (self._users, self._anon):
                s = table.get(sid)
                if s is None:
                    continue
                if now - s.created >= self.lifetime or now - s.last_seen >= self.idle:
                    del table[sid]
                    return None
                s.last_seen = now
                table.move_to_end(sid)
                return s
        return None

    def new(self, now: float) -> Session:
        """A fresh anonymous session (for the CSRF token of a form shown before login)."""
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._put(self._anon, s)
        return s

    def login(self, old: Session | None, user: str, admin: bool, now: float) -> Session:
        """A new logged-in session (new id and CSRF token); the old one ends."""
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, user=user, admin=admin)
        with self._lock:
            if old is not None:
                self._anon.pop(old.sid, None)
                self._users.pop(old.sid, None)
            self._put(self._users, s)
        return s

    def end(self, session: Session) -> None:
        with self._lock:
            self._anon.pop(session.sid, None)
            self._users.pop(session.sid, None)

    def _put(self, table: collections.OrderedDict[str, Session], s: Session) -> None:
        table[s.sid] = s
        while len(table) > self.max:
            table.popitem(last=False)


class LoginLimiter:
    """Failed logins counted per address and per client within a sliding window."""

    MAX_KEYS = 100_000            # keys remembered per kind; the oldest go first

    def __init__(self, *, per_address: int, per_client: int, window: float):
        self.per_address, self.per_client, self.window = per_address, per_client, window
        self._failures: dict[str, collections.OrderedDict[str, collections.deque[float]]] = {
            "address": collections.OrderedDict(), "client": collections.OrderedDict()}
        self._lock = threading.Lock()

    def _count(self, kind: str, key: str, now: float) -> collections.deque[float] | None:
        times = self._failures[kind].get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[kind][key]
            return None
        return times

    def blocked(self, address: str, client: str, now: float) -> str | None:
        """Which limit stops this login now ("address" or "client"), or None."""
        with self._lock:
            a = self._count("address", address.lower(), now)
            if a is not None and len(a) >= self.per_address:
                return "address"
            c = self._count("client", client, now)
            if c is not None and len(c) >= self.per_client:
                return "client"
        return None

    def failed(self, address: str, client: str, now: float) -> None:
        with self._lock:
            for kind, key in (("address", address.lower()), ("client", client)):
                table = self._failures[kind]
                table.setdefault(key, collections.deque()).append(now)
                table.move_to_end(key)
                while len(table) > self.MAX_KEYS:
                    table.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """A right password clears the address's count (not the client's: one good account
        must not reset a guesser's budget for the others)."""
        with self._lock:
            self._failures["address"].pop(address.lower(), None)
