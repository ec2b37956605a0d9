"""In-process state engine: a dict under a lock (tests and one-shot tools; lost on exit).

Talks to: nothing. Tests: tests/state/test_contract.py
"""

from __future__ import annotations

import threading

from owlery.state.base import Capability, Entry, StateStore, decode_bucket, take_all_math


class MemoryStore(StateStore):
    name = "memory"
    capabilities = frozenset({Capability.TRANSACTIONS, Capability.LOCAL_READS})

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.RLock()   # re-entrant: transaction() holds it around calls

    def _live(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._data[key]
            return None
        return item[0]

    def transaction(self):
        return _Held(self._lock, self)

    def get(self, key, now):
        with self._lock:
            return self._live(key, now)

    def set(self, key, value, ttl, now):
        with self._lock:
            self._data[key] = (value, now + ttl)

    def add(self, key, value, ttl, now):
        with self._lock:
            if self._live(key, now) is not None:
                return False
            self._data[key] = (value, now + ttl)
            return True

    def delete(self, key):
        with self._lock:
            return self._data.pop(key, None) is not None

    def incr(self, key, amount, ttl, now):
        with self._lock:
            old = self._live(key, now)
            value = (int(old) if old is not None else 0) + amount
            self._data[key] = (str(value), now + ttl)
            return value

    def take_all(self, takes, now):
        with self._lock:   # all buckets read, decided and written under one hold of the lock
            buckets = {key: decode_bucket(self._live(key, now)) for key, *_ in takes}
            out, writes = take_all_math(buckets, takes, now)
            for key, (value, ttl) in writes.items():
                self._data[key] = (value, now + ttl)
            return out

    def scan(self, prefix, now, limit=1000):
        with self._lock:
            out = []
            for key, (value, expires) in self._data.items():
                if key.startswith(prefix) and expires > now:
                    out.append(Entry(key, value, expires))
                    if len(out) >= limit:
                        break
            return out

    def count_live(self, prefix, now):
        with self._lock:
            words = [len(v.split(" ", 1)) for k, (v, e) in self._data.items() if k.startswith(prefix) and e > now]
        return words.count(1), words.count(2)

    def expire(self, now, limit):
        with self._lock:
            dead = [k for k, (_, e) in self._data.items() if e <= now][:limit]
            for k in dead:
                del self._data[k]
            return len(dead)


class _Held:
    """Holds the store's lock for the duration of a `with` block."""

    def __init__(self, lock, store):
        self._lock = lock
        self._store = store

    def __enter__(self):
        self._lock.acquire()
        return self._store

    def __exit__(self, *exc):
        self._lock.release()
        return False
