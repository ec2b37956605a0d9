"""A TTL cache in front of a directory backend, with separate positive and negative lifetimes.

Positive answers (a recipient that exists, a protected list, a hosted domain, spam levels) live
`directory_cache_positive_ttl`; negative ones (unknown, not ours, not a list)
`directory_cache_negative_ttl`, so a newly created user is accepted soon. Errors
(DirectoryUnavailable) are never cached. `peek_*` answer from the cache without ever
blocking (the policy daemon's and the socketmap's fast path on the reactor thread); the plain methods fill
the cache from the backend (blocking: call them from a thread). Bounded to
`directory_cache_entries_max` entries (oldest dropped first). Thread-safe.
Talks to: the wrapped backend. Tests: tests/directory/test_cache_maildirsize.py (lifetimes, errors,
bound), tests/policyd/test_checks_directory.py (the non-blocking `peek_*` path).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from owlery.directory.base import Directory, ListPolicy, Mailbox, Recipient, SpamLevels

MISS = object()   # what peek_* return when the cache cannot answer


class CachingDirectory(Directory):
    """Directory wrapper that caches every answer for a while."""

    def __init__(self, backend: Directory, *, positive_ttl: float, negative_ttl: float,
                 entries_max: int, clock: Callable[[], float] = time.monotonic):
        self.backend = backend
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.entries_max = entries_max
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _peek(self, kind: str, key: str) -> Any:
        entry = self._entries.get((kind, key))
        if entry is None:
            return MISS
        expires, value = entry
        if self.clock() >= expires:
            return MISS
        self.hits += 1
        return value

    def _get(self, kind: str, key: str, fetch: Callable[[str], Any], positive: Callable[[Any], bool]) -> Any:
        value = self._peek(kind, key)
        if value is not MISS:
            return value
        self.misses += 1
        value = fetch(key)          # may raise DirectoryUnavailable: not cached
        ttl = self.positive_ttl if positive(value) else self.negative_ttl
        if ttl > 0:
            with self._lock:
                self._entries[(kind, key)] = (self.clock() + ttl, value)
                if len(self._entries) > self.entries_max:
                    self._evict()
        return value

    def _evict(self) -> None:
        now = self.clock()
        for k in [k for k, (exp, _) in self._entries.items() if exp <= now]:
            del self._entries[k]
        while len(self._entries) > self.entries_max:
            del self._entries[next(iter(self._entries))]

    # -- non-blocking fast path ------------------------------------------------

    def peek_resolve(self, address: str) -> Recipient | Any:
        return self._peek("resolve", address)

    def peek_list_policy(self, address: str) -> ListPolicy | None | Any:
        return self._peek("list", address)

    def peek_identities(self, address: str) -> frozenset[str] | Any:
        return self._peek("ids", address)

    def peek_hosts_domain(self, domain: str) -> bool | Any:
        return self._peek("domain", domain)

    def peek_expand_once(self, key: str) -> list[str] | None | Any:
        return self._peek("expand", key)

    # -- Directory -------------------------------------------------------------

    def hosts_domain(self, domain: str) -> bool:
        return self._get("domain", domain, self.backend.hosts_domain, bool)

    def resolve(self, address: str) -> Recipient:
        return self._get("resolve", address, self.backend.resolve, lambda r: r.exists)

    def expand_once(self, key: str) -> list[str] | None:
        return self._get("expand", key, self.backend.expand_once, lambda targets: targets is not None)

    def list_policy(self, address: str) -> ListPolicy | None:
        return self._get("list", address, self.backend.list_policy, lambda p: p is not None)

    def identities(self, address: str) -> frozenset[str]:
        return self._get("ids", address, self.backend.identities, bool)

    def list_member(self, list_address: str, address: str) -> bool | None:
        # ListTooLarge, like DirectoryUnavailable, is raised through and not cached.
        return self._get("member", f"{list_address}\0{address}",
                         lambda _key: self.backend.list_member(list_address, address), lambda v: v is not None)

    def spam_levels(self, address: str) -> SpamLevels:
        return self._get("spam", address, self.backend.spam_levels, lambda levels: not levels.empty)

    def content_policy(self, address: str) -> tuple[str, ...]:
        return self._get("policy", address, self.backend.content_policy, bool)

    def mailboxes(self) -> Iterator[Mailbox]:
        return self.backend.mailboxes()           # a walk, not a lookup: not cached

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def hosted_domains(self) -> list[str] | None:
        return self.backend.hosted_domains()      # asked once, at start: not cached

    def reload(self) -> None:
        self.backend.reload()
        self.clear()

    def close(self) -> None:
        self.backend.close()
        self.clear()
