"""Greylisting decisions: triplet keys, postgrey-format whitelists and the state-store walk.

`Greylister.decide(store, client_address, client_name, sender, recipient, now)` is the
whole decision against a `owlery.state.StateStore` (blocking; policyd runs it in its thread
pool). Pure helpers (`client_net`, `triplet_key`, whitelist matching, reply text) take
values and `now`; nothing here reads the clock or a setting.

State kept (keys under "gl:"): `gl:t:<net>/<sender>/<rcpt>` = first-seen time while
waiting (expires after the retry window), `<first> <passed>` once passed (expires
after max age, refreshed at each pass); `gl:a:<ip>` = passes counted for the client
auto-whitelist (at most one per hour, gated by `gl:h:<ip>`), expiring after max age.
Talks to: the state store, whitelist files. Tests: tests/policyd/test_greylist_core.py
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Sequence

from policyd.sender import normalise_sender, split_address, strip_extension

log = logging.getLogger("owlery.policyd")

TRIPLET_PREFIX = "gl:t:"
AWL_PREFIX = "gl:a:"
AWL_GATE_PREFIX = "gl:h:"
AWL_COUNT_INTERVAL = 3600.0   # a client's passes count at most once an hour (postgrey)
FILE_CHECK_INTERVAL = 1.0     # stat whitelist files at most once a second
_MATCH_MEMO_MAX = 65536       # whitelist answers remembered per list
MAX_FIELD = 512               # postgrey truncates names and values to 512 bytes too


# --- keys -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=65536)   # clients come back; ipaddress parsing is slow
def client_net(address: str, v4_prefix: int, v6_prefix: int) -> str:
    """The client's network as text: 192.0.2.77 -> 192.0.2.0/24 (prefix 32/128 keeps the host).

    An address that does not parse is kept as given (lower-cased), so it still keys.
    """
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip().lower()[:MAX_FIELD]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = v4_prefix if ip.version == 4 else v6_prefix
    net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def triplet_key(net: str, sender: str, recipient: str, *, privacy: bool = False) -> str:
    """The store key of a (network, normalised sender, recipient) triplet."""
    body = f"{net}/{normalise_sender(sender)[:MAX_FIELD] or '<>'}/{recipient.strip().lower()[:MAX_FIELD]}"
    if privacy:
        body = hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()
    return TRIPLET_PREFIX + body


def awl_key(address: str) -> str:
    return AWL_PREFIX + address.strip().lower()


def format_reply_text(template: str, seconds_left: int, recipient: str) -> str:
    """Expand %s (seconds left), %r (recipient domain) and %% in the greylist reply text."""
    domain = split_address(recipient.strip().lower())[1] or "unknown"
    return re.sub(r"%([sr%])", lambda m: {"s": str(seconds_left), "r": domain, "%": "%"}[m.group(1)], template)


def format_header(template: str, delayed: int, hostname: str, date: str) -> str:
    """Expand %t (seconds delayed), %h (host), %d (date), %% in the X-Greylist header."""
    return re.sub(r"%([thd%])",
                  lambda m: {"t": str(delayed), "h": hostname, "d": date, "%": "%"}[m.group(1)], template)


# --- whitelists (postgrey's file formats) -------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClientWhitelist:
    """Clients by name suffix (`example.com` matches it and its subdomains), IP, CIDR,
    partial IPv4 (`192.0.2` = /24) or `/regex/` (matched against the client name)."""

    domains: frozenset[str] = frozenset()
    networks: tuple = ()
    regexes: tuple = ()

    @classmethod
    def parse(cls, lines: Iterable[str], source: str = "<list>") -> "ClientWhitelist":
        domains, networks, regexes = set(), [], []
        for number, raw in enumerate(lines, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                if len(line) > 2 and line.startswith("/") and line.endswith("/"):
                    regexes.append(re.compile(line[1:-1], re.I))
                elif re.fullmatch(r"\d{1,3}(\.\d{1,3}){0,2}", line):
                    # postgrey: a partial dotted quad is a prefix on octet boundaries
                    parts = line.split(".")
                    networks.append(ipaddress.ip_network(
                        ".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}"))
                elif re.fullmatch(r"[0-9a-fA-F:.]+(/\d+)?", line) and (":" in line or line.count(".") == 3):
                    networks.append(ipaddress.ip_network(line, strict=False))
                else:
                    domains.add(line.lower().rstrip("."))
            except (re.error, ValueError) as e:
                log.warning("policyd: %s:%d: ignoring whitelist entry %r: %s", source, number, line, e)
        return cls(frozenset(domains), tuple(networks), tuple(regexes))

    def matches(self, address: str, name: str) -> bool:
        # Answers are kept per list (a changed file makes a new list): the same clients come
        # back all day, and the network scan and regexes are the costly part.
        memo = self.__dict__.setdefault("_memo", {})
        got = memo.get((address, name))
        if got is None:
            if len(memo) >= _MATCH_MEMO_MAX:
                memo.clear()
            got = memo[(address, name)] = self._matches(address, name)
        return got

    def _matches(self, address: str, name: str) -> bool:
        if self.networks and address:
            try:
                ip = ipaddress.ip_address(address)
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                if any(ip in net for net in self.networks if net.version == ip.version):
                    return True
            except ValueError:
                pass  # not an address: only the name can match
        name = name.lower().rstrip(".")
        if name and name != "unknown":
            if self.domains:
                labels = name.split(".")
                for i in range(len(labels)):
                    if ".".join(labels[i:]) in self.domains:
                        return True
            if any(rx.search(name) for rx in self.regexes):
                return True
        return False

    def __or__(self, other: "ClientWhitelist") -> "ClientWhitelist":
        return ClientWhitelist(self.domains | other.domains, self.networks + other.networks,
                               self.regexes + other.regexes)


@dataclasses.dataclass(frozen=True)
class RecipientWhitelist:
    """Recipients by `user@` (any domain; `user+ext@` too), `user@domain`, `domain`
    (and its subdomains) or `/regex/` (matched against the whole address)."""

    users: frozenset[str] = frozenset()
    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    regexes: tuple = ()

    @classmethod
    def parse(cls, lines: Iterable[str], source: str = "<list>") -> "RecipientWhitelist":
        users, addresses, domains, regexes = set(), set(), set(), []
        for number, raw in enumerate(lines, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if len(line) > 2 and line.startswith("/") and line.endswith("/"):
                try:
                    regexes.append(re.compile(line[1:-1], re.I))
                except re.error as e:
                    log.warning("policyd: %s:%d: ignoring whitelist entry %r: %s", source, number, line, e)
            elif line.endswith("@"):
                users.add(line[:-1].lower())
            elif "@" in line:
                addresses.add(line.lower())
            else:
                domains.add(line.lower().rstrip("."))
        return cls(frozenset(users), frozenset(addresses), frozenset(domains), tuple(regexes))

    def matches(self, recipient: str) -> bool:
        memo = self.__dict__.setdefault("_memo", {})     # as ClientWhitelist.matches
        got = memo.get(recipient)
        if got is None:
            if len(memo) >= _MATCH_MEMO_MAX:
                memo.clear()
            got = memo[recipient] = self._matches(recipient)
        return got

    def _matches(self, recipient: str) -> bool:
        if not (self.users or self.addresses or self.domains or self.regexes):
            return False
        rcpt = recipient.strip().lower()
        local, domain = split_address(rcpt)
        base = strip_extension(local)
        if local in self.users or base in self.users:
            return True
        if rcpt in self.addresses or f"{base}@{domain}" in self.addresses:
            return True
        if domain and self.domains:
            labels = domain.split(".")
            if any(".".join(labels[i:]) in self.domains for i in range(len(labels))):
                return True
        return any(rx.search(rcpt) for rx in self.regexes)

    def __or__(self, other: "RecipientWhitelist") -> "RecipientWhitelist":
        return RecipientWhitelist(self.users | other.users, self.addresses | other.addresses,
                                  self.domains | other.domains, self.regexes + other.regexes)


class WhitelistFiles:
    """Whitelist files, re-read when one changes (checked at most once a second, by `now`).

    Missing files count as empty (postgrey's `.local` files are optional too). A file that
    cannot be read keeps the last good list and logs a warning.
    """

    def __init__(self, paths: Sequence[str], parse):
        self.paths = tuple(paths)
        self._parse = parse
        self._stamp: tuple | None = None
        self._checked = float("-inf")
        self._parts: dict[str, object] = {}
        self.value = parse([])

    def _signature(self) -> tuple:
        sig = []
        for p in self.paths:
            try:
                st = os.stat(p)
                sig.append((p, st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                sig.append((p, None))
            except OSError as e:
                sig.append((p, "error", str(e)))
        return tuple(sig)

    def current(self, now: float):
        if now - self._checked < FILE_CHECK_INTERVAL and self._stamp is not None:
            return self.value
        self._checked = now
        sig = self._signature()
        if sig == self._stamp:
            return self.value
        combined = self._parse([])
        for path in self.paths:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    part = self._parse(f.read().splitlines(), path)
            except FileNotFoundError:
                part = self._parse([])
            except OSError as e:
                log.warning("policyd: cannot read whitelist %s: %s; keeping the previous entries", path, e)
                part = self._parts.get(path, self._parse([]))
            self._parts[path] = part
            combined = combined | part
        self.value = combined
        self._stamp = sig
        return self.value


# --- the decision -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GreylistPolicy:
    delay: float = 300.0
    retry_window: float = 2 * 86400.0
    max_age: float = 35 * 86400.0
    v4_prefix: int = 24
    v6_prefix: int = 64
    auto_whitelist_clients: int = 5   # 0 disables
    privacy: bool = False


@dataclasses.dataclass(frozen=True)
class GreylistResult:
    """What happened: `outcome` is one of
    greylisted (defer; `seconds_left`), passed (first accepted retry; `delayed`),
    known (a triplet that passed before), auto-whitelisted (client passed often enough)."""

    outcome: str
    key: str
    seconds_left: int = 0
    delayed: int = 0
    new: bool = False          # greylisted: this was the first attempt
    first_seen: float = 0.0    # greylisted: when the store first saw the triplet

    @property
    def deferred(self) -> bool:
        return self.outcome == "greylisted"


def _seconds(value: float) -> int:
    # Round up so the client is never told to come back before the delay is over.
    whole = int(value)
    return whole + (1 if value > whole else 0)


class Greylister:
    """The greylist state machine over a StateStore (one blocking call per decision)."""

    def __init__(self, policy: GreylistPolicy):
        self.policy = policy

    def _count_pass(self, store, client_address: str, now: float) -> None:
        p = self.policy
        if p.auto_whitelist_clients <= 0 or not client_address:
            return
        ip = client_address.strip().lower()
        if store.add(AWL_GATE_PREFIX + ip, "1", AWL_COUNT_INTERVAL, now):
            store.incr(awl_key(ip), 1, p.max_age, now)

    def decide(self, store, client_address: str, sender: str, recipient: str, now: float) -> GreylistResult:
        """One atomic step: one Lua call on Redis, one transaction on SQLite (a lock in memory)."""
        key = self.key(client_address, sender, recipient)
        run_lua = getattr(store, "run_lua", None)
        if run_lua is not None:
            return self._decide_lua(run_lua, key, client_address, now)
        with store.transaction():
            return self._decide(store, key, client_address, now)

    def _decide(self, store, key: str, client_address: str, now: float) -> GreylistResult:
        p = self.policy
        if p.auto_whitelist_clients > 0 and client_address:
            awl, record = store.get_many([awl_key(client_address), key], now)
            if awl is not None and int(awl) >= p.auto_whitelist_clients:
                self._count_pass(store, client_address, now)
                return GreylistResult("auto-whitelisted", key)
        else:
            record = store.get(key, now)
        for _ in range(3):
            if record is None:
                if store.add(key, repr(float(now)), p.retry_window, now):
                    return GreylistResult("greylisted", key, seconds_left=_seconds(p.delay), new=True,
                                          first_seen=now)
                record = store.get(key, now)   # another host or thread created it just now
                continue
            fields = record.split()
            first = float(fields[0])
            if len(fields) > 1:   # passed before
                store.set(key, record, p.max_age, now)
                self._count_pass(store, client_address, now)
                return GreylistResult("known", key)
            waited = now - first
            if waited >= p.delay:
                store.set(key, f"{fields[0]} {float(now)!r}", p.max_age, now)
                self._count_pass(store, client_address, now)
                return GreylistResult("passed", key, delayed=int(waited))
            return GreylistResult("greylisted", key, seconds_left=_seconds(p.delay - waited), first_seen=first)
        raise RuntimeError(f"greylist record {key} keeps vanishing")  # pragma: no cover - store bug

    def decide_many(self, store, items: Sequence[tuple[str, str, str, float]]) -> list[tuple[bool, object]]:
        """`decide` for several (client_address, sender, recipient, now) at once: on Redis
        one round trip for all (each still its own atomic script run). One (ok, result or
        exception) per item; an error in one does not fail the others."""
        run_many = getattr(store, "run_lua_many", None)
        if run_many is not None and items:
            prepared = [self._lua_call(self.key(c, s, r), c, now) for c, s, r, now in items]
            try:
                results = run_many(_GREYLIST_LUA, [call for _, call in prepared])
            except Exception as e:  # noqa: BLE001 - the round trip failed: every item fails alike
                return [(False, e)] * len(items)
            out: list[tuple[bool, object]] = []
            for (key, _), res, item in zip(prepared, results, items):
                if isinstance(res, Exception):
                    out.append((False, res))
                else:
                    out.append((True, self._lua_result(key, res, item[3])))
            return out
        out = []
        try:
            # One commit for the whole batch (SQLite: each decision is a savepoint inside it).
            with store.transaction():
                for item in items:
                    try:
                        out.append((True, self.decide(store, *item)))
                    except Exception as e:  # noqa: BLE001 - handed back to this item's request
                        out.append((False, e))
        except Exception as e:  # noqa: BLE001 - the commit failed: no decision of the batch stands
            return [(False, e)] * len(items)
        return out

    def key(self, client_address: str, sender: str, recipient: str) -> str:
        """The store key of this request's triplet."""
        p = self.policy
        return triplet_key(client_net(client_address, p.v4_prefix, p.v6_prefix), sender, recipient,
                           privacy=p.privacy)

    def _lua_call(self, key: str, client_address: str, now: float) -> tuple[str, tuple[list[str], list[str]]]:
        p = self.policy
        ip = client_address.strip().lower()
        counting = p.auto_whitelist_clients > 0 and bool(ip)
        return key, ([key, awl_key(ip), AWL_GATE_PREFIX + ip],
                     [repr(float(now)), repr(float(p.delay)), repr(float(p.retry_window)),
                      repr(float(p.max_age)), str(p.auto_whitelist_clients if counting else 0),
                      repr(AWL_COUNT_INTERVAL)])

    def _decide_lua(self, run_lua, key: str, client_address: str, now: float) -> GreylistResult:
        _, (keys, args) = self._lua_call(key, client_address, now)
        return self._lua_result(key, run_lua(_GREYLIST_LUA, keys, args), now)

    def _lua_result(self, key: str, res, now: float) -> GreylistResult:
        p = self.policy
        outcome, waited = res[0], float(res[1])
        if outcome == "new":
            return GreylistResult("greylisted", key, seconds_left=_seconds(p.delay), new=True, first_seen=now)
        if outcome == "greylisted":
            return GreylistResult("greylisted", key, seconds_left=_seconds(p.delay - waited),
                                  first_seen=now - waited)
        if outcome == "passed":
            return GreylistResult("passed", key, delayed=int(waited))
        return GreylistResult(outcome, key)


class GreylistMemory:
    """What this process learned from the store, so that repeats are answered without it.

    Only answers that cannot have changed elsewhere are reused, and none for longer than
    `ttl` seconds (so a purge or a removal by the CLI is seen within that time):
    - a triplet still waiting: deferred again, with the store's first-seen time, until its
      delay is over (only the store may let it pass: that step is atomic there);
    - a triplet that passed before ("known"), and a client the store auto-whitelisted: they
      stay accepted for years, so the next `ttl` seconds need no store round trip. The
      store's refresh of their age and the auto-whitelist count (at most once an hour
      anyway) happen at the next store visit, at most `ttl` later.
    New triplets always go to the store, which decides atomically across processes and MX
    hosts. At most `entries_max` triplets are kept, oldest learned dropped first.
    """

    def __init__(self, policy: GreylistPolicy, ttl: float, entries_max: int):
        self.policy = policy
        self.ttl = ttl
        self.entries_max = entries_max
        self._triplets: dict[str, tuple[float, float]] = {}   # key -> (reuse until, first seen or -1: known)
        self._clients: dict[str, float] = {}                   # auto-whitelisted ip -> reuse until
        self.hits = 0

    def answer(self, key: str, client_address: str, now: float) -> GreylistResult | None:
        if self._clients:
            until = self._clients.get(client_address)
            if until is not None:
                if now < until:
                    self.hits += 1
                    return GreylistResult("auto-whitelisted", key)
                del self._clients[client_address]
        got = self._triplets.get(key)
        if got is None:
            return None
        until, first = got
        if now >= until:
            del self._triplets[key]
            return None
        self.hits += 1
        if first < 0:
            return GreylistResult("known", key)
        return GreylistResult("greylisted", key, seconds_left=_seconds(first + self.policy.delay - now),
                              first_seen=first)

    def learn(self, result: GreylistResult, client_address: str, now: float) -> None:
        if self.entries_max <= 0 or self.ttl <= 0:
            return
        outcome = result.outcome
        if outcome == "auto-whitelisted":
            self._remember(self._clients, client_address, now + self.ttl)
        elif outcome in ("known", "passed"):
            self._remember(self._triplets, result.key, (now + self.ttl, -1.0))
        elif outcome == "greylisted" and result.first_seen > 0:
            until = min(now + self.ttl, result.first_seen + self.policy.delay)
            if until > now:
                self._remember(self._triplets, result.key, (until, result.first_seen))

    def _remember(self, table: dict, key: str, value) -> None:
        if key not in table and len(table) >= self.entries_max:
            del table[next(iter(table))]     # dicts keep insertion order: the oldest goes
        table[key] = value

    def forget(self) -> None:
        self._triplets.clear()
        self._clients.clear()


# The same state machine as Greylister._decide, as one Redis script (atomic across MX hosts).
# KEYS: triplet, auto-whitelist counter, its once-an-hour gate. ARGV: now, delay, retry window,
# max age, auto-whitelist threshold (0: off / no client address), count interval.
# Returns {outcome, seconds waited} as strings (Redis truncates Lua numbers).
_GREYLIST_LUA = """
local now, delay, window, maxage = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local awl, gate_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local function count_pass()
  if awl > 0 and not live(KEYS[3], now) then
    put(KEYS[3], '1', now, gate_ttl)
    local old = live(KEYS[2], now)
    local n = 1
    if old then n = n + tonumber(old) end
    put(KEYS[2], string.format('%d', n), now, maxage)
  end
end
if awl > 0 then
  local count = live(KEYS[2], now)
  if count and tonumber(count) >= awl then
    count_pass()
    return {'auto-whitelisted', '0'}
  end
end
local rec = live(KEYS[1], now)
if not rec then
  put(KEYS[1], string.format('%.17g', now), now, window)
  return {'new', '0'}
end
local sep = string.find(rec, ' ', 1, true)
if sep then
  put(KEYS[1], rec, now, maxage)
  count_pass()
  return {'known', '0'}
end
local waited = now - tonumber(rec)
if waited >= delay then
  put(KEYS[1], rec .. ' ' .. string.format('%.17g', now), now, maxage)
  count_pass()
  return {'passed', string.format('%.17g', waited)}
end
return {'greylisted', string.format('%.17g', waited)}
"""


def parse_triplet_key(key: str) -> tuple[str, str, str] | None:
    """(network, sender, recipient) of a stored key, or None for a private (hashed) key."""
    if not key.startswith(TRIPLET_PREFIX):
        return None
    body = key[len(TRIPLET_PREFIX):]
    parts = body.split("/")
    if len(parts) < 3:
        return None
    # The network part may itself contain '/' (192.0.2.0/24): the last two fields are sender, rcpt.
    return "/".join(parts[:-2]), parts[-2], parts[-1]
