"""State store: string keys with TTLs, counters and token buckets, on SQLite or Redis.

One interface (`StateStore`) with three engines: SQLite (embedded default, WAL, expiry done
a few rows at a time, never as a sweep), Redis (several MX hosts share it; every operation
is one atomic Lua script) and memory (tests, one-shot tools). Time is an argument: every
call takes `now`, and expiry is judged against it, so tests drive a fake clock against the
real engines. `take_all` takes several token buckets at once, all or nothing (rate limits);
`take_all_many` runs many of those in one round trip / one commit (policyd's state thread);
`write_many` applies a batch of writes (add / set / incr, each optionally gated by a key it
must add first) in one commit or one Redis script (greylisting's write-behind flush).
What an engine can do beyond that interface it declares in `capabilities` (see
`Capability`); callers test membership there, never probe for methods.
Engines are blocking; policyd calls them from its thread pool. Failures raise
`owlery.errors.StateUnavailable` (a 4xx for the client, never a false accept or 5xx).
Used by: policyd greylist and rate-limit checks, `owlery greylist`.
Tests: tests/state/test_contract.py, tests/state/test_take_all.py (the same suites against
all engines).
"""

from __future__ import annotations

from owlery.errors import StateUnavailable
from owlery.settings import Duration, Str, choice, int_range, satisfying, setting

# The interface and its arithmetic live in a leaf the engines import (no package cycle), and
# are re-exported from here on first use (PEP 562): reading a settings file that names a
# state_ key imports this package for the declarations below, and an in-process LDA run whose
# script tracks nothing should not pay for the interface (~2 M instructions).
_FROM_BASE = frozenset({"BucketTake", "Capability", "Entry", "StateStore", "Take", "Write", "bucket_math",
                        "bucket_ttl", "decode_bucket", "encode_bucket", "take_all_math"})


def __getattr__(name: str):
    if name in _FROM_BASE:
        from owlery.state import base
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

    from owlery.state.base import StateStore

STATE_BACKEND = setting("state_backend", choice("sqlite", "redis", "memory"), "sqlite",
                        "Where greylist and rate-limit state lives: sqlite (one host), redis (shared by "
                        "several MX hosts) or memory (lost on restart; tests only).")
STATE_SQLITE_PATH = setting("state_sqlite_path", Str, "/var/lib/owlery/state.sqlite",
                            "SQLite database file for state_backend = \"sqlite\" (WAL mode; the directory "
                            "must be writable by the daemon user).")
STATE_SQLITE_BUSY_TIMEOUT = setting("state_sqlite_busy_timeout", Duration, 2,
                                    "How long a SQLite write waits for another writer before the "
                                    "request gets a temporary failure.", unit="s")
STATE_REDIS_URL = setting("state_redis_url",
                          satisfying(lambda u: u.startswith(("redis://", "rediss://", "unix://")),
                                     "a redis://, rediss:// or unix:// URL"),
                          "redis://127.0.0.1:6379/0",
                          "Redis server for state_backend = \"redis\" (redis://, rediss:// or unix://). "
                          "With a password (redis://:PASSWORD@host), prefer state_redis_url_file.")
STATE_REDIS_URL_FILE = setting("state_redis_url_file", Str, None,
                               "A file whose first line is the Redis URL (keeps a password out of the "
                               "settings file); when set it replaces state_redis_url.")
STATE_REDIS_TIMEOUT = setting("state_redis_timeout", Duration, 2,
                              "Connect and command timeout for Redis; past it the request gets a "
                              "temporary failure.", unit="s")
STATE_KEY_PREFIX = setting("state_key_prefix", Str, "owlery:",
                           "Prefix of every Redis key Owlery writes, so one Redis can serve other "
                           "applications too.")
STATE_TIMEOUT = setting("state_timeout", Duration, 3,
                        "Longest a policy request waits for one state-store decision (greylist, "
                        "rate limit) before it gets a temporary failure.", unit="s")
STATE_EXPIRE_BATCH = setting("state_expire_batch", int_range(1, 100000), 200,
                             "Most expired SQLite rows removed per cleanup step (steps run every "
                             "state_expire_every writes), so expiry never stalls a request.")
STATE_EXPIRE_EVERY = setting("state_expire_every", int_range(1, 1000000), 100,
                             "Run one SQLite cleanup step after this many writes.")


__all__ = ["StateUnavailable", "BucketTake", "Capability", "Entry", "StateStore", "Take", "Write",
           "bucket_math", "bucket_ttl", "decode_bucket", "encode_bucket", "take_all_math", "open_store"]


def redis_url(settings: Any) -> str:
    """The Redis URL: state_redis_url, or the file state_redis_url_file names (it wins)."""
    if settings.state_redis_url_file is not None:
        from owlery.secrets import read_secret_file
        return read_secret_file(settings.state_redis_url_file, "state_redis_url_file")
    return settings.state_redis_url


def open_store(settings: Any, *, backend: str | None = None) -> StateStore:
    """The engine the settings name (`state_backend`), connected lazily."""
    kind = settings.state_backend if backend is None else backend
    if kind == "sqlite":
        from owlery.state.sqlite_store import SQLiteStore
        return SQLiteStore(settings.state_sqlite_path, busy_timeout=settings.state_sqlite_busy_timeout,
                           expire_batch=settings.state_expire_batch,
                           expire_every=settings.state_expire_every)
    if kind == "redis":
        from owlery.state.redis_store import RedisStore
        return RedisStore(redis_url(settings), prefix=settings.state_key_prefix,
                          timeout=settings.state_redis_timeout)
    if kind == "memory":
        from owlery.state.memory_store import MemoryStore
        return MemoryStore()
    raise ValueError(f"unknown state backend {kind!r}")
