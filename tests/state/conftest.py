"""Fixtures for the state-store contract: one `store` per engine (memory, SQLite, Redis).

Redis is the machine's real server (tests.harness `redis_url` fixture when present, else
127.0.0.1:6379); each test gets its own key prefix and its keys are removed afterwards.
A Redis that does not answer FAILS the Redis cases, with the reason.
"""

from __future__ import annotations

import os
import uuid

import pytest

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def state_redis_url():
    """A Redis URL that answers PING (fails, never skips, when there is none)."""
    import redis
    url = os.environ.get("OWLERY_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        pytest.fail(f"the state tests need a Redis at {url} (set OWLERY_TEST_REDIS_URL): {e}")
    return url


def make_redis_store(url: str):
    from owlery.state.redis_store import RedisStore
    return RedisStore(url, prefix=f"owlery-test:{uuid.uuid4().hex}:", timeout=2)


def drop_redis_keys(store) -> None:
    r = store._redis
    for k in r.scan_iter(match=store.prefix + "*", count=1000):
        r.delete(k)
    store.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path):
    kind = request.param
    if kind == "memory":
        from owlery.state.memory_store import MemoryStore
        s = MemoryStore()
        yield s
        s.close()
    elif kind == "sqlite":
        from owlery.state.sqlite_store import SQLiteStore
        s = SQLiteStore(str(tmp_path / "state.sqlite"), expire_every=3, expire_batch=2)
        yield s
        s.close()
    else:
        s = make_redis_store(request.getfixturevalue("state_redis_url"))
        yield s
        drop_redis_keys(s)
