"""Greylisting decisions: triplet keys, postgrey-format whitelists and the state machine.

`Greylister.step(key, client_address, values, now)` is the whole decision as a pure
function: the stored values it needs (`Greylister.reads`) in, the result and the writes to
make (`owlery.state.Write`) out. policyd's check reads on a memory miss, decides on the
reactor and queues the writes behind (policyd/greylist_cache.py); `Greylister.decide(store,
...)` does read, step and write at once (blocking; the CLI and tests). Pure helpers
(`client_net`, `triplet_key`, whitelist matching, reply text) take values and `now`;
nothing here reads the clock or a setting.

State kept (keys under "gl:"): `gl:t:<net>/<sender>/<rcpt>` = first-seen time while
waiting (expires after the retry window), `<first> <passed>` once passed (expires
after max age, refreshed at each pass); `gl:a:<ip>` = passes counted for the client
auto-whitelist (a triplet's first accepted retry, as postgrey counts; at most one per hour,
gated by `gl:h:<ip>`), expiring after max age.
Why reading and writing apart is safe on a store several hosts share: the first-seen write
is an add (only when absent), so the earliest first sight stays; a pass is a set of
"<first> <now>" that any host may write once the delay is over; two hosts racing write
the same kind of answer. The worst a race does is one more deferral, never an early pass.
Talks to: the state store, whitelist files. Tests: tests/policyd/test_greylist_core.py,
tests/policyd/test_postgrey_differential.py
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Sequence

from owlery.state import Capability, Write
from policyd.netmatch import PrefixTable, v4_int
from policyd.sender import normalise_sender, split_address, strip_extension

log = logging.getLogger("owlery.policyd")

TRIPLET_PREFIX = "gl:t:"
AWL_PREFIX = "gl:a:"
AWL_GATE_PREFIX = "gl:h:"
AWL_COUNT_INTERVAL = 3600.0   # a client's passes count at most once an hour (postgrey)
FILE_CHECK_INTERVAL = 1.0     # stat whitelist files at most once a second
_MATCH_MEMO_MAX = 65536       # whitelist answers remembered per list
MAX_FIELD = 512               # postgrey truncates names and values to 512 bytes too
_CUT_UNNEEDED = MAX_FIELD // 4  # characters: at most 4 bytes each, so never over MAX_FIELD


# --- keys -----------------------------------------------------------------------------

# Remembered client networks (clients come back; ipaddress parsing is slow), keyed by one
# string: a dict of strings only is never tracked by the cyclic collector, so a full
# collection does not walk its 65,536 entries (an lru_cache's entries are tracked objects,
# and a tuple key makes the dict tracked again each time one is added). The same rule holds
# for every long-lived memo of the policy checks (tests/policyd/test_memo_untracked.py).
_CLIENT_NETS: dict[str, str] = {}
_CLIENT_NETS_MAX = 65536


def client_net(address: str, v4_prefix: int, v6_prefix: int) -> str:
    """The client's network as text: 192.0.2.77 -> 192.0.2.0/24 (prefix 32/128 keeps the host).

    An address that does not parse is kept as given (lower-cased), so it still keys.
    """
    memo_key = f"{address}\0{v4_prefix}\0{v6_prefix}"
    got = _CLIENT_NETS.get(memo_key)
    if got is None:
        if len(_CLIENT_NETS) >= _CLIENT_NETS_MAX:
            _CLIENT_NETS.clear()
        got = _CLIENT_NETS[memo_key] = _client_net(address, v4_prefix, v6_prefix)
    return got


def _client_net(address: str, v4_prefix: int, v6_prefix: int) -> str:
    fast = _v4_net(address.strip(), v4_prefix)
    if fast is not None:
        return fast
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip().lower()[:MAX_FIELD]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = v4_prefix if ip.version == 4 else v6_prefix
    net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _v4_net(address: str, prefix: int) -> str | None:
    """client_net of a plain dotted quad without the ipaddress module (about 20 us there per
    new client, most of a new triplet's cost); None for anything else, which takes the
    general path (netmatch.v4_int accepts exactly what ipaddress accepts)."""
    n = v4_int(address)
    if n is None:
        return None
    if prefix >= 32:
        return address
    n &= (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/{prefix}"


def _cut(value: str) -> str:
    """The first MAX_FIELD bytes of an attribute value: postgrey cuts what it reads before it
    normalises, so two long senders alike up to there are one sender for it."""
    raw = value.encode("utf-8", "surrogateescape")
    return value if len(raw) <= MAX_FIELD else raw[:MAX_FIELD].decode("utf-8", "surrogateescape")


def _storable(text: str) -> str:
    """Text any store takes as a key: raw 8-bit bytes (kept as surrogates by the protocol
    decoder) become \\xNN escapes; SQLite and Redis refuse lone surrogates."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def triplet_key(net: str, sender: str, recipient: str, *, privacy: bool = False) -> str:
    """The store key of a (network, normalised sender, recipient) triplet."""
    if len(sender) > _CUT_UNNEEDED:
        sender = _cut(sender)
    if len(recipient) > _CUT_UNNEEDED:
        recipient = _cut(recipient)
    body = f"{net}/{normalise_sender(sender)[:MAX_FIELD] or '<>'}/{recipient.strip().lower()[:MAX_FIELD]}"
    if privacy:
        return TRIPLET_PREFIX + hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()
    return TRIPLET_PREFIX + (body if body.isascii() else _storable(body))


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
        # (one string key: the memo then holds nothing the cyclic collector walks; NUL
        # cannot occur in a policy attribute, the decoder refuses it)
        memo = self.__dict__.setdefault("_memo", {})
        memo_key = f"{address}\0{name}"
        got = memo.get(memo_key)
        if got is None:
            if len(memo) >= _MATCH_MEMO_MAX:
                memo.clear()
            got = memo[memo_key] = self._matches(address, name)
        return got

    def _matches(self, address: str, name: str) -> bool:
        if self.networks and address:
            table = self.__dict__.get("_table")
            if table is None:
                table = self.__dict__["_table"] = PrefixTable(self.networks)
            if address in table:     # text that is no address: only the name can match
                return True
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


def whole_seconds(value: float) -> int:
    # Round up so the client is never told to come back before the delay is over.
    whole = int(value)
    return whole + (1 if value > whole else 0)


class Greylister:
    """The greylist state machine: `step` decides from stored values, `decide` against a store."""

    def __init__(self, policy: GreylistPolicy):
        self.policy = policy

    def key(self, client_address: str, sender: str, recipient: str) -> str:
        """The store key of this request's triplet."""
        p = self.policy
        return triplet_key(client_net(client_address, p.v4_prefix, p.v6_prefix), sender, recipient,
                           privacy=p.privacy)

    def _counting(self, client_address: str) -> str | None:
        """The client IP whose passes the auto-whitelist counts, or None (off, or no address)."""
        ip = _storable(client_address.strip().lower())
        return ip if self.policy.auto_whitelist_clients > 0 and ip else None

    def reads(self, key: str, client_address: str) -> list[str]:
        """The keys `step` needs, in the order it takes their values: the triplet last."""
        ip = self._counting(client_address)
        return [awl_key(ip), key] if ip else [key]

    def step(self, key: str, client_address: str, values: Sequence[str | None],
             now: float) -> tuple[GreylistResult, list[Write]]:
        """The decision from the stored values of `reads(key, client_address)`, and what to write."""
        p = self.policy
        ip = self._counting(client_address)
        record = values[-1]
        count = [Write("incr", awl_key(ip), "1", p.max_age, now, gate=AWL_GATE_PREFIX + ip,
                       gate_ttl=AWL_COUNT_INTERVAL)] if ip else []
        if ip and values[0] is not None and int(values[0]) >= p.auto_whitelist_clients:
            return GreylistResult("auto-whitelisted", key), count
        if record is None:
            return (GreylistResult("greylisted", key, seconds_left=whole_seconds(p.delay), new=True, first_seen=now),
                    [Write("add", key, repr(float(now)), p.retry_window, now)])
        fields = record.split()
        if len(fields) > 1:   # passed before: refresh its age (no count: a repeat proves no retry)
            return GreylistResult("known", key), [Write("set", key, record, p.max_age, now)]
        first = float(fields[0])
        waited = now - first
        if waited >= p.delay:
            return (GreylistResult("passed", key, delayed=int(waited)),
                    [Write("set", key, f"{fields[0]} {float(now)!r}", p.max_age, now)] + count)
        return GreylistResult("greylisted", key, seconds_left=whole_seconds(p.delay - waited), first_seen=first), []

    def decide(self, store, client_address: str, sender: str, recipient: str, now: float) -> GreylistResult:
        """Read, decide and write at once (blocking). One atomic unit on engines with
        transactions; on the others (Redis) a read then one write script, which the
        module docstring argues is safe."""
        key = self.key(client_address, sender, recipient)
        keys = self.reads(key, client_address)
        if Capability.TRANSACTIONS in store.capabilities:
            with store.transaction():
                return self._decide(store, key, keys, client_address, now)
        return self._decide(store, key, keys, client_address, now)

    def _decide(self, store, key: str, keys: list[str], client_address: str, now: float) -> GreylistResult:
        result, writes = self.step(key, client_address, store.get_many(keys, now), now)
        if writes:
            store.write_many(writes)
        return result


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
