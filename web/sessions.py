"""Server-side sessions (in memory, bounded) with their CSRF tokens.

A session id is 256 random bits (secrets.token_urlsafe), the only thing the cookie holds; the
session itself (who is logged in, admin or not, the CSRF synchronizer token, one-shot
notes) stays in this process. Sessions end after `lifetime` (absolute) or `idle` seconds
unused; logging in replaces the session id (no fixation). Logged-in sessions are one bounded
map, least recently used out first, where one user holds at most SESSIONS_PER_USER (past that
the user's own oldest ends): one password holder logging in again and again pushes out nobody.
Visitors not logged in (the login form, a release link's confirm page) are stored nowhere:
their id carries its time of issue and their CSRF token is an HMAC of the id under this
store's random key (`new_visitor`, `visitor`), so no flood of visitors, from any number of
addresses, can make another visitor's form expire (a stored, bounded map of them could be
emptied by fetching /login fast enough). `new` still makes a stored anonymous session (a
second bounded map that cannot push out a login). Memory: about 1 KiB a session, ~10 MiB for
10000. One process only: a restart logs everybody out and expires open forms.
Failed logins are counted by owlery.login_limits.LoginFailures (shared with ManageSieve).
Thread-safe (the adapter runs requests in a thread pool); `now` is always an argument.
Talks to: nothing. Tests: tests/web/test_sessions.py, tests/web/test_hostile_s19.py
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import hmac
import re
import secrets
import threading

SESSIONS_PER_USER = 20            # logins one address keeps at once
_VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{43}\.[0-9]{1,12}\Z")      # random . time of issue


@dataclasses.dataclass
class Session:
    sid: str
    csrf: str
    created: float
    last_seen: float
    user: str | None = None          # the canonical address once logged in
    admin: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)   # shown once on the next page
    owner: str = ""                  # whose share of the store it counts in: "user:<address>"

    def csrf_ok(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), token.encode("utf-8", "replace"))


def is_visitor_id(sid: str) -> bool:
    """True for an id `new_visitor` makes (a login form's), false for a login's."""
    return bool(_VISITOR_ID.match(sid))


class SessionStore:
    def __init__(self, *, lifetime: float, idle: float, max_sessions: int):
        self.lifetime, self.idle, self.max = lifetime, idle, max_sessions
        self._key = secrets.token_bytes(32)          # visitors' CSRF tokens; per process
        self._users: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._anon: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._owned: dict[str, collections.OrderedDict[str, None]] = {}     # owner -> its sids, LRU first
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
                    self._drop(table, sid)
                    return None
                s.last_seen = now
                table.move_to_end(sid)
                if s.owner and sid in self._owned.get(s.owner, ()):
                    self._owned[s.owner].move_to_end(sid)
                return s
        return None

    def new(self, now: float) -> Session:
        """A fresh anonymous session, stored (bounded apart from the logins)."""
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._put(self._anon, s)
        return s

    def new_visitor(self, now: float) -> Session:
        """A session for a visitor not logged in (a form's CSRF token), stored nowhere."""
        sid = f"{secrets.token_urlsafe(32)}.{int(now)}"
        return Session(sid, self._visitor_csrf(sid), now, now)

    def visitor(self, sid: str | None, now: float) -> Session | None:
        """The session `new_visitor` made with id `sid`, if it is one and not older than
        `lifetime`; else None. Any id of the right shape is one: its CSRF token is what makes
        it the visitor's own (a cookie and a form from this site, nothing an other site has)."""
        if not sid or not _VISITOR_ID.match(sid):
            return None
        issued = int(sid.rpartition(".")[2])
        if not 0 <= now - issued < self.lifetime:
            return None
        return Session(sid, self._visitor_csrf(sid), float(issued), now)

    def _visitor_csrf(self, sid: str) -> str:
        mac = hmac.new(self._key, b"owlery-web-visitor\0" + sid.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def login(self, old: Session | None, user: str, admin: bool, now: float) -> Session:
        """A new logged-in session (new id and CSRF token); the old one ends."""
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, user=user, admin=admin,
                    owner=f"user:{user.lower()}")
        with self._lock:
            if old is not None:
                self._drop(self._anon, old.sid)
                self._drop(self._users, old.sid)
            self._put(self._users, s)
        return s

    def end(self, session: Session) -> None:
        with self._lock:
            self._drop(self._anon, session.sid)
            self._drop(self._users, session.sid)

    def _put(self, table: collections.OrderedDict[str, Session], s: Session) -> None:
        table[s.sid] = s
        if s.owner:
            mine = self._owned.setdefault(s.owner, collections.OrderedDict())
            mine[s.sid] = None
            while len(mine) > SESSIONS_PER_USER:         # the owner's own least recently used
                oldest, _ = mine.popitem(last=False)
                table.pop(oldest, None)
        while len(table) > self.max:
            self._drop(table, next(iter(table)))

    def _drop(self, table: collections.OrderedDict[str, Session], sid: str) -> None:
        s = table.pop(sid, None)
        if s is None or not s.owner:
            return
        mine = self._owned.get(s.owner)
        if mine is not None:
            mine.pop(sid, None)
            if not mine:
                del self._owned[s.owner]


