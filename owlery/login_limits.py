"""Failed-login limits shared by the services users log in to (owlery web, ManageSieve), sans-I/O.

`LoginFailures` counts failed logins per login and per client within a sliding window. A login
counts under `login_key`, one key for every spelling the directory reads as that account (case,
<>, blanks, final dots of the domain), so varying the spelling buys no guesses; a client counts
under `client_key`, its IPv4 address or IPv6 /64 (one host's usual share), so reconnecting buys
none either. `attempt` checks both limits and counts the attempt as failed in one step, before
the password is checked: the adapters check passwords in several threads, and a limit checked
before and counted after let a burst of guesses through side by side (8 threads: 8 guesses past
a limit of 3). `succeeded` and `undo` take back what the answer showed was no failure.
A per-login limit lets anyone lock a user out by guessing wrong for them; so a client the user
logged in from within KNOWN_CLIENT_TIME is not held by it (only by its per-client limit), as
OWASP's "device cookie" advice has it: the user's own webmail host or laptop keeps working
while a stranger's guesses stop. Memory is bounded (MAX_KEYS per kind, oldest out first);
thread-safe; `now` is always an argument.
Talks to: nothing. Tests: tests/web/test_sessions.py, tests/web/test_hostile_s19.py,
tests/managesieve/test_hostile_s20.py, tests/fuzz/test_login_limits_model.py
"""

from __future__ import annotations

import collections
import ipaddress
import threading


def client_key(address: str) -> str:
    """What a client's failed logins and connections count under: the IPv4 address (an
    IPv4-mapped IPv6 one too), the IPv6 /64; anything else as it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def login_key(username: str) -> str:
    """What one account's failed logins count under: the spellings the directory takes for one
    address (owlery.directory.base.parse_address: blanks around it, <> around it, any case,
    final dots of the domain; LDAP matches mail case-insensitively) all give one key.
    "alice@example.test...." logged in as alice, but counted apart: 5 guesses per spelling."""
    text = username.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.casefold().rpartition("@")
    return f"{local}@{domain.rstrip('.')}" if at else domain.rstrip(".")


class LoginFailures:
    """Failed logins per login (`per_login`) and per client (`per_client`) within `window` seconds;
    a limit reached is named "login" or "client"."""

    MAX_KEYS = 100_000            # keys remembered per kind; the oldest go first
    KNOWN_CLIENT_TIME = 30 * 86400  # seconds a successful login exempts its client from the per-login limit

    def __init__(self, *, per_login: int, per_client: int, window: float):
        self.per_login, self.per_client, self.window = per_login, per_client, window
        self._failures: dict[str, collections.OrderedDict[str, collections.deque[float]]] = {
            "login": collections.OrderedDict(), "client": collections.OrderedDict()}
        self._known: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def blocked(self, login: str, client: str, now: float) -> str | None:
        """Which limit stops this login now ("login" or "client"), or None."""
        with self._lock:
            return self._limit(login, client, now)

    def attempt(self, login: str, client: str, now: float) -> str | None:
        """Which limit stops this login now ("login" or "client"), or None: then the attempt
        is counted as failed until `succeeded` or `undo` says otherwise."""
        with self._lock:
            limit = self._limit(login, client, now)
            if limit is None:
                self._add(login, client, now)
        return limit

    def failed(self, login: str, client: str, now: float) -> None:
        with self._lock:
            self._add(login, client, now)

    def succeeded(self, login: str, client: str | None = None, now: float | None = None) -> None:
        """A right password clears the login's count (not the client's: one good account must
        not reset a guesser's budget for the others), and takes back its own `attempt` from the
        client's count when `client` and `now` are given."""
        with self._lock:
            self._failures["login"].pop(login_key(login), None)
            if client is not None and now is not None:
                self._take_back("client", client, now)
                pair = (login_key(login), client)
                self._known[pair] = now
                self._known.move_to_end(pair)
                while len(self._known) > self.MAX_KEYS:
                    self._known.popitem(last=False)

    def undo(self, login: str, client: str, now: float) -> None:
        """Take back an `attempt` that was no failure (the directory could not answer)."""
        with self._lock:
            self._take_back("login", login_key(login), now)
            self._take_back("client", client, now)

    def _limit(self, login: str, client: str, now: float) -> str | None:
        times = self._count("login", login_key(login), now)
        if times is not None and len(times) >= self.per_login and not self._is_known(login, client, now):
            return "login"
        times = self._count("client", client, now)
        if times is not None and len(times) >= self.per_client:
            return "client"
        return None

    def _is_known(self, login: str, client: str, now: float) -> bool:
        """The login succeeded from this client within KNOWN_CLIENT_TIME."""
        last = self._known.get((login_key(login), client))
        return last is not None and now - last < self.KNOWN_CLIENT_TIME

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

    def _add(self, login: str, client: str, now: float) -> None:
        for kind, key in (("login", login_key(login)), ("client", client)):
            table = self._failures[kind]
            table.setdefault(key, collections.deque()).append(now)
            table.move_to_end(key)
            while len(table) > self.MAX_KEYS:
                table.popitem(last=False)

    def _take_back(self, kind: str, key: str, now: float) -> None:
        times = self._failures[kind].get(key)
        if times is not None and now in times:
            times.remove(now)
            if not times:
                del self._failures[kind][key]
